"""Stored A/B experiments: create (with a planned sample size), revise, start, stop, decide.

Statuses::

    draft ──start──► running ──stop──► stopped ──decide──► decided
      │                 │  └──────────decide─────────────────▲
      └──── revise with a new name (any of the three) ──► superseded

A draft's design may change in place. Once the experiment has started its design is
frozen: a changed design raises :class:`~feedbackloop.errors.Conflict` naming the first
field that differs, unless ``new_name`` is given; then the old experiment becomes
``superseded`` (and stops) and a new one records it in ``supersedes`` — running at once,
with a fresh salt, when the old one was running.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, func, select
from sqlalchemy.exc import IntegrityError

from ..capture.prepare import checked_text
from ..capture.projects import Project, Signal, get_project, list_signals
from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..governance.policy import check_exposure
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    experiment_decisions,
    experiments,
    feedback,
    interactions,
    model_versions,
)
from .design import changed_fields, design_hash, normalise_design, plan

__all__ = [
    "DECISIONS",
    "STATUSES",
    "Experiment",
    "create_experiment",
    "decide",
    "get_decision",
    "get_experiment",
    "list_experiments",
    "start_experiment",
    "stop_experiment",
    "update_design",
]

STATUSES = ("draft", "running", "stopped", "decided", "superseded")
DECISIONS = ("ship", "iterate", "abandon")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}")
TRAFFIC_DAYS = 14
MAX_TEXT = 10_000


@dataclass(frozen=True)
class Experiment:
    id: int
    project_id: int
    name: str
    kind: str
    status: str
    hypothesis: str
    component: str | None
    design: dict[str, Any]
    design_hash: str
    salt: str
    supersedes: str | None
    superseded_by: str | None
    seen_interaction_id: int
    seen_feedback_id: int
    stop_reason: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t is not None else None

        return {"id": self.id, "name": self.name, "kind": self.kind, "status": self.status,
                "hypothesis": self.hypothesis, "component": self.component,
                "design": self.design, "design_hash": self.design_hash,
                "supersedes": self.supersedes, "superseded_by": self.superseded_by,
                "stop_reason": self.stop_reason, "created_by": self.created_by,
                "created_at": iso(self.created_at), "started_at": iso(self.started_at),
                "stopped_at": iso(self.stopped_at)}


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"an experiment name is 1-100 letters, digits or _ . : @ + -, "
                           f"starting with a letter or digit, not {name!r}", field=field)
    return name


def _text(value: Any, field: str) -> str:
    return checked_text(value, field, MAX_TEXT, none_as_empty=False)


def _rows(conn: Connection, where: list[Any]) -> list[Experiment]:
    e = experiments
    old = e.alias("old")
    new = e.alias("new")
    q = (select(e, old.c.name.label("supersedes_name"), new.c.name.label("successor"))
         .outerjoin(old, old.c.id == e.c.supersedes_id)
         .outerjoin(new, new.c.supersedes_id == e.c.id)
         .where(*where).order_by(e.c.id))
    out = []
    for r in conn.execute(q):
        out.append(Experiment(
            id=r.id, project_id=r.project_id, name=r.name, kind=r.kind, status=r.status,
            hypothesis=r.hypothesis, component=r.component, design=r.design,
            design_hash=r.design_hash, salt=r.salt, supersedes=r.supersedes_name,
            superseded_by=r.successor, seen_interaction_id=r.seen_interaction_id,
            seen_feedback_id=r.seen_feedback_id, stop_reason=r.stop_reason,
            created_by=r.created_by, created_at=as_utc(r.created_at),  # type: ignore[arg-type]
            started_at=as_utc(r.started_at), stopped_at=as_utc(r.stopped_at)))
    return out


def get_experiment(conn: Connection, project: Project | str, name: str, *,
                   kind: str | None = None) -> Experiment:
    """One experiment by name (``kind`` "ab" or "bandit" to insist on one)."""
    p = _project(conn, project)
    found = _rows(conn, [experiments.c.project_id == p.id, experiments.c.name == name])
    if not found or (kind is not None and found[0].kind != kind):
        what = {"ab": "experiment", "bandit": "bandit"}.get(kind or "", "experiment")
        raise NotFound(f"no {what} {name!r} in project {p.name!r}", field="name",
                       experiment=name)
    return found[0]


def list_experiments(conn: Connection, project: Project | str, *, kind: str | None = None,
                     status: str | None = None) -> list[Experiment]:
    """The project's experiments (and bandits), oldest first."""
    p = _project(conn, project)
    where = [experiments.c.project_id == p.id]
    if kind is not None:
        where.append(experiments.c.kind == kind)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}",
                               field="status")
        where.append(experiments.c.status == status)
    return _rows(conn, where)


