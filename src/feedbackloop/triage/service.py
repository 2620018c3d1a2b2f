"""Routing feedback: project rules first, then a classifier trained on what people routed,
a human queue for what the classifier is unsure of, and escalation to the role on duty.

Candidates are the feedback items not triaged yet that are negative (a binary ``false``;
an ordinal or numeric value below the middle of its scale) or carry words (a comment, a
correction, or a text signal). Each becomes one ``triage_items`` row::

    rule matched ───────────────► routed  (method rule, confidence 1)
    classifier ≥ threshold ─────► routed  (method classifier, its calibrated confidence)
    classifier < threshold, or
    no classifier yet ──────────► queued  (suggested route kept) ──human──► routed
    escalating rule, or route in
    the policy's escalation routes ► escalated (to the policy's role) ──that role──► resolved

Nothing the automation decides resolves an escalated item: only a person holding the role
on duty (or an admin) does, with a note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from ..capture.prepare import checked_text
from ..capture.projects import Project, get_project, list_signals
from ..errors import Conflict, InvalidInput, NotFound, PermissionDenied
from ..governance import audit
from ..stats.estimate import NotEstimable
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    feedback,
    interactions,
    projects,
    signals,
    triage_items,
    triage_rules,
)
from .classifier import RouteClassifier, item_text
from .rules import ROUTES, check_conditions, check_route, matches

__all__ = [
    "DEFAULT_THRESHOLD",
    "ITEM_STATUSES",
    "Rule",
    "TriageItem",
    "add_rule",
    "delete_rule",
    "escalation_criteria",
    "escalation_policy",
    "get_item",
    "get_threshold",
    "list_items",
    "list_rules",
    "negative",
    "negative_or_commented",
    "resolve_item",
    "route_item",
    "run_triage",
    "set_threshold",
    "status_counts",
]

DEFAULT_THRESHOLD = 0.6
DEFAULT_ESCALATE_TO = "maintainer"
DEFAULT_ESCALATION_ROUTES = ("safety", "privacy")
ITEM_STATUSES = ("routed", "queued", "escalated", "resolved")
# The project's triage settings ride in one reserved rule row (no project settings table
# holds them); it never matches anything and is left out of rule listings.
SETTINGS_RULE = ":settings"
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.:@+-]{0,99}")
_MAX_TEXT = 10_000
RUN_LIMIT = 20_000


@dataclass(frozen=True)
class Rule:
    id: int
    name: str
    position: int
    route: str
    conditions: dict[str, Any]
    escalate: bool
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "position": self.position,
                "route": self.route, "conditions": self.conditions,
                "escalate": self.escalate, "created_by": self.created_by,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class TriageItem:
    id: int
    feedback_id: int
    feedback_client_id: str
    signal: str
    value: Any
    comment: str | None
    correction: str | None
    route: str | None
    suggested_route: str | None
    confidence: float | None
    method: str
    rule: str | None
    status: str
    escalated_to: str | None
    reason: str | None
    decided_by: str | None
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "feedback_id": self.feedback_id,
                "feedback_client_id": self.feedback_client_id, "signal": self.signal,
                "value": self.value, "comment": self.comment, "correction": self.correction,
                "route": self.route, "suggested_route": self.suggested_route,
                "confidence": self.confidence, "method": self.method, "rule": self.rule,
                "status": self.status, "escalated_to": self.escalated_to,
                "reason": self.reason, "decided_by": self.decided_by,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _text(value: Any, field: str, *, required: bool = False) -> str:
    return checked_text(value, field, _MAX_TEXT, required=required, none_as_empty=False)


# -- the role on duty ----------------------------------------------------------------------

def escalation_policy(conn: Connection, project: Project) -> dict[str, Any]:
    """``{"escalate_to": role, "escalation_routes": [...], "source": ...}`` from the
    project's risk policy (:func:`feedbackloop.governance.policy.policy_for`)."""
    from ..governance.policy import policy_for

    pol = policy_for(conn, project)
    return {"escalate_to": str(pol.get("escalate_to") or DEFAULT_ESCALATE_TO),
            "escalation_routes": list(pol.get("escalation_routes")
                                      or DEFAULT_ESCALATION_ROUTES),
            "source": f"risk policy, {pol.get('risk_tier', project.risk_tier)} tier "
                      f"({pol.get('source', 'defaults')})"}


# -- rules -----------------------------------------------------------------------------------

def _rule(row: Any) -> Rule:
    return Rule(id=row.id, name=row.name, position=row.position, route=row.route,
                conditions=row.conditions, escalate=bool(row.escalate),
                created_by=row.created_by,
                created_at=as_utc(row.created_at))  # type: ignore[arg-type]


