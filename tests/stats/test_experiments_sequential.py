"""Group-sequential boundaries (pinned to R ldbounds and SeqBounds.jl, and checked by
simulating the Brownian motion they are computed for), mSPRT, stopping rules and
guardrails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feedbackloop.stats.experiments import (
    ArmSummary,
    SequentialConfig,
    compare,
    group_sequential_bounds,
    group_sequential_looks,
    guardrail_status,
    msprt_halfwidth,
    msprt_p_value,
    spent_alpha,
    stopping_status,
)

FIVE = [0.2, 0.4, 0.6, 0.8, 1.0]


def test_obrien_fleming_spending_matches_ldbounds() -> None:
    # Reboussin, DeMets, Kim & Lan (2000), R ldbounds: ldBounds(5) (two-sided 0.05, iuse=1,
    # O'Brien-Fleming-type spending): 4.8769 3.3569 2.6803 2.2898 2.0310. (The second
    # bound is 3.35701 to 5 decimals by finer integration; ldbounds prints 3.3569.)
    bounds = group_sequential_bounds(FIVE)
    assert bounds == pytest.approx([4.8769, 3.3569, 2.6803, 2.2898, 2.0310], abs=2e-4)


def test_one_sided_obrien_fleming_matches_seqbounds_jl() -> None:
    # SeqBounds.jl README: bounds([0.25, 0.5, 0.75, 1.0], 0.05) (one-sided, OBF spending):
    # Z = 3.74955, 2.53993, 2.01604, 1.72014 (its grid step 0.05 limits it to ~1e-4).
    bounds = group_sequential_bounds([0.25, 0.5, 0.75, 1.0], alpha=0.05, sides=1)
    assert bounds == pytest.approx([3.74955, 2.53993, 2.01604, 1.72014], abs=1e-4)
    assert spent_alpha(0.25, 0.05) == pytest.approx(8.85754e-5, rel=1e-5)


def test_pocock_spending_and_single_look() -> None:
    # Pocock-type spending (Lan & DeMets 1983), ldBounds(5, iuse=2): nearly flat bounds
    # 2.4380 2.4268 2.4102 2.3966 2.3860.
    bounds = group_sequential_bounds(FIVE, spending="pocock")
    assert bounds == pytest.approx([2.4380, 2.4268, 2.4102, 2.3966, 2.3860], abs=2e-4)
    assert group_sequential_bounds([1.0]) == pytest.approx([1.959964], abs=1e-6)
    assert group_sequential_bounds([1.0], sides=1) == pytest.approx([1.644854], abs=1e-6)


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_boundaries_spend_what_they_promise_by_simulation(spending: str) -> None:
    # Under the null Z_k = W(t_k)/sqrt(t_k) for a Brownian motion W; the chance of having
    # crossed by look k is the spending function at t_k.
    fractions = [0.3, 0.5, 0.9, 1.0]
    bounds = np.asarray(group_sequential_bounds(fractions, spending=spending))  # type: ignore[arg-type]
    rng = np.random.default_rng(5)
    sims = 400_000
    steps = np.diff([0.0, *fractions])
    w = np.cumsum(rng.standard_normal((sims, 4)) * np.sqrt(steps), axis=1)
    z = w / np.sqrt(fractions)
    crossed = np.logical_or.accumulate(np.abs(z) >= bounds, axis=1).mean(axis=0)
    for k, f in enumerate(fractions):
        target = 2 * spent_alpha(f, 0.025, spending)  # type: ignore[arg-type]
        assert crossed[k] == pytest.approx(target, abs=4 * math.sqrt(target / sims) + 1e-5)


def test_group_sequential_rejects_bad_looks() -> None:
    for bad in ([], [0.5, 0.4], [0.0, 1.0], [0.5, 1.5]):
        with pytest.raises(ValueError):
            group_sequential_bounds(bad)
    with pytest.raises(ValueError, match="spending"):
        group_sequential_bounds([1.0], spending="haybittle")  # type: ignore[arg-type]


def test_group_sequential_looks() -> None:
    looks = group_sequential_looks([0.2, 0.4], [1.0, 3.5])
    assert [round(x["boundary"], 4) for x in looks] == [4.8769, 3.357]
    assert [x["crossed"] for x in looks] == [False, True]
    assert group_sequential_looks([], []) == []
    with pytest.raises(ValueError):
        group_sequential_looks([0.2], [1.0, 2.0])


def test_msprt_formula() -> None:
    # Johari et al. (2017): Lambda = sqrt(V/(V+tau²)) exp(tau² d² / (2V(V+tau²))); at the
    # interval's edge Lambda = 1/alpha, so p = alpha there.
    v, tau2, alpha = 0.01, 0.04, 0.05
    h = float(msprt_halfwidth(v, tau2, alpha))
    assert float(msprt_p_value(h, v, tau2)) == pytest.approx(alpha)
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * 0.3 ** 2 / (2 * v * (v + tau2)))
    assert float(msprt_p_value(0.3, v, tau2)) == pytest.approx(min(1, 1 / lam))


def _comp(diff: float, n: int = 2000, sd: float = 1.0, method: str = "asymptotic-cs",
          tuning: int | None = None):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, n)
    base = (base - base.mean()) / base.std(ddof=1) * sd
    return compare(ArmSummary.from_values("control", 10 + base),
                   ArmSummary.from_values("treatment", 10 + diff + base),
                   sequential=SequentialConfig(method=method, tuning_n=tuning)  # type: ignore[arg-type]
                   if method != "none" else None)


def test_guardrail_status() -> None:
    # Sequential half-width here is about 0.1 (n = 4,000, sd 1).
    assert guardrail_status(_comp(0.0), 0.5)["status"] == "ok"
    assert guardrail_status(_comp(-0.1), 0.1)["status"] == "at_risk"
    breached = guardrail_status(_comp(-0.5), 0.1)
    assert breached["status"] == "breached" and "whole" in breached["reason"]
    # Lower is better: a rise is harm.
    assert guardrail_status(_comp(0.5), 0.1, higher_is_better=False)["status"] == "breached"
    assert guardrail_status(_comp(-0.5), 0.1, higher_is_better=False)["status"] == "ok"
    # Relative: -5 % on a mean of 10 is -0.5.
    assert guardrail_status(_comp(-0.5), 0.01, relative=True)["status"] == "breached"
    # Accepts the JSON form, and without a sequential part uses the fixed interval.
    assert guardrail_status(_comp(0.0).to_dict(), 0.5)["status"] == "ok"
    fixed = guardrail_status(_comp(0.0, method="none"), 0.5)
    assert fixed["interval_method"] == "fixed-horizon"
    flat = compare(ArmSummary("a", 10, 1.0, 0.0), ArmSummary("b", 10, 1.0, 0.0))
    assert guardrail_status(flat, 0.1)["status"] == "not_estimable"
    with pytest.raises(ValueError):
        guardrail_status(flat, -1)


def test_stopping_efficacy_futility_guardrail_duration() -> None:
    win = stopping_status(_comp(0.5))
    assert win["fired"] == ["efficacy"] and win["recommendation"] == "stop"
    lose = stopping_status(_comp(-0.5))
    assert lose["fired"] == ["futility"] and "worse" in lose["details"]["futility"]["reason"]
    flat = stopping_status(_comp(0.0), mde=0.5, planned_total=6000)
    # 4,000 of 6,000 planned units in and the interval's upper end (~0.1) is far below
    # the MDE: futility fires.
    assert flat["fired"] == ["futility"]
    early = stopping_status(_comp(0.0), mde=0.5, planned_total=10000)
    assert early["fired"] == [] and early["recommendation"] == "continue"
    assert "50%" in early["details"]["futility"]["reason"]
    keep = stopping_status(_comp(0.0), mde=0.08, planned_total=6000)
    assert keep["fired"] == []
    lower = stopping_status(_comp(-0.5), higher_is_better=False)
    assert lower["fired"] == ["efficacy"]
    many = stopping_status(
        _comp(0.0), guardrails=[{"metric": "latency", "status": "breached"}],
        elapsed_days=30, max_days=28, max_units=3000)
    assert many["fired"] == ["guardrail", "max_duration", "max_sample"]
    assert "latency" in many["details"]["guardrail"]["reason"]
    assert set(many["details"]) == {"efficacy", "futility", "guardrail", "max_duration",
                                    "max_sample"}


def test_stopping_without_sequential_waits_for_planned_sample() -> None:
    comp = _comp(0.5, method="none")
    assert stopping_status(comp)["fired"] == []
    assert stopping_status(comp, planned_total=4000)["fired"] == ["efficacy"]


def test_stopping_with_group_sequential_look() -> None:
    looks = {"looks": group_sequential_looks([0.5], [3.1])}
    out = stopping_status(_comp(0.0), group_sequential=looks)
    assert out["fired"] == ["efficacy"] and "boundary" in out["details"]["efficacy"]["reason"]
    worse = {"looks": group_sequential_looks([0.5], [-3.1])}
    assert stopping_status(_comp(0.0), group_sequential=worse)["fired"] == ["futility"]


def test_always_valid_p_value_path_is_the_running_minimum() -> None:
    from feedbackloop.stats.experiments import always_valid_p_values

    assert list(always_valid_p_values([1.0, 0.4, 0.6, 0.03, 0.2])) == [1.0, 0.4, 0.4, 0.03,
                                                                      0.03]
    assert always_valid_p_values([]).size == 0
    with pytest.raises(ValueError):
        always_valid_p_values([0.5, 1.5])
