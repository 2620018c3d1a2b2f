"""Fixed-horizon and sequential comparison of a treatment arm with the control.

* Absolute difference: Welch's t-test (Welch 1947, Biometrika 34:28) with the
  Welch-Satterthwaite degrees of freedom; identical to ``scipy.stats.ttest_ind(treatment,
  control, equal_var=False)`` on unit-level values. For proportions the arm variance is the
  binomial p(1 - p) (as GrowthBook's ``ProportionStatistic``), i.e. the unpooled Wald
  interval of a difference in proportions with a t reference.
* Relative lift (t̄ - c̄)/c̄ by the delta method (e.g. Deng, Knoblich & Lu 2018, "Applying
  the delta method in metric analytics", KDD '18)::

      Var ≈ s_t² / (c̄² n_t) + s_c² t̄² / (c̄⁴ n_c)

  with the same Welch degrees of freedom (as GrowthBook's relative ``TwoSidedTTest``).
* CUPED (Deng, Xu, Kohavi & Walker 2013, "Improving the sensitivity of online controlled
  experiments by utilizing pre-experiment data", WSDM '13): Y - θ(X - X̄) with θ the pooled
  within-arm cov(X, Y)/var(X); the variance falls by the factor 1 - rho²(X, Y).
* Sample-ratio mismatch: Pearson's chi-square goodness of fit of the exposure counts to
  the design weights, flagged at p < 0.001 (Fabijan et al. 2019, "Diagnosing sample ratio
  mismatch in online controlled experiments", KDD '19).
* Multiplicity: Holm (1979) step-down and Benjamini-Hochberg (1995) step-up adjusted
  p-values, as R ``p.adjust`` and ``statsmodels.stats.multitest.multipletests``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.stats import chi2 as chi2_dist
from scipy.stats import t as t_dist

from .sequential import (
    METHOD_NAMES,
    SequentialConfig,
    asymptotic_cs_halfwidth,
    asymptotic_cs_p_value,
    default_msprt_tau2,
    msprt_halfwidth,
    msprt_p_value,
)
from .summary import ArmSummary

__all__ = ["SRM", "Comparison", "adjust_p_values", "compare", "srm_test"]

Kind = Literal["mean", "proportion"]
_DEFAULT_SEQUENTIAL = SequentialConfig()


def not_estimable(reason: str) -> dict[str, Any]:
    """The JSON form of a part that cannot be estimated on this data."""
    return {"estimable": False, "reason": reason}


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Comparison:
    """One treatment arm against the control on one metric.

    Each part (``absolute``, ``relative``, ``sequential``, ``cuped``) is a JSON-ready dict,
    either with its numbers or ``{"estimable": False, "reason": ...}``; never NaN."""

    arm: str
    control: str
    kind: str
    method: str
    alpha: float
    sides: int
    absolute: dict[str, Any]
    relative: dict[str, Any]
    sequential: dict[str, Any] | None
    cuped: dict[str, Any] | None
    n: int = 0
    higher_is_better: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def estimable(self) -> bool:
        return bool(self.absolute.get("estimable"))

    def interval(self, *, relative: bool = False, sequential: bool = True
                 ) -> tuple[float | None, float | None] | None:
        """The (1 - alpha) interval to act on: the sequential one when there is one (and
        ``sequential``), else the fixed-horizon one; None when not estimable."""
        part: dict[str, Any] | None
        if sequential and self.sequential is not None:
            part = self.sequential.get("relative") if relative else self.sequential
        else:
            part = self.relative if relative else self.absolute
        if not part or not part.get("estimable"):
            return None
        lo, hi = part["ci"]
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        def copy(d: dict[str, Any] | None) -> dict[str, Any] | None:
            if d is None:
                return None
            return {k: (list(v) if isinstance(v, list) else copy(v) if isinstance(v, dict)
                        else v) for k, v in d.items()}

        return {"arm": self.arm, "control": self.control, "kind": self.kind,
                "method": self.method, "alpha": self.alpha, "sides": self.sides,
                "n": self.n, "absolute": copy(self.absolute),
                "relative": copy(self.relative), "sequential": copy(self.sequential),
                "cuped": copy(self.cuped)}


def _interval(estimate: float, half: float, sides: int, upper_side: bool
              ) -> list[float | None]:
    if sides == 2:
        return [_num(estimate - half), _num(estimate + half)]
    # One-sided: the bound on the side of the alternative; the other end is infinite.
    return [_num(estimate - half), None] if upper_side else [None, _num(estimate + half)]


def _t_part(estimate: float, var: float, df: float, alpha: float, sides: int,
            greater: bool) -> dict[str, Any]:
    if not (math.isfinite(estimate) and math.isfinite(var) and var > 0):
        return not_estimable("the standard error is zero or not finite at this scale "
                             "(values too small or too large)")
    se = math.sqrt(var)
    if se == 0:
        return not_estimable("the standard error underflows to zero")
    t = estimate / se
    if sides == 2:
        p = 2.0 * float(t_dist.sf(abs(t), df))
        half = float(t_dist.isf(alpha / 2.0, df)) * se
    else:
        p = float(t_dist.sf(t, df)) if greater else float(t_dist.cdf(t, df))
        half = float(t_dist.isf(alpha, df)) * se
    half95 = float(t_dist.isf(0.025, df)) * se
    return {"estimable": True, "estimate": estimate, "se": se,
            "ci95": [_num(estimate - half95), _num(estimate + half95)],
            "ci": _interval(estimate, half, sides, greater), "level": 1.0 - alpha,
            "p_value": min(1.0, max(0.0, p)), "t": t, "df": _num(df)}


def _arm_variance(arm: ArmSummary, kind: Kind) -> float:
    if kind == "proportion":
        if not -1e-9 <= arm.mean <= 1.0 + 1e-9:
            raise ValueError(f"arm {arm.name!r}: a proportion's mean must lie in [0, 1], "
                             f"got {arm.mean:g}")
        p = min(1.0, max(0.0, arm.mean))
        return p * (1.0 - p)
    return arm.variance


def _welch_df(va: float, na: int, vb: float, nb: int) -> float:
    a, b = va / na, vb / nb
    denom = a * a / (na - 1) + b * b / (nb - 1)
    return (a + b) ** 2 / denom if denom > 0 else math.inf


def _cuped(control: ArmSummary, treatment: ArmSummary, kind: Kind,
           theta_given: float | None = None
           ) -> tuple[dict[str, Any], tuple[float, float, float, float] | None]:
    """θ and the adjusted (mean, variance) of each arm, or a not-estimable part."""
    arms = (control, treatment)
    if not all(a.has_covariate for a in arms):
        raise ValueError("CUPED needs the covariate's mean, sd and covariance in both arms")
    if any(a.n < 2 for a in arms):
        return not_estimable("CUPED needs at least 2 units in each arm"), None
    xs = [(a.n, float(a.x_mean or 0.0), float(a.x_sd or 0.0), float(a.cov_xy or 0.0))
          for a in arms]
    var_x = sum((n - 1) * sd * sd for n, _, sd, _ in xs)
    if var_x <= 0:
        return not_estimable("the covariate is constant, so it cannot reduce variance"), None
    theta = (sum((n - 1) * cov for n, _, _, cov in xs) / var_x if theta_given is None
             else float(theta_given))
    x_bar = sum(n * m for n, m, _, _ in xs) / sum(n for n, _, _, _ in xs)
    out: list[float] = []
    for a, (_, mx, sx, cov) in zip(arms, xs, strict=True):
        vy = _arm_variance(a, kind)
        adj_var = max(0.0, vy + theta * theta * sx * sx - 2.0 * theta * cov)
        out += [a.mean - theta * (mx - x_bar), adj_var]
    return {"estimable": True, "theta": theta}, (out[0], out[1], out[2], out[3])


def compare(control: ArmSummary, treatment: ArmSummary, *, kind: Kind = "mean",
            alpha: float = 0.05, sides: int = 2, cuped: bool = False,
            sequential: SequentialConfig | None = _DEFAULT_SEQUENTIAL,
            higher_is_better: bool = True, cuped_theta: float | None = None) -> Comparison:
    """Compare ``treatment`` with ``control``: the absolute difference (Welch), the
    relative lift (delta method), optionally CUPED-adjusted, with the always-valid interval
    of ``sequential`` beside them. One-sided designs (``sides=1``) test that the treatment
    is better (higher when ``higher_is_better``). Raises ValueError for an arm with no
    units or bad parameters; what the data cannot support is marked not estimable.

    With CUPED the relative lift divides the adjusted difference by the unadjusted
    control mean, with the delta-method variance on the adjusted arm variances (as
    GrowthBook's regression adjustment); ``cuped_theta`` fixes theta instead of estimating it.
    """
    if kind not in ("mean", "proportion"):
        raise ValueError(f"kind must be 'mean' or 'proportion', got {kind!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides!r}")
    for arm in (control, treatment):
        if arm.n == 0:
            raise ValueError(f"arm {arm.name!r} has no units")
    if control.name == treatment.name:
        raise ValueError(f"cannot compare arm {control.name!r} with itself")
    greater = higher_is_better
    ma, mb = control.mean, treatment.mean
    va, vb = _arm_variance(control, kind), _arm_variance(treatment, kind)
    na, nb = control.n, treatment.n
    method = "Welch t" + (" (binomial variance)" if kind == "proportion" else "")

    cuped_part: dict[str, Any] | None = None
    if cuped:
        cuped_part, adjusted = _cuped(control, treatment, kind, cuped_theta)
        if adjusted is not None:
            raw_v = va / na + vb / nb
            ma, va, mb, vb = adjusted
            adj_v = va / na + vb / nb
            cuped_part["variance_reduction"] = (1.0 - adj_v / raw_v) if raw_v > 0 else None
            method += ", CUPED"

    reason: str | None = None
    small = [a.name for a in (control, treatment) if a.n < 2]
    if small:
        reason = f"arm {small[0]!r} has fewer than 2 units, so its variance is unknown"
    elif va / na + vb / nb <= 0:
        reason = ("zero variance in both arms (every value the same), so the difference "
                  "has no standard error")
    if reason is not None:
        absolute = not_estimable(reason)
        relative = not_estimable(reason)
        seq = None if sequential is None or sequential.method == "none" else {
            "method": sequential.method, **not_estimable(reason)}
        return Comparison(treatment.name, control.name, kind, method, alpha, sides,
                          absolute, relative, seq, cuped_part, na + nb, higher_is_better)

    var = va / na + vb / nb
    df = _welch_df(va, na, vb, nb)
    diff = mb - ma
    absolute = _t_part(diff, var, df, alpha, sides, greater)
    rel_var: float | None = None
    # The relative lift's denominator is the unadjusted control mean (CUPED changes only
    # the difference and the variances).
    ca, ct = control.mean, treatment.mean
    if ca == 0:
        relative = not_estimable("the control mean is 0, so a relative lift is undefined")
    else:
        try:
            rel_var = vb / (ca * ca * nb) + va * ct * ct / (ca ** 4 * na)
            rel = diff / ca
        except (ZeroDivisionError, OverflowError):
            rel_var, rel = math.inf, math.inf
        relative = _t_part(rel, rel_var, df, alpha, sides, greater)
        relative.pop("t", None)
        if relative["estimable"]:
            relative["method"] = "delta method"
        else:
            rel_var = None
    absolute.pop("t", None)
    if not absolute["estimable"]:
        seq = None if sequential is None or sequential.method == "none" else {
            "method": sequential.method, **absolute}
        return Comparison(treatment.name, control.name, kind, method, alpha, sides,
                          absolute, relative, seq, cuped_part, na + nb, higher_is_better)

    seq_part: dict[str, Any] | None = None
    if sequential is not None and sequential.method != "none":
        seq_part = _sequential(sequential, diff, var, rel_var, ca, na + nb, alpha, sides,
                               greater)
    return Comparison(treatment.name, control.name, kind, method, alpha, sides, absolute,
                      relative, seq_part, cuped_part, na + nb, higher_is_better)


def _sequential(config: SequentialConfig, diff: float, var: float, rel_var: float | None,
                control_mean: float, n: int, alpha: float, sides: int, greater: bool
                ) -> dict[str, Any]:
    # One-sided designs take the matching end of the two-sided sequence at 2alpha.
    a = alpha if sides == 2 else min(0.5, 2.0 * alpha)
    tuning = config.tuning

    def tau2(v: float, level_alpha: float, scale: float) -> float:
        if config.msprt_tau is not None:
            return (config.msprt_tau / scale) ** 2
        return float(default_msprt_tau2(v, n, level_alpha, tuning))

    def half(v: float, level_alpha: float, scale: float) -> float:
        if config.method == "asymptotic-cs":
            return float(asymptotic_cs_halfwidth(v, n, level_alpha, tuning))
        return float(msprt_halfwidth(v, tau2(v, level_alpha, scale), level_alpha))

    def p_value(estimate: float, v: float, scale: float) -> float:
        if config.method == "asymptotic-cs":
            p = float(asymptotic_cs_p_value(estimate, v, n, a, tuning))
        else:
            p = float(msprt_p_value(estimate, v, tau2(v, a, scale)))
        if sides == 1:
            p = min(1.0, p / 2.0) if (estimate > 0) == greater and estimate != 0 else 1.0
        return p

    def part(estimate: float, v: float, scale: float = 1.0) -> dict[str, Any]:
        h95 = half(v, 0.05, scale)
        return {"estimable": True, "estimate": estimate,
                "ci95": [_num(estimate - h95), _num(estimate + h95)],
                "ci": _interval(estimate, half(v, a, scale), sides, greater),
                "level": 1.0 - alpha, "p_value": p_value(estimate, v, scale)}

    out: dict[str, Any] = {"method": config.method, "description": METHOD_NAMES[
        config.method], "scale": "absolute", "tuning_n": tuning, **part(diff, var)}
    if config.method == "msprt":
        out["tau"] = math.sqrt(tau2(var, a, 1.0))
    out["relative"] = (part(diff / control_mean, rel_var, abs(control_mean))
                       if rel_var is not None
                       else not_estimable("the control mean is 0"))
    return out


@dataclass(frozen=True)
class SRM:
    """A sample-ratio-mismatch check: observed vs expected units per arm."""

    p_value: float
    chi2: float
    flagged: bool
    observed: list[int]
    expected: list[float]
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {"p_value": self.p_value, "chi2": self.chi2, "flagged": self.flagged,
                "observed": list(self.observed), "expected": list(self.expected),
                "threshold": self.threshold,
                "method": "chi-square goodness of fit to the design weights"}


def srm_test(observed: Sequence[int], weights: Sequence[float] | None = None,
             threshold: float = 0.001) -> SRM:
    """Pearson's chi-square test of the units per arm against the design ``weights``
    (equal when None), flagged when p < ``threshold``."""
    obs = [int(o) for o in observed]
    k = len(obs)
    if k < 2:
        raise ValueError("a sample-ratio check needs at least 2 arms")
    if any(o < 0 for o in obs):
        raise ValueError("unit counts must be >= 0")
    total = sum(obs)
    if total == 0:
        raise ValueError("no units in any arm")
    if weights is None:
        w = np.full(k, 1.0 / k)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (k,):
            raise ValueError(f"{k} arms but {w.size} weights")
        if not np.all(np.isfinite(w)) or np.any(w <= 0):
            raise ValueError("weights must be positive numbers")
        w = w / w.sum()
    expected = total * w
    stat = float(np.sum((np.asarray(obs) - expected) ** 2 / expected))
    p = float(chi2_dist.sf(stat, k - 1))
    return SRM(p, stat, p < threshold, obs, [float(e) for e in expected], threshold)


def adjust_p_values(p: Sequence[float] | np.ndarray,
                    method: Literal["holm", "bh"]) -> np.ndarray:
    """Holm's step-down (family-wise error) or Benjamini-Hochberg's step-up (false
    discovery rate) adjusted p-values, in the input order."""
    arr = np.asarray(p, dtype=float).ravel()
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1):
        raise ValueError("p-values must be numbers in [0, 1]")
    if method not in ("holm", "bh"):
        raise ValueError(f"unknown correction {method!r}; use holm or bh")
    m = arr.size
    if m == 0:
        return arr
    order = np.argsort(arr, kind="mergesort")
    ranked = arr[order]
    ranks = np.arange(1, m + 1)
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - ranks + 1) * ranked))
    else:
        adj = np.minimum.accumulate(np.minimum(1.0, m / ranks * ranked)[::-1])[::-1]
    out = np.empty(m)
    out[order] = adj
    return out