def list_rules(conn: Connection, project: Project | str) -> list[Rule]:
    """The project's rules in the order they are tried."""
    p = _project(conn, project)
    r = triage_rules
    rows = conn.execute(select(r).where(r.c.project_id == p.id, r.c.name != SETTINGS_RULE)
                        .order_by(r.c.position, r.c.id))
    return [_rule(row) for row in rows]


def add_rule(store: Store, project: Project | str, name: str, route: str,
             conditions: dict[str, Any], *, escalate: bool = False,
             position: int | None = None, actor: str = "") -> Rule:
    """A new rule, tried after the existing ones unless ``position`` says otherwise."""
    if not isinstance(name, str) or not _RULE_NAME.fullmatch(name):
        raise InvalidInput("a rule name is 1-100 letters, digits, spaces or _ . : @ + -, "
                           f"starting with a letter or digit, not {name!r}", field="name")
    check_route(route)
    if not isinstance(escalate, bool):
        raise InvalidInput("escalate must be true or false", field="escalate")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int)
                                 or not 0 <= position <= 1_000_000):
        raise InvalidInput("position must be a whole number 0-1000000", field="position")
    with store.transaction() as conn:
        p = _project(conn, project)
        checked = check_conditions(conditions,
                                   signals={s.name for s in list_signals(conn, p.id)})
        r = triage_rules
        if conn.execute(select(r.c.id).where(r.c.project_id == p.id, r.c.name == name)
                        ).first() is not None:
            raise Conflict(f"a triage rule named {name!r} exists already in project "
                           f"{p.name!r}", field="name")
        if position is None:
            top = conn.execute(select(func.max(r.c.position)).where(
                r.c.project_id == p.id, r.c.name != SETTINGS_RULE)).scalar()
            position = 10 if top is None else int(top) + 10
        new_id = int(conn.execute(r.insert().values(
            project_id=p.id, name=name, position=position, route=route, conditions=checked,
            escalate=escalate, created_by=actor[:100], created_at=utcnow(),
        )).inserted_primary_key[0])  # type: ignore[index]
        audit.record(conn, actor=actor, action="triage_rule.create",
                     entity_kind="triage_rule", entity_id=new_id, project_id=p.id,
                     after={"name": name, "route": route, "conditions": checked,
                            "escalate": escalate, "position": position})
        return _rule(conn.execute(select(r).where(r.c.id == new_id)).one())


def delete_rule(store: Store, project: Project | str, name: str, *, actor: str = "",
                reason: str = "") -> None:
    """Remove a rule; items it routed keep their route (their rule link is cleared)."""
    reason = _text(reason, "reason")
    with store.transaction() as conn:
        p = _project(conn, project)
        r = triage_rules
        row = conn.execute(select(r).where(r.c.project_id == p.id, r.c.name == name,
                                           r.c.name != SETTINGS_RULE)).first()
        if row is None:
            raise NotFound(f"no triage rule {name!r} in project {p.name!r}", field="name")
        before = _rule(row).to_dict()
        conn.execute(triage_items.update().where(triage_items.c.rule_id == row.id)
                     .values(rule_id=None))
        conn.execute(r.delete().where(r.c.id == row.id))
        audit.record(conn, actor=actor, action="triage_rule.delete",
                     entity_kind="triage_rule", entity_id=row.id, project_id=p.id,
                     before=before, reason=reason or None)


def get_threshold(conn: Connection, project: Project | str) -> float:
    """The confidence below which a classified item waits for a human (default 0.6)."""
    p = _project(conn, project)
    r = triage_rules
    row = conn.execute(select(r.c.conditions).where(r.c.project_id == p.id,
                                                    r.c.name == SETTINGS_RULE)).first()
    if row is None:
        return DEFAULT_THRESHOLD
    return float((row.conditions or {}).get("threshold", DEFAULT_THRESHOLD))


