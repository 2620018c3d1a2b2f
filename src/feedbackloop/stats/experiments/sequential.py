"""Always-valid inference: intervals and p-values that stay valid however often one looks.

Two methods, both normal mixtures of likelihood ratios (so, by Ville's inequality, the
chance that the interval *ever* misses the true effect is at most alpha):

* ``asymptotic-cs`` — the asymptotic confidence sequence of Waudby-Smith, Park, Ramdas et
  al. (2023), "Time-uniform central limit theory and asymptotic confidence sequences",
  arXiv:2103.06476v7, eq. 9, with the mixing parameter rho of eq. 161, as GrowthBook's
  ``SequentialTwoSidedTTest``. With N units in both arms, V the variance of the estimate
  and s² = V·N::

      rho² = (-2 ln alpha + ln(-2 ln alpha + 1)) / tuning_n
      half-width = sqrt(s²) · sqrt(2 (Nrho² + 1) ln(sqrt(Nrho² + 1) / alpha) / (Nrho)²)

  ``tuning_n`` (GrowthBook's "sequential tuning parameter", 5,000 by default) is the total
  sample at which the sequence is narrowest; set it to the planned total.
  The p-value is 1/E for the mixture e-value E = exp(rho² N Δ² / (2 V (Nrho² + 1))) /
  sqrt(Nrho² + 1), capped at 1 (eq. 155); it is below alpha exactly when the interval excludes 0.

* ``msprt`` — the mixture sequential probability ratio test of Johari, Koomen, Pekelis &
  Walsh (2017), "Peeking at A/B tests", KDD '17, with a N(0, τ²) mixture over the effect::

      Λ = sqrt(V / (V + τ²)) · exp(τ² Δ² / (2 V (V + τ²)))

  rejecting when Λ ≥ 1/alpha; the interval is every effect θ whose Λ(θ) < 1/alpha. τ is on the
  scale of the absolute difference; when not given it is chosen like the asymptotic
  sequence (τ² = rho²·s²), so both are tightest near ``tuning_n``.

The p-value reported at one look is the running bound at that look; the always-valid
p-value of an experiment is the minimum over its looks (the path), which a caller with the
history can take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["DEFAULT_TUNING_N", "SequentialConfig", "always_valid_p_values",
           "asymptotic_cs_halfwidth",
           "asymptotic_cs_p_value", "msprt_halfwidth", "msprt_p_value", "sequential_rho"]

DEFAULT_TUNING_N = 5000
SequentialMethod = Literal["asymptotic-cs", "msprt", "none"]
METHOD_NAMES = {
    "asymptotic-cs": "asymptotic confidence sequence (Waudby-Smith et al. 2023)",
    "msprt": "mSPRT, normal mixture (Johari et al. 2017)",
}


@dataclass(frozen=True)
class SequentialConfig:
    """Which always-valid method to report beside the fixed-horizon figures."""

    method: SequentialMethod = "asymptotic-cs"
    tuning_n: int | None = None
    msprt_tau: float | None = None

    def __post_init__(self) -> None:
        if self.method not in ("asymptotic-cs", "msprt", "none"):
            raise ValueError(f"unknown sequential method {self.method!r}; use "
                             "asymptotic-cs, msprt or none")
        if self.tuning_n is not None and not self.tuning_n > 0:
            raise ValueError(f"tuning_n must be > 0, got {self.tuning_n!r}")
        if self.msprt_tau is not None and not (self.msprt_tau > 0
                                               and math.isfinite(self.msprt_tau)):
            raise ValueError(f"msprt_tau must be > 0, got {self.msprt_tau!r}")

    @property
    def tuning(self) -> int:
        return int(self.tuning_n) if self.tuning_n is not None else DEFAULT_TUNING_N


def sequential_rho(alpha: float, tuning_n: float) -> float:
    """rho of Waudby-Smith et al. (2023), eq. 161 (two-sided)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not tuning_n > 0:
        raise ValueError(f"tuning_n must be > 0, got {tuning_n!r}")
    la = math.log(alpha)
    return math.sqrt((-2.0 * la + math.log(-2.0 * la + 1.0)) / tuning_n)


def asymptotic_cs_halfwidth(variance: float | np.ndarray, n: float | np.ndarray,
                            alpha: float, tuning_n: float) -> np.ndarray:
    """Half-width of the two-sided asymptotic confidence sequence (eq. 9) for an estimate
    with variance ``variance`` after ``n`` units in total. Works elementwise on arrays."""
    rho2 = sequential_rho(alpha, tuning_n) ** 2
    n = np.asarray(n, dtype=float)
    s2 = np.asarray(variance, dtype=float) * n
    nr = n * rho2 + 1.0
    return np.sqrt(s2 * 2.0 * nr * np.log(np.sqrt(nr) / alpha) / (n * n * rho2))


def asymptotic_cs_p_value(estimate: float | np.ndarray, variance: float | np.ndarray,
                          n: float | np.ndarray, alpha: float,
                          tuning_n: float) -> np.ndarray:
    """The sequence's p-value for "no difference" (1 / e-value, capped at 1; eq. 155)."""
    rho2 = sequential_rho(alpha, tuning_n) ** 2
    n = np.asarray(n, dtype=float)
    nr = n * rho2 + 1.0
    st2 = np.asarray(estimate, dtype=float) ** 2 * n / np.asarray(variance, dtype=float)
    log_e = rho2 * st2 / (2.0 * nr) - 0.5 * np.log(nr)
    return np.minimum(1.0, np.exp(-log_e))


def default_msprt_tau2(variance: float | np.ndarray, n: float | np.ndarray, alpha: float,
                       tuning_n: float) -> np.ndarray:
    """τ² = rho²·s², which makes the mSPRT interval coincide with the asymptotic sequence."""
    return sequential_rho(alpha, tuning_n) ** 2 * np.asarray(variance, float) * np.asarray(
        n, float)


def msprt_halfwidth(variance: float | np.ndarray, tau2: float | np.ndarray,
                    alpha: float) -> np.ndarray:
    """Half-width of the mSPRT interval {θ : Λ(θ) < 1/alpha} (Johari et al. 2017)."""
    v = np.asarray(variance, dtype=float)
    tau2 = np.asarray(tau2, dtype=float)
    return np.sqrt(v * (v + tau2) / tau2 * (2.0 * math.log(1.0 / alpha)
                                            + np.log((v + tau2) / v)))


def msprt_p_value(estimate: float | np.ndarray, variance: float | np.ndarray,
                  tau2: float | np.ndarray) -> np.ndarray:
    """1/Λ capped at 1 for "no difference" at this look (Johari et al. 2017, §4)."""
    v = np.asarray(variance, dtype=float)
    tau2 = np.asarray(tau2, dtype=float)
    d2 = np.asarray(estimate, dtype=float) ** 2
    log_lr = 0.5 * np.log(v / (v + tau2)) + tau2 * d2 / (2.0 * v * (v + tau2))
    return np.minimum(1.0, np.exp(-log_lr))


def always_valid_p_values(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The always-valid p-value path from the per-look values (running minimum): valid at
    any stopping time, because each look's value is 1/E for an e-process (Ramdas et al.
    2023, "Game-theoretic statistics and safe anytime-valid inference", Stat Sci 38:576)."""
    arr = np.asarray(p_values, dtype=float).ravel()
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1):
        raise ValueError("p-values must be numbers in [0, 1]")
    return np.minimum.accumulate(arr) if arr.size else arr
