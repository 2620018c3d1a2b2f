"""Stacking automated metrics into one predictor of the human judgement."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from feedbackloop.stats import NotEstimable, StackingModel, fit_stacking

NAMES = ["rouge", "length", "noise"]


def _data(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """The human says yes mostly when rouge is high and the answer is short; noise is noise.
    Columns have very different scales, which is what standardising is for."""
    rng = np.random.default_rng(seed)
    rouge = rng.random(n)
    length = rng.normal(200.0, 60.0, n)
    noise = rng.normal(0.0, 1.0, n)
    logit = 4.0 * (rouge - 0.5) - 0.02 * (length - 200.0)
    labels = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    return np.c_[rouge, length, noise], labels


def test_weights_and_probabilities_equal_a_sklearn_pipeline() -> None:
    x, y = _data(1)
    model = fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(0), C=0.5)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)).fit(x, y)
    coef = ref[-1].coef_.ravel()
    assert [model.weights[n] for n in NAMES] == pytest.approx(coef.tolist(), abs=1e-6)
    assert model.intercept == pytest.approx(float(ref[-1].intercept_[0]), abs=1e-6)
    np.testing.assert_allclose(model.predict_proba(x), ref.predict_proba(x)[:, 1], atol=1e-6)
    # Raw-scale weights give the same linear predictor on unscaled features.
    raw = np.array([model.raw_weights[n] for n in NAMES])
    np.testing.assert_allclose(x @ raw + model.raw_intercept, ref.decision_function(x), atol=1e-6)


def test_informative_metrics_outweigh_noise_and_cv_auroc_is_out_of_fold() -> None:
    x, y = _data(2)
    model = fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(5), folds=5)
    assert model.weights["rouge"] > 0.5
    assert model.weights["length"] < -0.5
    assert abs(model.weights["noise"]) < 0.3
    # Recompute the out-of-fold AUROC independently with the same fold seed.
    seed = int(np.random.default_rng(5).integers(2**31))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    oof = np.empty(y.size)
    for train, test in folds.split(x, y):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        oof[test] = pipe.fit(x[train], y[train]).decision_function(x[test])
    assert model.cv_auroc.value == pytest.approx(roc_auc_score(y, oof), abs=1e-9)
    assert model.cv_auroc.ci is not None and model.cv_auroc.ci[0] > 0.6
    assert "out-of-fold" in model.cv_auroc.method
    assert model.folds == 5


def test_metrics_without_signal_get_an_interval_around_chance() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = rng.random(200) < 0.5
    model = fit_stacking(x, y, feature_names=["a", "b"], rng=np.random.default_rng(0))
    assert model.cv_auroc.ci is not None
    assert model.cv_auroc.ci[0] < 0.5 + 0.05  # chance is not ruled out


def test_same_rng_same_model_and_json_form() -> None:
    x, y = _data(4, n=80)
    a = fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(9))
    b = fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(9))
    assert a == b
    assert isinstance(a, StackingModel)
    d = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert set(d) >= {"weights", "raw_weights", "intercept", "cv_auroc", "n"}
    assert set(d["weights"]) == set(NAMES)


def test_folds_shrink_to_the_smaller_class() -> None:
    x, _ = _data(6, n=30)
    y = np.zeros(30, bool)
    y[:3] = True
    model = fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(0), folds=5)
    assert model.folds == 3


@pytest.mark.parametrize(
    ("n", "positives", "match"),
    [
        (19, 9, "at least 20 human labels"),
        (40, 0, "at least 2 labels of each class"),
        (40, 1, "at least 2 labels of each class"),
        (40, 40, "at least 2 labels of each class"),
    ],
)
def test_too_little_evidence_is_not_estimable(n: int, positives: int, match: str) -> None:
    x = np.random.default_rng(0).normal(size=(n, 3))
    y = np.arange(n) < positives
    with pytest.raises(NotEstimable, match=match):
        fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(0))


def test_bad_input_is_rejected() -> None:
    x, y = _data(0, n=40)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="feature names"):
        fit_stacking(x, y, feature_names=["a", "b"], rng=rng)
    with pytest.raises(ValueError, match="distinct"):
        fit_stacking(x, y, feature_names=["a", "a", "b"], rng=rng)
    x_bad = x.copy()
    x_bad[0, 0] = np.nan
    with pytest.raises(NotEstimable, match="missing"):
        fit_stacking(x_bad, y, feature_names=NAMES, rng=rng)
    model = fit_stacking(x, y, feature_names=NAMES, rng=rng)
    with pytest.raises(ValueError, match="shape"):
        model.predict_proba(x[:, :2])


def test_constant_metric_gets_zero_weight_without_warnings() -> None:
    x, y = _data(8, n=100)
    x[:, 2] = 7.0
    model = fit_stacking(x, y, feature_names=NAMES, rng=np.random.default_rng(0))
    assert model.weights["noise"] == 0.0
    assert model.raw_weights["noise"] == 0.0