def set_threshold(store: Store, project: Project | str, threshold: float, *,
                  actor: str = "") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
            or not 0.0 <= float(threshold) <= 1.0:
        raise InvalidInput(f"threshold must be between 0 and 1, not {threshold!r}",
                           field="threshold")
    with store.transaction() as conn:
        p = _project(conn, project)
        before = get_threshold(conn, p)
        r = triage_rules
        found = conn.execute(select(r.c.id).where(r.c.project_id == p.id,
                                                  r.c.name == SETTINGS_RULE)).first()
        if found is None:
            conn.execute(r.insert().values(
                project_id=p.id, name=SETTINGS_RULE, position=-1, route="other",
                conditions={"threshold": float(threshold)}, escalate=False,
                created_by=actor[:100], created_at=utcnow()))
        else:
            conn.execute(r.update().where(r.c.id == found.id)
                         .values(conditions={"threshold": float(threshold)}))
        audit.record(conn, actor=actor, action="triage.settings", entity_kind="project",
                     entity_id=p.id, project_id=p.id, before={"threshold": before},
                     after={"threshold": float(threshold)})
    return float(threshold)


def escalation_criteria(conn: Connection, project: Project | str) -> dict[str, Any]:
    """What escalates in this project, in words: the rules that escalate, the routes the
    policy escalates, and who is on duty."""
    p = _project(conn, project)
    policy = escalation_policy(conn, p)
    rules = [r.to_dict() for r in list_rules(conn, p)
             if r.escalate or r.route in policy["escalation_routes"]]
    return {"escalate_to": policy["escalate_to"],
            "escalation_routes": policy["escalation_routes"], "source": policy["source"],
            "rules": rules, "threshold": get_threshold(conn, p),
            "note": "escalated items are never resolved by automation: only a person "
                    f"holding the role {policy['escalate_to']!r} (or an admin) resolves them"}


# -- candidates and the run ------------------------------------------------------------------

def negative() -> Any:
    """The SQL condition (over feedback joined to signals) for negative feedback: a binary
    false, or an ordinal or numeric value below the middle of its scale."""
    f, s = feedback, signals
    middle = (s.c.scale_min + s.c.scale_max) / 2.0
    return or_(
        and_(s.c.type == "binary", f.c.value_num == 0),
        and_(s.c.type.in_(("ordinal", "numeric")), s.c.scale_min.is_not(None),
             s.c.scale_max.is_not(None), f.c.value_num < middle))


def negative_or_commented() -> Any:
    """The SQL condition (over feedback joined to signals) for a triage candidate."""
    f, s = feedback, signals
    return or_(
        negative(),
        func.length(func.coalesce(f.c.comment, "")) > 0,
        func.length(func.coalesce(f.c.correction, "")) > 0,
        and_(s.c.type == "text", func.length(func.coalesce(f.c.value_text, "")) > 0),
    )


def _item_fields(row: Any) -> dict[str, Any]:
    comment = row.comment
    if not comment and row.signal_type == "text" and isinstance(row.value, str):
        comment = row.value
    return {"signal": row.signal, "value": row.value, "value_num": row.value_num,
            "source": row.source, "comment": comment, "correction": row.correction,
            "output": row.output, "attributes": row.attributes}


def _feedback_query() -> Any:
    f, s, i = feedback, signals, interactions
    return (select(f.c.id, f.c.value, f.c.value_num, f.c.source, f.c.comment,
                   f.c.correction, s.c.name.label("signal"), s.c.type.label("signal_type"),
                   i.c.output, i.c.attributes)
            .join(s, s.c.id == f.c.signal_id).join(i, i.c.id == f.c.interaction_id))


def _training(conn: Connection, p: Project) -> tuple[list[str], list[str]]:
    t = triage_items
    q = (_feedback_query().add_columns(t.c.route.label("routed_as"))
         .join(t, t.c.feedback_id == feedback.c.id)
         .where(t.c.project_id == p.id, t.c.method == "human", t.c.route.is_not(None)))
    texts, routes = [], []
    for row in conn.execute(q):
        texts.append(item_text(_item_fields(row)))
        routes.append(row.routed_as)
    return texts, routes


