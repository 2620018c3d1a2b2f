"""Calibration of a score against a binary human judgement.

An isotonic map turns any score into a probability that the human says yes; reliability
bins and the expected calibration error say how far stated probabilities can be taken at
face value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression

from .estimate import NotEstimable
from .intervals import wilson_interval

__all__ = [
    "IsotonicMap",
    "ReliabilityBin",
    "expected_calibration_error",
    "fit_isotonic",
    "reliability",
]


def _labels01(labels: Any, n: int) -> np.ndarray:
    raw = np.asarray(labels).ravel()
    if raw.size != n:
        raise ValueError(f"scores and labels differ in length: {n} and {raw.size}")
    if raw.dtype != bool and not set(np.unique(raw).tolist()) <= {0, 1}:
        raise ValueError("labels must be boolean or 0/1")
    return raw.astype(float)


@dataclass(frozen=True)
class IsotonicMap:
    """A fitted monotone map from score to probability (piecewise linear between knots).

    ``x`` and ``p`` are the knots (``IsotonicRegression.X_thresholds_`` and
    ``y_thresholds_``); scores outside [x[0], x[-1]] are clipped to the end values.
    """

    x: tuple[float, ...]
    p: tuple[float, ...]

    def predict(self, scores: Any) -> np.ndarray:
        """Probabilities for ``scores``; same values as ``IsotonicRegression.predict``."""
        s = np.asarray(scores, dtype=float)
        return np.asarray(np.interp(s, self.x, self.p), dtype=float)

    @property
    def points(self) -> list[tuple[float, float]]:
        """The knots as (score, probability) pairs, for plotting the map."""
        return list(zip(self.x, self.p, strict=True))


def fit_isotonic(scores: Any, labels: Any) -> IsotonicMap:
    """Isotonic regression of the labels on the scores (pool-adjacent-violators; Barlow et
    al. 1972; Zadrozny & Elkan 2002 for calibration), increasing, with ``y`` in [0, 1] and
    ``out_of_bounds="clip"``. Raises :class:`NotEstimable` without data or with non-finite
    scores.
    """
    s = np.asarray(scores, dtype=float).ravel()
    y = _labels01(labels, s.size)
    if s.size == 0:
        raise NotEstimable("cannot fit a calibration map to no data")
    if not np.isfinite(s).all():
        raise NotEstimable("the scores contain missing or infinite values")
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(s, y)
    return IsotonicMap(
        x=tuple(float(v) for v in model.X_thresholds_),
        p=tuple(float(v) for v in model.y_thresholds_),
    )


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram: predictions in [lo, hi) (the last bin is closed),
    how many, their mean, the observed rate of positives and its Wilson interval."""

    lo: float
    hi: float
    n: int
    mean_predicted: float
    observed: float
    ci: tuple[float, float]


def _checked_probabilities(probabilities: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=float).ravel()
    y = _labels01(labels, p.size)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probabilities must be finite and in [0, 1]")
    return p, y


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be positive, got {n_bins}")
    return np.minimum((p * n_bins).astype(int), n_bins - 1)


def reliability(probabilities: Any, labels: Any, n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins on [0, 1]; for each non-empty bin the mean prediction and the
    observed rate with a Wilson interval (DeGroot & Fienberg 1983 reliability diagram).
    The bins partition the data: their ``n`` add up to the number of predictions.
    """
    p, y = _checked_probabilities(probabilities, labels)
    index = _bin_index(p, n_bins)
    bins = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        if count == 0:
            continue
        est = wilson_interval(int(y[members].sum()), count)
        assert est.value is not None and est.ci is not None
        bins.append(
            ReliabilityBin(
                lo=b / n_bins,
                hi=(b + 1) / n_bins,
                n=count,
                mean_predicted=float(p[members].mean()),
                observed=est.value,
                ci=est.ci,
            )
        )
    return bins


def expected_calibration_error(probabilities: Any, labels: Any, n_bins: int = 10) -> float:
    """ECE = Σ_b (n_b / N) · |observed_b - mean_predicted_b| over equal-width bins
    (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017). Raises :class:`NotEstimable`
    without data.
    """
    p, y = _checked_probabilities(probabilities, labels)
    if p.size == 0:
        raise NotEstimable("no predictions to measure calibration on")
    return float(
        sum(b.n * abs(b.observed - b.mean_predicted) for b in reliability(p, y, n_bins)) / p.size
    )
