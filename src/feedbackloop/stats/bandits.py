"""Multi-armed bandit policies as probability vectors: Thompson sampling (Beta-Bernoulli and
Gaussian) and UCB (UCB1 and UCB1-NORMAL), with an exploration floor.

Every policy here answers the same question: *with what probability is each arm played
next?* The caller then draws the arm from that vector (:func:`draw`), so the propensity it
logs is exactly the probability the arm was played with — what off-policy evaluation needs.

- **Thompson sampling, binary rewards**: arm k has a Beta(1 + s_k, 1 + f_k) posterior
  (uniform prior; s_k successes, f_k failures); P(arm k is played) = P(θ_k is the largest),
  estimated by Monte Carlo over ``draws`` joint posterior draws (standard error at most
  0.5/sqrt(draws)). Thompson (1933), Biometrika 25:285; Chapelle & Li (2011), NeurIPS.
- **Thompson sampling, mean rewards**: a normal model with unknown mean *and* variance and
  its conjugate normal-inverse-gamma prior NIG(μ0, κ0, alpha0, β0) (Murphy 2007, "Conjugate
  Bayesian analysis of the Gaussian distribution", eq. 85-89). The posterior of the mean
  is a Student t with 2alpha_n degrees of freedom, location μ_n and scale sqrt(β_n / (alpha_n
  κ_n)). The default prior (μ0 0, κ0 0.01, alpha0 1, β0 1) is weak: worth a hundredth of an
  observation on the mean, so an unplayed arm is wide and gets explored.
- **UCB1** (Auer, Cesa-Bianchi & Fischer 2002, Machine Learning 47:235, Fig. 1): play each
  arm once, then the arm maximising x̄_k + sqrt(2 ln t / n_k) (t = plays so far); rewards in
  [0, 1]. **UCB1-NORMAL** (ibid., Fig. 4) for rewards with unknown variance: an arm played
  fewer than ceil(8 ln t) times is played first; otherwise the arm maximising
  x̄_k + sqrt(16 · (q_k - n_k x̄_k²) / (n_k - 1) · ln(t - 1) / n_k), q_k the sum of squared
  rewards. UCB is deterministic: the argmax gets probability 1, ties share it equally.
- **Exploration floor**: p = floor + (1 - K · floor) · p_policy, so every arm keeps at least
  ``floor`` and the vector still sums to 1; needs 0 ≤ floor ≤ 1/K.

Arms' state is their sufficient statistics: plays with a reward ``n``, ``sums`` and
``sumsqs`` of the rewards. Pure numpy/scipy; randomness comes in as a Generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "POLICIES",
    "REWARD_KINDS",
    "ArmStats",
    "NIGPrior",
    "draw",
    "probabilities",
    "thompson_beta",
    "thompson_normal",
    "ucb1",
    "ucb1_normal",
    "with_floor",
]

POLICIES = ("thompson", "ucb")
REWARD_KINDS = ("binary", "mean")
DEFAULT_DRAWS = 10_000


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of every arm's rewards (arrays of length K)."""

    n: np.ndarray
    sums: np.ndarray
    sumsqs: np.ndarray

    @classmethod
    def of(cls, n: Sequence[float], sums: Sequence[float],
           sumsqs: Sequence[float] | None = None) -> ArmStats:
        n_ = np.asarray(n, dtype=np.float64)
        s_ = np.asarray(sums, dtype=np.float64)
        q_ = np.zeros_like(n_) if sumsqs is None else np.asarray(sumsqs, dtype=np.float64)
        if n_.ndim != 1 or s_.shape != n_.shape or q_.shape != n_.shape:
            raise ValueError("n, sums and sumsqs must be 1-D arrays of the same length")
        if n_.size < 2:
            raise ValueError(f"a bandit needs at least 2 arms, got {n_.size}")
        if np.any(n_ < 0) or not np.all(np.isfinite(s_)) or not np.all(np.isfinite(q_)):
            raise ValueError("arm counts must be >= 0 and reward sums finite")
        return cls(n_, s_, q_)

    @property
    def k(self) -> int:
        return int(self.n.size)


@dataclass(frozen=True)
class NIGPrior:
    """Normal-inverse-gamma prior of the Gaussian Thompson sampler (see the module)."""

    mu0: float = 0.0
    kappa0: float = 0.01
    alpha0: float = 1.0
    beta0: float = 1.0


def _argmax_shares(scores: np.ndarray) -> np.ndarray:
    """Probability 1 on the largest score, split equally among ties."""
    best = scores == scores.max()
    return best / best.sum()


def _winner_frequencies(samples: np.ndarray) -> np.ndarray:
    """``samples`` (K, draws): how often each row holds the column maximum."""
    k = samples.shape[0]
    wins = np.bincount(np.argmax(samples, axis=0), minlength=k)
    return wins / samples.shape[1]


def thompson_beta(stats: ArmStats, rng: np.random.Generator,
                  draws: int = DEFAULT_DRAWS) -> np.ndarray:
    """P(each arm is played) under Beta-Bernoulli Thompson sampling (Monte Carlo).

    Successes are ``sums`` (rewards in {0, 1}), failures ``n - sums``."""
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    succ = stats.sums
    fail = stats.n - stats.sums
    if np.any(succ < 0) or np.any(fail < 0):
        raise ValueError("binary rewards need 0 <= successes <= n for every arm")
    samples = rng.beta(1.0 + succ[:, None], 1.0 + fail[:, None], size=(stats.k, draws))
    return _winner_frequencies(samples)


