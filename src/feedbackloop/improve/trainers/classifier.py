"""``classifier``: a calibrated text classifier with a threshold chosen for a target.

Trained on a ``labels`` dataset ({"text", "label", "confidence"}): logistic regression on
the text features ([text vector, log length], :mod:`..features`), each row weighted by its
aggregated confidence, calibrated by scikit-learn's ``CalibratedClassifierCV`` (isotonic
regression, or Platt's sigmoid with ``calibration="sigmoid"``) over ``cv`` stratified
folds of the training split. The classifier is binary: the ``positive`` label against the
rest (with two labels the positive one is found from its name — true, yes, 1, positive —
or is the later of the two in sort order; with more labels it must be named).

The decision threshold is chosen on the *validation* split: the lowest threshold whose
precision reaches ``target_precision`` (the most recall at that precision), or with
``target_recall`` the highest threshold whose recall reaches it. The *test* split then
reports precision and recall at that threshold with Wilson 95 % intervals, the Brier score,
AUROC and the expected calibration error (10 equal-width bins).

The artifact holds, for every fold, the regression's weights and its calibration map
(isotonic knots or the sigmoid's a and b) as plain numbers; the loaded classifier averages
the folds' calibrated probabilities exactly as ``CalibratedClassifierCV.predict_proba``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
from scipy import sparse
from scipy.special import expit

from ...errors import InvalidInput
from ...stats.intervals import wilson_interval
from ..features import TextFeatures, resolve_kind
from .base import TrainContext, TrainOutput, canonical_json, floats, texts
from .reward import _param

__all__ = ["Classifier", "ClassifierTrainer", "choose_threshold", "label_text"]

FORMAT = "feedbackloop/classifier"
_POSITIVE_NAMES = ("true", "yes", "1", "positive", "pos")


def label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _design(features: TextFeatures, items: Sequence[str]) -> Any:
    vectors = features.transform(items)
    log_len = np.fromiter((math.log1p(len(t)) for t in items), dtype=np.float64,
                          count=len(items))[:, None]
    if sparse.issparse(vectors):
        return sparse.hstack([vectors, sparse.csr_matrix(log_len)], format="csr")
    return np.hstack([np.asarray(vectors, dtype=np.float64), log_len])


class Classifier:
    """A loaded classifier: ``probability`` of the positive label, ``predict`` a label."""

    kind = "classifier"

    def __init__(self, doc: dict[str, Any], features: TextFeatures) -> None:
        self.features = features
        self.positive: str = doc["positive"]
        self.negative: str = doc["negative"]
        self.threshold = float(doc["threshold"])
        self.members = [(np.asarray(m["coef"], dtype=np.float64), float(m["intercept"]),
                         m["calibration"]) for m in doc["members"]]

    @classmethod
    def from_bytes(cls, data: bytes) -> Classifier:
        doc = orjson.loads(data)
        if doc.get("format") != FORMAT:
            raise InvalidInput(f"not a classifier artifact (format {doc.get('format')!r})",
                               field="artifact")
        return cls(doc, TextFeatures.from_dict(doc["features"]))

    def probabilities(self, items: Sequence[str]) -> np.ndarray:
        return self.probabilities_from(_design(self.features, items))

    def probabilities_from(self, x: Any) -> np.ndarray:
        out = np.zeros(x.shape[0], dtype=np.float64)
        for coef, intercept, cal in self.members:
            d = np.asarray(x @ coef, dtype=np.float64).ravel() + intercept
            if cal["method"] == "isotonic":
                p = np.interp(d, np.asarray(cal["x"]), np.asarray(cal["y"]))
            else:
                p = expit(-(cal["a"] * d + cal["b"]))
            out += p
        return np.clip(out / len(self.members), 0.0, 1.0)

    def score(self, text: str) -> float:
        return float(self.probabilities([text])[0])

    def predict(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``{"text"}`` → ``{"label", "probability", "threshold"}``."""
        text = item.get("text")
        if not isinstance(text, str):
            raise InvalidInput("predict needs a text 'text'", field="text")
        p = self.score(text)
        return {"label": self.positive if p >= self.threshold else self.negative,
                "probability": p, "threshold": self.threshold}


