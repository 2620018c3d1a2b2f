"""Wilson intervals and the paired bootstrap."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from feedbackloop.stats import bootstrap_interval, wilson_interval


# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Stat Med 17:857-872, Table I, method 3 (Wilson score, no continuity
# correction), 95%.
@pytest.mark.parametrize(
    ("x", "n", "lo", "hi"),
    [
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0000, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_newcombe_1998_table_1(x: int, n: int, lo: float, hi: float) -> None:
    est = wilson_interval(x, n)
    assert est.value == pytest.approx(x / n)
    assert est.ci is not None
    assert est.ci[0] == pytest.approx(lo, abs=5e-5)
    assert est.ci[1] == pytest.approx(hi, abs=5e-5)
    assert est.method == "wilson"


@given(
    n=st.integers(1, 500),
    frac=st.floats(0, 1),
    confidence=st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
def test_wilson_equals_scipy_binomtest(n: int, frac: float, confidence: float) -> None:
    x = round(frac * n)
    ref = scipy_stats.binomtest(x, n).proportion_ci(confidence_level=confidence, method="wilson")
    est = wilson_interval(x, n, confidence)
    assert est.ci is not None
    assert est.ci[0] == pytest.approx(ref.low, abs=1e-12)
    assert est.ci[1] == pytest.approx(ref.high, abs=1e-12)
    assert 0.0 <= est.ci[0] <= x / n <= est.ci[1] <= 1.0


def test_wilson_without_observations_is_unavailable() -> None:
    est = wilson_interval(0, 0)
    assert not est.available
    assert est.reason == "no observations"


@pytest.mark.parametrize(("x", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_impossible_counts(x: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(x, n)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5])
def test_confidence_outside_unit_interval_is_rejected(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 2, confidence)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5])
def test_wilson_covers_at_about_the_nominal_rate(p: float) -> None:
    rng = np.random.default_rng(1927)
    n, sims = 60, 2000
    successes = rng.binomial(n, p, size=sims)
    covered = 0
    for x in successes:
        ci = wilson_interval(int(x), n).ci
        assert ci is not None
        covered += ci[0] <= p <= ci[1]
    # Wilson's actual coverage oscillates around 95% (Newcombe 1998, Table II: 93-97%).
    assert 0.92 <= covered / sims <= 0.98


def _mean_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.mean(a - b, axis=axis))


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_equals_scipy_with_the_same_seed(method: Literal["percentile", "bca"]) -> None:
    data = np.random.default_rng(3)
    a, b = data.exponential(size=30), data.normal(size=30)
    ours = bootstrap_interval(
        _mean_diff,
        a,
        b,
        rng=np.random.default_rng(11),
        n_resamples=999,
        method=method,
        vectorized=True,
    )
    ref = scipy_stats.bootstrap(
        (a, b),
        _mean_diff,
        paired=True,
        vectorized=True,
        n_resamples=999,
        method=method,
        rng=np.random.default_rng(11),
    ).confidence_interval
    assert ours is not None
    assert ours[0] == pytest.approx(ref.low, rel=1e-10)
    assert ours[1] == pytest.approx(ref.high, rel=1e-10)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_scalar_and_vectorized_statistics_agree(method: Literal["percentile", "bca"]) -> None:
    data = np.random.default_rng(5)
    a, b = data.normal(size=25), data.normal(size=25)

    def scalar(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(x - y))

    vec = bootstrap_interval(
        _mean_diff,
        a,
        b,
        rng=np.random.default_rng(2),
        n_resamples=300,
        method=method,
        vectorized=True,
    )
    loop = bootstrap_interval(
        scalar, a, b, rng=np.random.default_rng(2), n_resamples=300, method=method
    )
    assert vec is not None and loop is not None
    assert vec == pytest.approx(loop, rel=1e-12)


def test_bootstrap_resamples_rows_of_2d_arrays_together() -> None:
    rows = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])

    def columns_equal(x: np.ndarray) -> float:
        # Would be 0 if the two columns were resampled separately.
        return float(np.all(x[:, 0] == x[:, 1]))

    ci = bootstrap_interval(columns_equal, rows, rng=np.random.default_rng(0), n_resamples=50)
    assert ci == (1.0, 1.0)


@pytest.mark.parametrize(("method", "nominal"), [("percentile", 0.95), ("bca", 0.95)])
def test_bootstrap_covers_the_true_mean_at_about_the_nominal_rate(
    method: Literal["percentile", "bca"], nominal: float
) -> None:
    # 500 data sets of 50 draws from a gamma(4) (mean 4, mildly skewed).
    rng = np.random.default_rng(1979)
    covered = 0
    sims = 500
    for _ in range(sims):
        x = rng.gamma(4.0, size=50)
        ci = bootstrap_interval(
            lambda v, axis=-1: np.mean(v, axis=axis),
            x,
            rng=rng,
            n_resamples=500,
            method=method,
            vectorized=True,
        )
        assert ci is not None
        covered += ci[0] <= 4.0 <= ci[1]
    # Monte-Carlo standard error is about 0.01; the percentile bootstrap runs a little
    # under nominal at n = 50 (Efron & Tibshirani 1993, ch. 14).
    assert nominal - 0.045 <= covered / sims <= nominal + 0.025


def test_bootstrap_with_fewer_than_two_rows_gives_no_interval() -> None:
    ci = bootstrap_interval(np.mean, np.array([1.0]), rng=np.random.default_rng(0))
    assert ci is None


def test_bca_on_constant_data_gives_no_interval_and_no_warning() -> None:
    x = np.ones(20)
    assert (
        bootstrap_interval(np.mean, x, rng=np.random.default_rng(0), n_resamples=100, method="bca")
        is None
    )
    # The percentile interval of a constant statistic is the point itself.
    assert bootstrap_interval(np.mean, x, rng=np.random.default_rng(0), n_resamples=100) == (
        1.0,
        1.0,
    )


def test_non_finite_resamples_are_dropped() -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])

    def mean_unless_first_is_zero(v: np.ndarray) -> float:
        return float("nan") if v[0] == 0 else float(np.mean(v))  # NaN in about 1/6

    ci = bootstrap_interval(
        mean_unless_first_is_zero, x, rng=np.random.default_rng(0), n_resamples=400
    )
    assert ci is not None
    assert np.isfinite(ci).all()
    assert 0.0 < ci[0] < 2.5 < ci[1] < 5.0


def test_mostly_non_finite_resamples_give_no_interval() -> None:
    x = np.array([0.0, 0.0, 0.0, 0.0, 1.0])

    def log_min(v: np.ndarray) -> float:
        return float(np.log(np.min(v)))

    assert bootstrap_interval(log_min, x, rng=np.random.default_rng(0), n_resamples=200) is None


def test_bootstrap_input_errors() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_interval(np.mean, np.ones(3), np.ones(4), rng=rng)
    with pytest.raises(ValueError, match="method"):
        bootstrap_interval(np.mean, np.ones(3), rng=rng, method="basic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one array"):
        bootstrap_interval(np.mean, rng=rng)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=30), st.integers(0, 2**32 - 1))
def test_percentile_interval_is_ordered_and_within_the_resampled_range(
    values: list[float], seed: int
) -> None:
    x = np.array(values)
    ci = bootstrap_interval(np.mean, x, rng=np.random.default_rng(seed), n_resamples=50)
    assert ci is not None
    assert x.min() - 1e-9 <= ci[0] <= ci[1] <= x.max() + 1e-9
