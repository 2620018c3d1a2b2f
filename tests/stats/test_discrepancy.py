"""Per-item disagreement between the human and the metric channel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedbackloop.stats import discrepancy_scores, top_discrepancies

two_channels = st.integers(0, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(1, 5), min_size=n, max_size=n),
        st.lists(st.floats(-100, 100, allow_nan=False), min_size=n, max_size=n),
    )
)


def test_hand_example_with_different_scales() -> None:
    human = [1, 2, 3, 4, 5]  # ratings 1-5
    metric = [0.1, 0.2, 0.3, 0.5, 0.0]  # a 0-1 score; item 5 is worst for the metric
    # scaled ranks: human 0, .25, .5, .75, 1; metric .25, .5, .75, 1, 0
    expected = [0.25, 0.25, 0.25, 0.25, 1.0]
    np.testing.assert_allclose(discrepancy_scores(human, metric), expected)


def test_ties_take_mid_ranks() -> None:
    # human ranks 1.5 1.5 3 -> 0.25 0.25 1; metric 1 2 3 -> 0 0.5 1
    np.testing.assert_allclose(discrepancy_scores([2, 2, 7], [1, 2, 3]), [0.25, 0.25, 0.0])


@settings(max_examples=80, deadline=None)
@given(two_channels)
def test_scores_lie_in_unit_interval_symmetric_and_rank_based(data) -> None:
    human, metric = np.array(data[0], dtype=float), np.array(data[1])
    scores = discrepancy_scores(human, metric)
    assert scores.shape == human.shape
    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, discrepancy_scores(metric, human))
    # Monotone changes of scale on either channel change nothing.
    np.testing.assert_allclose(scores, discrepancy_scores(np.exp(human), 2 * metric))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30, unique=True))
def test_same_ordering_means_no_discrepancy(values: list[float]) -> None:
    v = np.array(values)
    np.testing.assert_allclose(discrepancy_scores(v, 3 * v), 0.0, atol=1e-12)


def test_single_and_empty_inputs() -> None:
    assert discrepancy_scores([3], [0.2]).tolist() == [0.0]
    assert discrepancy_scores([], []).tolist() == []
    assert top_discrepancies([], [], [], 5) == []


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        discrepancy_scores([1, 2], [1])
    with pytest.raises(ValueError, match="missing"):
        discrepancy_scores([1, float("nan")], [1, 2])
    with pytest.raises(ValueError, match="k must be"):
        top_discrepancies(["a"], [1], [1], -1)


def test_top_discrepancies_ranked_with_ties_broken_by_id() -> None:
    ids = ["d", "b", "c", "a", "e"]
    human = [1, 2, 3, 4, 5]
    metric = [0.1, 0.2, 0.3, 0.5, 0.0]
    top = top_discrepancies(ids, human, metric, k=3)
    assert top[0] == ("e", 1.0, 5.0, 0.0)
    # the other four tie at 0.25: ordered by id
    assert [row[0] for row in top] == ["e", "a", "b"]
    assert all(isinstance(row[1], float) for row in top)
    assert len(top_discrepancies(ids, human, metric, k=50)) == 5


@settings(max_examples=40, deadline=None)
@given(two_channels, st.integers(0, 40))
def test_top_discrepancies_is_sorted_and_independent_of_input_order(data, k: int) -> None:
    human, metric = data
    ids = list(range(len(human)))
    top = top_discrepancies(ids, human, metric, k)
    assert len(top) == min(k, len(ids))
    assert all(a[1] >= b[1] - 1e-12 for a, b in itertools.pairwise(top))
    order = ids[::-1]
    reversed_top = top_discrepancies(
        order, [human[i] for i in order], [metric[i] for i in order], k
    )
    assert [row[0] for row in reversed_top] == [row[0] for row in top]
