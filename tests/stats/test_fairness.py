"""Fairness statistics: pinned to published worked examples (the Uniform Guidelines'
four-fifths example, Newcombe's Table II), to fairlearn and scipy, and checked by
simulations with known truth (interval coverage, the regression test's error rates)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    selection_rate,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from feedbackloop.stats.fairness import (
    classifier_fairness,
    cohort_regressions,
    difference_in_means,
    difference_in_proportions,
    impact_ratios,
    mean_interval,
    representation,
    satisfaction_gaps,
    stratified,
)


# Questions and Answers to Clarify and Provide a Common Interpretation of the Uniform
# Guidelines on Employee Selection Procedures (EEOC, OPM, DoJ, DoL; 44 FR 11996, 1979),
# Q&A 12, "How is adverse impact determined?": hiring rates of 60% (whites), 45% (American
# Indians), 48% (Hispanics) and 51% (Blacks) give impact ratios of 75%, 80% and 85%;
# "adverse impact is indicated for American Indians but not for Hispanics or Blacks".
# The rule says *less than* four-fifths, so Hispanics at exactly 80% are not flagged.
def test_four_fifths_rule_matches_the_uniform_guidelines_q_and_a_12() -> None:
    rows = {r.cohort: r for r in impact_ratios({
        "white": (60, 100), "american_indian": (45, 100), "hispanic": (48, 100),
        "black": (51, 100)})}
    assert {r.reference for r in rows.values()} == {"white"}
    assert rows["american_indian"].ratio.value == pytest.approx(0.75)
    assert rows["hispanic"].ratio.value == pytest.approx(0.80)
    assert rows["black"].ratio.value == pytest.approx(0.85)
    assert rows["american_indian"].below_threshold is True
    assert rows["hispanic"].below_threshold is False  # 0.48/0.60 is 0.7999999999999999
    assert rows["black"].below_threshold is False
    assert rows["white"].below_threshold is False and rows["white"].ratio.value == 1.0
    # each ratio carries an interval around it (Katz log method)
    lo, hi = rows["american_indian"].ratio.ci  # type: ignore[misc]
    assert lo < 0.75 < hi
    # the same numbers on other counts: the rule looks at rates, not at sizes
    assert impact_ratios({"a": (48, 80), "b": (12, 40)})[1].ratio.value == pytest.approx(0.5)


def test_impact_ratio_interval_matches_katz_by_hand() -> None:
    # Katz et al. (1978): log RR ± z·sqrt(1/x1 - 1/n1 + 1/x2 - 1/n2)
    rows = impact_ratios({"a": (30, 100), "b": (60, 100)})
    se = math.sqrt(1 / 30 - 1 / 100 + 1 / 60 - 1 / 100)
    lo, hi = rows[0].ratio.ci  # type: ignore[misc]
    assert lo == pytest.approx(0.5 * math.exp(-1.959964 * se), rel=1e-5)
    assert hi == pytest.approx(0.5 * math.exp(1.959964 * se), rel=1e-5)


def test_impact_ratios_degenerate_cases() -> None:
    rows = impact_ratios({"a": (0, 10), "b": (0, 0), "c": (0, 5)})
    assert all(r.ratio.value is None and r.below_threshold is None for r in rows)
    assert "no" in (rows[1].ratio.reason or "")
    # a zero rate against a positive one: ratio 0 with an interval from the 0.5 correction
    zero = impact_ratios({"a": (0, 50), "b": (25, 50)})[0]
    assert zero.ratio.value == 0.0 and zero.below_threshold is True
    assert zero.ratio.ci is not None and zero.ratio.ci[0] >= 0
    with pytest.raises(ValueError):
        impact_ratios({"a": (5, 3)})
    with pytest.raises(ValueError):
        impact_ratios({"a": (1, 3)}, min_ratio=0)


# Newcombe (1998), "Interval estimation for the difference between independent
# proportions: comparison of eleven methods", Stat Med 17:873-890, Table II, method 10
# (hybrid score interval from Wilson's intervals), 95%.
@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "lo", "hi"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (6, 7, 2, 7, 0.0582, 0.8062),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (0, 10, 0, 10, -0.2775, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
        (10, 10, 0, 10, 0.6075, 1.0000),
    ],
)
def test_difference_in_proportions_matches_newcombe_table_2(
        x1: int, n1: int, x2: int, n2: int, lo: float, hi: float) -> None:
    est, p = difference_in_proportions(x1, n1, x2, n2)
    assert est.value == pytest.approx(x1 / n1 - x2 / n2)
    assert est.ci is not None
    assert est.ci[0] == pytest.approx(lo, abs=5e-5)
    assert est.ci[1] == pytest.approx(hi, abs=5e-5)
    # the inverted p-value agrees with the interval: below 0.05 exactly when 0 is outside
    assert p is not None
    assert (p < 0.05) == (est.ci[0] > 0 or est.ci[1] < 0)


@given(x1=st.integers(0, 60), n1=st.integers(1, 60), x2=st.integers(0, 60),
       n2=st.integers(1, 60), null=st.floats(-0.5, 0.5))
@settings(max_examples=60, deadline=None)
def test_inverted_p_value_puts_an_interval_end_on_the_null(
        x1: int, n1: int, x2: int, n2: int, null: float) -> None:
    x1, x2 = min(x1, n1), min(x2, n2)
    est, p = difference_in_proportions(x1, n1, x2, n2, null=null)
    assert p is not None and 0 <= p <= 1
    assert est.value is not None
    if 1e-6 < p < 1 - 1e-6:
        again, _ = difference_in_proportions(x1, n1, x2, n2, confidence=1 - p)
        assert again.ci is not None
        assert min(abs(again.ci[0] - null), abs(again.ci[1] - null)) < 1e-6
    # one-sided halves of the two-sided p on the side of the estimate
    _, less = difference_in_proportions(x1, n1, x2, n2, null=null, alternative="less")
    _, greater = difference_in_proportions(x1, n1, x2, n2, null=null,
                                           alternative="greater")
    assert less is not None and greater is not None
    assert less + greater == pytest.approx(1.0)
    assert min(less, greater) == pytest.approx(p / 2, abs=1e-9)


def test_difference_in_means_matches_scipy_welch() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(3.2, 1.0, 40), rng.normal(3.0, 1.5, 25)
    est, p = difference_in_means(a, b)
    ref = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert p == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert est.ci == pytest.approx((ci.low, ci.high), rel=1e-10)
    _, p_less = difference_in_means(a, b, null=0.5, alternative="less")
    ref_less = scipy_stats.ttest_ind(a - 0.5, b, equal_var=False, alternative="less")
    assert p_less == pytest.approx(ref_less.pvalue, rel=1e-10)
    empty, none = difference_in_means([1.0], [2.0, 3.0])
    assert empty.value is None and none is None and "fewer than 2" in (empty.reason or "")
    flat, none = difference_in_means([1.0, 1.0], [2.0, 2.0])
    assert flat.value == -1.0 and flat.ci is None and none is None


def test_stratified_rates_and_means() -> None:
    groups = ["b", "a", "a", "b", "a", "c"]
    rates = dict(stratified([1, 0, 1, 1, 1, 0], groups, "rate"))
    assert list(rates) == ["a", "b", "c"]
    assert rates["a"].value == pytest.approx(2 / 3) and rates["a"].method == "wilson"
    means = dict(stratified([1.0, 2.0, 4.0, 3.0, 6.0, 5.0], groups, "mean"))
    assert means["a"].value == pytest.approx(4.0) and means["a"].method == "t"
    assert means["c"].value == 5.0 and means["c"].ci is None  # one observation
    ref = scipy_stats.t.interval(0.95, 2, loc=4.0, scale=scipy_stats.sem([2.0, 4.0, 6.0]))
    assert means["a"].ci == pytest.approx(ref)
    with pytest.raises(ValueError):
        stratified([0.5], ["a"], "rate")
    assert mean_interval([]).value is None


def _fairlearn_data(seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    groups = rng.choice(np.array(["a", "b", "c"]), size=n, p=[0.5, 0.3, 0.2])
    y = (rng.random(n) < np.where(groups == "a", 0.5, 0.35)).astype(int)
    p_hit = np.where(y == 1, np.where(groups == "c", 0.6, 0.8),
                     np.where(groups == "b", 0.3, 0.15))
    pred = (rng.random(n) < p_hit).astype(int)
    return y, pred, groups


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_classifier_criteria_match_fairlearn(seed: int) -> None:
    y, pred, groups = _fairlearn_data(seed)
    out = classifier_fairness(y, pred, groups, rng=np.random.default_rng(0),
                              n_resamples=200)
    kw = {"sensitive_features": groups}
    assert out.demographic_parity_difference.value == pytest.approx(
        demographic_parity_difference(y, pred, **kw), abs=1e-12)
    assert out.demographic_parity_ratio.value == pytest.approx(
        demographic_parity_ratio(y, pred, **kw), abs=1e-12)
    assert out.equalized_odds_difference.value == pytest.approx(
        equalized_odds_difference(y, pred, **kw), abs=1e-12)
    assert out.equalized_odds_ratio.value == pytest.approx(
        equalized_odds_ratio(y, pred, **kw), abs=1e-12)
    frame = MetricFrame(metrics=selection_rate, y_true=y, y_pred=pred,
                        sensitive_features=groups)
    for row in out.cohorts:
        assert row["selection_rate"]["value"] == pytest.approx(frame.by_group[row["cohort"]])
    for est in (out.demographic_parity_difference, out.equalized_odds_ratio):
        assert est.ci is not None and est.ci[0] <= est.value <= est.ci[1]  # type: ignore


def test_classifier_fairness_not_estimable_cases() -> None:
    rng = np.random.default_rng(0)
    one = classifier_fairness([1, 0], [1, 1], ["a", "a"], rng=rng)
    assert one.demographic_parity_ratio.value is None
    assert one.demographic_parity_ratio.reason == "fewer than two cohorts"
    # cohort b has no positive labels: its TPR is undefined, so equalised odds is too
    no_pos = classifier_fairness([1, 0, 0, 0], [1, 0, 1, 0], ["a", "a", "b", "b"], rng=rng)
    assert no_pos.equalized_odds_difference.value is None
    assert no_pos.demographic_parity_difference.value == pytest.approx(0.0)
    assert any("no positive" in note for note in no_pos.notes)
    with pytest.raises(ValueError):
        classifier_fairness([2], [1], ["a"], rng=rng)


def test_satisfaction_gaps_are_holm_adjusted() -> None:
    rng = np.random.default_rng(5)
    groups = np.repeat(np.array(["a", "b", "c", "d"]), 300)
    rate = np.repeat([0.7, 0.7, 0.7, 0.5], 300)
    x = (rng.random(groups.size) < rate).astype(float)
    rows = {r.cohort: r for r in satisfaction_gaps(x, groups, "rate")}
    assert rows["d"].flagged and rows["d"].difference.value < 0  # type: ignore[operator]
    p = np.array([rows[c].p_value for c in "abcd"])
    order = np.argsort(p)
    # Holm by hand: running maximum of (m - rank + 1) p_(rank)
    holm = np.maximum.accumulate(np.minimum(1, (4 - np.arange(4)) * p[order]))
    adjusted = np.array([rows[c].adjusted_p_value for c in "abcd"])[order]
    assert adjusted == pytest.approx(holm)
    means = satisfaction_gaps(rng.normal(size=60), np.repeat(["x", "y"], 30), "mean")
    assert means[0].difference.method == "welch-t"


def test_representation_against_scipy_chi_square() -> None:
    users = {"de": 400, "en": 500, "fr": 100}
    givers = {"de": 20, "en": 60, "fr": 20}
    out = representation(users, givers)
    rows = {r["cohort"]: r for r in out["cohorts"]}
    assert rows["de"]["share_of_users"] == pytest.approx(0.4)
    assert rows["de"]["share_of_givers"]["value"] == pytest.approx(0.2)
    assert rows["de"]["ratio"]["value"] == pytest.approx(0.5)
    assert rows["fr"]["ratio"]["value"] == pytest.approx(2.0)
    assert rows["en"]["giving_rate"]["value"] == pytest.approx(0.12)
    lo, hi = rows["de"]["ratio"]["ci95"]
    assert lo < 0.5 < hi
    table = [[20, 380], [60, 440], [20, 80]]
    stat, p, df, _ = scipy_stats.chi2_contingency(table, correction=False)
    assert out["test"]["statistic"] == pytest.approx(stat)
    assert out["test"]["p_value"] == pytest.approx(p) and out["test"]["df"] == df
    assert representation({"a": 3}, {"a": 1})["test"]["p_value"] is None
    with pytest.raises(ValueError):
        representation({"a": 1}, {"a": 2})


# --- simulations with known truth ------------------------------------------------------

def test_coverage_of_the_intervals_by_simulation() -> None:
    """95% intervals cover the true value about 95% of the time (2000 draws each: the
    binomial standard error of the coverage is 0.005, so 0.93-0.97 is a loose band)."""
    rng = np.random.default_rng(20261123)
    reps = 2000
    p1, p2, n1, n2 = 0.30, 0.22, 120, 90
    x1 = rng.binomial(n1, p1, reps)
    x2 = rng.binomial(n2, p2, reps)
    newcombe = ratio = 0
    for a, b in zip(x1, x2, strict=True):
        est, _ = difference_in_proportions(int(a), n1, int(b), n2)
        assert est.ci is not None
        newcombe += est.ci[0] <= p1 - p2 <= est.ci[1]
        r = impact_ratios({"low": (int(b), n2), "high": (int(a), n1)})
        row = next(x for x in r if x.cohort != x.reference)
        truth = p2 / p1 if row.cohort == "low" else p1 / p2
        if row.ratio.ci is not None:
            ratio += row.ratio.ci[0] <= truth <= row.ratio.ci[1]
    assert 0.93 <= newcombe / reps <= 0.97
    assert 0.93 <= ratio / reps <= 0.97
    welch = 0
    for _ in range(reps):
        a, b = rng.normal(3.5, 1.0, 30), rng.exponential(1.2, 45) + 2.0
        est, _ = difference_in_means(a, b)
        welch += est.ci[0] <= 3.5 - 3.2 <= est.ci[1]  # type: ignore[index]
    assert 0.93 <= welch / reps <= 0.97


def test_bootstrap_interval_of_demographic_parity_covers_the_truth() -> None:
    rng = np.random.default_rng(11)
    reps, n, hits = 120, 400, 0
    rates = {"a": 0.5, "b": 0.35}
    for _ in range(reps):
        groups = rng.choice(np.array(["a", "b"]), size=n)
        pred = (rng.random(n) < np.where(groups == "a", 0.5, 0.35)).astype(int)
        out = classifier_fairness(np.ones(n), pred, groups, rng=rng, n_resamples=250)
        lo, hi = out.demographic_parity_difference.ci  # type: ignore[misc]
        hits += lo <= rates["a"] - rates["b"] <= hi
    assert 0.88 <= hits / reps <= 0.995


def test_regression_test_holds_its_error_rates_by_simulation() -> None:
    """At the tolerance boundary (a true drop of exactly ``tolerance`` in every cohort) the
    family-wise false alarm rate stays at or below alpha; a drop twice the tolerance in one
    cohort is found most of the time, and only there."""
    rng = np.random.default_rng(7)
    tol, n, reps = 0.05, 400, 400
    groups = np.repeat(np.array(["a", "b", "c"]), n)
    false_alarms = found = elsewhere = 0
    for _ in range(reps):
        base = (rng.random(groups.size) < 0.7).astype(float)
        edge = (rng.random(groups.size) < 0.7 - tol).astype(float)
        rows = cohort_regressions(base, groups, edge, groups, "rate", tolerance=tol)
        false_alarms += any(r.flagged for r in rows)
        worse = (rng.random(groups.size) < np.where(groups == "b", 0.7 - 3 * tol,
                                                    0.7)).astype(float)
        rows = {r.cohort: r for r in cohort_regressions(base, groups, worse, groups, "rate",
                                                        tolerance=tol)}
        found += rows["b"].flagged
        elsewhere += rows["a"].flagged or rows["c"].flagged
    assert false_alarms / reps <= 0.05 + 0.025
    assert found / reps >= 0.7
    assert elsewhere / reps <= 0.02


def test_regression_direction_and_missing_cohorts() -> None:
    base = np.array([5.0, 6.0, 5.5, 6.5, 5.0, 6.0])
    cand = base + 2.0  # higher latency: worse when lower is better
    g = np.array(["a"] * 6)
    hib = cohort_regressions(base, g, cand, g, "mean", tolerance=0.5)
    assert not hib[0].flagged
    lib = cohort_regressions(base, g, cand, g, "mean", tolerance=0.5, higher_is_better=False)
    assert lib[0].flagged and lib[0].difference.value == pytest.approx(2.0)
    only_base = cohort_regressions([1.0, 0.0], ["x", "x"], [1.0], ["y"], "rate",
                                   tolerance=0.0)
    assert [r.cohort for r in only_base] == ["x", "y"]
    assert all(r.p_value is None and not r.flagged for r in only_base)
    with pytest.raises(ValueError):
        cohort_regressions([1.0], ["a"], [1.0], ["a"], "rate", tolerance=-0.1)
    with pytest.raises(ValueError):
        cohort_regressions([1.0], ["a"], [1.0], ["a"], "rate", tolerance=float("nan"))


def test_a_worst_case_estimate_outside_its_bootstrap_interval_says_so() -> None:
    # identical cohorts: every criterion is at its best value (difference 0, ratio 1), and
    # resampling can only move it away, so the percentile interval excludes the estimate
    y = np.tile([1, 1, 0, 0], 50)
    p = np.tile([1, 0, 1, 0], 50)
    g = np.repeat(["a", "b"], 100)
    out = classifier_fairness(y, p, g, rng=np.random.default_rng(1), n_resamples=300)
    eo = out.equalized_odds_difference
    assert eo.value == 0.0 and eo.ci is not None and eo.ci[0] > 0
    assert "outside its bootstrap interval" in (eo.reason or "")
