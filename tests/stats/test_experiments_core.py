"""Experiment statistics pinned to published worked examples: R's power.prop.test and
power.t.test, R's t.test (Welch) on the sleep data, GrowthBook's gbstats test suite
(Welch, delta-method and sequential figures), Benjamini & Hochberg (1995)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from feedbackloop.stats.experiments import (
    ArmSummary,
    SequentialConfig,
    adjust_p_values,
    compare,
    power_means,
    power_proportions,
    prob_best,
    sample_size_means,
    sample_size_proportions,
    srm_test,
)

# --- sample size ---------------------------------------------------------------------


def test_sample_size_proportions_matches_r_power_prop_test() -> None:
    # R: power.prop.test(p1 = 0.10, p2 = 0.12, power = 0.8) -> n = 3840.847 per group.
    plan = sample_size_proportions(0.10, 0.02)
    assert plan.detail["n"] == pytest.approx(3840.847, abs=1e-3)
    assert plan.per_arm == 3841 and plan.total == 7682
    assert "power.prop.test" in plan.method
    # The same effect stated relatively: 0.10 * (1 + 0.2) = 0.12.
    assert sample_size_proportions(0.10, 0.2, relative=True).per_arm == 3841


def test_power_proportions_matches_r_documentation_example() -> None:
    # R ?power.prop.test: power.prop.test(n = 50, p1 = .50, p2 = .75) -> power = 0.7401659
    assert power_proportions(0.5, 0.25, 50) == pytest.approx(0.7401659, abs=1e-7)
    # power.prop.test(p1 = .50, p2 = .75, power = .90) -> n = 76.7 (closed form 76.70693)
    n = sample_size_proportions(0.5, 0.25, power=0.9).detail["n"]
    assert n == pytest.approx(76.70693, abs=1e-4)
    assert power_proportions(0.5, 0.25, n, ) == pytest.approx(0.9, abs=1e-9)


def test_sample_size_means_matches_r_power_t_test() -> None:
    # R ?power.t.test: power.t.test(n = 20, delta = 1) -> power = 0.8689528
    assert power_means(1.0, 1.0, 20) == pytest.approx(0.8689528, abs=1e-7)
    # power.t.test(power = .90, delta = 1) -> n = 22.02110
    plan = sample_size_means(1.0, 1.0, power=0.9)
    assert plan.detail["n"] == pytest.approx(22.02110, abs=1e-4)
    assert plan.per_arm == 23 and "power.t.test" in plan.method
    # power.t.test(power = .90, delta = 1, alternative = "one.sided") -> n = 17.84713
    assert sample_size_means(1.0, 1.0, power=0.9, sides=1).detail["n"] == pytest.approx(
        17.84713, abs=1e-4)
    # Relative: a 10 % lift on a baseline mean of 10 is delta = 1.
    assert sample_size_means(1.0, 0.1, baseline=10.0, relative=True).per_arm == \
        sample_size_means(1.0, 1.0).per_arm


def test_sample_size_with_more_arms_splits_alpha() -> None:
    two = sample_size_proportions(0.1, 0.02)
    three = sample_size_proportions(0.1, 0.02, arms=3)
    assert three.detail["alpha_per_comparison"] == pytest.approx(0.025)
    assert three.per_arm > two.per_arm and three.total == 3 * three.per_arm


@pytest.mark.parametrize("kwargs", [
    {"baseline": 0.0, "mde": 0.02}, {"baseline": 0.1, "mde": 0.0},
    {"baseline": 0.95, "mde": 0.1}, {"baseline": 0.1, "mde": 0.02, "alpha": 1.5},
    {"baseline": 0.1, "mde": 0.02, "sides": 3}, {"baseline": 0.1, "mde": 0.02, "arms": 1},
])
def test_sample_size_rejects_bad_input(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        sample_size_proportions(**kwargs)


def test_sample_size_means_relative_needs_baseline() -> None:
    with pytest.raises(ValueError, match="baseline"):
        sample_size_means(1.0, 0.1, relative=True)


# --- Welch, delta method ---------------------------------------------------------------

# R: sleep data (Cushny & Peebles 1905), t.test(extra ~ group, data = sleep):
# t = -1.8608, df = 17.776, p-value = 0.07939, 95% CI -3.3654832 0.2054832.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_welch_matches_r_t_test_on_sleep_data() -> None:
    c = compare(ArmSummary.from_values("2", SLEEP_2), ArmSummary.from_values("1", SLEEP_1))
    a = c.absolute
    assert a["estimate"] == pytest.approx(-1.58)
    assert a["df"] == pytest.approx(17.776, abs=1e-3)
    assert a["p_value"] == pytest.approx(0.07939, abs=1e-5)
    assert a["ci95"] == pytest.approx([-3.3654832, 0.2054832], abs=1e-7)


def test_welch_is_scipy_identical_on_values() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(10, 2, 57)
    y = rng.normal(10.8, 3.5, 80)
    c = compare(ArmSummary.from_values("c", x), ArmSummary.from_values("t", y), alpha=0.1)
    ref = scipy_stats.ttest_ind(y, x, equal_var=False)
    assert c.absolute["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    lo, hi = ref.confidence_interval(0.9)
    assert c.absolute["ci"] == pytest.approx([lo, hi], rel=1e-12)
    assert c.absolute["df"] == pytest.approx(ref.df, rel=1e-12)
    assert c.absolute["level"] == pytest.approx(0.9)


def test_one_sided_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(0, 1, 40), rng.normal(0.4, 1, 40)
    c = compare(ArmSummary.from_values("c", x), ArmSummary.from_values("t", y), sides=1)
    ref = scipy_stats.ttest_ind(y, x, equal_var=False, alternative="greater")
    assert c.absolute["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert c.absolute["ci"][0] == pytest.approx(ref.confidence_interval(0.95).low)
    assert c.absolute["ci"][1] is None
    lower = compare(ArmSummary.from_values("c", x), ArmSummary.from_values("t", y),
                    sides=1, higher_is_better=False)
    assert lower.absolute["ci"][0] is None
    assert lower.absolute["p_value"] == pytest.approx(1 - ref.pvalue, rel=1e-9)


# gbstats (GrowthBook), packages/stats/tests/frequentist/test_tests.py: SampleMeanStatistic
# (sum=1396.87, sum_squares=52377.9767, n=3407) vs (sum=2422.7, sum_squares=134698.29,
# n=3461).
GB_A = (1396.87, 52377.9767)
GB_B = (2422.7, 134698.29)


def test_absolute_and_relative_match_gbstats_two_sided_ttest() -> None:
    a = ArmSummary.from_sums("a", 3407, *GB_A)
    b = ArmSummary.from_sums("b", 3461, *GB_B)
    c = compare(a, b)
    # test_two_sided_ttest_absolute: ci [0.04538, 0.53462], sd 0.12478, p 0.02016
    assert c.absolute["estimate"] == pytest.approx(0.29)
    assert c.absolute["ci95"] == pytest.approx([0.04538, 0.53462], abs=1e-5)
    assert c.absolute["se"] == pytest.approx(0.12478, abs=1e-5)
    assert c.absolute["p_value"] == pytest.approx(0.02016, abs=1e-5)
    # test_two_sided_ttest (relative, delta method): ci [-0.03526, 1.44989],
    # sd 0.37879, p 0.06191
    assert c.relative["estimate"] == pytest.approx(0.70732, abs=1e-5)
    assert c.relative["ci95"] == pytest.approx([-0.03526, 1.44989], abs=1e-5)
    assert c.relative["se"] == pytest.approx(0.37879, abs=1e-5)
    assert c.relative["p_value"] == pytest.approx(0.06191, abs=1e-5)


def test_proportion_relative_matches_gbstats_binomial_ttest() -> None:
    # test_two_sided_ttest_binom: ProportionStatistic(sum=14, n=28) vs (sum=16, n=30):
    # ci [-0.47767, 0.61101], sd 0.2717, p 0.80707
    c = compare(ArmSummary("a", 28, 14 / 28, 0), ArmSummary("b", 30, 16 / 30, 0),
                kind="proportion")
    assert c.relative["ci95"] == pytest.approx([-0.47767, 0.61101], abs=1e-5)
    assert c.relative["se"] == pytest.approx(0.2717, abs=1e-4)
    assert c.relative["p_value"] == pytest.approx(0.80707, abs=1e-5)


def test_sequential_matches_gbstats_sequential_two_sided_ttest() -> None:
    # test_sequential_test_runs: n = 3000 vs 3461, tuning parameter 1000, relative:
    # ci [-0.55844, 1.56516], p 1
    a = ArmSummary.from_sums("a", 3000, *GB_A)
    b = ArmSummary.from_sums("b", 3461, *GB_B)
    c = compare(a, b, sequential=SequentialConfig(tuning_n=1000))
    rel = c.sequential["relative"]
    assert rel["estimate"] == pytest.approx(0.50336, abs=1e-5)
    assert rel["ci95"] == pytest.approx([-0.55844, 1.56516], abs=1e-5)
    assert rel["p_value"] == 1.0
    # test_sequential_test_runs_prop: ProportionStatistic(1396, 3000) vs (2422, 3461),
    # default tuning (5000): ci [0.40098, 0.60675], p 0
    p = compare(ArmSummary("a", 3000, 1396 / 3000, 0), ArmSummary("b", 3461, 2422 / 3461, 0),
                kind="proportion")
    assert p.sequential["tuning_n"] == 5000
    assert p.sequential["relative"]["ci95"] == pytest.approx([0.40098, 0.60675], abs=1e-5)
    assert p.sequential["relative"]["p_value"] == pytest.approx(0.0, abs=1e-5)
    # The sequence is wider than the fixed-horizon interval, and p < alpha exactly when
    # it excludes 0.
    assert p.sequential["ci95"][0] < p.absolute["ci95"][0]
    assert (p.sequential["p_value"] < 0.05) == (p.sequential["ci95"][0] > 0)


def test_sequential_tuning_is_tightest_near_the_sample() -> None:
    # gbstats test_sequential_test_tuning_as_expected: tuning near n (6461) beats 10 and
    # 10000.
    a = ArmSummary.from_sums("a", 3000, *GB_A)
    b = ArmSummary.from_sums("b", 3461, *GB_B)
    width = {t: np.diff(compare(a, b, sequential=SequentialConfig(tuning_n=t))
                        .sequential["ci95"])[0] for t in (10, 6461, 10000)}
    assert width[6461] < width[10000] < width[10]


def test_msprt_and_none() -> None:
    a = ArmSummary.from_sums("a", 3000, *GB_A)
    b = ArmSummary.from_sums("b", 3461, *GB_B)
    cs = compare(a, b).sequential
    ms = compare(a, b, sequential=SequentialConfig(method="msprt")).sequential
    # With the default tau (rho² s²) the mSPRT interval is the asymptotic sequence.
    assert ms["ci95"] == pytest.approx(cs["ci95"], rel=1e-9)
    assert ms["method"] == "msprt" and ms["tau"] > 0
    tight = compare(a, b, sequential=SequentialConfig(method="msprt", msprt_tau=0.2))
    assert tight.sequential["ci95"][0] < tight.absolute["ci95"][0]
    assert compare(a, b, sequential=SequentialConfig(method="none")).sequential is None
    assert compare(a, b, sequential=None).to_dict()["sequential"] is None


def test_cuped_reduces_variance_by_rho_squared() -> None:
    # Simulation with known correlation rho = 0.8 between covariate and metric: CUPED's
    # variance reduction is rho² = 0.64 (Deng et al. 2013, §3.2).
    rng = np.random.default_rng(11)
    n, rho = 20000, 0.8
    arms = []
    for name, effect in (("c", 0.0), ("t", 0.05)):
        x = rng.standard_normal(n)
        y = 1.0 + effect + rho * x + math.sqrt(1 - rho ** 2) * rng.standard_normal(n)
        arms.append(ArmSummary.from_values(name, y, covariate=x))
    plain = compare(*arms)
    adj = compare(*arms, cuped=True)
    assert adj.cuped["theta"] == pytest.approx(0.8, abs=0.02)
    assert adj.cuped["variance_reduction"] == pytest.approx(0.64, abs=0.02)
    assert adj.absolute["se"] < 0.65 * plain.absolute["se"]
    assert adj.absolute["ci95"][0] < 0.05 < adj.absolute["ci95"][1]
    assert "CUPED" in adj.method


def test_cuped_needs_covariate_and_handles_constant_one() -> None:
    a = ArmSummary.from_values("a", [1.0, 2.0, 3.0])
    b = ArmSummary.from_values("b", [2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="CUPED"):
        compare(a, b, cuped=True)
    a = ArmSummary.from_values("a", [1.0, 2.0, 3.0], covariate=[5.0, 5.0, 5.0])
    b = ArmSummary.from_values("b", [2.0, 3.0, 4.0], covariate=[5.0, 5.0, 5.0])
    c = compare(a, b, cuped=True)
    assert c.cuped == {"estimable": False, "reason": pytest.approx(c.cuped["reason"])}
    assert c.absolute["estimable"]


# --- degenerate data ------------------------------------------------------------------


def _no_nan(value: object) -> None:
    text = json.dumps(value, allow_nan=False)  # raises on NaN/inf
    assert "NaN" not in text


def test_degenerate_data_is_not_estimable_never_nan() -> None:
    one = compare(ArmSummary.from_values("a", [1.0]), ArmSummary.from_values("b", [1, 2]))
    assert one.absolute["estimable"] is False and "fewer than 2" in one.absolute["reason"]
    assert one.sequential["estimable"] is False
    _no_nan(one.to_dict())
    flat = compare(ArmSummary.from_values("a", [1, 1, 1]), ArmSummary.from_values("b",
                                                                                  [1, 1]))
    assert "zero variance" in flat.absolute["reason"]
    _no_nan(flat.to_dict())
    allwin = compare(ArmSummary("a", 50, 1.0, 0), ArmSummary("b", 60, 1.0, 0),
                     kind="proportion")
    assert allwin.absolute["estimable"] is False
    _no_nan(allwin.to_dict())
    zero = compare(ArmSummary.from_values("a", [-1, 1, 0]), ArmSummary.from_values(
        "b", [1, 2, 3]))
    assert zero.absolute["estimable"] and zero.relative["estimable"] is False
    assert "control mean is 0" in zero.relative["reason"]
    assert zero.sequential["relative"]["estimable"] is False
    _no_nan(zero.to_dict())


def test_bad_input_raises() -> None:
    a = ArmSummary.from_values("a", [1.0, 2.0])
    with pytest.raises(ValueError, match="no units"):
        compare(a, ArmSummary.from_values("b", []))
    with pytest.raises(ValueError, match="itself"):
        compare(a, a)
    with pytest.raises(ValueError, match="proportion"):
        compare(a, ArmSummary.from_values("b", [1.0, 3.0]), kind="proportion")
    with pytest.raises(ValueError):
        ArmSummary("x", -1, 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        ArmSummary.from_values("x", [1.0, float("nan")])
    with pytest.raises(ValueError, match="covariate"):
        ArmSummary.from_values("x", [1.0, 2.0], covariate=[1.0])
    with pytest.raises(ValueError):
        SequentialConfig(method="bogus")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=40),
       st.floats(-1e6, 1e6))
def test_from_sums_agrees_with_from_values_and_shift(values: list[float],
                                                     shift: float) -> None:
    y = np.asarray(values)
    direct = ArmSummary.from_values("a", y, covariate=y * 2 + 1)
    sums = ArmSummary.from_sums("a", y.size, y.sum(), (y * y).sum(),
                                x_total=(2 * y + 1).sum(), x_total_sq=((2 * y + 1) ** 2).sum(),
                                xy_total=(y * (2 * y + 1)).sum())
    tol = 1e-6 * (1 + float(np.abs(y).max()))
    assert sums.mean == pytest.approx(direct.mean, abs=tol)
    assert sums.sd == pytest.approx(direct.sd, abs=tol * 10)
    assert sums.cov_xy == pytest.approx(direct.cov_xy, abs=tol * 1e3)
    shifted = ArmSummary.from_sums("a", y.size, (y - shift).sum(), ((y - shift) ** 2).sum(),
                                   shift=shift)
    assert shifted.mean == pytest.approx(direct.mean, abs=1e-6 * (1 + abs(shift)))


def test_from_sums_is_careful_far_from_zero() -> None:
    # Values 1e9 + {0, 1, 2}: naive sums lose the variance; shifted sums keep it.
    y = np.array([0.0, 1.0, 2.0])
    s = ArmSummary.from_sums("a", 3, y.sum(), (y * y).sum(), shift=1e9)
    assert s.mean == 1e9 + 1 and s.sd == pytest.approx(1.0)


# --- SRM, multiplicity, Bayes -----------------------------------------------------------


def test_srm_chi_square() -> None:
    srm = srm_test([5000, 5000])
    assert srm.p_value == pytest.approx(1.0) and not srm.flagged
    # 50/50 design with 5,100 vs 4,900: chi2 = 4.0, p = 0.0455 (not flagged at 0.001).
    srm = srm_test([5100, 4900])
    assert srm.chi2 == pytest.approx(4.0) and srm.p_value == pytest.approx(0.0455, abs=1e-4)
    assert not srm.flagged
    flagged = srm_test([5300, 4700])
    assert flagged.flagged and flagged.p_value < 0.001
    weighted = srm_test([2000, 8000], weights=[0.2, 0.8])
    assert weighted.expected == pytest.approx([2000, 8000]) and not weighted.flagged
    ref = scipy_stats.chisquare([30, 50, 20], [100 / 3] * 3)
    assert srm_test([30, 50, 20]).p_value == pytest.approx(ref.pvalue)
    assert set(srm.to_dict()) >= {"p_value", "chi2", "flagged", "observed", "expected"}
    for bad in ([10], [0, 0], [-1, 3]):
        with pytest.raises(ValueError):
            srm_test(bad)
    with pytest.raises(ValueError, match="weights"):
        srm_test([1, 2], weights=[1, 2, 3])


# Benjamini & Hochberg (1995), JRSS B 57:289, §4: 15 p-values from a trial; at q = 0.05
# BH rejects 4 hypotheses, Holm's procedure 3.
BH_P = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240,
        0.4262, 0.5719, 0.6528, 0.7590, 1.0000]


def test_holm_and_bh_match_benjamini_hochberg_1995() -> None:
    holm = adjust_p_values(BH_P, "holm")
    bh = adjust_p_values(BH_P, "bh")
    assert int((holm <= 0.05).sum()) == 3
    assert int((bh <= 0.05).sum()) == 4
    # Values as R p.adjust(p, "holm") / p.adjust(p, "BH") and statsmodels multipletests.
    assert holm[:4] == pytest.approx([0.0015, 0.0056, 0.0247, 0.114])
    assert bh[:5] == pytest.approx([0.0015, 0.003, 0.0095, 0.035625, 0.0603])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_adjusted_p_values_are_monotone_and_bounded(p: list[float]) -> None:
    for method in ("holm", "bh"):
        adj = adjust_p_values(p, method)  # type: ignore[arg-type]
        assert np.all(adj >= np.asarray(p) - 1e-15) and np.all(adj <= 1)
        order = np.argsort(p, kind="mergesort")
        assert np.all(np.diff(adj[order]) >= -1e-15)
    with pytest.raises(ValueError):
        adjust_p_values([0.1, 1.2], "holm")
    with pytest.raises(ValueError):
        adjust_p_values([0.1], "bonferroni")  # type: ignore[arg-type]


def test_prob_best_proportions_and_means() -> None:
    rng = np.random.default_rng(0)
    arms = [ArmSummary("a", 1000, 0.10, 0), ArmSummary("b", 1000, 0.13, 0)]
    out = prob_best(arms, kind="proportion", rng=rng)
    assert sum(r["p_best"] for r in out) == pytest.approx(1.0)
    # Exact: P(B > A) for Beta(101, 901) vs Beta(131, 871), by numerical integration.
    xs = np.linspace(0, 0.3, 20001)
    pa = scipy_stats.beta(101, 901)
    exact = float(np.sum(scipy_stats.beta(131, 871).pdf(xs) * pa.cdf(xs)) * (xs[1] - xs[0]))
    assert out[1]["p_best"] == pytest.approx(exact, abs=0.01)
    assert out[1]["expected_loss"] < out[0]["expected_loss"]
    assert out[0]["expected_loss"] == pytest.approx(0.03, abs=0.005)
    lower = prob_best(arms, kind="proportion", rng=np.random.default_rng(0),
                      higher_is_better=False)
    assert lower[0]["p_best"] == pytest.approx(out[1]["p_best"], abs=0.01)
    means = prob_best([ArmSummary("a", 100, 5.0, 1.0), ArmSummary("b", 100, 5.0, 1.0),
                       ArmSummary("c", 100, 4.0, 1.0)], kind="mean", rng=rng)
    assert means[0]["p_best"] == pytest.approx(0.5, abs=0.02) and means[2]["p_best"] < 1e-3
    flat = prob_best([ArmSummary("a", 1, 1.0, 0), ArmSummary("b", 1, 1.0, 0)], kind="mean",
                     rng=rng)
    assert [r["p_best"] for r in flat] == [0.5, 0.5]
    with pytest.raises(ValueError, match="no units"):
        prob_best([ArmSummary("a", 0, 0, 0), arms[0]], kind="mean", rng=rng)


def test_cuped_sequential_matches_gbstats_regression_adjusted() -> None:
    # gbstats test_sequential_test_runs_ra: pre (sum 16.87, sum_squares 527.9767, n 3000)
    # and (22.7, 1348.29, 3461), post as GB_A / GB_B, post-pre sum of products 12525 and
    # 3333, theta = 0.5, default tuning: relative 0.50236, sd 0.3093,
    # ci [-0.43745, 1.44217], p 1.
    a = ArmSummary.from_sums("a", 3000, *GB_A, x_total=16.87, x_total_sq=527.9767,
                             xy_total=12525)
    b = ArmSummary.from_sums("b", 3461, *GB_B, x_total=22.7, x_total_sq=1348.29,
                             xy_total=3333)
    c = compare(a, b, cuped=True, cuped_theta=0.5)
    assert c.cuped["theta"] == 0.5
    assert c.relative["estimate"] == pytest.approx(0.50236, abs=1e-5)
    assert c.relative["se"] == pytest.approx(0.3093, abs=1e-4)
    rel = c.sequential["relative"]
    assert rel["ci95"] == pytest.approx([-0.43745, 1.44217], abs=1e-5)
    assert rel["p_value"] == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-100, 100), min_size=2, max_size=30),
       st.lists(st.floats(-100, 100), min_size=2, max_size=30))
def test_swapping_arms_negates_the_difference(x: list[float], y: list[float]) -> None:
    a, b = ArmSummary.from_values("a", x), ArmSummary.from_values("b", y)
    ab, ba = compare(a, b).to_dict(), compare(b, a).to_dict()
    json.dumps(ab, allow_nan=False)
    assert ab["absolute"]["estimable"] == ba["absolute"]["estimable"]
    if ab["absolute"]["estimable"]:
        assert ab["absolute"]["estimate"] == pytest.approx(-ba["absolute"]["estimate"])
        assert ab["absolute"]["p_value"] == pytest.approx(ba["absolute"]["p_value"])
        assert ab["sequential"]["p_value"] == pytest.approx(ba["sequential"]["p_value"])
