"""The numbers of a two-channel evaluation, computed from paired arrays (no database).

For each metric against the human channel: rank agreement, classification quality against
the human approval, calibration, the human-approval rate over all traffic, the largest
discrepancies and the data for the plots. Every statistic is an :class:`Estimate` turned
into a dict, so an unavailable one carries its reason instead of a misleading number.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..stats import (
    NotEstimable,
    auroc,
    best_threshold,
    classical_mean,
    cohen_kappa,
    expected_calibration_error,
    fit_isotonic,
    fit_stacking,
    kendall,
    naive_metric_mean,
    ppi_mean,
    rates_at_threshold,
    reliability,
    spearman,
    top_discrepancies,
)
from ..stats.estimate import unavailable

__all__ = [
    "MIN_CALIBRATION",
    "approval_labels",
    "categorical_report",
    "metric_report",
    "resamples_for",
    "stacking_report",
]

MIN_CALIBRATION = 10
"""Fewer labelled pairs than this and no calibration map is fitted."""
RELIABILITY_BINS = 10
CALIBRATION_FOLDS = 5
SCATTER_POINTS = 1500
TOP_DISCREPANCIES = 25
_RESAMPLE_BUDGET = 5_000_000


def resamples_for(n: int) -> int:
    """Bootstrap resamples for ``n`` pairs: 2,000 up to 2,500 pairs, fewer above so that the
    resample matrix stays near five million entries (at 100,000 pairs, 50 resamples: the
    interval is then a hundredth wide, and the resampling error of its ends is a fraction
    of that). The bootstrap of a rank correlation costs a sort per resample; without this
    bound it alone would take minutes at that size."""
    return int(min(2000, max(50, _RESAMPLE_BUDGET // max(n, 1))))


def approval_labels(values: np.ndarray, threshold: float) -> np.ndarray:
    """Human approval: the aggregated judgement at or above ``threshold`` (bool)."""
    return np.asarray(values >= threshold, dtype=bool)


def _failed(reason: str) -> dict[str, Any]:
    return {"available": False, "reason": reason}


def _normalise(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.full(values.shape, 0.5)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0)


def _cross_fitted(metric: np.ndarray, approved: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray | None:
    """Out-of-fold isotonic probabilities: each item's from a map fitted without it, so the
    calibrated error is not flattered by fitting and scoring on the same labels."""
    n = metric.size
    if n < CALIBRATION_FOLDS * 2:
        return None
    fold = rng.permutation(n) % CALIBRATION_FOLDS
    out = np.empty(n)
    for k in range(CALIBRATION_FOLDS):
        test = fold == k
        train = ~test
        out[test] = fit_isotonic(metric[train], approved[train]).predict(metric[test])
    return out


def _calibration(metric: np.ndarray, approved: np.ndarray, scale: tuple[float, float],
                 rng: np.random.Generator) -> dict[str, Any]:
    n = metric.size
    if n < MIN_CALIBRATION:
        return _failed(f"needs at least {MIN_CALIBRATION} labelled pairs, got {n}")
    if approved.all() or not approved.any():
        return _failed("the human judgements are all on one side of the approval threshold")
    lo, hi = scale
    face = _normalise(metric, lo, hi)
    try:
        iso = fit_isotonic(metric, approved)
        oof = _cross_fitted(metric, approved, rng)
    except NotEstimable as exc:
        return _failed(str(exc))
    bins = [{"lo": b.lo, "hi": b.hi, "n": b.n, "mean_predicted": b.mean_predicted,
             "observed": b.observed, "ci95": list(b.ci)}
            for b in reliability(face, approved, RELIABILITY_BINS)]
    return {
        "available": True, "reason": None, "n": n, "scale": [lo, hi],
        "isotonic": [[float(_normalise(np.array([x]), lo, hi)[0]), p] for x, p in iso.points],
        "isotonic_raw": [[x, p] for x, p in iso.points],
        "bins": bins,
        "ece_face_value": expected_calibration_error(face, approved, RELIABILITY_BINS),
        "ece_calibrated": (expected_calibration_error(oof, approved, RELIABILITY_BINS)
                           if oof is not None else None),
    }


def _classification(metric: np.ndarray, approved: np.ndarray) -> dict[str, Any]:
    area = auroc(approved, metric)
    if not area.available:
        return {"available": False, "reason": area.reason, "auroc": area.to_dict()}
    threshold = best_threshold(approved, metric)
    rates = rates_at_threshold(approved, metric, threshold)
    return {"available": True, "reason": None, "auroc": area.to_dict(),
            "threshold": threshold, "threshold_rule": "maximises Youden's J on these pairs",
            "tpr": rates["tpr"].to_dict(), "tnr": rates["tnr"].to_dict(),
            "positives": int(approved.sum()), "negatives": int((~approved).sum())}


def _approval_rate(approved: np.ndarray, decided_labelled: np.ndarray,
                   decided_unlabelled: np.ndarray) -> dict[str, Any]:
    y = approved.astype(float)
    return {
        "ppi": ppi_mean(y, decided_labelled, decided_unlabelled).to_dict(),
        "classical": classical_mean(y).to_dict(),
        "naive": naive_metric_mean(np.concatenate([decided_labelled, decided_unlabelled]))
        .to_dict(),
        "n_labelled": int(y.size), "n_unlabelled": int(decided_unlabelled.size),
    }


def _box(values: np.ndarray) -> dict[str, Any]:
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    return {"n": int(values.size), "min": float(q[0]), "q1": float(q[1]),
            "median": float(q[2]), "q3": float(q[3]), "max": float(q[4]),
            "mean": float(values.mean())}


def _plot(human_type: str, human: np.ndarray, metric: np.ndarray,
          rng: np.random.Generator) -> dict[str, Any]:
    if human.size == 0:
        return {"kind": "none"}
    if human_type in ("binary", "ordinal"):
        # A mean of several raters' 0/1 is shown at its majority (a tie approves).
        levels = np.where(human >= 0.5, 1.0, 0.0) if human_type == "binary" \
            else np.round(human)
        boxes = [{"level": float(level), **_box(metric[levels == level])}
                 for level in np.unique(levels)]
        return {"kind": "box", "boxes": boxes}
    keep = np.sort(rng.choice(human.size, size=min(SCATTER_POINTS, human.size),
                              replace=False))
    return {"kind": "scatter", "points": [[float(h), float(m)] for h, m in
                                          zip(human[keep], metric[keep], strict=True)],
            "shown": int(keep.size), "of": int(human.size)}


def _discrepancies(ids: Sequence[int], human: np.ndarray, metric: np.ndarray
                   ) -> list[dict[str, Any]]:
    if len(ids) < 2:
        return []
    return [{"key": int(key), "score": score, "human": h, "metric": m}
            for key, score, h, m in top_discrepancies(list(ids), human, metric,
                                                      TOP_DISCREPANCIES)]


def metric_report(*, human_type: str, keys: np.ndarray, human: np.ndarray,
                  metric: np.ndarray, unlabelled: np.ndarray, approval_threshold: float | None,
                  approval_reason: str | None, scale: tuple[float, float], binary_pair: bool,
                  rng: np.random.Generator) -> dict[str, Any]:
    """The report of one numeric-like metric against the human channel.

    ``keys``, ``human`` and ``metric`` are the paired items; ``unlabelled`` holds the
    metric's values on the items no human judged (the rest of the traffic).
    """
    n = int(keys.size)
    b = resamples_for(n)
    out: dict[str, Any] = {
        "n_paired": n, "n_unlabelled": int(unlabelled.size), "bootstrap_resamples": b,
        "spearman": spearman(human, metric, rng=rng, n_resamples=b).to_dict(),
        "kendall": kendall(human, metric, rng=rng, n_resamples=b).to_dict(),
        "kappa": None,
    }
    if binary_pair:
        out["kappa"] = cohen_kappa(human >= 0.5, metric >= 0.5, rng=rng,
                                   n_resamples=b).to_dict()
    if approval_threshold is None:
        reason = approval_reason or "no approval threshold"
        out["classification"] = _failed(reason)
        out["calibration"] = _failed(reason)
        out["approval_rate"] = _failed(reason)
    else:
        approved = approval_labels(human, approval_threshold)
        out["classification"] = _classification(metric, approved)
        out["calibration"] = _calibration(metric, approved, scale, rng)
        cls = out["classification"]
        if cls["available"]:
            t = cls["threshold"]
            out["approval_rate"] = {
                "predictor": f"metric >= {t:g}",
                **_approval_rate(approved, (metric >= t).astype(float),
                                 (unlabelled >= t).astype(float))}
        else:
            out["approval_rate"] = {
                **_failed(f"no metric threshold: {cls['reason']}"),
                "classical": classical_mean(approved.astype(float)).to_dict()}
    out["plot"] = _plot(human_type, human, metric, rng)
    out["discrepancies"] = _discrepancies(keys.tolist(), human, metric)
    return out


def categorical_report(*, keys: np.ndarray, human: np.ndarray, metric: np.ndarray,
                       labels: Sequence[str], rng: np.random.Generator) -> dict[str, Any]:
    """A categorical metric against a categorical human signal with the same labels:
    Cohen's kappa, the confusion table, and the disagreeing items."""
    n = int(keys.size)
    kappa = (cohen_kappa(human, metric, rng=rng, n_resamples=resamples_for(n)).to_dict()
             if n else unavailable(0, "cohen kappa", "no paired items").to_dict())
    table = [[int(((human == a) & (metric == b)).sum()) for b in labels] for a in labels]
    disagree = [int(k) for k in keys[human != metric][:TOP_DISCREPANCIES]] if n else []
    index = {k: i for i, k in enumerate(keys.tolist())}
    return {
        "n_paired": n, "kappa": kappa,
        "agreement_share": float((human == metric).mean()) if n else None,
        "confusion": {"labels": list(labels), "counts": table},
        "plot": {"kind": "confusion"},
        "discrepancies": [{"key": k, "score": 1.0, "human": str(human[index[k]]),
                           "metric": str(metric[index[k]])} for k in disagree],
    }


def stacking_report(features: np.ndarray, approved: np.ndarray, names: list[str],
                    rng: np.random.Generator) -> dict[str, Any]:
    """Regularised logistic stacking of the metrics to predict human approval."""
    try:
        model = fit_stacking(features, approved, feature_names=names, rng=rng)
    except NotEstimable as exc:
        return {**_failed(str(exc)), "n": int(approved.size), "metrics": names}
    return {"available": True, "reason": None, "n": int(approved.size), "metrics": names,
            **model.to_dict()}
