"""Human-in-the-loop policy by risk tier.

A project has a risk tier (``projects.risk_tier``); a component may have its own (a row of
``risk_policies`` with that component). The tier picks the defaults below; a row's
``overrides`` (JSON) replace single keys. What a policy says:

``signoffs``
    ``[{"capacity", "count"}]``: the approvals a release needs (capacities ``maintainer``,
    ``expert``, ``safety``, ``admin``).
``second_person``
    no self-approval: the gate's creator and the release's author may not sign it.
``automation_may_promote``
    a plain ``models promote --to live`` (and any script calling the registry) may put a
    version live without a gate; otherwise only ``release promote`` may.
``bandit_exploration_cap``
    the least share of traffic every arm of a bandit keeps: it caps how far a bandit may
    concentrate on the arm it currently believes best (a bandit's ``floor``).
``expert_before_exposure``
    no experiment or bandit may expose a version that is not live until an expert has
    approved a gate of that version.
``safety_review``
    the gate's criteria include a signed safety review (a sign-off of capacity ``safety``).
``escalate_to``
    the role on duty that escalated feedback goes to (triage).
``escalation_routes``
    the triage routes that are escalated at once, never handled by automation alone.

Resolution: the tier's defaults, then the project's overrides, then (when a component is
given and has a row) the component's tier defaults and its overrides.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from ..capture.projects import RISK_TIERS, Project, get_project
from ..errors import Conflict, FeedbackloopError, InvalidInput
from ..store import Store, as_utc, utcnow
from ..store.tables import gates, model_versions, projects, risk_policies, signoffs
from .audit import record

__all__ = [
    "CAPACITIES",
    "DEFAULTS",
    "KEYS",
    "ROLE_CAPACITIES",
    "ROUTES",
    "PolicyRefusal",
    "check_exposure",
    "check_overrides",
    "check_plain_promotion",
    "list_policies",
    "policy_for",
    "record_refusal",
    "set_policy",
]

CAPACITIES = ("maintainer", "expert", "safety", "admin")
ROLE_CAPACITIES: dict[str, tuple[str, ...]] = {
    "maintainer": ("maintainer",),
    "expert": ("expert", "safety"),
    # An administrator answers for the project but is not a domain expert.
    "admin": ("admin", "maintainer", "safety"),
}
"""Which capacities each project role may sign in."""
ROUTES = ("ranking", "generation_quality", "factuality", "content_policy", "safety",
          "privacy", "latency", "ux", "other")
_ESCALATION_ROLES = ("maintainer", "expert", "admin")

DEFAULTS: dict[str, dict[str, Any]] = {
    "low": {"signoffs": [{"capacity": "maintainer", "count": 1}],
            "second_person": False, "automation_may_promote": True,
            "bandit_exploration_cap": 0.01, "expert_before_exposure": False,
            "safety_review": False, "escalate_to": "maintainer",
            "escalation_routes": ["safety", "privacy"]},
    "medium": {"signoffs": [{"capacity": "maintainer", "count": 1}],
               "second_person": True, "automation_may_promote": False,
               "bandit_exploration_cap": 0.05, "expert_before_exposure": False,
               "safety_review": False, "escalate_to": "maintainer",
               "escalation_routes": ["safety", "privacy"]},
    "high": {"signoffs": [{"capacity": "expert", "count": 1},
                          {"capacity": "maintainer", "count": 1}],
             "second_person": True, "automation_may_promote": False,
             "bandit_exploration_cap": 0.10, "expert_before_exposure": True,
             "safety_review": True, "escalate_to": "admin",
             "escalation_routes": ["safety", "privacy"]},
}
"""The policy of each tier before overrides."""
KEYS = tuple(DEFAULTS["low"])


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"overrides.{key} must be true or false", field=f"overrides.{key}")
    return value


def check_overrides(raw: Any) -> dict[str, Any]:
    """Validated overrides (unknown keys and bad values name the key)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise InvalidInput("overrides must be an object", field="overrides")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in KEYS:
            raise InvalidInput(f"unknown policy key {key!r} (known: {', '.join(KEYS)})",
                               field=f"overrides.{key}")
        if key == "signoffs":
            if not isinstance(value, list) or len(value) > len(CAPACITIES):
                raise InvalidInput("overrides.signoffs must be a list of "
                                   '{"capacity", "count"} (one per capacity)',
                                   field="overrides.signoffs")
            seen: set[str] = set()
            clean = []
            for i, item in enumerate(value):
                where = f"overrides.signoffs[{i}]"
                if not isinstance(item, Mapping) or set(item) != {"capacity", "count"}:
                    raise InvalidInput(f'{where} must be {{"capacity", "count"}}',
                                       field=where)
                cap, count = item["capacity"], item["count"]
                if cap not in CAPACITIES:
                    raise InvalidInput(f"{where}.capacity must be one of "
                                       f"{', '.join(CAPACITIES)}, not {cap!r}",
                                       field=f"{where}.capacity")
                if cap in seen:
                    raise InvalidInput(f"{where}: capacity {cap!r} listed twice",
                                       field=f"{where}.capacity")
                seen.add(cap)
                if isinstance(count, bool) or not isinstance(count, int) \
                        or not 1 <= count <= 5:
                    raise InvalidInput(f"{where}.count must be a whole number 1-5",
                                       field=f"{where}.count")
                clean.append({"capacity": cap, "count": count})
            out[key] = clean
        elif key == "bandit_exploration_cap":
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or not 0.0 < value <= 0.5:
                raise InvalidInput("overrides.bandit_exploration_cap must be a number in "
                                   "(0, 0.5]", field=f"overrides.{key}")
            out[key] = float(value)
        elif key == "escalate_to":
            if value not in _ESCALATION_ROLES:
                raise InvalidInput(f"overrides.escalate_to must be one of "
                                   f"{', '.join(_ESCALATION_ROLES)}, not {value!r}",
                                   field=f"overrides.{key}")
            out[key] = value
        elif key == "escalation_routes":
            if not isinstance(value, list) or any(r not in ROUTES for r in value):
                raise InvalidInput(f"overrides.escalation_routes must be a list of routes "
                                   f"({', '.join(ROUTES)})", field=f"overrides.{key}")
            out[key] = sorted(set(value), key=ROUTES.index)
        else:
            out[key] = _bool(value, key)
    return out