def nig_posterior(stats: ArmStats, prior: NIGPrior = NIGPrior()
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(location, scale, degrees of freedom) of each arm's Student-t posterior of the mean
    (Murphy 2007, eq. 85-89 and 100)."""
    n, s, q = stats.n, stats.sums, stats.sumsqs
    mean = np.divide(s, n, out=np.zeros_like(s), where=n > 0)
    ss = np.maximum(q - n * mean * mean, 0.0)  # within-arm sum of squared deviations
    kappa = prior.kappa0 + n
    mu = (prior.kappa0 * prior.mu0 + s) / kappa
    alpha = prior.alpha0 + n / 2.0
    beta = prior.beta0 + 0.5 * ss + prior.kappa0 * n * (mean - prior.mu0) ** 2 / (2 * kappa)
    return mu, np.sqrt(beta / (alpha * kappa)), 2.0 * alpha


def thompson_normal(stats: ArmStats, rng: np.random.Generator,
                    draws: int = DEFAULT_DRAWS, prior: NIGPrior = NIGPrior()) -> np.ndarray:
    """P(each arm is played) under Gaussian Thompson sampling with a normal-inverse-gamma
    prior (Monte Carlo over the Student-t posteriors of the means)."""
    if draws < 1:
        raise ValueError(f"draws must be positive, got {draws}")
    mu, scale, df = nig_posterior(stats, prior)
    t = rng.standard_t(df[:, None], size=(stats.k, draws))
    return _winner_frequencies(mu[:, None] + scale[:, None] * t)


def ucb1(stats: ArmStats) -> np.ndarray:
    """UCB1 (Auer et al. 2002, Fig. 1) as a probability vector: unplayed arms first (shared
    equally), else the argmax of x̄_k + sqrt(2 ln t / n_k); ties share."""
    n = stats.n
    if np.any(n == 0):
        return _argmax_shares((n == 0).astype(float))
    t = n.sum()
    scores = stats.sums / n + np.sqrt(2.0 * math.log(t) / n)
    return _argmax_shares(scores)


def ucb1_normal(stats: ArmStats) -> np.ndarray:
    """UCB1-NORMAL (Auer et al. 2002, Fig. 4) as a probability vector: an arm played fewer
    than max(2, ceil(8 ln t)) times first (shared equally among them), else the argmax of
    x̄_k + sqrt(16 (q_k - n_k x̄_k²)/(n_k - 1) · ln(t - 1)/n_k). (The floor of 2 plays keeps
    the sample variance defined; the paper's ceil(8 ln t) is ≥ 2 from t = 2 on.)"""
    n = stats.n
    t = n.sum()
    need = max(2.0, math.ceil(8.0 * math.log(t))) if t > 1 else 2.0
    under = n < need
    if np.any(under):
        return _argmax_shares(under.astype(float))
    mean = stats.sums / n
    var = np.maximum(stats.sumsqs - n * mean * mean, 0.0) / (n - 1)
    scores = mean + np.sqrt(16.0 * var * math.log(t - 1) / n)
    return _argmax_shares(scores)


def with_floor(p: Sequence[float] | np.ndarray, floor: float) -> np.ndarray:
    """p' = floor + (1 - K·floor)·p: every arm keeps at least ``floor``; sums to 1."""
    arr = np.asarray(p, dtype=np.float64)
    k = arr.size
    if not 0.0 <= floor <= 1.0 / k + 1e-12:
        raise ValueError(f"the exploration floor must be in [0, 1/K] = [0, {1.0 / k:.4g}], "
                         f"got {floor}")
    out = floor + (1.0 - k * floor) * arr
    return out / out.sum()


def probabilities(stats: ArmStats, policy: Literal["thompson", "ucb"],
                  reward_kind: Literal["binary", "mean"], *, rng: np.random.Generator,
                  floor: float = 0.0, draws: int = DEFAULT_DRAWS,
                  prior: NIGPrior = NIGPrior()) -> np.ndarray:
    """The probability of playing each arm next: the policy's vector mixed with the floor.

    ``thompson`` + ``binary``: Beta-Bernoulli; ``thompson`` + ``mean``: normal-inverse-gamma;
    ``ucb`` + ``binary``: UCB1; ``ucb`` + ``mean``: UCB1-NORMAL."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if reward_kind not in REWARD_KINDS:
        raise ValueError(f"reward kind must be one of {', '.join(REWARD_KINDS)}, "
                         f"got {reward_kind!r}")
    if policy == "thompson":
        p = thompson_beta(stats, rng, draws) if reward_kind == "binary" \
            else thompson_normal(stats, rng, draws, prior)
    else:
        p = ucb1(stats) if reward_kind == "binary" else ucb1_normal(stats)
    return with_floor(p, floor)


def draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """An arm drawn with probabilities ``p`` (its propensity is ``p[arm]``)."""
    cum = np.cumsum(p)
    arm = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    # side="right" never lands on an arm of probability 0 (its cumulative sum equals the
    # previous one); rounding can only land past the end: take the last positive arm.
    if arm >= p.size:
        arm = int(np.flatnonzero(p > 0)[-1])
    return arm
