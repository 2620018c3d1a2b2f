"""Spearman's rho and Kendall's tau-b with paired bootstrap intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from feedbackloop.stats import kendall, spearman
from feedbackloop.stats.correlation import _kendall_vectorized, _spearman_vectorized

RANK_CORRELATIONS = [spearman, kendall]

# Integers give plenty of ties, which is where tau-b and mid-ranks matter.
paired = st.integers(3, 25).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
        st.lists(st.integers(0, 6), min_size=n, max_size=n),
    )
)


def _non_constant(x: list[int], y: list[int]) -> bool:
    return len(set(x)) > 1 and len(set(y)) > 1


def test_spearman_wikipedia_worked_example() -> None:
    # Wikipedia, "Spearman's rank correlation coefficient", example: IQ against hours of
    # television per week for 10 people; rho = -29/165.
    iq = [106, 100, 86, 101, 99, 103, 97, 113, 112, 110]
    tv = [7, 27, 2, 50, 28, 29, 20, 12, 6, 17]
    est = spearman(iq, tv, rng=np.random.default_rng(0), n_resamples=200)
    assert est.value == pytest.approx(-29 / 165, abs=1e-12)
    assert est.n == 10


def test_kendall_hand_counted_example() -> None:
    # y = 3 1 2 5 4 against x = 1..5: concordant pairs 7, discordant 3 -> (7 - 3) / 10.
    est = kendall([1, 2, 3, 4, 5], [3, 1, 2, 5, 4], rng=np.random.default_rng(0))
    assert est.value == pytest.approx(0.4, abs=1e-12)


def test_kendall_tau_b_with_ties_hand_counted() -> None:
    # x = 1 1 2 3, y = 1 2 2 3. Of 6 pairs: C = 4, D = 0, one pair tied in x, one in y:
    # tau_b = 4 / sqrt((6 - 1)(6 - 1)) = 0.8.
    est = kendall([1, 1, 2, 3], [1, 2, 2, 3], rng=np.random.default_rng(0))
    assert est.value == pytest.approx(0.8, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(paired)
def test_point_values_equal_scipy(data: tuple[list[int], list[int]]) -> None:
    x, y = data
    if not _non_constant(x, y):
        return
    rng = np.random.default_rng(0)
    s = spearman(x, y, rng=rng, n_resamples=50)
    k = kendall(x, y, rng=rng, n_resamples=50)
    assert s.value == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert k.value == pytest.approx(scipy_stats.kendalltau(x, y).statistic, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(paired)
def test_vectorized_statistics_equal_scipy_row_by_row(data: tuple[list[int], list[int]]) -> None:
    x, y = np.array(data[0], dtype=float), np.array(data[1], dtype=float)
    rows_x = np.stack([x, x[::-1], np.roll(x, 1)])
    rows_y = np.stack([y, y, y])
    got_s = _spearman_vectorized(rows_x, rows_y)
    got_k = _kendall_vectorized(rows_x, rows_y)
    for i in range(3):
        if np.ptp(rows_x[i]) == 0 or np.ptp(rows_y[i]) == 0:
            assert math.isnan(got_s[i]) and math.isnan(got_k[i])
            continue
        ref_s = scipy_stats.spearmanr(rows_x[i], rows_y[i]).statistic
        assert got_s[i] == pytest.approx(ref_s, abs=1e-12)
        assert got_k[i] == pytest.approx(scipy_stats.kendalltau(rows_x[i], rows_y[i]).statistic)


@pytest.mark.parametrize("correlation", RANK_CORRELATIONS)
@settings(max_examples=30, deadline=None)
@given(data=paired)
def test_symmetric_and_invariant_to_monotone_transforms(
    correlation, data: tuple[list[int], list[int]]
) -> None:
    x, y = np.array(data[0], dtype=float), np.array(data[1], dtype=float)
    if not _non_constant(data[0], data[1]):
        return
    rng = np.random.default_rng(0)
    base = correlation(x, y, rng=rng, n_resamples=20).value
    assert correlation(y, x, rng=rng, n_resamples=20).value == pytest.approx(base, abs=1e-12)
    assert correlation(np.exp(x), y**3 + 2 * y, rng=rng, n_resamples=20).value == pytest.approx(
        base, abs=1e-12
    )
    assert correlation(-x, y, rng=rng, n_resamples=20).value == pytest.approx(-base, abs=1e-12)


@pytest.mark.parametrize("correlation", RANK_CORRELATIONS)
def test_interval_is_reproducible_and_brackets_the_value(correlation) -> None:
    data = np.random.default_rng(8)
    x = data.normal(size=40)
    y = x + data.normal(size=40)
    a = correlation(x, y, rng=np.random.default_rng(1), n_resamples=500)
    b = correlation(x, y, rng=np.random.default_rng(1), n_resamples=500)
    assert a == b
    assert a.ci is not None
    assert -1.0 <= a.ci[0] < a.value < a.ci[1] <= 1.0


@pytest.mark.parametrize("correlation", RANK_CORRELATIONS)
@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        ([1.0, 2.0], [2.0, 1.0], "at least 3 pairs"),
        ([], [], "at least 3 pairs"),
        ([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0], "x is constant"),
        ([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0], "y is constant"),
        ([1.0, float("nan"), 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], "missing or infinite"),
    ],
)
def test_degenerate_input_is_unavailable_with_a_reason(correlation, x, y, reason) -> None:
    est = correlation(x, y, rng=np.random.default_rng(0))
    assert not est.available
    assert reason in (est.reason or "")
    json.dumps(est.to_dict(), allow_nan=False)


@pytest.mark.parametrize("correlation", RANK_CORRELATIONS)
def test_three_pairs_give_an_estimate_without_nan(correlation) -> None:
    est = correlation([1, 2, 3], [1, 3, 2], rng=np.random.default_rng(0), n_resamples=200)
    assert est.available
    json.dumps(est.to_dict(), allow_nan=False)


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        spearman([1, 2, 3], [1, 2], rng=np.random.default_rng(0))


def test_kendall_on_many_pairs_uses_the_scalar_path_and_agrees() -> None:
    data = np.random.default_rng(4)
    x = data.normal(size=400)
    y = x + 2 * data.normal(size=400)
    est = kendall(x, y, rng=np.random.default_rng(0), n_resamples=60)
    assert est.value == pytest.approx(scipy_stats.kendalltau(x, y).statistic)
    assert est.ci is not None and est.value is not None
    assert est.ci[0] < est.value < est.ci[1]


@pytest.mark.parametrize(
    ("correlation", "truth"),
    [
        # For a bivariate normal with correlation r (Kruskal 1958):
        # Spearman's rho = (6/pi) asin(r/2), Kendall's tau = (2/pi) asin(r).
        (spearman, 6 / math.pi * math.asin(0.25)),
        (kendall, 2 / math.pi * math.asin(0.5)),
    ],
)
def test_bootstrap_interval_covers_the_population_value(correlation, truth: float) -> None:
    rng = np.random.default_rng(1958)
    cov = [[1.0, 0.5], [0.5, 1.0]]
    sims, covered = 500, 0
    for _ in range(sims):
        x, y = rng.multivariate_normal([0.0, 0.0], cov, size=60).T
        ci = correlation(x, y, rng=rng, n_resamples=400).ci
        assert ci is not None
        covered += ci[0] <= truth <= ci[1]
    # Nominal 95%; Monte-Carlo s.e. about 0.01, and the percentile bootstrap of a
    # correlation runs slightly under nominal at this size.
    assert 0.90 <= covered / sims <= 0.975
