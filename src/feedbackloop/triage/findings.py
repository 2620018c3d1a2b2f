"""Findings: a problem worth fixing, made from a theme or a hand-picked set of feedback,
with a status, an owner, its linked feedback, its priority inputs and score.

Statuses::

    new ──► triaged ──► in_progress ──► fixed ──► verified ──► closed
     │         │              ▲           │
     │         │              └───────────┘  (verification failed: back to work)
     └─────────┴──► closed  (won't fix; a reason is required)

Any other move is refused naming the two statuses. Reach (distinct users and interactions
of the linked feedback) is recomputed from the data whenever the links change; priority is
recomputed whenever an input changes (formula in :mod:`feedbackloop.triage.priority`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..capture.prepare import checked_text
from ..capture.projects import Project, get_project
from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..governance.provenance import link
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    datasets,
    feedback,
    finding_feedback,
    findings,
    interactions,
    provenance_links,
    signals,
    theme_members,
    themes,
)
from .priority import FORMULA, check_inputs, expected_benefit, priority_score
from .rules import check_route
from .service import negative

__all__ = [
    "STATUSES",
    "TRANSITIONS",
    "Finding",
    "create_finding",
    "finding_detail",
    "get_finding",
    "link_dataset",
    "link_feedback",
    "list_findings",
    "ranked_backlog",
    "set_status",
    "update_finding",
]

STATUSES = ("new", "triaged", "in_progress", "fixed", "verified", "closed")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("triaged", "closed"),
    "triaged": ("in_progress", "closed"),
    "in_progress": ("fixed",),
    "fixed": ("verified", "in_progress"),
    "verified": ("closed",),
    "closed": (),
}
MAX_LINKED = 50_000
_MAX_TEXT = 10_000


@dataclass(frozen=True)
class Finding:
    id: int
    project_id: int
    title: str
    description: str
    status: str
    owner: str | None
    route: str | None
    theme_id: int | None
    component: str | None
    reach_users: int
    reach_interactions: int
    severity: int | None
    effort: float | None
    risk: int | None
    confidence: float | None
    priority: float | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def reach(self) -> int:
        return self.reach_users or self.reach_interactions

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "description": self.description,
                "status": self.status, "owner": self.owner, "route": self.route,
                "theme_id": self.theme_id, "component": self.component,
                "reach": {"users": self.reach_users, "interactions": self.reach_interactions,
                          "used": self.reach},
                "severity": self.severity, "effort": self.effort, "risk": self.risk,
                "confidence": self.confidence, "priority": self.priority,
                "formula": FORMULA, "created_by": self.created_by,
                "created_at": self.created_at.isoformat(),
                "updated_at": self.updated_at.isoformat()}


_FIELDS = ("title", "description", "owner", "route", "component", "severity", "effort",
           "risk", "confidence")


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _finding(row: Any) -> Finding:
    return Finding(
        id=row.id, project_id=row.project_id, title=row.title, description=row.description,
        status=row.status, owner=row.owner, route=row.route, theme_id=row.theme_id,
        component=row.component, reach_users=row.reach_users,
        reach_interactions=row.reach_interactions, severity=row.severity,
        effort=row.effort, risk=row.risk, confidence=row.confidence,
        priority=row.priority, created_by=row.created_by,
        created_at=as_utc(row.created_at),  # type: ignore[arg-type]
        updated_at=as_utc(row.updated_at))  # type: ignore[arg-type]


def _text(value: Any, field: str, limit: int, *, required: bool = False) -> str:
    return checked_text(value, field, limit, required=required, none_as_empty=False)


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in changes if k not in _FIELDS]
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (known: {', '.join(_FIELDS)})",
                           field=unknown[0])
    out = {k: v for k, v in check_inputs(
        severity=changes.get("severity"), effort=changes.get("effort"),
        risk=changes.get("risk"), confidence=changes.get("confidence")).items()
        if k in changes}
    if "title" in changes:
        out["title"] = _text(changes["title"], "title", 200, required=True).strip()
    if "description" in changes:
        out["description"] = _text(changes["description"], "description", _MAX_TEXT)
    for key, limit in (("owner", 100), ("component", 50)):
        if key in changes:
            value = changes[key]
            out[key] = None if value in (None, "") else _text(value, key, limit).strip() or None
    if "route" in changes:
        out["route"] = None if changes["route"] in (None, "") else check_route(changes["route"])
    return out


def get_finding(conn: Connection, project: Project | str, finding_id: int) -> Finding:
    p = _project(conn, project)
    if isinstance(finding_id, bool) or not isinstance(finding_id, int):
        raise InvalidInput("a finding id is a whole number", field="finding")
    row = conn.execute(select(findings).where(findings.c.project_id == p.id,
                                              findings.c.id == finding_id)).first()
    if row is None:
        raise NotFound(f"no finding {finding_id} in project {p.name!r}", field="finding",
                       finding=finding_id)
    return _finding(row)


def _locked(conn: Connection, p: Project, finding_id: int) -> Finding:
    if conn.dialect.name == "postgresql" and isinstance(finding_id, int):
        conn.execute(select(findings.c.id).where(findings.c.id == finding_id)
                     .with_for_update())
    return get_finding(conn, p, finding_id)


def _check_feedback(conn: Connection, p: Project, ids: Any) -> list[int]:
    if not isinstance(ids, list | tuple) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InvalidInput("feedback must be a list of feedback ids", field="feedback")
    wanted = sorted(set(ids))
    if len(wanted) > MAX_LINKED:
        raise InvalidInput(f"at most {MAX_LINKED:,} feedback items per finding",
                           field="feedback")
    found: set[int] = set()
    for start in range(0, len(wanted), 1000):
        chunk = wanted[start:start + 1000]
        found.update(conn.execute(select(feedback.c.id).where(
            feedback.c.project_id == p.id, feedback.c.id.in_(chunk))).scalars())
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"no feedback {missing[0]} in project {p.name!r}", field="feedback",
                       feedback=missing[0])
    return wanted


def _reach(conn: Connection, finding_id: int) -> tuple[int, int]:
    ff, f, i = finding_feedback, feedback, interactions
    row = conn.execute(select(func.count(func.distinct(i.c.user_id)),
                              func.count(func.distinct(i.c.id)))
                       .select_from(ff.join(f, f.c.id == ff.c.feedback_id)
                                    .join(i, i.c.id == f.c.interaction_id))
                       .where(ff.c.finding_id == finding_id)).one()
    return int(row[0] or 0), int(row[1] or 0)


def _rescore(conn: Connection, finding_id: int) -> dict[str, Any]:
    """Recompute reach and priority from the stored inputs; returns the new values."""
    users, inters = _reach(conn, finding_id)
    row = conn.execute(select(findings).where(findings.c.id == finding_id)).one()
    score = priority_score(reach=users or inters, severity=row.severity, effort=row.effort,
                           risk=row.risk, confidence=row.confidence)
    values = {"reach_users": users, "reach_interactions": inters, "priority": score}
    conn.execute(findings.update().where(findings.c.id == finding_id).values(**values))
    return values


def _link_rows(conn: Connection, finding_id: int, ids: list[int]) -> int:
    have = set(conn.execute(select(finding_feedback.c.feedback_id).where(
        finding_feedback.c.finding_id == finding_id)).scalars())
    new = [i for i in ids if i not in have]
    if new:
        conn.execute(finding_feedback.insert(),
                     [{"finding_id": finding_id, "feedback_id": i} for i in new])
    return len(new)


def create_finding(store: Store, project: Project | str, *, title: str,
                   description: str = "", feedback_ids: list[int] | None = None,
                   theme_id: int | None = None, owner: str | None = None,
                   route: str | None = None, component: str | None = None,
                   severity: int | None = None, effort: float | None = None,
                   risk: int | None = None, confidence: float | None = None,
                   actor: str = "") -> Finding:
    """A new finding (status ``new``) from a theme (its members become the linked
    feedback), from hand-picked feedback ids, or both."""
    values = _checked({"title": title, "description": description, "owner": owner,
                       "route": route, "component": component, "severity": severity,
                       "effort": effort, "risk": risk, "confidence": confidence})
    if theme_id is not None and (isinstance(theme_id, bool) or not isinstance(theme_id, int)):
        raise InvalidInput("theme must be a theme id", field="theme")
    with store.transaction() as conn:
        p = _project(conn, project)
        ids = _check_feedback(conn, p, list(feedback_ids or []))
        if theme_id is not None:
            theme = conn.execute(select(themes.c.id).where(
                themes.c.project_id == p.id, themes.c.id == theme_id)).first()
            if theme is None:
                raise NotFound(f"no theme {theme_id} in project {p.name!r}", field="theme")
            ids = sorted(set(ids) | set(conn.execute(select(theme_members.c.feedback_id)
                                                     .where(theme_members.c.theme_id ==
                                                            theme_id)).scalars()))
        if not ids:
            raise InvalidInput("a finding needs linked feedback: a theme or feedback ids",
                               field="feedback")
        now = utcnow()
        new_id = int(conn.execute(findings.insert().values(
            project_id=p.id, status="new", theme_id=theme_id, created_by=actor[:100],
            created_at=now, updated_at=now, reach_users=0, reach_interactions=0,
            **{k: v for k, v in values.items()},
        )).inserted_primary_key[0])  # type: ignore[index]
        _link_rows(conn, new_id, ids)
        _rescore(conn, new_id)
        created = get_finding(conn, p, new_id)
        audit.record(conn, actor=actor, action="finding.create", entity_kind="finding",
                     entity_id=new_id, project_id=p.id,
                     after={**_state(created), "feedback": len(ids), "theme_id": theme_id})
        return created


def _state(f: Finding) -> dict[str, Any]:
    return {"title": f.title, "status": f.status, "owner": f.owner, "route": f.route,
            "component": f.component, "severity": f.severity, "effort": f.effort,
            "risk": f.risk, "confidence": f.confidence, "priority": f.priority,
            "reach_users": f.reach_users, "reach_interactions": f.reach_interactions}


def update_finding(store: Store, project: Project | str, finding_id: int, *,
                   actor: str = "", reason: str = "", **changes: Any) -> Finding:
    """Change title, description, owner, route, component or the priority inputs
    (severity, effort, risk, confidence); priority is recomputed. A closed finding is
    frozen."""
    values = _checked(changes)
    reason = _text(reason, "reason", _MAX_TEXT)
    if not values:
        raise InvalidInput("nothing to change", field="fields")
    with store.transaction() as conn:
        p = _project(conn, project)
        before = _locked(conn, p, finding_id)
        if before.status == "closed":
            raise Conflict(f"finding {finding_id} is closed; it cannot change",
                           field="finding", status="closed")
        conn.execute(findings.update().where(findings.c.id == before.id)
                     .values(updated_at=utcnow(), **values))
        _rescore(conn, before.id)
        after = get_finding(conn, p, before.id)
        old, new = _state(before), _state(after)
        changed = [k for k in new if old[k] != new[k]]
        audit.record(conn, actor=actor, action="finding.update", entity_kind="finding",
                     entity_id=before.id, project_id=p.id,
                     before={k: old[k] for k in changed}, after={k: new[k] for k in changed},
                     reason=reason or None)
        return after


def set_status(store: Store, project: Project | str, finding_id: int, status: str, *,
               actor: str = "", reason: str = "") -> Finding:
    """Move a finding along its status machine; an illegal move names from and to."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not {status!r}",
                           field="status")
    reason = _text(reason, "reason", _MAX_TEXT)
    with store.transaction() as conn:
        p = _project(conn, project)
        before = _locked(conn, p, finding_id)
        if status not in TRANSITIONS[before.status]:
            allowed = ", ".join(TRANSITIONS[before.status]) or "nothing (it is closed)"
            raise Conflict(f"finding {finding_id} cannot go from {before.status} to "
                           f"{status} (from {before.status}: {allowed})", field="status",
                           **{"from": before.status, "to": status})
        if status == "closed" and before.status in ("new", "triaged") and not reason.strip():
            raise InvalidInput("closing a finding that was never fixed needs a reason",
                               field="reason")
        conn.execute(findings.update().where(findings.c.id == before.id)
                     .values(status=status, updated_at=utcnow()))
        audit.record(conn, actor=actor, action="finding.status", entity_kind="finding",
                     entity_id=before.id, project_id=p.id, before={"status": before.status},
                     after={"status": status}, reason=reason or None)
        return get_finding(conn, p, before.id)


