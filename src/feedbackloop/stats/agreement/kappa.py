"""Fleiss' kappa for many raters and Cohen's (weighted) kappa for two."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..estimate import Estimate, unavailable
from .matrix import as_matrix, unit_bootstrap

__all__ = ["cohen_kappa_weighted", "fleiss_kappa"]


def fleiss_kappa(
    ratings: Any,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Estimate:
    """Fleiss' (1971) kappa for nominal ratings by a fixed number of raters per unit::

        P_i = (Σ_j n_ij² - r) / (r (r - 1)),   p_j = Σ_i n_ij / (N r),
        kappa = (mean P_i - Σ_j p_j²) / (1 - Σ_j p_j²)

    (Fleiss 1971, Psychol. Bull. 76:378), with n_ij the raters putting unit i in category j.
    With ``rng`` the interval is the percentile bootstrap over units. Unavailable unless
    every unit is rated by every rater ("Fleiss' kappa needs complete data"), with fewer
    than 2 raters or units, or when all ratings are identical.
    """
    matrix = as_matrix(ratings)
    method = "fleiss kappa"
    n_raters, n_units = matrix.shape
    if np.isnan(matrix).any():
        return unavailable(n_units, method, "Fleiss' kappa needs complete data")
    if n_raters < 2 or n_units < 2:
        return unavailable(n_units, method, "needs at least 2 raters and 2 units")
    _, codes = np.unique(matrix, return_inverse=True)
    codes = codes.reshape(matrix.shape)
    counts = np.zeros((n_units, int(codes.max()) + 1))
    np.add.at(counts, (np.tile(np.arange(n_units), n_raters), codes.ravel()), 1.0)
    value = _fleiss(counts, float(n_raters))
    if value is None:
        return unavailable(n_units, method, "all ratings are identical")
    ci = None
    if rng is not None:
        ci = unit_bootstrap(
            lambda index: _fleiss(counts[index], float(n_raters)),
            n_units,
            rng,
            n_resamples,
            confidence,
        )
        method += ", unit bootstrap"
    return Estimate(value=value, ci=ci, n=n_units, method=method)


def _fleiss(counts: np.ndarray, r: float) -> float | None:
    p_i = (np.sum(counts * counts, axis=1) - r) / (r * (r - 1.0))
    p_j = counts.sum(axis=0) / (counts.shape[0] * r)
    p_e = float(np.sum(p_j * p_j))
    if p_e >= 1.0 - 1e-12:
        return None
    return (float(p_i.mean()) - p_e) / (1.0 - p_e)


def cohen_kappa_weighted(
    a: Any,
    b: Any,
    weights: Literal["linear", "quadratic"] | None = None,
    labels: Any = None,
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Estimate:
    """Cohen's kappa for two raters, optionally weighted (Cohen 1968, Psychol. Bull. 70:213)::

        kappa = 1 - Σ w_ij O_ij / Σ w_ij E_ij,   E = row totals ⊗ column totals / N

    with w_ij = [i ≠ j], |i - j| (linear) or (i - j)² (quadratic) over the positions of
    the sorted ``labels`` (default: the union of both raters' labels). Equals
    ``sklearn.metrics.cohen_kappa_score``. Items with a label outside ``labels`` are
    dropped, as are float items where either rating is NaN. With ``rng`` the interval is
    the paired percentile bootstrap over items. Unavailable with fewer than 2 items or
    when agreement expected by chance is perfect.
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    ra, rb = np.asarray(a).ravel(), np.asarray(b).ravel()
    if ra.shape != rb.shape:
        raise ValueError(f"a and b differ in length: {ra.size} and {rb.size}")
    method = "cohen kappa" if weights is None else f"cohen kappa ({weights} weights)"
    if ra.dtype.kind == "f" or rb.dtype.kind == "f":
        keep = ~(np.isnan(ra.astype(float)) | np.isnan(rb.astype(float)))
        ra, rb = ra[keep], rb[keep]
    label_set = np.unique(np.concatenate([ra, rb])) if labels is None else np.asarray(labels)
    k = label_set.size
    ia, ib = _positions(ra, label_set), _positions(rb, label_set)
    keep = (ia >= 0) & (ib >= 0)
    ia, ib = ia[keep], ib[keep]
    n = int(ia.size)
    if n < 2:
        return unavailable(n, method, f"needs at least 2 items, got {n}")
    grid = np.subtract.outer(np.arange(k), np.arange(k)).astype(float)
    if weights is None:
        w = (grid != 0).astype(float)
    elif weights == "linear":
        w = np.abs(grid)
    else:
        w = grid * grid
    value = _weighted_kappa(ia, ib, w)
    if value is None:
        return unavailable(n, method, "agreement expected by chance is perfect")
    ci = None
    if rng is not None:
        ci = unit_bootstrap(
            lambda index: _weighted_kappa(ia[index], ib[index], w),
            n,
            rng,
            n_resamples,
            confidence,
        )
        method += ", paired bootstrap"
    return Estimate(value=value, ci=ci, n=n, method=method)


def _weighted_kappa(ia: np.ndarray, ib: np.ndarray, w: np.ndarray) -> float | None:
    k = w.shape[0]
    observed = np.bincount(ia * k + ib, minlength=k * k).reshape(k, k).astype(float)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / ia.size
    denominator = float(np.sum(w * expected))
    if denominator <= 0.0:
        return None
    return 1.0 - float(np.sum(w * observed)) / denominator


def _positions(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each value in ``labels``, -1 when absent."""
    lookup = {label: i for i, label in enumerate(labels.tolist())}
    return np.array([lookup.get(v, -1) for v in values.tolist()], dtype=int)