def run_triage(store: Store, project: Project | str, *, actor: str = "",
               limit: int = RUN_LIMIT) -> dict[str, Any]:
    """Route every candidate not triaged yet (up to ``limit``). Returns counts per status
    and route, the classifier used, and the ids escalated."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise InvalidInput("limit must be a whole number 1-1000000", field="limit")
    with store.read() as conn:
        p = _project(conn, project)
        rules = list_rules(conn, p)
        threshold = get_threshold(conn, p)
        policy = escalation_policy(conn, p)
        texts, routes = _training(conn, p)
    model: RouteClassifier | None = None
    classifier_info: dict[str, Any]
    try:
        model = RouteClassifier().fit(texts, routes)
        classifier_info = model.describe()
    except NotEstimable as exc:
        classifier_info = {"method": "none", "reason": str(exc), "n_train": len(texts)}
    counts = dict.fromkeys(ITEM_STATUSES, 0)
    by_route = dict.fromkeys(ROUTES, 0)
    escalated: list[int] = []
    with store.transaction() as conn:
        if conn.dialect.name == "postgresql":
            # Two runs at once would pick the same candidates; the second waits here and
            # then sees the first's items (SQLite's BEGIN IMMEDIATE serialises already).
            conn.execute(select(projects.c.id).where(projects.c.id == p.id).with_for_update())
        t = triage_items
        q = (_feedback_query().outerjoin(t, t.c.feedback_id == feedback.c.id)
             .where(feedback.c.project_id == p.id, t.c.id.is_(None), negative_or_commented())
             .order_by(feedback.c.id).limit(limit))
        rows = list(conn.execute(q))
        fields = [_item_fields(r) for r in rows]
        predicted = (model.predict([item_text(x) for x in fields])
                     if model is not None else [(None, None)] * len(rows))
        now = utcnow()
        values = []
        for row, item, (guess, confidence) in zip(rows, fields, predicted, strict=True):
            rule = next((r for r in rules if matches(r.conditions, item)), None)
            entry: dict[str, Any] = {
                "project_id": p.id, "feedback_id": row.id, "created_at": now,
                "updated_at": now, "decided_by": None, "escalated_to": None}
            if rule is not None:
                entry.update(route=rule.route, suggested_route=rule.route, confidence=1.0,
                             method="rule", rule_id=rule.id, status="routed",
                             reason=f"rule {rule.name!r}")
                escalate = rule.escalate or rule.route in policy["escalation_routes"]
            elif guess is not None and confidence is not None and confidence >= threshold:
                entry.update(route=guess, suggested_route=guess, confidence=confidence,
                             method="classifier", rule_id=None, status="routed",
                             reason=f"classifier, confidence {confidence:.2f} ≥ "
                                    f"{threshold:.2f}")
                escalate = guess in policy["escalation_routes"]
            else:
                entry.update(route=None, suggested_route=guess, confidence=confidence,
                             method="classifier", rule_id=None, status="queued",
                             reason=("no classifier yet: " + classifier_info.get("reason", "")
                                     if guess is None else
                                     f"classifier, confidence {confidence:.2f} < "
                                     f"{threshold:.2f}"))
                escalate = False
            if escalate:
                entry.update(status="escalated", escalated_to=policy["escalate_to"])
                entry["reason"] += f"; escalated to {policy['escalate_to']}"
            counts[entry["status"]] += 1
            if entry["route"] is not None:
                by_route[entry["route"]] += 1
            values.append(entry)
        if values:
            conn.execute(t.insert(), values)
        if values:
            ids = {r.feedback_id: r.id for r in conn.execute(
                select(t.c.id, t.c.feedback_id).where(
                    t.c.feedback_id.in_([v["feedback_id"] for v in values])))}
            escalated = [ids[v["feedback_id"]] for v in values if v["status"] == "escalated"]
        summary = {"items": len(values), "by_status": counts,
                   "by_route": {k: v for k, v in by_route.items() if v},
                   "threshold": threshold, "classifier": classifier_info,
                   "escalated_to": policy["escalate_to"], "escalated_items": escalated}
        if values:
            logged = {**summary, "escalated_items": escalated[:1000]}
            audit.record(conn, actor=actor or "system", action="triage.run",
                         entity_kind="project", entity_id=p.id, project_id=p.id,
                         after=logged)
    return summary


# -- items and the human queue ---------------------------------------------------------------

def _item_query() -> Any:
    t, f, s, r = triage_items, feedback, signals, triage_rules
    return (select(t, f.c.client_id.label("fb_client_id"), f.c.value, f.c.comment,
                   f.c.correction, s.c.name.label("signal"), r.c.name.label("rule_name"))
            .join(f, f.c.id == t.c.feedback_id).join(s, s.c.id == f.c.signal_id)
            .outerjoin(r, r.c.id == t.c.rule_id))


def _item(row: Any) -> TriageItem:
    return TriageItem(
        id=row.id, feedback_id=row.feedback_id, feedback_client_id=row.fb_client_id,
        signal=row.signal, value=row.value, comment=row.comment, correction=row.correction,
        route=row.route, suggested_route=row.suggested_route, confidence=row.confidence,
        method=row.method, rule=row.rule_name, status=row.status,
        escalated_to=row.escalated_to, reason=row.reason, decided_by=row.decided_by,
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=as_utc(row.updated_at))  # type: ignore[arg-type]


def list_items(conn: Connection, project: Project | str, *, status: str | None = None,
               route: str | None = None, limit: int = 200,
               offset: int = 0) -> list[TriageItem]:
    """Triaged items, oldest first (the queue is worked in arrival order)."""
    p = _project(conn, project)
    t = triage_items
    q = _item_query().where(t.c.project_id == p.id)
    if status is not None:
        if status not in ITEM_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(ITEM_STATUSES)}",
                               field="status")
        q = q.where(t.c.status == status)
    if route is not None:
        q = q.where(t.c.route == check_route(route))
    return [_item(r) for r in conn.execute(q.order_by(t.c.id).limit(limit).offset(offset))]


def status_counts(conn: Connection, project: Project | str) -> dict[str, int]:
    p = _project(conn, project)
    t = triage_items
    counts = dict.fromkeys(ITEM_STATUSES, 0)
    for status, n in conn.execute(select(t.c.status, func.count()).where(
            t.c.project_id == p.id).group_by(t.c.status)):
        counts[status] = int(n)
    return counts


def get_item(conn: Connection, project: Project | str, item_id: int) -> TriageItem:
    p = _project(conn, project)
    t = triage_items
    row = conn.execute(_item_query().where(t.c.project_id == p.id, t.c.id == item_id)).first()
    if row is None:
        raise NotFound(f"no triage item {item_id} in project {p.name!r}", field="item",
                       item=item_id)
    return _item(row)


def _locked_item(conn: Connection, p: Project, item_id: int) -> TriageItem:
    if isinstance(item_id, bool) or not isinstance(item_id, int):
        raise InvalidInput("item must be a whole number", field="item")
    if conn.dialect.name == "postgresql":
        conn.execute(select(triage_items.c.id).where(triage_items.c.id == item_id)
                     .with_for_update())
    return get_item(conn, p, item_id)


def route_item(store: Store, project: Project | str, item_id: int, route: str, *,
               actor: str, reason: str = "") -> TriageItem:
    """A person routes an item (from the queue, or re-routes one). Routing to an
    escalation route escalates it to the role on duty; an escalated item is not
    re-routed here (resolve it). The item then trains the classifier (method human)."""
    check_route(route)
    reason = _text(reason, "reason")
    with store.transaction() as conn:
        p = _project(conn, project)
        item = _locked_item(conn, p, item_id)
        if item.status == "escalated":
            raise Conflict(f"triage item {item_id} is escalated to {item.escalated_to}; "
                           "resolve it instead of re-routing", field="item",
                           status=item.status)
        policy = escalation_policy(conn, p)
        status, escalated_to = "routed", None
        if route in policy["escalation_routes"]:
            status, escalated_to = "escalated", policy["escalate_to"]
        conn.execute(triage_items.update().where(triage_items.c.id == item.id).values(
            route=route, method="human", confidence=None, status=status, rule_id=None,
            escalated_to=escalated_to, reason=reason or f"routed by {actor}",
            decided_by=actor[:100], updated_at=utcnow()))
        audit.record(conn, actor=actor, action="triage.route", entity_kind="triage_item",
                     entity_id=item.id, project_id=p.id,
                     before={"route": item.route, "status": item.status,
                             "method": item.method},
                     after={"route": route, "status": status, "method": "human",
                            "escalated_to": escalated_to}, reason=reason or None)
        return get_item(conn, p, item.id)


def resolve_item(store: Store, project: Project | str, item_id: int, *, actor: str,
                 actor_role: str | None, note: str) -> TriageItem:
    """The role on duty resolves an escalated item, with a note (required). Anyone else,
    automation included, is refused."""
    note = _text(note, "note", required=True)
    with store.transaction() as conn:
        p = _project(conn, project)
        item = _locked_item(conn, p, item_id)
        if item.status != "escalated":
            raise Conflict(f"triage item {item_id} is {item.status}; only an escalated item "
                           "is resolved", field="item", status=item.status)
        if actor_role not in (item.escalated_to, "admin"):
            raise PermissionDenied(
                f"triage item {item_id} is escalated to {item.escalated_to}; "
                f"{actor!r} (role {actor_role}) may not resolve it", field="item")
        conn.execute(triage_items.update().where(triage_items.c.id == item.id).values(
            status="resolved", reason=note, decided_by=actor[:100], updated_at=utcnow()))
        audit.record(conn, actor=actor, action="triage.resolve", entity_kind="triage_item",
                     entity_id=item.id, project_id=p.id,
                     before={"status": item.status, "escalated_to": item.escalated_to},
                     after={"status": "resolved", "role": actor_role}, reason=note)
        return get_item(conn, p, item.id)
