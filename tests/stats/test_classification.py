"""AUROC with DeLong's interval, rates at a threshold, Youden's threshold, Cohen's kappa."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from feedbackloop.stats import (
    NotEstimable,
    auroc,
    best_threshold,
    cohen_kappa,
    rates_at_threshold,
    wilson_interval,
)
from feedbackloop.stats.classification import delong_variance

# Labels with both classes and integer scores (ties) of the same length.
labelled_scores = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.booleans(), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)),
        st.lists(st.integers(0, 8), min_size=n, max_size=n),
    )
)

# Hanley & McNeil (1982), "The meaning and use of the area under a ROC curve", Radiology
# 143:29-36, Table 1: CT images rated 1 (definitely normal) to 5 (definitely abnormal).
HM_NORMAL = [33, 6, 6, 11, 2]  # 58 truly normal
HM_ABNORMAL = [3, 2, 2, 11, 33]  # 51 truly abnormal


def _hanley_mcneil() -> tuple[np.ndarray, np.ndarray]:
    ratings = np.arange(1, 6)
    scores = np.concatenate([np.repeat(ratings, HM_NORMAL), np.repeat(ratings, HM_ABNORMAL)])
    labels = np.concatenate([np.zeros(58, bool), np.ones(51, bool)])
    return labels, scores


def test_auroc_matches_hanley_mcneil_1982() -> None:
    labels, scores = _hanley_mcneil()
    est = auroc(labels, scores)
    # Published: area 0.893, standard error 0.032 (by Hanley & McNeil's own exponential
    # approximation, a different variance estimator from DeLong's, so close, not equal).
    assert est.value == pytest.approx(0.893, abs=5e-4)
    _, var = delong_variance(labels, scores)
    assert math.sqrt(var) == pytest.approx(0.032, abs=0.0015)
    assert est.ci is not None and est.value is not None
    assert est.ci[0] == pytest.approx(est.value - 1.959964 * math.sqrt(var), abs=1e-6)


def _delong_by_definition(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) eq. for one curve, straight from the definition: O(m n)."""
    pos, neg = scores[labels], scores[~labels]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)


@settings(max_examples=80, deadline=None)
@given(labelled_scores)
def test_auroc_equals_sklearn_and_delong_equals_its_definition(data) -> None:
    labels, scores = np.array(data[0]), np.array(data[1], dtype=float)
    est = auroc(labels, scores)
    assert est.value == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    if min(labels.sum(), (~labels).sum()) >= 2:
        auc, var = delong_variance(labels, scores)
        ref_auc, ref_var = _delong_by_definition(labels, scores)
        assert auc == pytest.approx(ref_auc, abs=1e-12)
        assert var == pytest.approx(ref_var, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(labelled_scores)
def test_negated_scores_give_one_minus_auroc(data) -> None:
    labels, scores = np.array(data[0]), np.array(data[1], dtype=float)
    a, b = auroc(labels, scores), auroc(labels, -scores)
    assert a.value is not None and b.value is not None
    assert b.value == pytest.approx(1.0 - a.value, abs=1e-12)
    if a.ci is not None:
        assert b.ci is not None
        assert b.ci[0] == pytest.approx(1.0 - a.ci[1], abs=1e-12)


def test_auroc_delong_interval_covers_the_binormal_truth() -> None:
    # Positives N(1, 1), negatives N(0, 1): AUC = Phi(1 / sqrt 2).
    truth = float(scipy_stats.norm.cdf(1 / math.sqrt(2)))
    rng = np.random.default_rng(1988)
    sims, covered = 1000, 0
    labels = np.r_[np.ones(40, bool), np.zeros(50, bool)]
    for _ in range(sims):
        scores = np.r_[rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 50)]
        ci = auroc(labels, scores).ci
        assert ci is not None
        covered += ci[0] <= truth <= ci[1]
    assert 0.93 <= covered / sims <= 0.97


@pytest.mark.parametrize(
    ("labels", "reason"),
    [([True, True, True], "no negative labels"), ([False, False], "no positive labels")],
)
def test_auroc_with_one_class_is_unavailable(labels: list[bool], reason: str) -> None:
    est = auroc(labels, np.arange(len(labels)))
    assert not est.available
    assert est.reason is not None and reason in est.reason
    json.dumps(est.to_dict(), allow_nan=False)


def test_auroc_with_non_finite_scores_is_unavailable() -> None:
    est = auroc([True, False, True], [0.1, float("nan"), 0.3])
    assert not est.available
    assert "missing" in (est.reason or "")


def test_auroc_with_one_positive_has_value_but_no_interval() -> None:
    est = auroc([True, False, False, False], [0.9, 0.1, 0.5, 0.95])
    assert est.value == pytest.approx(2 / 3)
    assert est.ci is None
    json.dumps(est.to_dict(), allow_nan=False)


def test_auroc_at_perfect_separation_has_no_collapsed_interval() -> None:
    est = auroc([False, False, True, True], [0.1, 0.2, 0.8, 0.9])
    assert est.value == 1.0
    assert est.ci is None


def test_labels_must_be_binary() -> None:
    with pytest.raises(ValueError, match="boolean or 0/1"):
        auroc([0, 1, 2], [0.1, 0.2, 0.3])


