"""Fleiss' kappa for many raters and Cohen's (weighted) kappa for two."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from scipy import sparse

from ..estimate import Estimate, unavailable
from .matrix import DENSE_CELLS, as_matrix, weighted_bootstrap, weighted_sums

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
    With ``rng`` the interval is the percentile bootstrap over units, each resample's kappa
    computed from its unit multiplicities w_i (mean P_i = Σ w_i P_i / Σ w_i, p_j from
    Σ_i w_i n_ij), which is kappa on the resampled units. Unavailable unless
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
        ci = weighted_bootstrap(
            _fleiss_terms(counts, float(n_raters)), n_units, rng, n_resamples, confidence
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


def _fleiss_terms(counts: np.ndarray, r: float) -> Callable[[np.ndarray], np.ndarray]:
    """Fleiss' kappa of each row of unit multiplicities ``w`` (resamples, units).

    With P_i the unit's agreement, N = Σ w_i and n_j = Σ_i w_i n_ij, the resample's
    mean P is Σ w_i P_i / N and p_j = n_j / (N r); one product with the per-unit terms
    [1, P_i, n_i1 .. n_iq] gives all of them. ``np.nan`` where kappa is undefined.
    """
    p_i = (np.sum(counts * counts, axis=1) - r) / (r * (r - 1.0))
    terms = np.column_stack([np.ones(counts.shape[0]), p_i, counts])

    def kappa(w: np.ndarray) -> np.ndarray:
        sums = w @ terms
        total = sums[:, 0]
        p_j = sums[:, 2:] / (total * r)[:, None]
        p_e = np.sum(p_j * p_j, axis=1)
        out = (sums[:, 1] / total - p_e) / (1.0 - p_e)
        return np.where(p_e >= 1.0 - 1e-12, np.nan, out)

    return kappa


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
    the paired percentile bootstrap over items (each resample's O and marginals are sums
    over items weighted by their multiplicities). Unavailable with fewer than 2 items or
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
        ci = weighted_bootstrap(_weighted_kappa_terms(ia, ib, w), n, rng, n_resamples, confidence)
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


def _weighted_kappa_terms(
    ia: np.ndarray, ib: np.ndarray, w: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Weighted kappa of each row of item multiplicities ``v`` (resamples, items).

    With N = Σ v_i, Σ w_kl O_kl = Σ_i v_i w[a_i, b_i] and the marginals rows_k =
    Σ_{a_i=k} v_i, cols_l = Σ_{b_i=l} v_i, kappa = 1 - Σ_i v_i w[a_i, b_i] /
    (rows · w · cols / N). ``np.nan`` where the denominator is not positive.
    """
    k, n = w.shape[0], ia.size
    items = np.arange(n)
    # [1, w[a_i, b_i], one-hot of a_i, one-hot of b_i] per item, (items, 2k + 2).
    terms: Any = sparse.csr_matrix(
        (
            np.concatenate([np.ones(n), w[ia, ib], np.ones(2 * n)]),
            (
                np.tile(items, 4),
                np.concatenate([np.zeros(n, int), np.ones(n, int), 2 + ia, 2 + k + ib]),
            ),
        ),
        shape=(n, 2 * k + 2),
    )
    terms = terms.toarray() if n * (2 * k + 2) <= DENSE_CELLS else terms.tocsc()

    def kappa(v: np.ndarray) -> np.ndarray:
        sums = weighted_sums(v, terms)
        total, rows, cols = sums[:, 0], sums[:, 2 : k + 2], sums[:, k + 2 :]
        denominator = np.sum((rows @ w) * cols, axis=1) / total
        out = 1.0 - sums[:, 1] / denominator
        return np.where(denominator <= 0.0, np.nan, out)

    return kappa


def _positions(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each value in ``labels``, -1 when absent."""
    lookup = {label: i for i, label in enumerate(labels.tolist())}
    return np.array([lookup.get(v, -1) for v in values.tolist()], dtype=int)
