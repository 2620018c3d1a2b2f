"""Bandit policies as probability vectors: Thompson sampling against closed forms, UCB1 and
UCB1-NORMAL worked by hand from Auer, Cesa-Bianchi & Fischer (2002), the exploration floor,
the draw that makes the logged propensity the probability used, and convergence to the best
arm on simulations with known truth (fixed seeds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import betaln

from feedbackloop.stats import bandits as B


def evan_miller_p_b_beats_a(alpha_a: int, beta_a: int, alpha_b: int, beta_b: int) -> float:
    """P(θ_B > θ_A) for θ_A ~ Beta(a_A, β_A), θ_B ~ Beta(a_B, β_B), integer a_B — Evan
    Miller, "Formulas for Bayesian A/B Testing" (2015), evanmiller.org/bayesian-ab-testing
    .html, the closed form

        Σ_{i=0}^{a_B-1} B(a_A+i, β_A+β_B) / ((β_B+i) B(1+i, β_B) B(a_A, β_A)).
    """
    i = np.arange(alpha_b)
    terms = (betaln(alpha_a + i, beta_a + beta_b) - np.log(beta_b + i)
             - betaln(1 + i, beta_b) - betaln(alpha_a, beta_a))
    return float(np.exp(terms).sum())


def test_evan_miller_formula_matches_numerical_integration() -> None:
    # The reference itself checked independently: ∫ f_B(x) F_A(x) dx.
    a = stats.beta(11, 41)
    b = stats.beta(16, 36)
    numeric, _ = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 0, 1, epsabs=1e-12)
    assert evan_miller_p_b_beats_a(11, 41, 16, 36) == pytest.approx(numeric, abs=1e-9)


@pytest.mark.parametrize(("succ", "fail"), [((10, 15), (40, 35)), ((3, 3), (7, 7)),
                                            ((0, 2), (0, 1)), ((120, 95), (880, 905))])
def test_thompson_beta_matches_the_closed_form_for_two_arms(succ: tuple[int, int],
                                                            fail: tuple[int, int]) -> None:
    stats_ = B.ArmStats.of([succ[0] + fail[0], succ[1] + fail[1]], list(succ))
    draws = 200_000
    p = B.thompson_beta(stats_, np.random.default_rng(7), draws=draws)
    exact = evan_miller_p_b_beats_a(1 + succ[0], 1 + fail[0], 1 + succ[1], 1 + fail[1])
    se = math.sqrt(exact * (1 - exact) / draws)
    assert p.sum() == pytest.approx(1.0)
    assert p[1] == pytest.approx(exact, abs=max(4 * se, 1e-4))


def test_thompson_normal_posterior_is_the_normal_inverse_gamma_update() -> None:
    # Murphy (2007), "Conjugate Bayesian analysis of the Gaussian distribution", eq. 86-89:
    # κn = κ0 + n, μn = (κ0 μ0 + n x̄)/κn, an = a0 + n/2,
    # βn = β0 + ½ Σ(x - x̄)² + κ0 n (x̄ - μ0)² / (2 κn); marginal of μ: t_{2an}(μn, βn/(an κn)).
    x = np.array([3.0, 4.0, 5.5, 4.5, 2.0])
    prior = B.NIGPrior(mu0=1.0, kappa0=2.0, alpha0=3.0, beta0=4.0)
    s = B.ArmStats.of([len(x), 0], [x.sum(), 0.0], [(x * x).sum(), 0.0])
    mu, scale, df = B.nig_posterior(s, prior)
    n, xbar = len(x), x.mean()
    kn, an = 2.0 + n, 3.0 + n / 2
    bn = 4.0 + 0.5 * ((x - xbar) ** 2).sum() + 2.0 * n * (xbar - 1.0) ** 2 / (2 * kn)
    assert mu[0] == pytest.approx((2.0 * 1.0 + n * xbar) / kn)
    assert scale[0] == pytest.approx(math.sqrt(bn / (an * kn)))
    assert df[0] == pytest.approx(2 * an)
    # the unplayed arm keeps the prior: t_{2a0}(μ0, β0/(a0 κ0))
    assert (mu[1], scale[1], df[1]) == pytest.approx((1.0, math.sqrt(4.0 / 6.0), 6.0))


def test_thompson_normal_probability_matches_integration() -> None:
    s = B.ArmStats.of([30, 25], [30 * 1.0, 25 * 1.2], [30 * (1.0 + 0.81), 25 * (1.44 + 1.0)])
    mu, scale, df = B.nig_posterior(s)
    t0, t1 = stats.t(df[0], mu[0], scale[0]), stats.t(df[1], mu[1], scale[1])
    exact, _ = integrate.quad(lambda v: t1.pdf(v) * t0.cdf(v), -np.inf, np.inf)
    draws = 200_000
    p = B.thompson_normal(s, np.random.default_rng(3), draws=draws)
    assert p[1] == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / draws))


def test_ucb1_worked_by_hand() -> None:
    # Auer et al. (2002), Fig. 1: play each arm once, then argmax x̄_j + sqrt(2 ln n / n_j).
    assert list(B.ucb1(B.ArmStats.of([3, 0, 2], [1, 0, 1]))) == [0, 1, 0]
    assert list(B.ucb1(B.ArmStats.of([0, 0, 2], [0, 0, 1]))) == [0.5, 0.5, 0]
    s = B.ArmStats.of([10, 20, 30], [3, 8, 20])
    t = 60
    scores = [3 / 10 + math.sqrt(2 * math.log(t) / 10),
              8 / 20 + math.sqrt(2 * math.log(t) / 20),
              20 / 30 + math.sqrt(2 * math.log(t) / 30)]
    assert scores[0] == pytest.approx(1.204914, abs=1e-6)   # 0.3 + sqrt(0.818869)
    assert scores[2] == pytest.approx(1.189119, abs=1e-6)   # 0.666667 + sqrt(0.272956)
    assert list(B.ucb1(s)) == [1, 0, 0]
    # equal scores share the play
    assert list(B.ucb1(B.ArmStats.of([5, 5], [2, 2]))) == [0.5, 0.5]


def test_ucb1_normal_worked_by_hand() -> None:
    # Auer et al. (2002), Fig. 4: an arm played fewer than ceil(8 ln n) times goes first.
    s = B.ArmStats.of([20, 5], [20.0, 5.0], [25.0, 6.0])   # n = 25: ceil(8 ln 25) = 26
    assert list(B.ucb1_normal(s)) == [0.5, 0.5]
    n = np.array([400.0, 300.0])  # ceil(8 ln 700) = 53: both played enough
    mean = np.array([1.0, 1.1])
    var = np.array([4.0, 1.0])
    q = (n - 1) * var + n * mean**2
    s = B.ArmStats.of(n, n * mean, q)
    bonus = np.sqrt(16 * var * math.log(699) / n)
    assert bonus[0] == pytest.approx(math.sqrt(16 * 4 * 6.5497 / 400), rel=1e-4)
    want = np.argmax(mean + bonus)
    assert want == 0  # the wider arm wins on its bonus: 1 + 1.0237 > 1.1 + 0.5910
    assert list(B.ucb1_normal(s)) == [1.0, 0.0]


def test_the_floor_keeps_every_arm_and_sums_to_one() -> None:
    rng = np.random.default_rng(0)
    s = B.ArmStats.of([500, 500, 500], [50, 100, 400])
    for policy in B.POLICIES:
        for floor in (0.0, 0.01, 0.05, 0.1, 1 / 3):
            p = B.probabilities(s, policy, "binary", rng=rng, floor=floor)  # type: ignore[arg-type]
            assert p.sum() == pytest.approx(1.0)
            assert p.min() >= floor - 1e-12
    # p = floor + (1 - K floor) p_policy exactly
    assert list(B.with_floor([1.0, 0.0, 0.0, 0.0], 0.05)) == pytest.approx([0.85, 0.05, 0.05,
                                                                           0.05])
    assert list(B.with_floor([0.2, 0.8], 0.5)) == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1/K\]"):
        B.with_floor([0.5, 0.5, 0.0], 0.4)
    with pytest.raises(ValueError, match="at least 2 arms"):
        B.ArmStats.of([1], [1])


def test_draw_follows_the_probabilities_exactly() -> None:
    rng = np.random.default_rng(11)
    p = np.array([0.05, 0.0, 0.7, 0.25])
    n = 100_000
    counts = np.bincount([B.draw(p, rng) for _ in range(n)], minlength=4)
    assert counts[1] == 0  # an arm of probability 0 is never drawn
    keep = p > 0
    chi2 = stats.chisquare(counts[keep], n * p[keep])
    assert chi2.pvalue > 0.001


def _simulate(policy: str, kind: str, truth: np.ndarray, rounds: int, seed: int,
              floor: float = 0.0, noise: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    k = len(truth)
    n, s, q = np.zeros(k), np.zeros(k), np.zeros(k)
    plays = np.zeros(rounds, dtype=int)
    for t in range(rounds):
        p = B.probabilities(B.ArmStats(n, s, q), policy, kind,  # type: ignore[arg-type]
                            rng=rng, floor=floor, draws=500)
        arm = B.draw(p, rng)
        r = float(rng.random() < truth[arm]) if kind == "binary" \
            else float(rng.normal(truth[arm], noise))
        n[arm] += 1
        s[arm] += r
        q[arm] += r * r
        plays[t] = arm
    return plays


@pytest.mark.parametrize(("policy", "kind"), [("thompson", "binary"), ("ucb", "binary"),
                                              ("thompson", "mean"), ("ucb", "mean")])
def test_the_bandit_converges_to_the_best_arm(policy: str, kind: str) -> None:
    truth = np.array([0.2, 0.35, 0.6]) if kind == "binary" else np.array([0.0, 0.5, 1.5])
    rounds = 1500 if policy == "thompson" else 3000
    plays = _simulate(policy, kind, truth, rounds, seed=5, floor=0.01)
    late = plays[-500:]
    share = float(np.mean(late == 2))
    assert share > 0.85, share  # the floor alone leaves 0.98; late rounds are near it
    assert np.mean(plays[:300] == 2) < share  # it learned: more best-arm plays later


def test_bad_policy_or_kind_is_refused() -> None:
    s = B.ArmStats.of([1, 1], [1, 0])
    with pytest.raises(ValueError, match="policy"):
        B.probabilities(s, "greedy", "binary", rng=np.random.default_rng())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reward kind"):
        B.probabilities(s, "ucb", "ratio", rng=np.random.default_rng())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="successes"):
        B.thompson_beta(B.ArmStats.of([1, 1], [2, 0]), np.random.default_rng())
