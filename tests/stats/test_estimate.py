"""The Estimate value object and the public surface of feedbackloop.stats."""

from __future__ import annotations

import json
import math

import pytest

import feedbackloop.stats as stats
from feedbackloop.stats import Estimate, NotEstimable


def test_public_api_is_pinned() -> None:
    # The evaluation service builds against these names; removing one must be deliberate.
    assert set(stats.__all__) == {
        "BradleyTerry",
        "DawidSkene",
        "MajorityVote",
        "RaterBiasCorrectedMean",
        "Estimate",
        "IsotonicMap",
        "NotEstimable",
        "ReliabilityBin",
        "StackingModel",
        "auroc",
        "best_threshold",
        "bootstrap_interval",
        "classical_mean",
        "cohen_kappa",
        "discrepancy_scores",
        "expected_calibration_error",
        "fit_isotonic",
        "fit_stacking",
        "kendall",
        "naive_metric_mean",
        "ppi_mean",
        "rates_at_threshold",
        "reliability",
        "spearman",
        "top_discrepancies",
        "wilson_interval",
        # rater reliability (stats/agreement.py)
        "cohen_kappa_weighted",
        "fleiss_kappa",
        "gwet_ac1",
        "gwet_ac2",
        "icc",
        "krippendorff_alpha",
        "reliability_matrix",
    }
    for name in stats.__all__:
        assert getattr(stats, name) is not None


def test_available_estimate_round_trips_to_json() -> None:
    est = Estimate(value=0.5, ci=(0.25, 0.75), n=10, method="m")
    assert est.available
    assert est.to_dict() == {
        "value": 0.5,
        "ci95": [0.25, 0.75],
        "n": 10,
        "method": "m",
        "reason": None,
    }
    json.dumps(est.to_dict(), allow_nan=False)


def test_unavailable_estimate_has_reason_and_no_numbers() -> None:
    est = Estimate(value=None, ci=None, n=1, method="m", reason="too few")
    assert not est.available
    assert est.to_dict()["value"] is None
    assert est.to_dict()["ci95"] is None
    assert est.to_dict()["reason"] == "too few"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_becomes_unavailable(bad: float) -> None:
    est = Estimate(value=bad, ci=(0.0, 1.0), n=3, method="m")
    assert not est.available
    assert est.ci is None
    assert est.reason
    json.dumps(est.to_dict(), allow_nan=False)


def test_non_finite_interval_is_dropped_but_value_kept() -> None:
    est = Estimate(value=0.3, ci=(math.nan, 1.0), n=3, method="m")
    assert est.value == 0.3
    assert est.ci is None
    json.dumps(est.to_dict(), allow_nan=False)


def test_numpy_scalars_are_turned_into_python_floats() -> None:
    import numpy as np

    est = Estimate(value=np.float64(0.1), ci=(np.float64(0.0), np.float64(0.2)), n=5, method="m")
    assert type(est.value) is float
    assert est.ci is not None and all(type(v) is float for v in est.ci)


def test_not_estimable_is_a_value_error() -> None:
    assert issubclass(NotEstimable, ValueError)