def choose_threshold(prob: np.ndarray, y: np.ndarray, *, target: float,
                     metric: str) -> dict[str, Any]:
    """The threshold (predict positive when prob >= threshold) for a target precision
    (lowest such threshold) or recall (highest such threshold), from validation data.
    When no threshold reaches the target: the best precision (or recall) found, and
    ``target_met`` false."""
    positives = int(y.sum())
    if positives == 0:
        raise InvalidInput("the validation split has no row of the positive label, so no "
                           "threshold can be chosen", field="dataset")
    order = np.argsort(-prob, kind="stable")
    p_sorted, y_sorted = prob[order], y[order]
    tp = np.cumsum(y_sorted)
    k = np.arange(1, len(prob) + 1)
    # cut only between distinct probabilities: the last index of each run of equal values
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    cand = np.flatnonzero(last)
    precision = tp[cand] / k[cand]
    recall = tp[cand] / positives
    thresholds = p_sorted[cand]
    if metric == "precision":
        ok = np.flatnonzero(precision >= target - 1e-12)
        i = int(ok[-1]) if ok.size else int(np.argmax(precision))
    else:
        ok = np.flatnonzero(recall >= target - 1e-12)
        i = int(ok[0]) if ok.size else int(np.argmax(recall))
    return {"threshold": float(thresholds[i]), "metric": metric, "target": target,
            "target_met": bool(ok.size), "validation_precision": float(precision[i]),
            "validation_recall": float(recall[i]), "validation_rows": len(prob)}


def _wilson(successes: int, n: int) -> dict[str, Any]:
    est = wilson_interval(successes, n)
    return {"value": est.value, "ci95": list(est.ci) if est.ci else None, "n": n,
            "method": "wilson", "reason": est.reason}


