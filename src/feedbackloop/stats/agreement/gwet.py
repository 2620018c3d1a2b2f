"""Gwet's AC1 (nominal) and AC2 (weighted) agreement coefficients, missing ratings allowed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from ..estimate import Estimate, unavailable
from .matrix import as_matrix, weighted_bootstrap

__all__ = ["gwet_ac1", "gwet_ac2"]


def gwet_ac1(
    ratings: Any,
    categories: Any = None,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Estimate:
    """Gwet's AC1 for nominal ratings, any number of raters, missing ratings allowed.

    Gwet (2008), Br. J. Math. Stat. Psychol. 61:29; Handbook of Inter-Rater Reliability,
    4th ed. (2014), ch. 4: with r_ik the raters putting unit i in category k, r_i = Σ_k r_ik,
    n' the units with r_i ≥ 2 and n those with r_i ≥ 1, over q categories::

        p_a = (1/n') Σ_{r_i≥2} Σ_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        π_k = (1/n) Σ_{r_i≥1} r_ik / r_i,   p_e = Σ_k π_k (1 - π_k) / (q - 1)
        AC1 = (p_a - p_e) / (1 - p_e)

    ``categories`` fixes q (default: the categories observed). With ``rng`` the interval
    is the percentile bootstrap over rated units; a resample's p_a and π_k are the means
    above weighted by the units' multiplicities. Unavailable with fewer than 2 units
    rated twice or fewer than 2 categories.
    """
    return _gwet(ratings, None, categories, "gwet ac1", rng, n_resamples, confidence)


def gwet_ac2(
    ratings: Any,
    weights: Literal["linear", "quadratic"] = "quadratic",
    categories: Any = None,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Estimate:
    """Gwet's AC2: AC1 with agreement weights for ordered categories (Gwet 2014, ch. 4)::

        r*_ik = Σ_l w_kl r_il,   p_a = (1/n') Σ_{r_i≥2} Σ_k r_ik (r*_ik - 1) / (r_i (r_i - 1))
        p_e = T_w / (q (q - 1)) · Σ_k π_k (1 - π_k),   T_w = Σ_kl w_kl

    with w_kl = 1 - |x_k - x_l| / (x_max - x_min) (linear) or 1 - (x_k - x_l)² /
    (x_max - x_min)² (quadratic) on the category values. ``categories`` gives the full
    ordered scale (default: the values observed), which matters for q and the weights.
    """
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic', got {weights!r}")
    method = f"gwet ac2 ({weights} weights)"
    return _gwet(ratings, weights, categories, method, rng, n_resamples, confidence)


def _gwet(
    ratings: Any,
    weights: str | None,
    categories: Any,
    method: str,
    rng: np.random.Generator | None,
    n_resamples: int,
    confidence: float,
) -> Estimate:
    matrix = as_matrix(ratings)
    present = ~np.isnan(matrix)
    observed_values = np.unique(matrix[present])
    if categories is None:
        scale = observed_values
    else:
        scale = np.unique(np.asarray(categories, dtype=float))
        outside = np.setdiff1d(observed_values, scale)
        if outside.size:
            raise ValueError(f"ratings outside categories: {outside.tolist()}")
    q = scale.size
    r_i_all = np.count_nonzero(present, axis=0)
    n_pairable = int(np.count_nonzero(r_i_all >= 2))
    if n_pairable < 2:
        return unavailable(n_pairable, method, "needs at least 2 units rated twice")
    if q < 2:
        return unavailable(n_pairable, method, "needs at least 2 categories")
    rated = matrix[:, r_i_all >= 1]
    counts = np.stack([np.sum(rated == c, axis=0) for c in scale], axis=1).astype(float)
    if weights is None:
        w = np.eye(q)
    else:
        d = np.abs(np.subtract.outer(scale, scale)) / (scale[-1] - scale[0])
        w = 1.0 - d if weights == "linear" else 1.0 - d * d
    value = _gwet_value(counts, w)
    if value is None:
        return unavailable(n_pairable, method, "agreement expected by chance is perfect")
    ci = None
    if rng is not None:
        ci = weighted_bootstrap(
            _gwet_terms(counts, w), counts.shape[0], rng, n_resamples, confidence
        )
        method += ", unit bootstrap"
    return Estimate(value=value, ci=ci, n=n_pairable, method=method)


def _gwet_value(counts: np.ndarray, w: np.ndarray) -> float | None:
    """AC from the (rated units, q) category counts and the (q, q) weights."""
    q = w.shape[0]
    r_i = counts.sum(axis=1)
    two = r_i >= 2
    if not two.any():
        return None
    weighted = counts[two] @ w.T
    p_a = float(
        np.mean(np.sum(counts[two] * (weighted - 1.0), axis=1) / (r_i[two] * (r_i[two] - 1.0)))
    )
    pi = np.mean(counts / r_i[:, None], axis=0)
    p_e = float(np.sum(w) / (q * (q - 1.0)) * np.sum(pi * (1.0 - pi)))
    if p_e >= 1.0:
        return None
    return (p_a - p_e) / (1.0 - p_e)


def _gwet_terms(counts: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """AC of each row of unit multiplicities ``v`` (resamples, rated units).

    With a_i the unit's agreement term (0 unless r_i ≥ 2), p_a = Σ v_i a_i / Σ_{r_i≥2} v_i
    and π_k = Σ v_i r_ik / r_i / Σ v_i: one product with the per-unit terms
    [1, [r_i ≥ 2], a_i, r_ik / r_i] gives all of them. ``np.nan`` where AC is undefined.
    """
    q = w.shape[0]
    r_i = counts.sum(axis=1)
    two = r_i >= 2
    a_i = np.zeros(r_i.size)
    weighted = counts[two] @ w.T
    a_i[two] = np.sum(counts[two] * (weighted - 1.0), axis=1) / (r_i[two] * (r_i[two] - 1.0))
    terms = np.column_stack([np.ones(r_i.size), two, a_i, counts / r_i[:, None]])
    scale = np.sum(w) / (q * (q - 1.0))

    def ac(v: np.ndarray) -> np.ndarray:
        sums = v @ terms
        p_a = sums[:, 2] / sums[:, 1]
        pi = sums[:, 3:] / sums[:, :1]
        p_e = scale * np.sum(pi * (1.0 - pi), axis=1)
        out = (p_a - p_e) / (1.0 - p_e)
        return np.where((sums[:, 1] == 0.0) | (p_e >= 1.0), np.nan, out)

    return ac
