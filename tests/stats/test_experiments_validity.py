"""Validity by simulation with known truth (fixed seeds, vectorised over experiments):
peeking after every batch keeps the sequential methods' false-positive rate at or below
alpha while the fixed-horizon test peeked the same way exceeds it; the planned sample
reaches the planned power."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feedbackloop.stats.experiments import (
    ArmSummary,
    SequentialConfig,
    compare,
    sample_size_means,
    sample_size_proportions,
)
from feedbackloop.stats.experiments.simulation import peeking_simulation, power_simulation

ALPHA = 0.05
SIMS = 2000
MC_SE = math.sqrt(ALPHA * (1 - ALPHA) / SIMS)  # ~0.0049


@pytest.fixture(scope="module")
def aa() -> dict:
    # 2,000 A/A experiments, 0/1 metric at 10 %, 20 looks of 250 units per arm each.
    return peeking_simulation(np.random.default_rng(20261123), sims=SIMS, looks=20,
                              batch=250, p=0.10, alpha=ALPHA)


def test_sequential_false_positive_rate_stays_below_alpha_when_peeking(aa: dict) -> None:
    assert aa["sims"] >= 1000 and aa["looks"] == 20
    assert aa["sequential"][-1] <= ALPHA + 2 * MC_SE
    assert aa["msprt"][-1] <= ALPHA + 2 * MC_SE
    # Group-sequential OBF boundaries at the same 20 looks spend exactly alpha.
    assert aa["group_sequential"][-1] == pytest.approx(ALPHA, abs=3 * MC_SE)


def test_fixed_horizon_peeking_exceeds_alpha(aa: dict) -> None:
    # Peeked once (the first look) the fixed test is valid ...
    assert aa["fixed_horizon"][0] == pytest.approx(ALPHA, abs=3 * MC_SE)
    # ... peeked 20 times it declares a winner in roughly a quarter of A/A tests
    # (Armitage, McPherson & Rowe 1969 give 0.25 for 20 looks at nominal 0.05).
    assert aa["fixed_horizon"][-1] > 3 * ALPHA
    assert aa["fixed_horizon"][-1] == pytest.approx(0.25, abs=0.04)
    assert all(b >= a for a, b in zip(aa["fixed_horizon"], aa["fixed_horizon"][1:],
                                      strict=False))


def test_simulation_agrees_with_compare() -> None:
    # The vectorised formulas are compare()'s: one simulated look recomputed by compare().
    rng = np.random.default_rng(3)
    a = rng.binomial(1, 0.1, 3000)
    b = rng.binomial(1, 0.1, 3000)
    c = compare(ArmSummary.from_values("a", a), ArmSummary.from_values("b", b),
                kind="proportion", sequential=SequentialConfig(tuning_n=6000))
    from feedbackloop.stats.experiments import asymptotic_cs_halfwidth

    va, vb = a.mean() * (1 - a.mean()) / 3000, b.mean() * (1 - b.mean()) / 3000
    half = float(asymptotic_cs_halfwidth(va + vb, 6000, 0.05, 6000))
    assert c.sequential["ci"][1] - c.sequential["estimate"] == pytest.approx(half)


def test_power_at_planned_sample_proportions() -> None:
    plan = sample_size_proportions(0.10, 0.02, power=0.8)
    sims = 4000
    power = power_simulation(np.random.default_rng(8), n_per_arm=plan.per_arm, p=0.10,
                             effect=0.02, sims=sims)
    assert power == pytest.approx(0.8, abs=3 * math.sqrt(0.8 * 0.2 / sims))


def test_power_at_planned_sample_means() -> None:
    plan = sample_size_means(2.0, 0.2, power=0.9)
    sims = 4000
    power = power_simulation(np.random.default_rng(9), n_per_arm=plan.per_arm, sd=2.0,
                             effect=0.2, sims=sims)
    assert power == pytest.approx(0.9, abs=3 * math.sqrt(0.9 * 0.1 / sims))