def _ece(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    idx = np.minimum((prob * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(prob[m].mean() - y[m].mean())
    return float(total / len(prob))


def classification_report(prob: np.ndarray, y: np.ndarray, threshold: float
                          ) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    pred = prob >= threshold
    tp = int((pred & (y == 1)).sum())
    report = {"rows": len(y), "positives": int(y.sum()), "predicted_positive": int(pred.sum()),
              "precision": _wilson(tp, int(pred.sum())), "recall": _wilson(tp, int(y.sum())),
              "brier": float(np.mean((prob - y) ** 2)), "ece": _ece(prob, y)}
    report["auroc"] = float(roc_auc_score(y, prob)) if 0 < y.sum() < len(y) else None
    return report


class ClassifierTrainer:
    name = "classifier"
    tasks = ("labels",)
    component = "classification"
    params: dict[str, Any] = {"features": "auto", "C": 1.0, "max_features": 20_000,
                              "max_iter": 1000, "cache_dir": None, "batch_size": 64,
                              "calibration": "isotonic", "cv": 3, "positive": None,
                              "target_precision": 0.9, "target_recall": None,
                              "weight_by_confidence": True}

    def _labels(self, rows: list[dict[str, Any]], where: str) -> tuple[list[str], list[str],
                                                                       np.ndarray]:
        items = texts(rows, "text", where)
        labels, weights = [], []
        for i, row in enumerate(rows):
            if row.get("label") is None:
                raise InvalidInput(f"{where} row {i}: no label", field="label", row=i)
            labels.append(label_text(row["label"]))
            conf = row.get("confidence")
            if conf is None:
                conf = 1.0
            if isinstance(conf, bool) or not isinstance(conf, int | float) \
                    or not 0 <= conf <= 1:
                raise InvalidInput(f"{where} row {i}: confidence must be a number from 0 to "
                                   f"1, not {conf!r}", field="confidence", row=i)
            weights.append(float(conf))
        return items, labels, np.asarray(weights, dtype=np.float64)

    def fit(self, ctx: TrainContext) -> TrainOutput:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        p = ctx.params
        kind = resolve_kind(_param(p, "features", str))
        c_value = _param(p, "C", float)
        if c_value <= 0:
            raise InvalidInput(f"parameter 'C' must be positive, not {c_value!r}", field="C")
        method = _param(p, "calibration", str, choices=("isotonic", "sigmoid", "platt"))
        method = "sigmoid" if method == "platt" else method
        folds = _param(p, "cv", int, low=2)
        if p["target_recall"] is not None:
            metric, target = "recall", _param(p, "target_recall", float)
        else:
            metric, target = "precision", _param(p, "target_precision", float)
        if not 0 < target <= 1:
            raise InvalidInput(f"target {metric} must be in (0, 1], not {target!r}",
                               field=f"target_{metric}")
        label = ctx.dataset.label
        items, labels, weights = self._labels(ctx.split("train"), f"{label} train")
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise InvalidInput(f"dataset {label} has one label in its training split "
                               f"({classes[0] if classes else 'none'}); a classifier needs "
                               "two", field="dataset")
        positive = p["positive"]
        if positive is None:
            if len(classes) > 2:
                raise InvalidInput(f"dataset {label} has {len(classes)} labels "
                                   f"({', '.join(classes)}): name the positive one with "
                                   "the parameter 'positive'", field="positive")
            named = [c for c in classes if c.lower() in _POSITIVE_NAMES]
            positive = named[0] if named else classes[-1]
        positive = label_text(positive)
        if positive not in classes:
            raise InvalidInput(f"positive label {positive!r} is not among the training "
                               f"labels ({', '.join(classes)})", field="positive")
        negative = next(c for c in classes if c != positive) if len(classes) == 2 \
            else f"not {positive}"
        y = np.array([lab == positive for lab in labels], dtype=np.int64)
        smallest = int(min(y.sum(), len(y) - y.sum()))
        if smallest < folds:
            raise InvalidInput(f"dataset {label}: {smallest} training row(s) of the rarer "
                               f"class, fewer than the {folds} calibration folds",
                               field="dataset")
        ctx.progress("features", 0, 3)
        features = TextFeatures.fit(kind, items, max_features=_param(p, "max_features", int,
                                                                     low=1),
                                    cache_dir=p["cache_dir"],
                                    batch_size=_param(p, "batch_size", int, low=1))
        x = _design(features, items)
        ctx.progress("fit", 1, 3)
        sample_weight = weights if p["weight_by_confidence"] else None
        model = CalibratedClassifierCV(
            LogisticRegression(C=c_value, max_iter=_param(p, "max_iter", int, low=1),
                               tol=1e-6),
            method=method, cv=StratifiedKFold(folds, shuffle=True, random_state=ctx.seed))
        model.fit(x, y, sample_weight=sample_weight)
        members = []
        for cc in model.calibrated_classifiers_:
            cal = cc.calibrators[0]
            calibration = ({"method": "isotonic", "x": floats(cal.X_thresholds_),
                            "y": floats(cal.y_thresholds_)} if method == "isotonic"
                           else {"method": "sigmoid", "a": float(cal.a_), "b": float(cal.b_)})
            members.append({"coef": floats(cc.estimator.coef_),
                            "intercept": float(cc.estimator.intercept_[0]),
                            "calibration": calibration})
        doc = {"format": FORMAT, "format_version": 1, "features": features.to_dict(),
               "classes": classes, "positive": positive, "negative": negative,
               "members": members, "threshold": 0.5, "seed": ctx.seed}
        clf = Classifier(doc, features)
        ctx.progress("threshold", 2, 3)
        val_rows = ctx.split("validation")
        if not val_rows:
            raise InvalidInput(f"dataset {label} has no validation rows to choose the "
                               "threshold on", field="dataset")
        v_items, v_labels, _ = self._labels(val_rows, f"{label} validation")
        v_y = np.array([lab == positive for lab in v_labels], dtype=np.int64)
        chosen = choose_threshold(clf.probabilities(v_items), v_y, target=target,
                                  metric=metric)
        doc["threshold"] = chosen["threshold"]
        metrics: dict[str, Any] = {"features": kind, "calibration": method, "cv": folds,
                                   "positive": positive, "classes": classes,
                                   "train_rows": len(items), "threshold": chosen}
        test_rows = ctx.split("test")
        if test_rows:
            t_items, t_labels, _ = self._labels(test_rows, f"{label} test")
            t_y = np.array([lab == positive for lab in t_labels], dtype=np.int64)
            metrics["test"] = classification_report(clf.probabilities(t_items), t_y,
                                          chosen["threshold"])
        else:
            metrics["test"] = {"rows": 0, "reason": "the dataset has no test rows"}
        ctx.progress("threshold", 3, 3)
        features.close()
        prec = metrics["test"].get("precision", {}).get("value")
        desc = f"calibrated ({method}) classifier for {positive!r}; threshold " \
               f"{chosen['threshold']:.3f} for {metric} ≥ {target:g}"
        if prec is not None:
            desc += f"; test precision {prec:.3f}"
        return TrainOutput(canonical_json(doc), metrics, description=desc)

    def load(self, data: bytes) -> Classifier:
        return Classifier.from_bytes(data)
