"""Intraclass correlations ICC(1,1), ICC(2,1), ICC(3,1) and their k-judge averages."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..estimate import Estimate, unavailable
from .matrix import as_matrix, unit_bootstrap

__all__ = ["IccKind", "icc"]

IccKind = Literal["ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)"]
_ICC_KINDS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")


def icc(
    ratings: Any,
    kind: IccKind = "ICC(2,1)",
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Estimate:
    """Intraclass correlation (Shrout & Fleiss 1979, Psychol. Bull. 86:420, Table 1).

    From the two-way ANOVA of n targets by k judges (complete data) with mean squares BMS
    (targets), JMS (judges), EMS (residual) and WMS (within targets)::

        ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)
        ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)
        ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)
        ICC(1,k) = (BMS - WMS) / BMS
        ICC(2,k) = (BMS - EMS) / (BMS + (JMS - EMS) / n)
        ICC(3,k) = (BMS - EMS) / BMS

    ``ratings`` is (judges, targets) like every reliability matrix here. With ``rng`` the
    interval is the percentile bootstrap over targets (not Shrout & Fleiss' F-based
    intervals). Unavailable with missing ratings, fewer than 2 judges or targets, or when
    the denominator is 0.
    """
    if kind not in _ICC_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_ICC_KINDS)}; got {kind!r}")
    matrix = as_matrix(ratings)
    method: str = kind
    k, n = matrix.shape
    if np.isnan(matrix).any():
        return unavailable(n, method, "the ICC needs complete data")
    if k < 2 or n < 2:
        return unavailable(n, method, "needs at least 2 judges and 2 targets")
    value = _icc(matrix, kind)
    if value is None:
        return unavailable(n, method, "all ratings are identical")
    ci = None
    if rng is not None:
        ci = unit_bootstrap(
            lambda index: _icc(matrix[:, index], kind), n, rng, n_resamples, confidence
        )
        method += ", target bootstrap"
    return Estimate(value=value, ci=ci, n=n, method=method)


def _icc(matrix: np.ndarray, kind: str) -> float | None:
    k, n = matrix.shape
    grand = matrix.mean()
    target_means = matrix.mean(axis=0)
    judge_means = matrix.mean(axis=1)
    ss_total = float(np.sum((matrix - grand) ** 2))
    ss_targets = k * float(np.sum((target_means - grand) ** 2))
    ss_judges = n * float(np.sum((judge_means - grand) ** 2))
    ss_error = ss_total - ss_targets - ss_judges
    bms = ss_targets / (n - 1)
    wms = (ss_total - ss_targets) / (n * (k - 1))
    jms = ss_judges / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    formulas = {
        "ICC(1,1)": (bms - wms, bms + (k - 1) * wms),
        "ICC(2,1)": (bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        "ICC(3,1)": (bms - ems, bms + (k - 1) * ems),
        "ICC(1,k)": (bms - wms, bms),
        "ICC(2,k)": (bms - ems, bms + (jms - ems) / n),
        "ICC(3,k)": (bms - ems, bms),
    }
    numerator, denominator = formulas[kind]
    if denominator <= 1e-12 * max(ss_total, 1e-300):
        return None
    return numerator / denominator