def _row(conn: Connection, project_id: int, component: str) -> Any:
    t = risk_policies
    return conn.execute(select(t).where(t.c.project_id == project_id,
                                        t.c.component == component)).first()


def policy_for(conn: Connection, project: Project | str | int,
               component: str | None = None) -> dict[str, Any]:
    """The policy that applies to ``component`` (or to the project as a whole): every key
    of :data:`KEYS` plus ``risk_tier``, ``component`` and ``source`` (``tier defaults``,
    ``project``, ``component``)."""
    p = _project(conn, project)
    tier = p.risk_tier if p.risk_tier in DEFAULTS else "high"
    policy = copy.deepcopy(DEFAULTS[tier])
    source = "tier defaults"
    row = _row(conn, p.id, "")
    if row is not None:
        policy.update(copy.deepcopy(dict(row.overrides or {})))
        source = "project"
    if component:
        crow = _row(conn, p.id, component)
        if crow is not None:
            tier = crow.risk_tier if crow.risk_tier in DEFAULTS else "high"
            policy = copy.deepcopy(DEFAULTS[tier])
            if row is not None:
                policy.update(copy.deepcopy(dict(row.overrides or {})))
            policy.update(copy.deepcopy(dict(crow.overrides or {})))
            source = "component"
    return {"risk_tier": tier, "component": component or None, "source": source, **policy}


def list_policies(conn: Connection, project: Project | str | int) -> list[dict[str, Any]]:
    """The project's stored rows (the project's own first, component "" shown as None)."""
    p = _project(conn, project)
    t = risk_policies
    rows = conn.execute(select(t).where(t.c.project_id == p.id)
                        .order_by(t.c.component)).all()
    return [{"component": r.component or None, "risk_tier": r.risk_tier,
             "overrides": dict(r.overrides or {}), "updated_by": r.updated_by,
             "updated_at": as_utc(r.updated_at).isoformat()}  # type: ignore[union-attr]
            for r in rows]


