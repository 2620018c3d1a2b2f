"""How well a score separates a binary human judgement, and how well two raters agree.

AUROC with DeLong's interval, sensitivity and specificity at a threshold with Wilson
intervals, Youden's best threshold, and Cohen's kappa with a bootstrap interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as scipy_stats
from sklearn.metrics import roc_curve

from .estimate import Estimate, NotEstimable, unavailable
from .intervals import bootstrap_interval, normal_quantile, wilson_interval

__all__ = [
    "auroc",
    "best_threshold",
    "cohen_kappa",
    "delong_variance",
    "rates_at_threshold",
]


def _binary(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels as a bool array (bool or 0/1 accepted) and scores as floats, same length."""
    raw = np.asarray(labels).ravel()
    if raw.dtype != bool:
        values = set(np.unique(raw).tolist())
        if not values <= {0, 1}:
            raise ValueError(f"labels must be boolean or 0/1, got values {sorted(values)[:5]}")
    y = raw.astype(bool)
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} and {s.size}")
    return y, s


def _class_problem(y: np.ndarray, s: np.ndarray) -> str | None:
    if not np.isfinite(s).all():
        return "the scores contain missing or infinite values"
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        which = "negative" if positives == y.size else "positive"
        return f"no {which} labels: both classes are needed"
    return None


def delong_variance(labels: Any, scores: Any) -> tuple[float, float]:
    """AUROC and its variance by DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837.

    With m positives X and n negatives Y, ψ(x, y) = 1 if x > y, 1/2 if x = y, else 0, the
    structural components are V10(X_i) = mean_j ψ(X_i, Y_j) and V01(Y_j) = mean_i ψ(X_i, Y_j)
    and ``var(AUC) = s²(V10)/m + s²(V01)/n`` (sample variances). They are computed from
    mid-ranks in O((m+n) log(m+n)) as in Sun & Xu (2014), IEEE SPL 21:1389. Needs at least
    two of each class (the variance is NaN otherwise).
    """
    y, s = _binary(labels, scores)
    x_pos, y_neg = s[y], s[~y]
    m, n = x_pos.size, y_neg.size
    tz = scipy_stats.rankdata(np.concatenate([x_pos, y_neg]))
    tx = scipy_stats.rankdata(x_pos)
    ty = scipy_stats.rankdata(y_neg)
    v10 = (tz[:m] - tx) / n
    v01 = 1.0 - (tz[m:] - ty) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, float("nan")
    return auc, float(v10.var(ddof=1) / m + v01.var(ddof=1) / n)


def auroc(labels: Any, scores: Any, *, rng: np.random.Generator | None = None) -> Estimate:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties half.

    Equals ``sklearn.metrics.roc_auc_score``. The interval is AUC ± z·SE with DeLong's
    variance (see :func:`delong_variance`), clipped to [0, 1]; it is deterministic, so
    ``rng`` is accepted for a uniform signature and not used. Unavailable when a class is
    missing; the interval is ``None`` when a class has a single member or the variance is
    zero (perfect separation, where DeLong's interval collapses to a point).
    """
    del rng
    y, s = _binary(labels, scores)
    problem = _class_problem(y, s)
    if problem is not None:
        return unavailable(y.size, "auroc", problem)
    auc, var = delong_variance(y, s)
    ci: tuple[float, float] | None = None
    if math.isfinite(var) and var > 0:
        half = normal_quantile(0.95) * math.sqrt(var)
        ci = (max(0.0, auc - half), min(1.0, auc + half))
    return Estimate(value=auc, ci=ci, n=y.size, method="auroc, DeLong interval")


def rates_at_threshold(labels: Any, scores: Any, threshold: float) -> dict[str, Estimate]:
    """Sensitivity ("tpr") and specificity ("tnr") when ``score >= threshold`` predicts
    positive, each a proportion with a Wilson interval; unavailable when its class is empty.
    """
    y, s = _binary(labels, scores)
    predicted = s >= threshold
    out: dict[str, Estimate] = {}
    for key, members, hits, name in (
        ("tpr", y, predicted & y, "positive"),
        ("tnr", ~y, ~predicted & ~y, "negative"),
    ):
        total = int(members.sum())
        if total == 0:
            out[key] = unavailable(0, f"{key}, wilson", f"no {name} labels")
        else:
            est = wilson_interval(int(hits.sum()), total)
            out[key] = Estimate(est.value, est.ci, est.n, f"{key}, wilson")
    return out


def best_threshold(labels: Any, scores: Any) -> float:
    """The threshold maximising Youden's J = sensitivity + specificity - 1 (Youden 1950).

    Candidates are the observed scores (``score >= threshold`` predicts positive); on a tie
    the highest threshold wins. Raises :class:`NotEstimable` when a class is missing or the
    scores are not finite.
    """
    y, s = _binary(labels, scores)
    problem = _class_problem(y, s)
    if problem is not None:
        raise NotEstimable(f"cannot choose a threshold: {problem}")
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    j = tpr - fpr
    # roc_curve's first threshold is +inf (nothing predicted positive, J = 0); skip it.
    best = int(np.argmax(j[1:])) + 1
    return float(thresholds[best])


def _kappa_codes(a: np.ndarray, b: np.ndarray, n_categories: int, axis: int = -1) -> Any:
    """Cohen's kappa on integer codes along ``axis`` (NaN where expected agreement is 1)."""
    p_o = (a == b).mean(axis=axis)
    p_e = np.zeros_like(p_o, dtype=float)
    for k in range(n_categories):
        p_e = p_e + (a == k).mean(axis=axis) * (b == k).mean(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p_e < 1.0, (p_o - p_e) / (1.0 - p_e), np.nan)


def cohen_kappa(a: Any, b: Any, *, rng: np.random.Generator, n_resamples: int = 2000) -> Estimate:
    """Cohen's (1960) kappa for two raters on the same items, any nominal labels::

        kappa = (p_o - p_e) / (1 - p_e),   p_e = Σ_k p_a(k) p_b(k)

    (Cohen 1960, Educ. Psychol. Meas. 20:37). Equals ``sklearn.metrics.cohen_kappa_score``;
    the interval is the paired percentile bootstrap over items. Unavailable with fewer than
    2 items or when both raters used one and the same category (p_e = 1).
    """
    ra, rb = np.asarray(a).ravel(), np.asarray(b).ravel()
    if ra.shape != rb.shape:
        raise ValueError(f"a and b differ in length: {ra.size} and {rb.size}")
    n = ra.size
    if n < 2:
        return unavailable(n, "cohen kappa", f"needs at least 2 items, got {n}")
    categories, codes = np.unique(np.concatenate([ra, rb]), return_inverse=True)
    ca, cb = codes[:n], codes[n:]
    k = categories.size
    value = float(_kappa_codes(ca, cb, k))
    if not math.isfinite(value):
        return unavailable(n, "cohen kappa", "both raters used a single category")

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> Any:
        return _kappa_codes(x, y, k, axis=axis)

    ci = bootstrap_interval(statistic, ca, cb, rng=rng, n_resamples=n_resamples, vectorized=True)
    return Estimate(value=value, ci=ci, n=n, method="cohen kappa, paired bootstrap")
