"""Prediction-powered inference for the mean human judgement, and its two baselines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from feedbackloop.stats import classical_mean, naive_metric_mean, ppi_mean, wilson_interval


def test_ppi_hand_computed_example() -> None:
    # Angelopoulos et al. (2023), Science 382:669, mean estimation:
    #   theta = mean(f(X~)) - mean(f(X) - Y),
    #   CI = theta ± z sqrt(var(f(X~))/N + var(f(X) - Y)/n), plug-in (1/n) variances.
    y = [1, 0, 1, 1]
    f = [0.9, 0.2, 0.6, 0.8]
    f_u = [0.7, 0.3, 0.9, 0.5, 0.6]
    # mean(f_u) = 0.6; rectifier f - y = -0.1 0.2 -0.4 -0.2, mean -0.125 -> theta 0.725.
    # var(f_u) = 0.2 / 5 = 0.04; var(rectifier) = 0.1875 / 4 = 0.046875.
    se = math.sqrt(0.04 / 5 + 0.046875 / 4)
    est = ppi_mean(y, f, f_u)
    assert est.value == pytest.approx(0.725, abs=1e-12)
    assert est.ci is not None
    assert est.ci[0] == pytest.approx(0.725 - 1.959963984540054 * se, abs=1e-12)
    assert est.ci[1] == pytest.approx(0.725 + 1.959963984540054 * se, abs=1e-12)
    assert est.n == 9
    # The authors' package gives the same: ppi_py 0.2.3, ppi_mean_ci(y, f, f_u, alpha=0.05,
    # lam=1) -> (0.44977506, 1.00022494).
    assert est.ci == pytest.approx((0.44977506, 1.00022494), abs=1e-8)


def test_ppi_matches_the_reference_package_on_ratings() -> None:
    # Values from ppi_py 0.2.3 (Angelopoulos et al.'s package), ppi_mean_pointestimate and
    # ppi_mean_ci with lam=1 (plain PPI, no power tuning), alpha 0.05 and 0.10.
    y = [4, 2, 5, 3, 3, 1, 4, 5, 2, 4]
    f = [3.6, 2.5, 4.1, 3.3, 2.7, 1.9, 3.8, 4.4, 2.2, 3.1]
    f_u = [(i * 37 % 50) / 10 for i in range(30)]
    est95 = ppi_mean(y, f, f_u)
    est90 = ppi_mean(y, f, f_u, confidence=0.90)
    assert est95.value == pytest.approx(2.62333333333, abs=1e-10)
    assert est95.ci == pytest.approx((1.9922179417506913, 3.2544487249159757), abs=1e-12)
    assert est90.ci == pytest.approx((2.0936846004698992, 3.152982066196768), abs=1e-12)


@pytest.mark.parametrize(
    ("y", "f", "f_u", "reason"),
    [
        ([1.0], [0.5], [0.1, 0.2, 0.3], "at least 2 labelled"),
        ([], [], [0.1, 0.2], "at least 2 labelled"),
        ([1.0, 0.0], [0.5, 0.5], [0.3], "at least 2 unlabelled"),
    ],
)
def test_ppi_with_too_little_data_is_unavailable(y, f, f_u, reason: str) -> None:
    est = ppi_mean(y, f, f_u)
    assert not est.available
    assert reason in (est.reason or "")
    json.dumps(est.to_dict(), allow_nan=False)


def test_ppi_input_errors() -> None:
    with pytest.raises(ValueError, match="differ"):
        ppi_mean([1, 0], [0.5], [0.1, 0.2])
    with pytest.raises(ValueError, match="missing"):
        ppi_mean([1, 0], [0.5, float("nan")], [0.1, 0.2])


def test_ppi_with_zero_variance_has_no_collapsed_interval() -> None:
    est = ppi_mean([1, 1, 1], [1, 1, 1], [1, 1, 1, 1])
    assert est.value == 1.0
    assert est.ci is None


def test_classical_mean_is_wilson_for_binary_labels() -> None:
    est = classical_mean([1, 0, 1, 1, 0, 1])
    assert est.value == pytest.approx(4 / 6)
    assert est.ci == wilson_interval(4, 6).ci
    assert "wilson" in est.method


def test_classical_mean_is_normal_for_ratings() -> None:
    y = np.array([4, 2, 5, 3, 3, 1, 4, 5, 2, 4], dtype=float)
    est = classical_mean(y, confidence=0.9)
    ref = scipy_stats.norm.interval(0.9, loc=y.mean(), scale=scipy_stats.sem(y))
    assert est.value == pytest.approx(y.mean())
    assert est.ci == pytest.approx(ref, abs=1e-12)


@pytest.mark.parametrize(
    ("y", "available"), [([], False), ([3.5], False), ([1.0], True), ([2.0, 2.0], True)]
)
def test_classical_mean_degenerate_input(y: list[float], available: bool) -> None:
    est = classical_mean(y)
    assert est.available is available
    json.dumps(est.to_dict(), allow_nan=False)


def test_naive_metric_mean_is_the_plain_mean_of_the_metric() -> None:
    f = np.array([0.2, 0.4, 0.9, 0.5])
    est = naive_metric_mean(f)
    assert est.value == pytest.approx(0.5)
    assert "metric only" in est.method
    assert not naive_metric_mean([]).available


def _simulate(rng: np.random.Generator, size: int, bias: float) -> tuple[np.ndarray, ...]:
    """x ~ U(0, 1); the human says yes when x + N(0, 0.1) noise > 0.5, so E[y] = 0.5 by
    symmetry; the metric is x shifted by ``bias`` (informative, possibly biased)."""
    x = rng.random(size)
    y = (x + rng.normal(0.0, 0.1, size) > 0.5).astype(float)
    return y, x + bias


@pytest.mark.parametrize("bias", [0.0, 0.2])
def test_ppi_covers_the_truth_and_beats_labels_alone(bias: float) -> None:
    truth, n, big_n, sims = 0.5, 100, 2000, 500
    rng = np.random.default_rng(2023)
    covered = {"ppi": 0, "classical": 0, "naive": 0}
    widths: dict[str, list[float]] = {"ppi": [], "classical": []}
    for _ in range(sims):
        y, f = _simulate(rng, n + big_n, bias)
        results = {
            "ppi": ppi_mean(y[:n], f[:n], f[n:]),
            "classical": classical_mean(y[:n]),
            "naive": naive_metric_mean(f),
        }
        for name, est in results.items():
            assert est.ci is not None
            covered[name] += est.ci[0] <= truth <= est.ci[1]
            if name in widths:
                widths[name].append(est.ci[1] - est.ci[0])
    # Valid however biased the metric is (Monte-Carlo s.e. of a coverage rate ~0.01).
    assert 0.925 <= covered["ppi"] / sims <= 0.975
    assert 0.925 <= covered["classical"] / sims <= 0.975
    # An informative metric buys a narrower interval: here about 0.6 of the width.
    assert np.mean(widths["ppi"]) < 0.75 * np.mean(widths["classical"])
    if bias:
        # Trusting a biased metric on its own is confidently wrong.
        assert covered["naive"] / sims < 0.05


def test_ppi_stays_valid_with_a_useless_metric() -> None:
    truth, n, big_n, sims = 0.5, 100, 1000, 500
    rng = np.random.default_rng(7)
    covered = 0
    for _ in range(sims):
        y = (rng.random(n) < truth).astype(float)
        f_all = rng.random(n + big_n)  # unrelated to y
        est = ppi_mean(y, f_all[:n], f_all[n:])
        assert est.ci is not None
        covered += est.ci[0] <= truth <= est.ci[1]
    assert 0.925 <= covered / sims <= 0.975