def test_rates_at_threshold_hand_counted() -> None:
    labels = [True, True, True, True, False, False, False]
    scores = [0.9, 0.7, 0.5, 0.2, 0.6, 0.3, 0.1]
    rates = rates_at_threshold(labels, scores, 0.5)
    # score >= 0.5: positives 0.9, 0.7, 0.5 -> TP 3 of 4; negatives below: 0.3, 0.1 -> 2 of 3
    assert rates["tpr"].value == pytest.approx(3 / 4)
    assert rates["tnr"].value == pytest.approx(2 / 3)
    assert rates["tpr"].ci == wilson_interval(3, 4).ci
    assert rates["tnr"].ci == wilson_interval(2, 3).ci
    assert rates["tpr"].n == 4 and rates["tnr"].n == 3


def test_rates_without_a_class_are_unavailable() -> None:
    rates = rates_at_threshold([True, True], [0.2, 0.8], 0.5)
    assert rates["tpr"].value == 0.5
    assert not rates["tnr"].available
    assert rates["tnr"].reason == "no negative labels"


def test_best_threshold_hand_example() -> None:
    labels = [False, False, True, False, True, True]
    scores = [0.1, 0.3, 0.35, 0.4, 0.8, 0.9]
    # threshold 0.35: tpr 1, fpr 1/3 -> J = 2/3, the best of all cut points.
    assert best_threshold(labels, scores) == pytest.approx(0.35)


@settings(max_examples=60, deadline=None)
@given(labelled_scores)
def test_best_threshold_maximises_youden_j(data) -> None:
    labels, scores = np.array(data[0]), np.array(data[1], dtype=float)

    def youden(t: float) -> float:
        rates = rates_at_threshold(labels, scores, t)
        assert rates["tpr"].value is not None and rates["tnr"].value is not None
        return rates["tpr"].value + rates["tnr"].value - 1.0

    chosen = best_threshold(labels, scores)
    assert chosen in set(scores.tolist())
    assert youden(chosen) == pytest.approx(max(youden(t) for t in scores), abs=1e-12)


def test_best_threshold_with_one_class_is_not_estimable() -> None:
    with pytest.raises(NotEstimable, match="positive labels"):
        best_threshold([False, False], [0.1, 0.2])


def test_kappa_wikipedia_worked_example() -> None:
    # Wikipedia, "Cohen's kappa", worked example: 50 grant proposals, both yes 20, both no
    # 15, A yes / B no 5, A no / B yes 10: p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a = ["yes"] * 20 + ["no"] * 15 + ["yes"] * 5 + ["no"] * 10
    b = ["yes"] * 20 + ["no"] * 15 + ["no"] * 5 + ["yes"] * 10
    est = cohen_kappa(a, b, rng=np.random.default_rng(0), n_resamples=500)
    assert est.value == pytest.approx(0.4, abs=1e-12)
    assert est.n == 50


def test_kappa_fleiss_textbook_example() -> None:
    # Fleiss, Levin & Paik (2003), Statistical Methods for Rates and Proportions, 3rd ed.,
    # ch. 18: two psychiatrists, 100 patients, psychotic / neurotic / organic, cell counts
    # [[75, 1, 4], [5, 4, 1], [0, 0, 10]]: p_o = 0.89, p_e = 0.66, kappa = 0.676.
    table = [[75, 1, 4], [5, 4, 1], [0, 0, 10]]
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [i] * count
            b += [j] * count
    est = cohen_kappa(a, b, rng=np.random.default_rng(0), n_resamples=500)
    assert est.value == pytest.approx(0.23 / 0.34, abs=1e-12)
    assert est.value is not None and round(est.value, 3) == 0.676


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.sampled_from("abc"), min_size=n, max_size=n),
            st.lists(st.sampled_from("abcd"), min_size=n, max_size=n),
        )
    )
)
def test_kappa_equals_sklearn_and_is_symmetric(data) -> None:
    a, b = data
    est = cohen_kappa(a, b, rng=np.random.default_rng(0), n_resamples=30)
    if len(set(a)) == 1 and set(a) == set(b):
        assert not est.available
        return
    assert est.value == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    swapped = cohen_kappa(b, a, rng=np.random.default_rng(0), n_resamples=30)
    assert swapped.value == pytest.approx(est.value, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        (["x"], ["x"], "at least 2 items"),
        (["x", "x", "x"], ["x", "x", "x"], "single category"),
    ],
)
def test_kappa_degenerate_is_unavailable(a: list[str], b: list[str], reason: str) -> None:
    est = cohen_kappa(a, b, rng=np.random.default_rng(0))
    assert not est.available
    assert reason in (est.reason or "")
    json.dumps(est.to_dict(), allow_nan=False)


def test_kappa_bootstrap_covers_the_population_kappa() -> None:
    # Rater b copies rater a with probability q, else says yes/no at random (both raters
    # 50/50): p_o = q + (1 - q)/2, p_e = 1/2, so the population kappa is q.
    q = 0.6
    rng = np.random.default_rng(1960)
    sims, covered = 500, 0
    for _ in range(sims):
        a = rng.random(120) < 0.5
        b = np.where(rng.random(120) < q, a, rng.random(120) < 0.5)
        ci = cohen_kappa(a, b, rng=rng, n_resamples=400).ci
        assert ci is not None
        covered += ci[0] <= q <= ci[1]
    assert 0.92 <= covered / sims <= 0.975
