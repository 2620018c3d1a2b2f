"""Estimating the mean human judgement over all interactions from a few labels and a
metric on everything: prediction-powered inference and the two estimates it improves on.

The metric (an automated score, on the scale of the human judgement) is used where it
helps and corrected where it is biased: the bias is measured on the labelled items and
subtracted (Angelopoulos, Bates, Fannjiang, Jordan & Zrnic 2023, "Prediction-powered
inference", Science 382:669).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .estimate import Estimate, unavailable
from .intervals import normal_quantile, wilson_interval

__all__ = ["classical_mean", "naive_metric_mean", "ppi_mean"]


def _finite(values: Any, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains missing or infinite values")
    return a


def ppi_mean(
    y_labelled: Any, pred_labelled: Any, pred_unlabelled: Any, confidence: float = 0.95
) -> Estimate:
    """Prediction-powered estimate of the mean of y (Angelopoulos et al. 2023, mean
    estimation, with the CLT interval)::

        theta_PP = mean(f(X~)) - mean(f(X) - Y)
        CI       = theta_PP ± z · sqrt(sigma²_f~ / N + sigma²_{f-Y} / n)

    where f(X) are the metric's values on the n labelled items, f(X~) on the N unlabelled
    ones, and the variances are the plug-in (1/n) variances the paper uses (as does its
    reference package ``ppi_python`` with ``lam=1``). The interval is valid however biased
    the metric is; it is narrower than the labelled-only interval when the metric tracks
    y. Unavailable with fewer than 2 labelled or 2 unlabelled items.
    """
    y = _finite(y_labelled, "y_labelled")
    f = _finite(pred_labelled, "pred_labelled")
    f_u = _finite(pred_unlabelled, "pred_unlabelled")
    if y.shape != f.shape:
        raise ValueError(f"y_labelled and pred_labelled differ: {y.size} and {f.size}")
    n, big_n = y.size, f_u.size
    method = "prediction-powered inference"
    if n < 2:
        return unavailable(n + big_n, method, f"needs at least 2 labelled items, got {n}")
    if big_n < 2:
        return unavailable(n + big_n, method, f"needs at least 2 unlabelled items, got {big_n}")
    rectifier = f - y
    value = float(f_u.mean() - rectifier.mean())
    se = math.sqrt(f_u.var() / big_n + rectifier.var() / n)
    z = normal_quantile(confidence)
    ci = (value - z * se, value + z * se) if se > 0 else None
    return Estimate(value=value, ci=ci, n=n + big_n, method=method)


def _is_binary(a: np.ndarray) -> bool:
    return bool(np.isin(a, (0.0, 1.0)).all())


def classical_mean(y_labelled: Any, confidence: float = 0.95) -> Estimate:
    """The mean of the human labels alone: a Wilson interval when every label is 0 or 1,
    otherwise mean ± z · s / sqrt(n) with the sample standard deviation s. Unavailable
    without labels (or with one non-binary label).
    """
    y = _finite(y_labelled, "y_labelled")
    return _mean_estimate(y, confidence, "labelled only")


def naive_metric_mean(pred_all: Any, confidence: float = 0.95) -> Estimate:
    """The mean of the metric over every item, with the interval it would naively claim
    (as :func:`classical_mean`). The interval is about the metric, not the human
    judgement: it ignores the metric's bias, so it can be narrow and wrong.
    """
    f = _finite(pred_all, "pred_all")
    return _mean_estimate(f, confidence, "metric only (assumes the metric is unbiased)")


def _mean_estimate(a: np.ndarray, confidence: float, label: str) -> Estimate:
    n = a.size
    if n == 0:
        return unavailable(0, label, "no values")
    if _is_binary(a):
        est = wilson_interval(int(a.sum()), n, confidence)
        return Estimate(est.value, est.ci, n, f"{label}, wilson")
    if n < 2:
        return unavailable(n, f"{label}, normal", "needs at least 2 values for an interval")
    value = float(a.mean())
    se = float(a.std(ddof=1)) / math.sqrt(n)
    z = normal_quantile(confidence)
    ci = (value - z * se, value + z * se) if se > 0 else None
    return Estimate(value=value, ci=ci, n=n, method=f"{label}, normal")
