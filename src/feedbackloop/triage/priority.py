"""Priority of a finding: a RICE-like score (Intercom's Reach * Impact * Confidence / Effort,
McBride 2016) with the fix's risk as a discount, and the expected benefit of fixing it.

::

    priority = reach * severity * confidence / effort * risk_factor
    risk_factor = 1 - (risk - 1) / 8          (risk 1 → 1.0 … risk 5 → 0.5)

- reach: distinct users whose feedback is linked (distinct interactions when the feedback
  carries no user ids), counted from the data, never typed in;
- severity 1 (cosmetic) … 5 (critical): the impact on one user;
- confidence 0 … 1: how sure we are of reach and severity (RICE's confidence);
- effort > 0 person-days (a person's estimate), at most 10 000;
- risk 1 … 5: the risk that the fix itself breaks something (a risky change is worth
  less at equal benefit, but never less than half).

A finding without all four inputs has no priority yet ("not scored") and ranks last.

Expected benefit: the share of the project's negative feedback the finding accounts for
(its linked negative items / all negative items, Wilson 95% interval), times the
confidence that fixing it removes them.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InvalidInput
from ..stats.intervals import wilson_interval

__all__ = ["FORMULA", "check_inputs", "expected_benefit", "priority_score"]

FORMULA = ("priority = reach * severity * confidence / effort * (1 - (risk - 1)/8); reach = "
           "distinct users of the linked feedback (interactions when there are no user ids)")
MAX_EFFORT = 10_000.0


def _whole(value: Any, field: str, lo: int, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value != int(value) or not lo <= value <= hi:
        raise InvalidInput(f"{field} must be a whole number from {lo} to {hi}, not {value!r}",
                           field=field)
    return int(value)


def check_inputs(*, severity: Any = None, effort: Any = None, risk: Any = None,
                 confidence: Any = None) -> dict[str, Any]:
    """The people-given inputs, checked (None: not given); out of range names the field."""
    out: dict[str, Any] = {"severity": _whole(severity, "severity", 1, 5),
                           "risk": _whole(risk, "risk", 1, 5)}
    if effort is not None:
        if isinstance(effort, bool) or not isinstance(effort, int | float) \
                or not math.isfinite(effort) or not 0 < effort <= MAX_EFFORT:
            raise InvalidInput(f"effort must be more than 0 and at most {MAX_EFFORT:,.0f} "
                               f"person-days, not {effort!r}", field="effort")
        effort = float(effort)
    if confidence is not None:
        if isinstance(confidence, bool) or not isinstance(confidence, int | float) \
                or not math.isfinite(confidence) or not 0 <= confidence <= 1:
            raise InvalidInput(f"confidence must be between 0 and 1, not {confidence!r}",
                               field="confidence")
        confidence = float(confidence)
    out["effort"] = effort
    out["confidence"] = confidence
    return out


def priority_score(*, reach: int, severity: int | None, effort: float | None,
                   risk: int | None, confidence: float | None) -> float | None:
    """The score (see the module docstring), or None while an input is missing."""
    if severity is None or effort is None or risk is None or confidence is None:
        return None
    risk_factor = 1.0 - (risk - 1) / 8.0
    return float(reach) * severity * confidence / effort * risk_factor


def expected_benefit(linked_negative: int, total_negative: int,
                     confidence: float | None) -> dict[str, Any]:
    """Share of negative feedback this finding would remove, with its interval and method;
    "not estimable" (value None and a reason) without negative feedback or confidence."""
    share = wilson_interval(linked_negative, total_negative) if total_negative > 0 else None
    out: dict[str, Any] = {
        "linked_negative": linked_negative, "total_negative": total_negative,
        "share": share.to_dict() if share is not None else None,
        "method": "share of negative feedback linked (Wilson 95% interval) * confidence",
    }
    if share is None or share.value is None:
        out.update(value=None, ci95=None, reason="no negative feedback in the project yet")
    elif confidence is None:
        out.update(value=None, ci95=None, reason="confidence not given yet")
    else:
        lo, hi = share.ci if share.ci is not None else (share.value, share.value)
        out.update(value=share.value * confidence, ci95=[lo * confidence, hi * confidence],
                   reason=None)
    return out
