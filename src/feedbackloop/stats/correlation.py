"""Rank correlation between two channels on the same items, with bootstrap intervals.

Spearman's rho and Kendall's tau-b agree with ``scipy.stats.spearmanr`` and
``scipy.stats.kendalltau``; the interval comes from resampling item pairs (the paired
bootstrap in :mod:`.intervals`), because the textbook normal approximations for rank
correlations are poor with ties and with small samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from .estimate import Estimate, unavailable
from .intervals import bootstrap_interval

__all__ = ["MIN_PAIRS", "kendall", "spearman"]

MIN_PAIRS = 3
"""Fewer pairs than this and a rank correlation is not estimated."""

# Pairwise sign matrices cost n² per resample; above this size each resample uses scipy's
# O(n log n) kendalltau instead.
_KENDALL_VECTOR_MAX_N = 300


def _pairs(x: Any, y: Any, method: str) -> tuple[np.ndarray, np.ndarray, Estimate | None]:
    """Validated float arrays, or the reason the correlation is unavailable."""
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"x and y differ in length: {xa.size} and {ya.size}")
    n = xa.size
    if not (np.isfinite(xa).all() and np.isfinite(ya).all()):
        return xa, ya, unavailable(n, method, "the data contain missing or infinite values")
    if n < MIN_PAIRS:
        return xa, ya, unavailable(n, method, f"needs at least {MIN_PAIRS} pairs, got {n}")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        which = "x" if np.ptp(xa) == 0 else "y"
        return xa, ya, unavailable(n, method, f"{which} is constant, so no ranking exists")
    return xa, ya, None


def _spearman_vectorized(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation of mid-ranks along ``axis`` (NaN where a row is constant)."""
    rx = scipy_stats.rankdata(x, axis=axis)
    ry = scipy_stats.rankdata(y, axis=axis)
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    num = (rx * ry).sum(axis=axis)
    den = np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(num / den)


def _kendall_vectorized(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Tau-b = Σ sign(Δx) sign(Δy) / sqrt(Σ|sign Δx| · Σ|sign Δy|) over pairs, per row."""
    x2 = np.atleast_2d(np.moveaxis(x, axis, -1))
    y2 = np.atleast_2d(np.moveaxis(y, axis, -1))
    out = np.empty(x2.shape[0])
    chunk = max(1, 2_000_000 // max(1, x2.shape[-1] ** 2))
    for start in range(0, x2.shape[0], chunk):
        xs, ys = x2[start : start + chunk], y2[start : start + chunk]
        sx = np.sign(xs[:, :, None] - xs[:, None, :])
        sy = np.sign(ys[:, :, None] - ys[:, None, :])
        num = (sx * sy).sum(axis=(1, 2))
        den = np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = num / den
    return out


def _kendall_scalar(x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(scipy_stats.kendalltau(x, y).statistic)


def spearman(x: Any, y: Any, *, rng: np.random.Generator, n_resamples: int = 2000) -> Estimate:
    """Spearman's rank correlation (Spearman 1904): Pearson's r on mid-ranks.

    Equals ``scipy.stats.spearmanr(x, y).statistic``; the 95% interval is the paired
    percentile bootstrap. Unavailable with fewer than 3 pairs, a constant array, or
    non-finite values.
    """
    xa, ya, missing = _pairs(x, y, "spearman")
    if missing is not None:
        return missing
    value = float(scipy_stats.spearmanr(xa, ya).statistic)
    ci = bootstrap_interval(
        _spearman_vectorized, xa, ya, rng=rng, n_resamples=n_resamples, vectorized=True
    )
    return Estimate(value=value, ci=ci, n=xa.size, method="spearman, paired bootstrap")


def kendall(x: Any, y: Any, *, rng: np.random.Generator, n_resamples: int = 2000) -> Estimate:
    """Kendall's tau-b (Kendall 1945), which corrects tau for ties in either channel::

        tau_b = (C - D) / sqrt((n0 - n1)(n0 - n2))

    with C, D the concordant and discordant pairs, n0 = n(n-1)/2, n1 and n2 the pairs tied
    in x and in y. Equals ``scipy.stats.kendalltau(x, y).statistic``; the interval is the
    paired percentile bootstrap. Unavailable as for :func:`spearman`.
    """
    xa, ya, missing = _pairs(x, y, "kendall")
    if missing is not None:
        return missing
    value = float(scipy_stats.kendalltau(xa, ya).statistic)
    if xa.size <= _KENDALL_VECTOR_MAX_N:
        ci = bootstrap_interval(
            _kendall_vectorized, xa, ya, rng=rng, n_resamples=n_resamples, vectorized=True
        )
    else:
        ci = bootstrap_interval(_kendall_scalar, xa, ya, rng=rng, n_resamples=n_resamples)
    return Estimate(value=value, ci=ci, n=xa.size, method="kendall tau-b, paired bootstrap")