def set_policy(store: Store, project: Project | str | int, *, component: str | None = None,
               risk_tier: str | None = None, overrides: Mapping[str, Any] | None = None,
               actor: str, reason: str | None = None) -> dict[str, Any]:
    """Set the tier and/or overrides of the project (``component`` None; the project's
    ``risk_tier`` changes with it) or of one component. ``overrides`` replaces the stored
    overrides as a whole (``{}`` clears them); None keeps them. Audited as ``policy.set``
    with the effective policy before and after."""
    if risk_tier is not None and risk_tier not in RISK_TIERS:
        raise InvalidInput(f"risk tier must be one of {', '.join(RISK_TIERS)}, not "
                           f"{risk_tier!r}", field="risk_tier")
    clean = None if overrides is None else check_overrides(overrides)
    if component is not None and (not isinstance(component, str) or not component
                                  or len(component) > 50):
        raise InvalidInput("component must be 1-50 characters", field="component")
    if reason is not None and len(reason) > 10_000:
        raise InvalidInput("reason longer than 10,000 characters", field="reason")
    key = component or ""
    with store.transaction() as conn:
        p = _project(conn, project)
        before = policy_for(conn, p, component)
        row = _row(conn, p.id, key)
        tier = risk_tier or (row.risk_tier if row is not None else
                             (before["risk_tier"] if component is None else p.risk_tier))
        stored = clean if clean is not None else \
            (dict(row.overrides or {}) if row is not None else {})
        now = utcnow()
        t = risk_policies
        if row is None:
            conn.execute(t.insert().values(project_id=p.id, component=key, risk_tier=tier,
                                           overrides=stored, updated_by=actor[:100],
                                           updated_at=now))
        else:
            conn.execute(t.update().where(t.c.id == row.id).values(
                risk_tier=tier, overrides=stored, updated_by=actor[:100], updated_at=now))
        if component is None and tier != p.risk_tier:
            conn.execute(projects.update().where(projects.c.id == p.id)
                         .values(risk_tier=tier))
        after = policy_for(conn, p.id, component)
        record(conn, actor=actor, action="policy.set", entity_kind="policy",
               entity_id=f"{p.name}:{key}" if key else p.name, project_id=p.id,
               before=before, after=after, reason=reason)
    return after


# -- checks other services call ------------------------------------------------------------

def check_plain_promotion(conn: Connection, project: Project | str | int, component: str,
                          to: str) -> None:
    """A version may go live outside ``release promote`` only where the policy lets
    automation promote (the low tier by default); otherwise :class:`Conflict` pointing at
    ``release promote``."""
    if to != "live":
        return
    p = _project(conn, project)
    policy = policy_for(conn, p, component)
    if not policy["automation_may_promote"]:
        raise PolicyRefusal(
            f"component {component!r} is under the {policy['risk_tier']}-risk policy: a "
            "version goes live only through a release with a passed gate and its sign-offs "
            "(feedbackloop release promote), not by a plain promotion",
            field="to", risk_tier=policy["risk_tier"], project_id=p.id)


class PolicyRefusal(Conflict):
    """An action the risk-tier policy does not allow (409); the service that raises it
    records the refusal in the audit log."""


def record_refusal(store: Store, error: FeedbackloopError, *, actor: str, action: str,
                   entity_kind: str, entity_id: Any, after: Mapping[str, Any]) -> None:
    """Write ``action`` (``<x>.refused``) with the error's message as its reason, in its own
    transaction (the refused one rolled back). The project comes from the error's
    details (``project_id``) when it names one."""
    with store.transaction() as conn:
        record(conn, actor=actor or "unknown", action=action, entity_kind=entity_kind,
               entity_id=entity_id, project_id=error.details.get("project_id"),
               after=dict(after), reason=error.message)


def check_exposure(conn: Connection, project: Project | str | int, component: str | None,
                   versions: Iterable[str | None], *, what: str) -> None:
    """Under ``expert_before_exposure``, every version in ``versions`` that is not live must
    have an expert's approval on a gate of that version before ``what`` (an experiment or
    bandit) may expose it; else :class:`Conflict` naming the version."""
    if component is None:
        return
    names = sorted({v for v in versions if v})
    if not names:
        return
    p = _project(conn, project)
    policy = policy_for(conn, p, component)
    if not policy["expert_before_exposure"]:
        return
    v = model_versions
    rows = conn.execute(select(v.c.id, v.c.name, v.c.status).where(
        v.c.project_id == p.id, v.c.component == component, v.c.name.in_(names))).all()
    for row in rows:
        if row.status == "live":
            continue
        approved = conn.execute(
            select(signoffs.c.id).join(gates, gates.c.id == signoffs.c.gate_id).where(
                gates.c.project_id == p.id, gates.c.model_version_id == row.id,
                signoffs.c.capacity == "expert", signoffs.c.decision == "approve")
        ).first()
        if approved is None:
            raise Conflict(
                f"{what} would expose version {row.name!r} of {component!r}, and the "
                f"{policy['risk_tier']}-risk policy requires an expert's sign-off before any "
                "exposure: create a gate for the version and have an expert approve it "
                "(feedbackloop gate sign --as expert)", field="version", version=row.name,
                risk_tier=policy["risk_tier"])
