"""Confidence intervals that other statistics build on: Wilson's score interval for a
proportion and the paired (row) bootstrap for any statistic of paired arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from scipy.special import ndtr, ndtri

from .estimate import Estimate, unavailable

__all__ = ["bootstrap_interval", "normal_quantile", "wilson_interval"]


def normal_quantile(confidence: float) -> float:
    """The two-sided standard-normal critical value z_{1-(1-confidence)/2}."""
    _check_confidence(confidence)
    return float(ndtri(1.0 - (1.0 - confidence) / 2.0))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """A proportion ``successes / n`` with the Wilson (1927) score interval.

    With z the two-sided normal critical value and p = x/n::

        centre = (x + z²/2) / (n + z²)
        half   = z / (n + z²) · sqrt(x (n - x) / n + z²/4)

    (Wilson 1927, JASA 22:209; Newcombe 1998, Stat Med 17:857, method 3.) Unlike the Wald
    interval it stays inside [0, 1] and keeps its coverage near 0 and 1. Unavailable when
    ``n`` is 0.
    """
    _check_confidence(confidence)
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return unavailable(0, "wilson", "no observations")
    z = normal_quantile(confidence)
    x = float(successes)
    denom = n + z * z
    centre = (x + z * z / 2.0) / denom
    half = z / denom * math.sqrt(x * (n - x) / n + z * z / 4.0)
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(value=x / n, ci=(lo, hi), n=n, method="wilson")


def bootstrap_interval(
    statistic: Callable[..., Any],
    *arrays: Any,
    rng: np.random.Generator,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    method: Literal["percentile", "bca"] = "percentile",
    vectorized: bool = False,
) -> tuple[float, float] | None:
    """Paired bootstrap interval: rows (index i of every array) are resampled together.

    ``statistic(*arrays) -> float``. With ``vectorized=True`` it is instead called once as
    ``statistic(*resampled, axis=-1)`` on arrays of shape (n_resamples, n) and must return
    one value per resample (1-D arrays only), which is much faster.

    Resample indices are drawn as ``rng.integers(0, n, (n_resamples, n))``, as
    ``scipy.stats.bootstrap(..., paired=True)`` draws them, and the interval is the same:
    ``"percentile"`` takes the (alpha/2, 1 - alpha/2) quantiles of the bootstrap distribution
    (Efron & Tibshirani 1993, ch. 13); ``"bca"`` adjusts them for bias z0 and acceleration a
    from the jackknife (ibid., eq. 14.9-14.15). Resamples on which the statistic is not
    finite (a constant resample for a correlation, say) are dropped.

    Returns ``None`` when no interval can be made: fewer than 2 rows, fewer than half the
    resamples finite, or a BCa adjustment that is undefined (all jackknife values equal).
    """
    _check_confidence(confidence)
    if method not in ("percentile", "bca"):
        raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    data = [np.asarray(a) for a in arrays]
    if not data:
        raise ValueError("bootstrap_interval needs at least one array")
    n = len(data[0])
    if any(len(a) != n for a in data):
        raise ValueError("paired bootstrap needs arrays of equal length")
    if n < 2:
        return None
    index = rng.integers(0, n, (n_resamples, n))
    with np.errstate(all="ignore"):
        theta_b = _evaluate(statistic, data, index, vectorized)
    theta_b = theta_b[np.isfinite(theta_b)]
    if theta_b.size < n_resamples / 2:
        return None
    alpha = (1.0 - confidence) / 2.0
    levels = (alpha, 1.0 - alpha)
    if method == "bca":
        bca_levels = _bca_levels(statistic, data, theta_b, alpha, vectorized)
        if bca_levels is None:
            return None
        levels = bca_levels
    lo, hi = np.quantile(theta_b, levels)
    return float(lo), float(hi)


def _evaluate(
    statistic: Callable[..., Any],
    data: list[np.ndarray],
    index: np.ndarray,
    vectorized: bool,
) -> np.ndarray:
    """The statistic on each row-set in ``index`` (shape (m, k)), as a float array of m."""
    if vectorized:
        out = statistic(*[a[index] for a in data], axis=-1)
        return np.asarray(out, dtype=float).reshape(index.shape[0])
    return np.array([float(statistic(*[a[rows] for a in data])) for rows in index])


def _bca_levels(
    statistic: Callable[..., Any],
    data: list[np.ndarray],
    theta_b: np.ndarray,
    alpha: float,
    vectorized: bool,
) -> tuple[float, float] | None:
    """The BCa-adjusted quantile levels (Efron & Tibshirani 1993, eq. 14.10 and 14.15)."""
    n = len(data[0])
    with np.errstate(all="ignore"):
        theta_hat = float(_evaluate(statistic, data, np.arange(n)[None, :], vectorized)[0])
        # z0: the share of resamples below the estimate, ties counted half ("mean" kind).
        below = np.count_nonzero(theta_b < theta_hat) + np.count_nonzero(theta_b <= theta_hat)
        z0 = float(ndtri(below / (2.0 * theta_b.size)))
        leave_one_out = np.array([np.delete(np.arange(n), i) for i in range(n)])
        theta_i = _evaluate(statistic, data, leave_one_out, vectorized)
        u = (n - 1) * (theta_i.mean() - theta_i)
        a_hat = float(np.sum(u**3) / n**3 / 6.0 / (np.sum(u**2) / n**2) ** 1.5)
    if not (math.isfinite(theta_hat) and math.isfinite(a_hat) and np.isfinite(theta_i).all()):
        return None
    z_lo, z_hi = float(ndtri(alpha)), float(ndtri(1.0 - alpha))
    levels = (
        float(ndtr(z0 + (z0 + z_lo) / (1.0 - a_hat * (z0 + z_lo)))),
        float(ndtr(z0 + (z0 + z_hi) / (1.0 - a_hat * (z0 + z_hi)))),
    )
    if not all(math.isfinite(level) for level in levels):
        return None
    return levels