# -- planning from recent traffic --------------------------------------------------------

def _unit_column(unit: str) -> Any:
    return {"user": interactions.c.user_id, "session": interactions.c.session_id,
            "interaction": interactions.c.id}[unit]


def recent_traffic(conn: Connection, project: Project, design: dict[str, Any],
                   signals: dict[str, Signal], *, days: int = TRAFFIC_DAYS
                   ) -> dict[str, Any]:
    """Units a day over the last ``days`` days (distinct users, sessions or interactions,
    divided by the days the window actually covers) and the primary metric's mean and sd
    over the feedback of that window (per feedback row, not per unit)."""
    now = utcnow()
    since = now - timedelta(days=days)
    i = interactions
    row = conn.execute(select(func.count(func.distinct(_unit_column(design["unit"]))),
                              func.min(i.c.timestamp))
                       .where(i.c.project_id == project.id, i.c.timestamp >= since)).one()
    units, first = int(row[0] or 0), as_utc(row[1])
    span = 0.0 if first is None else (now - first).total_seconds() / 86400
    per_day = units / min(float(days), max(1.0, span)) if units else None
    primary = design["primary"]
    signal = signals[primary["metric"]]
    f = feedback
    value: Any = f.c.value_num
    if primary.get("success") is not None:
        value = case((f.c.value_text.is_(None), None),
                     (f.c.value_text == primary["success"], 1.0), else_=0.0)
    stats = conn.execute(select(func.count(value), func.avg(value), func.avg(value * value))
                         .where(f.c.project_id == project.id, f.c.signal_id == signal.id,
                                f.c.timestamp >= since)).one()
    n = int(stats[0] or 0)
    mean = float(stats[1]) if n else None
    sd = None
    if n >= 2 and mean is not None:
        var = (float(stats[2]) - mean * mean) * n / (n - 1)
        sd = math.sqrt(var) if var > 0 else None
    return {"units_per_day": per_day, "mean": mean, "sd": sd, "n_feedback": n,
            "days": days}


def _plan(conn: Connection, project: Project, design: dict[str, Any],
          signals: dict[str, Signal]) -> dict[str, Any]:
    traffic = recent_traffic(conn, project, design, signals)
    baseline, sd, source = design.get("baseline"), design.get("sd"), "design"
    if design["primary"]["kind"] == "proportion":
        if baseline is None and traffic["mean"] is not None:
            baseline, source = traffic["mean"], f"last {TRAFFIC_DAYS} days"
    else:
        if sd is None and traffic["sd"] is not None:
            sd, source = traffic["sd"], f"last {TRAFFIC_DAYS} days"
        if baseline is None and traffic["mean"] is not None:
            baseline = traffic["mean"]
    return plan(design, baseline=baseline, sd=sd, units_per_day=traffic["units_per_day"],
                source=source)