def link_feedback(store: Store, project: Project | str, finding_id: int,
                  feedback_ids: list[int], *, actor: str = "") -> Finding:
    """Add feedback to a finding; reach and priority follow."""
    with store.transaction() as conn:
        p = _project(conn, project)
        before = _locked(conn, p, finding_id)
        if before.status == "closed":
            raise Conflict(f"finding {finding_id} is closed; it cannot change",
                           field="finding", status="closed")
        ids = _check_feedback(conn, p, feedback_ids)
        if not ids:
            raise InvalidInput("give at least one feedback id", field="feedback")
        added = _link_rows(conn, before.id, ids)
        _rescore(conn, before.id)
        after = get_finding(conn, p, before.id)
        audit.record(conn, actor=actor, action="finding.link_feedback",
                     entity_kind="finding", entity_id=before.id, project_id=p.id,
                     before={"reach_users": before.reach_users,
                             "priority": before.priority},
                     after={"added": added, "reach_users": after.reach_users,
                            "priority": after.priority})
        return after


def link_dataset(store: Store, project: Project | str, finding_id: int, dataset: str | int,
                 *, version: int | None = None, actor: str = "") -> dict[str, Any]:
    """Record that a dataset addresses the finding (provenance ``finding → dataset``,
    relation ``addresses``). ``dataset`` is a name (latest version unless ``version``) or
    an id."""
    with store.transaction() as conn:
        p = _project(conn, project)
        f = _locked(conn, p, finding_id)
        q = select(datasets.c.id, datasets.c.name, datasets.c.version).where(
            datasets.c.project_id == p.id)
        if isinstance(dataset, int) and not isinstance(dataset, bool):
            q = q.where(datasets.c.id == dataset)
        elif isinstance(dataset, str) and dataset:
            q = q.where(datasets.c.name == dataset)
            if version is not None:
                q = q.where(datasets.c.version == version)
        else:
            raise InvalidInput("dataset must be a name or an id", field="dataset")
        row = conn.execute(q.order_by(datasets.c.version.desc()).limit(1)).first()
        if row is None:
            raise NotFound(f"no dataset {dataset!r} in project {p.name!r}", field="dataset")
        link_id = _provenance_link(conn, p.id, f.id, row.id, actor)
        return {"link": link_id, "finding": f.id, "dataset": {
            "id": row.id, "name": row.name, "version": row.version}}


