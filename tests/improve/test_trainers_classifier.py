"""The classifier trainer on a simulation with known truth: calibrated probabilities match
the true probability, and the threshold chosen on validation data reaches its target
precision (or recall) on fresh data."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from feedbackloop.errors import InvalidInput
from feedbackloop.improve import registry as reg
from feedbackloop.improve.trainers import train
from feedbackloop.improve.trainers.classifier import choose_threshold
from feedbackloop.store import Store

from .model_data import insert_dataset, label_rows, project, true_spam_probability

TFIDF = {"features": "tfidf"}


@pytest.fixture
def spam(store: Store) -> int:
    project(store)
    return insert_dataset(store, "shop", "spam", "labels", label_rows(3000, seed=1),
                          group_field="text")


def _fresh(n: int = 4000) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = label_rows(n, seed=77)
    items = [r["text"] for r in rows]
    truth = np.array([true_spam_probability(t) for t in items])
    y = np.array([r["label"] == "spam" for r in rows], dtype=np.int64)
    return items, truth, y


@pytest.mark.parametrize("calibration", ["isotonic", "sigmoid"])
def test_calibrated_probabilities_and_threshold_for_a_target_precision(
        store: Store, spam: int, tmp_path: Path, calibration: str) -> None:
    _, version = train(store, "shop", "classifier", "spam", seed=2,
                       params={**TFIDF, "calibration": calibration,
                               "target_precision": 0.85},
                       artifact_root=tmp_path / "art")
    m = version.metrics
    assert (version.component, m["positive"], m["classes"]) == ("classification", "spam",
                                                                ["ham", "spam"])
    th = m["threshold"]
    assert th["metric"] == "precision" and th["target_met"] is True
    assert th["validation_precision"] >= 0.85
    test = m["test"]
    assert test["rows"] > 250
    prec = test["precision"]
    assert prec["method"] == "wilson" and prec["n"] == test["predicted_positive"] > 30
    assert prec["ci95"][0] <= prec["value"] <= prec["ci95"][1]
    # the test split's interval is consistent with the target
    assert prec["ci95"][1] >= 0.85 - 0.02
    assert test["auroc"] > 0.8 and test["ece"] < 0.1

    clf = reg.load_model(store, "shop", "classification", version.name)
    items, truth, y = _fresh()
    prob = clf.probabilities(items)
    # calibration against the known truth: the mean absolute error of the probability
    assert float(np.mean(np.abs(prob - truth))) < 0.08
    # and against outcomes, by decile of the predicted probability (n >= 100 per bin:
    # binomial sd <= 0.05)
    edges = np.quantile(prob, np.linspace(0, 1, 11))
    for lo, hi in itertools.pairwise(edges):
        inside = (prob >= lo) & (prob <= hi)
        if inside.sum() >= 100:
            assert abs(prob[inside].mean() - y[inside].mean()) < 0.1
    # the threshold reaches the target precision on 4,000 fresh texts (Wilson lower bound
    # within 5 points of the target)
    pred = prob >= clf.threshold
    tp, n_pos = int((pred & (y == 1)).sum()), int(pred.sum())
    z = 1.96
    centre = (tp + z * z / 2) / (n_pos + z * z)
    half = z / (n_pos + z * z) * math.sqrt(tp * (n_pos - tp) / n_pos + z * z / 4)
    assert centre + half >= 0.85 and tp / n_pos >= 0.80
    # the predictor's labels follow the threshold
    answer = clf.predict({"text": items[0]})
    assert answer["label"] == ("spam" if answer["probability"] >= clf.threshold else "ham")
    assert answer["threshold"] == m["threshold"]["threshold"]


def test_threshold_for_a_target_recall(store: Store, spam: int, tmp_path: Path) -> None:
    _, version = train(store, "shop", "classifier", "spam",
                       params={**TFIDF, "target_recall": 0.9, "calibration": "platt"},
                       artifact_root=tmp_path / "art")
    th = version.metrics["threshold"]
    assert th["metric"] == "recall" and th["validation_recall"] >= 0.9
    assert version.metrics["calibration"] == "sigmoid"
    assert version.metrics["test"]["recall"]["value"] > 0.8


def test_choose_threshold_picks_the_most_recall_at_the_target() -> None:
    prob = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 1, 0, 1, 0, 0])
    best = choose_threshold(prob, y, target=0.75, metric="precision")
    assert (best["threshold"], best["validation_precision"], best["validation_recall"]) == (
        0.6, 0.75, 1.0)
    assert choose_threshold(prob, y, target=0.6, metric="recall")["threshold"] == 0.8
    missed = choose_threshold(np.array([0.9, 0.1]), np.array([0, 1]), target=0.9,
                              metric="precision")
    assert missed["target_met"] is False
    with pytest.raises(InvalidInput, match="no row of the positive label"):
        choose_threshold(prob, np.zeros(6, dtype=int), target=0.5, metric="precision")


def test_classifier_bad_input(store: Store, tmp_path: Path) -> None:
    project(store)
    root = tmp_path / "art"

    def dataset(name: str, labels: list[str], splits: list[str] | None = None) -> int:
        rows = [{"text": f"text number {i}", "label": lab, "confidence": 0.9}
                for i, lab in enumerate(labels)]
        return insert_dataset(store, "shop", name, "labels", rows, group_field="text",
                              splits=splits)

    one = dataset("one", ["a"] * 20)
    with pytest.raises(InvalidInput, match="one label in its training split"):
        train(store, "shop", "classifier", one, params=TFIDF, artifact_root=root)
    three = dataset("three", ["a", "b", "c"] * 10)
    with pytest.raises(InvalidInput, match=r"has 3 labels \(a, b, c\): name the positive"):
        train(store, "shop", "classifier", three, params=TFIDF, artifact_root=root)
    with pytest.raises(InvalidInput, match="positive label 'z' is not among"):
        train(store, "shop", "classifier", three, params={**TFIDF, "positive": "z"},
              artifact_root=root)
    rare = dataset("rare", ["a"] * 20 + ["b"])
    with pytest.raises(InvalidInput, match=r"1 training row\(s\) of the rarer class"):
        train(store, "shop", "classifier", rare, params=TFIDF, artifact_root=root)
    no_val = dataset("noval", ["a", "b"] * 10, splits=["train"] * 20)
    with pytest.raises(InvalidInput, match="no validation rows"):
        train(store, "shop", "classifier", no_val, params=TFIDF, artifact_root=root)
    with pytest.raises(InvalidInput, match="target precision must be in"):
        train(store, "shop", "classifier", no_val,
              params={**TFIDF, "target_precision": 1.5}, artifact_root=root)
    with pytest.raises(InvalidInput, match="'calibration' must be one of"):
        train(store, "shop", "classifier", no_val, params={**TFIDF, "calibration": "beta"},
              artifact_root=root)