def _checked(conn: Connection, p: Project, raw: Any, component: str | None
             ) -> tuple[dict[str, Any], dict[str, Signal]]:
    signals = {s.name: s for s in list_signals(conn, p.id)}
    versions = None
    if component is not None:
        if not isinstance(component, str) or not component or len(component) > 50:
            raise InvalidInput("component must be 1-50 characters", field="component")
        versions = set(conn.execute(select(model_versions.c.name).where(
            model_versions.c.project_id == p.id,
            model_versions.c.component == component)).scalars())
        if not versions:
            raise InvalidInput(f"component {component!r} has no registered versions",
                               field="component")
    design = normalise_design(raw, signals=signals, versions=versions, component=component)
    design["planned"] = _plan(conn, p, design, signals)
    return design, signals


def _insert(conn: Connection, p: Project, name: str, design: dict[str, Any], *,
            hypothesis: str, component: str | None, created_by: str, salt: str | None,
            status: str = "draft", supersedes_id: int | None = None) -> int:
    taken = conn.execute(select(experiments.c.id).where(
        experiments.c.project_id == p.id, experiments.c.name == name)).first()
    if taken is not None:
        raise Conflict(f"an experiment or bandit named {name!r} exists already in project "
                       f"{p.name!r}", field="name", experiment=name)
    now = utcnow()
    new_id = int(conn.execute(experiments.insert().values(
        project_id=p.id, name=name, kind="ab", status=status, hypothesis=hypothesis,
        component=component, design=design, design_hash=design_hash(design),
        salt=salt or secrets.token_hex(8), supersedes_id=supersedes_id,
        seen_interaction_id=0, seen_feedback_id=0, created_by=created_by[:100],
        created_at=now, started_at=now if status == "running" else None,
    )).inserted_primary_key[0])  # type: ignore[index]
    audit.record(conn, actor=created_by or "system", action="experiment.create",
                 entity_kind="experiment", entity_id=new_id, project_id=p.id,
                 after={"name": name, "status": status, "component": component,
                        "design_hash": design_hash(design), "arms": design.get("arms"),
                        "primary": design.get("primary"), "supersedes_id": supersedes_id})
    return new_id


def create_experiment(store: Store, project: Project | str, name: str, *,
                      design: dict[str, Any], hypothesis: str = "",
                      component: str | None = None, created_by: str = "",
                      salt: str | None = None) -> Experiment:
    """A new draft experiment. The design is checked (errors name the field) and planned:
    sample size per arm and in total, and the expected duration at the project's traffic
    over the last 14 days (baseline rate or sd from that window unless the design gives
    them)."""
    check_name(name)
    hypothesis = _text(hypothesis, "hypothesis")
    if salt is not None and (not isinstance(salt, str) or not 1 <= len(salt) <= 64):
        raise InvalidInput("salt must be 1-64 characters", field="salt")
    try:
        with store.transaction() as conn:
            p = _project(conn, project)
            checked, _ = _checked(conn, p, design, component)
            new_id = _insert(conn, p, name, checked, hypothesis=hypothesis,
                             component=component, created_by=created_by, salt=salt)
            return _rows(conn, [experiments.c.id == new_id])[0]
    except IntegrityError:
        raise Conflict(f"an experiment named {name!r} exists already", field="name") from None


def _locked(conn: Connection, p: Project, name: str) -> Experiment:
    """The experiment read under a write lock (PostgreSQL: FOR UPDATE; SQLite's write
    transactions hold the database lock from BEGIN IMMEDIATE)."""
    e = experiments
    q = select(e.c.id).where(e.c.project_id == p.id, e.c.name == name)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    if conn.execute(q).first() is None:
        raise NotFound(f"no experiment {name!r} in project {p.name!r}", field="name",
                       experiment=name)
    return get_experiment(conn, p, name)


def _forget() -> None:
    from .assignment import clear_assignment_cache

    clear_assignment_cache()


def _ab(exp: Experiment) -> None:
    if exp.kind != "ab":
        raise InvalidInput(f"{exp.name!r} is a bandit; use the bandit commands",
                           field="name")


