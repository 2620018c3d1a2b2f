"""Sample size and power of a two-arm comparison, exactly as R's ``power.prop.test`` and
``power.t.test`` (package stats, ``strict = FALSE``: the far tail is ignored).

Proportions: the pooled two-proportion z-test (Fleiss, Levin & Paik 2003, §4.2; R
``power.prop.test``)::

    sqrt(n) = (z_{alpha/s} · sqrt((p1+p2)(1 - (p1+p2)/2)) + z_β · sqrt(p1 q1 + p2 q2)) / |p1 - p2|

Means: the two-sample t-test with the noncentral t distribution (R ``power.t.test``)::

    power = P(T'_{2(n-1), ncp} > t_{1-alpha/s, 2(n-1)}),  ncp = sqrt(n/2) · δ / sigma

With more than two arms each treatment is compared with the control at alpha/(arms - 1)
(Bonferroni, which Holm's procedure in the analysis never needs more than).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy import optimize
from scipy.special import ndtr, ndtri
from scipy.stats import nct
from scipy.stats import t as t_dist

__all__ = ["SampleSize", "power_means", "power_proportions", "sample_size_means",
           "sample_size_proportions"]

PROP_METHOD = "two-proportion z-test (pooled), as R power.prop.test"
MEANS_METHOD = "two-sample t-test (noncentral t), as R power.t.test"


@dataclass(frozen=True)
class SampleSize:
    """Units per arm and in total, how they were computed, and the inputs used."""

    per_arm: int
    total: int
    method: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"per_arm": self.per_arm, "total": self.total, "method": self.method,
                "detail": dict(self.detail)}


def _check_common(alpha: float, power: float | None, sides: int, arms: int) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if power is not None and not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power!r}")
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides!r}")
    if int(arms) != arms or arms < 2:
        raise ValueError(f"arms must be a whole number >= 2, got {arms!r}")
    return alpha / (arms - 1)


def _proportions(baseline: float, mde: float, relative: bool) -> tuple[float, float]:
    if not 0.0 < baseline < 1.0:
        raise ValueError(f"the baseline proportion must be in (0, 1), got {baseline!r}")
    if mde == 0 or not math.isfinite(mde):
        raise ValueError(f"the minimum detectable effect must be a non-zero number, got "
                         f"{mde!r}")
    p2 = baseline * (1.0 + mde) if relative else baseline + mde
    if not 0.0 < p2 < 1.0:
        raise ValueError(f"baseline {baseline:g} with a {'relative ' if relative else ''}"
                         f"effect of {mde:g} gives {p2:g}, outside (0, 1)")
    return baseline, p2


def _prop_power(n: float, p1: float, p2: float, alpha: float, sides: int) -> float:
    # R power.prop.test, strict = FALSE.
    qu = float(ndtri(1.0 - alpha / sides))
    pbar = (p1 + p2) / 2.0
    num = math.sqrt(n) * abs(p1 - p2) - qu * math.sqrt((p1 + p2) * (1.0 - pbar))
    return float(ndtr(num / math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))))


def sample_size_proportions(baseline: float, mde: float, *, relative: bool = False,
                            alpha: float = 0.05, power: float = 0.8, sides: int = 2,
                            arms: int = 2) -> SampleSize:
    """Units per arm to detect ``baseline → baseline + mde`` (or ``baseline·(1 + mde)``
    when ``relative``) with a pooled two-proportion z-test; ``per_arm`` is R's ``n``
    rounded up. ``power.prop.test(p1 = 0.10, p2 = 0.12, power = 0.8)`` gives n = 3840.9."""
    a = _check_common(alpha, power, sides, arms)
    p1, p2 = _proportions(baseline, mde, relative)
    qa, qb = float(ndtri(1.0 - a / sides)), float(ndtri(power))
    root = (qa * math.sqrt((p1 + p2) * (1.0 - (p1 + p2) / 2.0))
            + qb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) / abs(p2 - p1)
    n = root * root
    per_arm = math.ceil(n - 1e-9)
    return SampleSize(per_arm, per_arm * arms, PROP_METHOD, {
        "n": n, "p1": p1, "p2": p2, "alpha": alpha, "alpha_per_comparison": a,
        "power": power, "sides": sides, "arms": arms, "relative": relative, "mde": mde})


def power_proportions(baseline: float, mde: float, n_per_arm: float, *,
                      relative: bool = False, alpha: float = 0.05, sides: int = 2,
                      arms: int = 2) -> float:
    """The power of the pooled two-proportion z-test with ``n_per_arm`` units per arm."""
    a = _check_common(alpha, None, sides, arms)
    p1, p2 = _proportions(baseline, mde, relative)
    if n_per_arm <= 0:
        raise ValueError(f"n per arm must be > 0, got {n_per_arm!r}")
    return _prop_power(n_per_arm, p1, p2, a, sides)


def _means_delta(sd: float, mde: float, baseline: float | None, relative: bool) -> float:
    if not (sd > 0 and math.isfinite(sd)):
        raise ValueError(f"the standard deviation must be > 0, got {sd!r}")
    if mde == 0 or not math.isfinite(mde):
        raise ValueError(f"the minimum detectable effect must be a non-zero number, got "
                         f"{mde!r}")
    if relative:
        if baseline is None or baseline == 0 or not math.isfinite(baseline):
            raise ValueError("a relative effect on a mean needs a non-zero baseline mean")
        return abs(mde * baseline)
    return abs(mde)


def _t_power(n: float, delta: float, sd: float, alpha: float, sides: int) -> float:
    # R power.t.test, type "two.sample", strict = FALSE.
    nu = 2.0 * (n - 1.0)
    qu = float(t_dist.isf(alpha / sides, nu))
    return float(nct.sf(qu, nu, math.sqrt(n / 2.0) * delta / sd))


def sample_size_means(sd: float, mde: float, *, baseline: float | None = None,
                      relative: bool = False, alpha: float = 0.05, power: float = 0.8,
                      sides: int = 2, arms: int = 2) -> SampleSize:
    """Units per arm for a two-sample t-test to detect a difference ``mde`` (or
    ``mde·baseline`` when ``relative``) with common standard deviation ``sd``;
    ``per_arm`` is R's ``n`` rounded up (``power.t.test(delta = 1, sd = 1, power = 0.9)``
    gives n = 22.02110)."""
    a = _check_common(alpha, power, sides, arms)
    delta = _means_delta(sd, mde, baseline, relative)

    def gap(n: float) -> float:
        return _t_power(n, delta, sd, a, sides) - power

    hi = 4.0
    while gap(hi) < 0:
        hi *= 2.0
        if hi > 1e12:
            raise ValueError("the effect is too small for any feasible sample size")
    n = float(optimize.brentq(gap, 2.0 if gap(2.0) < 0 else 1.0 + 1e-9, hi, xtol=1e-10))
    per_arm = max(2, math.ceil(n - 1e-9))
    return SampleSize(per_arm, per_arm * arms, MEANS_METHOD, {
        "n": n, "delta": delta, "sd": sd, "alpha": alpha, "alpha_per_comparison": a,
        "power": power, "sides": sides, "arms": arms, "relative": relative, "mde": mde,
        "baseline": baseline})


def power_means(sd: float, mde: float, n_per_arm: float, *, baseline: float | None = None,
                relative: bool = False, alpha: float = 0.05, sides: int = 2,
                arms: int = 2) -> float:
    """The power of the two-sample t-test with ``n_per_arm`` units per arm."""
    a = _check_common(alpha, None, sides, arms)
    delta = _means_delta(sd, mde, baseline, relative)
    if n_per_arm < 2:
        raise ValueError(f"n per arm must be >= 2, got {n_per_arm!r}")
    return _t_power(n_per_arm, delta, sd, a, sides)
