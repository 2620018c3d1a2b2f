"""Intraclass correlations ICC(1,1), ICC(2,1), ICC(3,1) and their k-judge averages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..estimate import Estimate, unavailable
from .matrix import as_matrix, weighted_bootstrap

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
    intervals), each resample's mean squares computed from per-target sums weighted by
    the targets' multiplicities. Unavailable with missing ratings, fewer than 2 judges or
    targets, or when the denominator is 0.
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
        ci = weighted_bootstrap(_icc_terms(matrix, kind), n, rng, n_resamples, confidence)
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


def _icc_terms(matrix: np.ndarray, kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """The ICC of each row of target multiplicities ``v`` (resamples, targets).

    Ratings are centred on their mean c first (the mean squares do not move). With m_i
    the target means, s_i = Σ_j (x_ji - m_i)² the within-target sums of squares, N = Σ v_i
    targets, the resample's grand mean g = Σ v_i m_i / N and judge means J_j =
    Σ_i v_i x_ji / N::

        SS_within = Σ v_i s_i,         SS_targets = k (Σ v_i m_i² - N g²)
        SS_judges = N Σ_j (J_j - g)²,  SS_error = SS_within - SS_judges

    and SS_total = SS_targets + SS_within; the mean squares and formulas are those of
    :func:`_icc` with N targets. ``np.nan`` where the denominator is 0.
    """
    k = matrix.shape[0]
    centred = matrix - matrix.mean()
    means = centred.mean(axis=0)
    within = np.sum((centred - means) ** 2, axis=0)
    terms = np.column_stack([np.ones(means.size), means, means * means, within, centred.T])

    def value(v: np.ndarray) -> np.ndarray:
        sums = v @ terms
        n = sums[:, 0]
        grand = sums[:, 1] / n
        ss_targets = k * (sums[:, 2] - n * grand * grand)
        ss_within = sums[:, 3]
        judge_means = sums[:, 4:] / n[:, None]
        ss_judges = n * np.sum((judge_means - grand[:, None]) ** 2, axis=1)
        ss_total = ss_targets + ss_within
        ss_error = ss_within - ss_judges
        bms = ss_targets / (n - 1)
        wms = ss_within / (n * (k - 1))
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
        undefined = denominator <= 1e-12 * np.maximum(ss_total, 1e-300)
        return np.where(undefined, np.nan, numerator / denominator)

    return value