def update_design(store: Store, project: Project | str, name: str, design: dict[str, Any],
                  *, new_name: str | None = None, hypothesis: str | None = None,
                  created_by: str = "") -> Experiment:
    """Change a design. A draft changes in place. A started experiment's design is frozen:
    a different design raises Conflict naming the first changed field, unless
    ``new_name`` is given: then a new experiment with that name supersedes this one
    (which becomes ``superseded``) and is returned."""
    if new_name is not None:
        check_name(new_name, "new_name")
    if hypothesis is not None:
        hypothesis = _text(hypothesis, "hypothesis")
    with store.transaction() as conn:
        p = _project(conn, project)
        exp = _locked(conn, p, name)
        _ab(exp)
        checked, _ = _checked(conn, p, design, exp.component)
        if new_name is None:
            if exp.status != "draft":
                changed = changed_fields(exp.design, checked)
                if changed or (hypothesis is not None and hypothesis != exp.hypothesis):
                    field = changed[0] if changed else "hypothesis"
                    raise Conflict(
                        f"the design of {name!r} is frozen since it started ({exp.status}): "
                        f"{field!r} cannot change; open a new experiment that supersedes it "
                        "(new_name)", field=f"design.{field}" if changed else field,
                        experiment=name, changed=changed)
                return exp
            conn.execute(experiments.update().where(experiments.c.id == exp.id).values(
                design=checked, design_hash=design_hash(checked),
                hypothesis=exp.hypothesis if hypothesis is None else hypothesis))
            audit.record(conn, actor=created_by or "system", action="experiment.revise",
                         entity_kind="experiment", entity_id=exp.id, project_id=p.id,
                         before={"design_hash": design_hash(exp.design)},
                         after={"design_hash": design_hash(checked),
                                "changed": changed_fields(exp.design, checked)})
            return _rows(conn, [experiments.c.id == exp.id])[0]
        if exp.status in ("decided", "superseded"):
            raise Conflict(f"experiment {name!r} is {exp.status}; it cannot be superseded",
                           field="name", status=exp.status)
        if exp.status == "running":
            check_exposure(conn, p, exp.component,
                           [a.get("version") for a in checked["arms"]],
                           what=f"experiment {new_name!r}")
        now = utcnow()
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(
            status="superseded", stopped_at=exp.stopped_at or now,
            stop_reason=exp.stop_reason or f"superseded by {new_name}"))
        audit.record(conn, actor=created_by or "system", action="experiment.supersede",
                     entity_kind="experiment", entity_id=exp.id, project_id=p.id,
                     before={"status": exp.status},
                     after={"status": "superseded", "superseded_by": new_name})
        new_id = _insert(conn, p, new_name, checked,
                         hypothesis=exp.hypothesis if hypothesis is None else hypothesis,
                         component=exp.component, created_by=created_by, salt=None,
                         status="running" if exp.status == "running" else "draft",
                         supersedes_id=exp.id)
        successor = _rows(conn, [experiments.c.id == new_id])[0]
    _forget()
    return successor


def start_experiment(store: Store, project: Project | str, name: str, *,
                     actor: str = "system") -> Experiment:
    """draft → running: assignment opens and the design freezes."""
    with store.transaction() as conn:
        p = _project(conn, project)
        exp = _locked(conn, p, name)
        _ab(exp)
        if exp.status != "draft":
            raise Conflict(f"experiment {name!r} is {exp.status}; only a draft can start",
                           field="name", status=exp.status)
        check_exposure(conn, p, exp.component, [a.get("version") for a in exp.design["arms"]],
                       what=f"experiment {name!r}")
        conn.execute(experiments.update().where(experiments.c.id == exp.id)
                     .values(status="running", started_at=utcnow()))
        audit.record(conn, actor=actor, action="experiment.start", entity_kind="experiment",
                     entity_id=exp.id, project_id=p.id, before={"status": exp.status},
                     after={"status": "running", "design_hash": design_hash(exp.design)})
        started = _rows(conn, [experiments.c.id == exp.id])[0]
    _forget()
    return started


