"""A Bayesian view of an experiment: the probability each arm is best and its expected
loss, by Monte Carlo from each arm's posterior.

* Proportions: Beta(1 + successes, 1 + failures) — the uniform prior of the Beta-Bernoulli
  model (Gelman et al., *Bayesian Data Analysis*, 3rd ed., §2.4).
* Means: the large-sample normal posterior N(x̄, s²/n) of the arm mean under a flat prior
  (BDA §3.2 for known variance; the plug-in s² is the usual A/B-testing approximation).

Expected loss of choosing arm a is E[max_j θ_j - θ_a] (Stucchio 2015, "Bayesian A/B
testing at VWO"): what one expects to give up by shipping a if it is not the best; the
signs flip when lower is better.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from .summary import ArmSummary

__all__ = ["prob_best"]

BETA_METHOD = "Beta(1 + successes, 1 + failures) posterior, Monte Carlo"
NORMAL_METHOD = "normal posterior N(mean, sd²/n), Monte Carlo"


def prob_best(arms: Sequence[ArmSummary], *, kind: Literal["mean", "proportion"],
              rng: np.random.Generator, draws: int = 20000,
              higher_is_better: bool = True) -> list[dict[str, Any]]:
    """For each arm ``{"arm", "p_best", "expected_loss", "method", "draws"}``; the
    ``p_best`` sum to 1 (ties split evenly). Arms with no units raise ValueError."""
    if len(arms) < 2:
        raise ValueError("the probability of being best needs at least 2 arms")
    if kind not in ("mean", "proportion"):
        raise ValueError(f"kind must be 'mean' or 'proportion', got {kind!r}")
    if draws < 100:
        raise ValueError("use at least 100 draws")
    samples = np.empty((len(arms), draws))
    for i, arm in enumerate(arms):
        if arm.n == 0:
            raise ValueError(f"arm {arm.name!r} has no units")
        if kind == "proportion":
            if not 0.0 <= arm.mean <= 1.0:
                raise ValueError(f"arm {arm.name!r}: a proportion's mean must lie in "
                                 "[0, 1]")
            s = round(arm.mean * arm.n)
            samples[i] = rng.beta(1.0 + s, 1.0 + arm.n - s, size=draws)
        else:
            samples[i] = arm.mean + arm.sd / np.sqrt(arm.n) * rng.standard_normal(draws)
    signed = samples if higher_is_better else -samples
    best = signed.max(axis=0)
    is_best = signed == best
    share = is_best / is_best.sum(axis=0)
    loss = best - signed
    method = BETA_METHOD if kind == "proportion" else NORMAL_METHOD
    return [{"arm": arm.name, "p_best": float(share[i].mean()),
             "expected_loss": float(loss[i].mean()), "method": method, "draws": draws}
            for i, arm in enumerate(arms)]
