"""Combining several automated metrics into one predictor of the human judgement.

An L2-regularised logistic regression on standardised metrics (stacked generalisation,
Wolpert 1992) says which metrics carry the human signal, and its out-of-fold AUROC says how
far the combination can be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from .classification import auroc
from .estimate import Estimate, NotEstimable

__all__ = ["MIN_LABELS", "StackingModel", "fit_stacking"]

MIN_LABELS = 20
"""Fewer human labels than this and no combination is fitted."""


@dataclass(frozen=True)
class StackingModel:
    """A fitted combination: P(human positive) = sigmoid(intercept + Σ_j w_j z_j), with z_j
    the metric standardised by the training mean and standard deviation.

    ``weights`` and ``intercept`` are on the standardised scale, so weights compare across
    metrics; ``raw_weights`` and ``raw_intercept`` give the same model on the metrics' own
    scales. ``cv_auroc`` is the AUROC of out-of-fold predictions with DeLong's interval.
    """

    feature_names: tuple[str, ...]
    weights: dict[str, float]
    intercept: float
    raw_weights: dict[str, float]
    raw_intercept: float
    cv_auroc: Estimate
    n: int
    folds: int
    C: float

    def decision_function(self, features: Any) -> np.ndarray:
        """The linear predictor (log-odds) for each row of ``features``."""
        x = np.asarray(features, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"features must have shape (n, {len(self.feature_names)})")
        w = np.array([self.raw_weights[name] for name in self.feature_names])
        return np.asarray(x @ w + self.raw_intercept)

    def predict_proba(self, features: Any) -> np.ndarray:
        """P(human judgement is positive) for each row of ``features``, a 1-D array."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.decision_function(features))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the model."""
        return {
            "feature_names": list(self.feature_names),
            "weights": dict(self.weights),
            "intercept": self.intercept,
            "raw_weights": dict(self.raw_weights),
            "raw_intercept": self.raw_intercept,
            "cv_auroc": self.cv_auroc.to_dict(),
            "n": self.n,
            "folds": self.folds,
            "C": self.C,
        }


def _fit(x: np.ndarray, y: np.ndarray, c: float) -> tuple[StandardScaler, LogisticRegression]:
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=1000).fit(scaler.transform(x), y)
    return scaler, model


def fit_stacking(
    features: Any,
    labels: Any,
    *,
    feature_names: Sequence[str],
    rng: np.random.Generator,
    C: float = 1.0,
    folds: int = 5,
) -> StackingModel:
    """Fit the combination and estimate its out-of-fold AUROC.

    Minimises Σ_i log(1 + exp(-y_i (b + w·z_i))) + ||w||² / (2C) (scikit-learn's
    ``LogisticRegression``) on standardised features; the cross-validated AUROC uses
    stratified k-fold with ``k = min(folds, size of the smaller class)``, its shuffle seeded
    from ``rng``; the scaler is refitted inside each fold.

    Raises :class:`NotEstimable` (rather than returning a half-made model) with fewer than
    ``MIN_LABELS`` labels, a class with fewer than 2 members, or non-finite features:
    without them no model means anything.
    """
    x = np.asarray(features, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    names = tuple(feature_names)
    raw = np.asarray(labels).ravel()
    if raw.dtype != bool and not set(np.unique(raw).tolist()) <= {0, 1}:
        raise ValueError("labels must be boolean or 0/1")
    y = raw.astype(bool)
    if x.ndim != 2 or x.shape[0] != y.size:
        raise ValueError(f"features must have shape ({y.size}, k), got {x.shape}")
    if len(names) != x.shape[1]:
        raise ValueError(f"{x.shape[1]} feature columns but {len(names)} feature names")
    if len(set(names)) != len(names):
        raise ValueError("feature names must be distinct")
    if C <= 0:
        raise ValueError(f"C must be positive, got {C}")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if y.size < MIN_LABELS:
        raise NotEstimable(f"needs at least {MIN_LABELS} human labels, got {y.size}")
    if not np.isfinite(x).all():
        raise NotEstimable("the features contain missing or infinite values")
    minority = int(min(y.sum(), (~y).sum()))
    if minority < 2:
        raise NotEstimable(
            f"needs at least 2 labels of each class, got {int(y.sum())} positive "
            f"and {int((~y).sum())} negative"
        )
    k = min(folds, minority)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=int(rng.integers(2**31)))
    out_of_fold = np.empty(y.size)
    for train, test in splitter.split(x, y):
        scaler, model = _fit(x[train], y[train], C)
        out_of_fold[test] = model.decision_function(scaler.transform(x[test]))
    cv = auroc(y, out_of_fold)
    cv = Estimate(cv.value, cv.ci, cv.n, f"out-of-fold {cv.method}, {k} folds", cv.reason)

    scaler, model = _fit(x, y, C)
    w_std = model.coef_.ravel()
    b_std = float(model.intercept_[0])
    scale = np.asarray(scaler.scale_, dtype=float)
    mean = np.asarray(scaler.mean_, dtype=float)
    w_raw = w_std / scale
    b_raw = b_std - float(np.sum(w_std * mean / scale))
    return StackingModel(
        feature_names=names,
        weights={name: float(w) for name, w in zip(names, w_std, strict=True)},
        intercept=b_std,
        raw_weights={name: float(w) for name, w in zip(names, w_raw, strict=True)},
        raw_intercept=b_raw,
        cv_auroc=cv,
        n=int(y.size),
        folds=k,
        C=float(C),
    )