def stop_experiment(store: Store, project: Project | str, name: str,
                    reason: str = "", *, actor: str = "system") -> Experiment:
    """running → stopped: no more assignment; the data stays for analysis and decision."""
    reason = _text(reason, "reason")
    with store.transaction() as conn:
        p = _project(conn, project)
        exp = _locked(conn, p, name)
        if exp.status != "running":
            raise Conflict(f"experiment {name!r} is {exp.status}; only a running one can "
                           "stop", field="name", status=exp.status)
        conn.execute(experiments.update().where(experiments.c.id == exp.id)
                     .values(status="stopped", stopped_at=utcnow(), stop_reason=reason))
        audit.record(conn, actor=actor, action="experiment.stop", entity_kind="experiment",
                     entity_id=exp.id, project_id=p.id, before={"status": exp.status},
                     after={"status": "stopped"}, reason=reason or None)
        stopped = _rows(conn, [experiments.c.id == exp.id])[0]
    _forget()
    return stopped


def _decision_dict(row: Any) -> dict[str, Any]:
    return {"decision": row.decision, "arm": row.arm, "rationale": row.rationale,
            "decided_by": row.decided_by,
            "created_at": as_utc(row.created_at).isoformat()}  # type: ignore[union-attr]


def get_decision(conn: Connection, experiment_id: int, *,
                 with_analysis: bool = False) -> dict[str, Any] | None:
    """The experiment's (latest) decision, or None."""
    d = experiment_decisions
    row = conn.execute(select(d).where(d.c.experiment_id == experiment_id)
                       .order_by(d.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    out = _decision_dict(row)
    if with_analysis:
        out["analysis"] = row.analysis
    return out


def decide(store: Store, project: Project | str, name: str, decision: str, rationale: str,
           arm: str | None = None, decided_by: str = "") -> dict[str, Any]:
    """Record ship, iterate or abandon with its rationale and the analysis it was made on
    (refreshed first); a running experiment stops. ``ship`` names the arm shipped."""
    from .analysis import analyze
    from .refresh import refresh

    if decision not in DECISIONS:
        raise InvalidInput(f"decision must be one of {', '.join(DECISIONS)}, not "
                           f"{decision!r}", field="decision")
    rationale = _text(rationale, "rationale").strip()
    if not rationale:
        raise InvalidInput("a decision needs its rationale", field="rationale")
    with store.read() as conn:
        p = _project(conn, project)
        exp = get_experiment(conn, p, name)
    _ab(exp)
    names = [a["name"] for a in exp.design["arms"]]
    if arm is None and decision == "ship":
        raise InvalidInput(f"say which arm ships ({', '.join(names)})", field="arm")
    if arm is not None and arm not in names:
        raise InvalidInput(f"{arm!r} is not an arm of {name!r} ({', '.join(names)})",
                           field="arm")
    if exp.status not in ("running", "stopped"):
        raise Conflict(f"experiment {name!r} is {exp.status}; decisions are made on a "
                       "running or stopped experiment", field="name", status=exp.status)
    refresh(store, p, name)
    snapshot = analyze(store, p, name)
    with store.transaction() as conn:
        current = _locked(conn, p, name)
        if current.status not in ("running", "stopped"):
            raise Conflict(f"experiment {name!r} is {current.status} now", field="name",
                           status=current.status)
        now = utcnow()
        conn.execute(experiment_decisions.insert().values(
            experiment_id=exp.id, decision=decision, arm=arm, rationale=rationale,
            analysis=snapshot, decided_by=decided_by[:100], created_at=now))
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(
            status="decided", stopped_at=current.stopped_at or now,
            stop_reason=current.stop_reason or f"decided: {decision}"))
        audit.record(conn, actor=decided_by or "system", action="experiment.decide",
                     entity_kind="experiment", entity_id=exp.id, project_id=p.id,
                     before={"status": current.status},
                     after={"status": "decided", "decision": decision, "arm": arm},
                     reason=rationale)
        out = get_decision(conn, exp.id)
    _forget()
    assert out is not None
    return out