def _provenance_link(conn: Connection, project_id: int, finding_id: int, dataset_id: int,
                     actor: str) -> int:
    return link(conn, project_id, "finding", finding_id, "dataset", dataset_id, "addresses",
                actor)


def list_findings(conn: Connection, project: Project | str, *, status: str | None = None,
                  open_only: bool = False) -> list[Finding]:
    """Findings ranked: highest priority first, unscored last, then oldest first."""
    p = _project(conn, project)
    q = select(findings).where(findings.c.project_id == p.id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
        q = q.where(findings.c.status == status)
    if open_only:
        q = q.where(findings.c.status != "closed")
    rows = [_finding(r) for r in conn.execute(q.order_by(findings.c.id))]
    return sorted(rows, key=lambda f: (f.priority is None, -(f.priority or 0.0), f.id))


def _negatives(conn: Connection, p: Project, finding_id: int | None) -> int:
    f, s = feedback, signals
    q = select(func.count()).select_from(f.join(s, s.c.id == f.c.signal_id)) \
        .where(f.c.project_id == p.id, negative())
    if finding_id is not None:
        q = q.where(f.c.id.in_(select(finding_feedback.c.feedback_id).where(
            finding_feedback.c.finding_id == finding_id)))
    return int(conn.execute(q).scalar() or 0)


def ranked_backlog(conn: Connection, project: Project | str, *,
                   include_closed: bool = False) -> dict[str, Any]:
    """The backlog: open findings ranked by priority, each with its expected benefit."""
    p = _project(conn, project)
    total = _negatives(conn, p, None)
    rows = []
    for rank, f in enumerate(list_findings(conn, p, open_only=not include_closed), 1):
        benefit = expected_benefit(_negatives(conn, p, f.id), total, f.confidence)
        rows.append({**f.to_dict(), "rank": rank, "expected_benefit": benefit,
                     "not_scored": None if f.priority is not None else
                     "priority needs severity, effort, risk and confidence"})
    return {"formula": FORMULA, "total_negative": total, "items": rows}


def finding_detail(conn: Connection, project: Project | str, finding_id: int, *,
                   feedback_limit: int = 200) -> dict[str, Any]:
    """One finding with its linked feedback (newest first, up to ``feedback_limit``), the
    datasets linked to it, its expected benefit and the moves its status allows."""
    p = _project(conn, project)
    f = get_finding(conn, p, finding_id)
    ff, fb, s, i = finding_feedback, feedback, signals, interactions
    linked = conn.execute(select(func.count()).where(ff.c.finding_id == f.id)).scalar() or 0
    rows = conn.execute(
        select(fb.c.id, fb.c.client_id, fb.c.value, fb.c.comment, fb.c.correction,
               fb.c.timestamp, s.c.name.label("signal"), i.c.client_id.label("interaction"),
               i.c.output)
        .join(ff, ff.c.feedback_id == fb.c.id).join(s, s.c.id == fb.c.signal_id)
        .join(i, i.c.id == fb.c.interaction_id).where(ff.c.finding_id == f.id)
        .order_by(fb.c.id.desc()).limit(feedback_limit))
    items = [{"id": r.id, "client_id": r.client_id, "signal": r.signal, "value": r.value,
              "comment": r.comment, "correction": r.correction,
              "interaction": r.interaction, "output": (r.output or "")[:500],
              "timestamp": as_utc(r.timestamp).isoformat()}  # type: ignore[union-attr]
             for r in rows]
    pl = provenance_links
    ds = [{"id": r.id, "name": r.name, "version": r.version, "relation": r.relation}
          for r in conn.execute(
              select(datasets.c.id, datasets.c.name, datasets.c.version, pl.c.relation)
              .join(pl, (pl.c.dst_id == datasets.c.id) & (pl.c.dst_kind == "dataset"))
              .where(pl.c.src_kind == "finding", pl.c.src_id == f.id)
              .order_by(datasets.c.id))]
    benefit = expected_benefit(_negatives(conn, p, f.id), _negatives(conn, p, None),
                               f.confidence)
    return {**f.to_dict(), "linked_feedback": int(linked), "feedback": items,
            "datasets": ds, "expected_benefit": benefit,
            "next_statuses": list(TRANSITIONS[f.status])}
