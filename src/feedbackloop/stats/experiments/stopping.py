"""Stopping rules and guardrails: what an experiment's current numbers say to do.

Every rule reads the always-valid (sequential) interval when the comparison has one, so
checking them after every batch is safe; without one, interval-based rules wait for the
planned sample (a fixed-horizon interval is only valid once, at the end).

Rules (``stopping_status``), each reported with its reason:

* ``efficacy`` - the interval excludes 0 on the better side, or the last planned
  group-sequential look has |z| >= its Lan-DeMets boundary in the better direction.
* ``futility`` - the interval excludes 0 on the worse side (the treatment is worse, or the
  boundary is crossed in the worse direction), or, once at least ``futility_fraction``
  (half) of the planned sample is in, the interval's better end falls short of the MDE:
  the effect the experiment was planned to find is no longer plausible.
* ``guardrail`` - a guardrail's status is ``breached``.
* ``max_duration`` - the experiment has run ``max_days`` or more.
* ``max_sample`` - it has ``max_units`` units or more.

The recommendation is ``stop`` when any rule fired, else ``continue``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .frequentist import Comparison
from .group_sequential import Spending, group_sequential_bounds

__all__ = ["group_sequential_looks", "guardrail_status", "stopping_status"]

RULES = ("efficacy", "futility", "guardrail", "max_duration", "max_sample")


def _as_dict(comparison: Comparison | Mapping[str, Any]) -> Mapping[str, Any]:
    return comparison.to_dict() if isinstance(comparison, Comparison) else comparison


def _interval(comp: Mapping[str, Any], relative: bool, allow_fixed: bool
              ) -> tuple[float, float, str] | str:
    """(lo, hi, which) on the chosen scale, or the reason there is none."""
    scale = "relative" if relative else "absolute"
    seq = comp.get("sequential")
    if seq is not None:
        part = seq.get("relative") if relative else seq
        which = f"sequential ({seq.get('method')})"
    elif allow_fixed:
        part, which = comp.get(scale), "fixed-horizon"
    else:
        return ("no sequential interval, and a fixed-horizon interval is valid only at the "
                "planned sample")
    if not part or not part.get("estimable", False):
        return (part or {}).get("reason") or f"the {scale} difference is not estimable"
    lo, hi = part["ci"]
    return (-math.inf if lo is None else float(lo), math.inf if hi is None else float(hi),
            which)


def guardrail_status(comparison: Comparison | Mapping[str, Any], allowed_change: float, *,
                     higher_is_better: bool = True, relative: bool = False
                     ) -> dict[str, Any]:
    """Whether a guardrail metric moved the wrong way by more than ``allowed_change``
    (absolute, or relative to the control when ``relative``): ``ok`` (the interval rules
    out harm beyond it), ``at_risk`` (the interval includes such harm), ``breached`` (the
    whole interval lies beyond it), ``not_estimable``. Uses the sequential interval when
    there is one, else the fixed-horizon one."""
    if not allowed_change >= 0 or not math.isfinite(allowed_change):
        raise ValueError(f"allowed_change must be a number >= 0, got {allowed_change!r}")
    comp = _as_dict(comparison)
    found = _interval(comp, relative, allow_fixed=True)
    scale = "relative" if relative else "absolute"
    base: dict[str, Any] = {"allowed_change": allowed_change, "relative": relative,
                            "higher_is_better": higher_is_better}
    if isinstance(found, str):
        return {**base, "status": "not_estimable", "reason": found, "interval": None}
    lo, hi, which = found
    if higher_is_better:
        limit = -allowed_change
        breached, ok = hi < limit, lo >= limit
        harm = f"a fall of more than {allowed_change:g}"
    else:
        limit = allowed_change
        breached, ok = lo > limit, hi <= limit
        harm = f"a rise of more than {allowed_change:g}"
    status = "breached" if breached else "ok" if ok else "at_risk"
    reason = {"breached": f"the whole {which} interval shows {harm} ({scale})",
              "ok": f"the {which} interval rules out {harm} ({scale})",
              "at_risk": f"the {which} interval still includes {harm} ({scale})"}[status]
    return {**base, "status": status, "reason": reason,
            "interval": [None if math.isinf(lo) else lo, None if math.isinf(hi) else hi],
            "interval_method": which}


def group_sequential_looks(fractions: Sequence[float], z: Sequence[float], *,
                           alpha: float = 0.05, sides: int = 2,
                           spending: Spending = "obrien-fleming") -> list[dict[str, Any]]:
    """The Lan-DeMets boundary at each look taken so far (``fractions`` of the planned
    sample with their ``z`` statistics): ``[{"fraction", "boundary", "z", "crossed"}]``.
    A look past the planned sample is treated as the final one (fraction 1)."""
    if len(fractions) != len(z):
        raise ValueError(f"{len(fractions)} look fractions but {len(z)} z statistics")
    if not fractions:
        return []
    capped = [min(1.0, float(f)) for f in fractions]
    bounds = group_sequential_bounds(capped, alpha=alpha, sides=sides, spending=spending)
    out = []
    for f, b, zk in zip(capped, bounds, z, strict=True):
        zf = float(zk)
        crossed = abs(zf) >= b if sides == 2 else zf >= b
        out.append({"fraction": f, "boundary": b, "z": zf, "crossed": bool(crossed)})
    return out


def stopping_status(primary: Comparison | Mapping[str, Any], *, mde: float | None = None,
                    relative: bool = False, higher_is_better: bool = True,
                    guardrails: Sequence[Mapping[str, Any]] = (), n: int | None = None,
                    planned_total: int | None = None, elapsed_days: float | None = None,
                    max_days: float | None = None, max_units: int | None = None,
                    group_sequential: Mapping[str, Any] | None = None,
                    futility_fraction: float = 0.5) -> dict[str, Any]:
    """Which stopping rules fired for the primary comparison (see the module docstring):
    ``{"fired": [...], "recommendation": "stop" | "continue", "details": {rule: {"fired",
    "reason"}}}``. ``guardrails`` are :func:`guardrail_status` results (with an optional
    ``"metric"``); ``group_sequential`` is ``{"looks": group_sequential_looks(...)}``."""
    comp = _as_dict(primary)
    if n is None:
        n = int(comp.get("n") or 0)
    planned_reached = planned_total is not None and n >= planned_total
    details: dict[str, dict[str, Any]] = {}

    def note(rule: str, fired: bool, reason: str) -> None:
        if rule in details and details[rule]["fired"]:
            return
        details[rule] = {"fired": fired, "reason": reason}

    found = _interval(comp, relative, allow_fixed=planned_reached)
    scale = "relative" if relative else "absolute"
    if isinstance(found, str):
        note("efficacy", False, found)
        note("futility", False, found)
    else:
        lo, hi, which = found
        better_lo, better_hi = (lo, hi) if higher_is_better else (-hi, -lo)
        ci = f"[{lo:.4g}, {hi:.4g}]"
        if better_lo > 0:
            note("efficacy", True, f"the {which} interval {ci} ({scale}) excludes 0: the "
                                   "treatment is better")
        else:
            note("efficacy", False, f"the {which} interval {ci} ({scale}) includes 0")
        if better_hi < 0:
            note("futility", True, f"the {which} interval {ci} ({scale}) excludes 0: the "
                                   "treatment is worse")
        elif mde is not None and planned_total:
            enough = n >= futility_fraction * planned_total
            short = better_hi < abs(mde)
            if enough and short:
                note("futility", True, f"with {n:,} of {planned_total:,} planned units the "
                                       f"{which} interval {ci} ({scale}) rules out the "
                                       f"minimum detectable effect {abs(mde):g}")
            else:
                why = ("the interval still includes the minimum detectable effect" if enough
                       else f"futility is judged from {futility_fraction:.0%} of the "
                            "planned sample")
                note("futility", False, why)
        else:
            note("futility", False, "no minimum detectable effect and planned sample given")

    if group_sequential and group_sequential.get("looks"):
        last = group_sequential["looks"][-1]
        if last.get("crossed"):
            good = (last["z"] > 0) == higher_is_better
            rule = "efficacy" if good else "futility"
            note(rule, True, f"at {last['fraction']:.0%} of the planned sample z = "
                             f"{last['z']:.3f} crossed the group-sequential boundary "
                             f"{last['boundary']:.3f}"
                             + ("" if good else " in the worse direction"))

    breached = [g for g in guardrails if g.get("status") == "breached"]
    if breached:
        names = ", ".join(str(g.get("metric", "a guardrail")) for g in breached)
        note("guardrail", True, f"guardrail breached: {names}")
    else:
        note("guardrail", False, "no guardrail breached" if guardrails
             else "no guardrails")

    if max_days is not None and elapsed_days is not None:
        fired = elapsed_days >= max_days
        note("max_duration", fired, f"{elapsed_days:.1f} of at most {max_days:g} days")
    else:
        note("max_duration", False, "no maximum duration")
    if max_units is not None:
        note("max_sample", n >= max_units, f"{n:,} of at most {max_units:,} units")
    else:
        note("max_sample", False, "no maximum sample")

    fired_rules = [r for r in RULES if details[r]["fired"]]
    return {"fired": fired_rules, "recommendation": "stop" if fired_rules else "continue",
            "details": {r: details[r] for r in RULES},
            "planned_reached": planned_reached, "n": n, "planned_total": planned_total}
