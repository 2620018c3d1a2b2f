"""Isotonic calibration maps, reliability bins and expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

from feedbackloop.stats import (
    NotEstimable,
    expected_calibration_error,
    fit_isotonic,
    reliability,
    wilson_interval,
)

scored_labels = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)
probability_labels = st.integers(0, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.floats(0, 1), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


def test_isotonic_pools_adjacent_violators_by_hand() -> None:
    # Labels 1 0 1 1 in score order: the first two violate monotonicity and pool to 0.5.
    iso = fit_isotonic([1.0, 2.0, 3.0, 4.0], [True, False, True, True])
    assert iso.predict([1.0, 2.0, 3.0, 4.0]).tolist() == [0.5, 0.5, 1.0, 1.0]
    assert iso.predict([2.5]).tolist() == [0.75]  # linear between knots
    assert iso.predict([-10.0, 10.0]).tolist() == [0.5, 1.0]  # clipped outside


@settings(max_examples=60, deadline=None)
@given(scored_labels, st.lists(st.floats(-10, 10), min_size=1, max_size=10))
def test_isotonic_equals_sklearn(data, new_scores: list[float]) -> None:
    scores, labels = data
    iso = fit_isotonic(scores, labels)
    ref = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        scores, np.array(labels, dtype=float)
    )
    probe = np.array(scores + new_scores)
    np.testing.assert_allclose(iso.predict(probe), ref.predict(probe), atol=1e-12)
    predicted = iso.predict(np.sort(probe))
    assert np.all(np.diff(predicted) >= -1e-12)
    assert np.all((predicted >= 0) & (predicted <= 1))
    xs = [x for x, _ in iso.points]
    assert xs == sorted(xs)


def test_isotonic_errors() -> None:
    with pytest.raises(NotEstimable, match="no data"):
        fit_isotonic([], [])
    with pytest.raises(NotEstimable, match="missing"):
        fit_isotonic([0.1, float("nan")], [True, False])
    with pytest.raises(ValueError, match="differ in length"):
        fit_isotonic([0.1, 0.2], [True])


def test_isotonic_with_one_class_is_a_constant_map() -> None:
    iso = fit_isotonic([0.1, 0.5, 0.9], [False, False, False])
    assert iso.predict([0.0, 0.5, 1.0]).tolist() == [0.0, 0.0, 0.0]


def test_reliability_hand_example() -> None:
    p = [0.05, 0.15, 0.12, 0.95, 1.0, 0.91]
    y = [False, True, False, True, True, False]
    bins = reliability(p, y, n_bins=10)
    assert [(b.lo, b.hi, b.n) for b in bins] == [(0.0, 0.1, 1), (0.1, 0.2, 2), (0.9, 1.0, 3)]
    assert bins[1].mean_predicted == pytest.approx(0.135)
    assert bins[1].observed == pytest.approx(0.5)
    assert bins[1].ci == wilson_interval(1, 2).ci
    assert bins[2].observed == pytest.approx(2 / 3)  # 1.0 falls in the last, closed bin


@settings(max_examples=80, deadline=None)
@given(probability_labels, st.integers(1, 20))
def test_reliability_bins_partition_the_data(data, n_bins: int) -> None:
    p, y = data
    bins = reliability(p, y, n_bins=n_bins)
    assert sum(b.n for b in bins) == len(p)
    assert all(b.n > 0 for b in bins)
    assert sum(round(b.observed * b.n) for b in bins) == sum(y)
    for b in bins:
        assert b.lo - 1e-12 <= b.mean_predicted <= b.hi + 1e-12
        assert b.ci[0] <= b.observed <= b.ci[1]
    los = [b.lo for b in bins]
    assert los == sorted(los) and len(set(los)) == len(los)


def test_ece_hand_example() -> None:
    # Bin [0.1, 0.2): predicted 0.1, observed 0; bin [0.9, 1]: predicted 0.9, observed 1.
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1]) == pytest.approx(0.1)


@settings(max_examples=60, deadline=None)
@given(probability_labels.filter(lambda d: len(d[0]) > 0))
def test_ece_is_a_weighted_mean_gap_between_0_and_1(data) -> None:
    p, y = data
    ece = expected_calibration_error(p, y)
    assert 0.0 <= ece <= 1.0
    bins = reliability(p, y)
    assert ece == pytest.approx(
        sum(b.n * abs(b.observed - b.mean_predicted) for b in bins) / len(p)
    )


def test_ece_is_small_when_calibrated_and_large_when_not() -> None:
    rng = np.random.default_rng(2015)
    p = rng.random(20000)
    y = rng.random(20000) < p
    assert expected_calibration_error(p, y) < 0.02
    assert expected_calibration_error(p**3, y) > 0.15


def test_probabilities_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability([0.5, 1.2], [True, False])
    with pytest.raises(NotEstimable, match="no predictions"):
        expected_calibration_error([], [])
    assert reliability([], []) == []
