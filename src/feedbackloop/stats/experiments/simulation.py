"""Simulated experiments with known truth, vectorised over simulations: why sequential
analysis is the default (peeking at a fixed-horizon test inflates false positives) and
that the planned sample reaches the planned power. Used by the validity tests and the
experiment page's teaching figure."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import t as t_dist

from .group_sequential import group_sequential_bounds
from .sequential import (
    asymptotic_cs_halfwidth,
    default_msprt_tau2,
    msprt_halfwidth,
)

__all__ = ["peeking_simulation", "power_simulation"]


def _cumulative_counts(rng: np.random.Generator, sims: int, looks: int, batch: int,
                       p: float) -> tuple[np.ndarray, np.ndarray]:
    n = batch * np.arange(1, looks + 1, dtype=float)
    succ = np.cumsum(rng.binomial(batch, p, size=(sims, looks)), axis=1)
    return n, succ.astype(float)


def _welch_binomial(sa: np.ndarray, sb: np.ndarray, na: np.ndarray, nb: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pa, pb = sa / na, sb / nb
    va, vb = pa * (1 - pa) / na, pb * (1 - pb) / nb
    var = va + vb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = var ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    df = np.where(np.isfinite(df), df, 1.0)
    return pb - pa, var, df


def peeking_simulation(rng: np.random.Generator, *, sims: int = 2000, looks: int = 20,
                       batch: int = 250, p: float = 0.10, alpha: float = 0.05,
                       tuning_n: int | None = None) -> dict[str, Any]:
    """A/A experiments on a 0/1 metric with success rate ``p`` in both arms, analysed after
    every batch of ``batch`` units per arm. Returns, per look, the share of experiments
    that have declared a (false) difference at any look so far: by the fixed-horizon
    Welch test, by the asymptotic confidence sequence, by mSPRT, and by Lan-DeMets
    O'Brien-Fleming boundaries placed at the looks."""
    n, sa = _cumulative_counts(rng, sims, looks, batch, p)
    _, sb = _cumulative_counts(rng, sims, looks, batch, p)
    diff, var, df = _welch_binomial(sa, sb, n, n)
    total = 2 * n
    tuning = tuning_n or int(total[-1])
    ok = var > 0
    safe_var = np.where(ok, var, 1.0)
    fixed = ok & (2.0 * t_dist.sf(np.abs(diff) / np.sqrt(safe_var), df) < alpha)
    half = asymptotic_cs_halfwidth(safe_var, total, alpha, tuning)
    seq = ok & (np.abs(diff) > half)
    tau2 = default_msprt_tau2(p * (1 - p) * 2 / n[-1], total[-1], alpha, tuning)
    ms = ok & (np.abs(diff) > msprt_halfwidth(safe_var, tau2, alpha))
    bounds = np.asarray(group_sequential_bounds(n / n[-1], alpha=alpha))
    gs = ok & (np.abs(diff) / np.sqrt(safe_var) >= bounds)

    def ever(hit: np.ndarray) -> list[float]:
        return [float(x) for x in np.logical_or.accumulate(hit, axis=1).mean(axis=0)]

    return {"sims": sims, "looks": looks, "batch": batch, "p": p, "alpha": alpha,
            "n_per_arm": [int(x) for x in n], "fixed_horizon": ever(fixed),
            "sequential": ever(seq), "msprt": ever(ms), "group_sequential": ever(gs),
            "tuning_n": tuning}


def power_simulation(rng: np.random.Generator, *, n_per_arm: int, p: float | None = None,
                     effect: float, sd: float = 1.0, sims: int = 4000,
                     alpha: float = 0.05) -> float:
    """The share of simulated experiments with a true difference ``effect`` whose
    fixed-horizon Welch test (two-sided, ``alpha``) rejects at ``n_per_arm`` units per arm:
    a 0/1 metric with control rate ``p``, or a normal metric with standard deviation
    ``sd`` when ``p`` is None."""
    if p is not None:
        sa = rng.binomial(n_per_arm, p, size=sims).astype(float)
        sb = rng.binomial(n_per_arm, p + effect, size=sims).astype(float)
        nn = np.full(sims, float(n_per_arm))
        diff, var, df = _welch_binomial(sa, sb, nn, nn)
    else:
        # Normal data: the sample mean and the sample variance are independent, so draw
        # them directly (N(mu, sd²/n) and sd² chi²_{n-1}/(n-1)).
        k = n_per_arm - 1
        ma = rng.normal(0.0, sd / np.sqrt(n_per_arm), sims)
        mb = rng.normal(effect, sd / np.sqrt(n_per_arm), sims)
        va = sd ** 2 * rng.chisquare(k, sims) / k / n_per_arm
        vb = sd ** 2 * rng.chisquare(k, sims) / k / n_per_arm
        diff, var = mb - ma, va + vb
        df = var ** 2 / (va ** 2 / k + vb ** 2 / k)
    p_values = 2.0 * t_dist.sf(np.abs(diff) / np.sqrt(var), df)
    return float(np.mean(p_values < alpha))
