"""Projects and their signals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..store import Store, as_utc, utcnow
from ..store.tables import projects, signals
from .prepare import SignalSpec, unstorable
from .redact import POLICIES
from .schema import SignalIn

__all__ = [
    "RISK_TIERS",
    "Project",
    "Signal",
    "create_project",
    "create_signal",
    "get_project",
    "get_signal",
    "list_projects",
    "list_signals",
    "signal_specs",
]

RISK_TIERS = ("low", "medium", "high")


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    description: str
    risk_tier: str
    redaction_policy: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "risk_tier": self.risk_tier, "redaction_policy": self.redaction_policy,
                "created_at": self.created_at.isoformat()}


@dataclass(frozen=True)
class Signal:
    id: int
    project_id: int
    name: str
    type: str
    scale_min: float | None
    scale_max: float | None
    labels: list[str] | None
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "scale_min": self.scale_min,
                "scale_max": self.scale_max, "labels": self.labels,
                "description": self.description}

    def spec(self) -> SignalSpec:
        return SignalSpec(self.id, self.name, self.type, self.scale_min, self.scale_max,
                          tuple(self.labels) if self.labels is not None else None)


def _project(row: Any) -> Project:
    return Project(row.id, row.name, row.description, row.risk_tier, row.redaction_policy,
                   as_utc(row.created_at))  # type: ignore[arg-type]


def _check_project_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name or ""):
        raise InvalidInput(
            "project name must be 1-100 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit", field="name")


def create_project(store: Store, name: str, *, description: str = "",
                   risk_tier: str = "medium", redaction_policy: str = "redact",
                   actor: str = "system") -> Project:
    _check_project_name(name)
    if risk_tier not in RISK_TIERS:
        raise InvalidInput(f"risk tier must be one of {', '.join(RISK_TIERS)}",
                           field="risk_tier")
    if redaction_policy not in POLICIES:
        raise InvalidInput(f"redaction policy must be one of {', '.join(POLICIES)}",
                           field="redaction_policy")
    if len(description) > 5000:
        raise InvalidInput("description longer than 5000 characters", field="description")
    _check_storable(description, "description")
    try:
        with store.transaction() as conn:
            new_id = conn.execute(projects.insert().values(
                name=name, description=description, risk_tier=risk_tier,
                redaction_policy=redaction_policy, created_at=utcnow())).inserted_primary_key
            pid = int(new_id[0])  # type: ignore[index]
            audit.record(conn, actor=actor, action="project.create", entity_kind="project",
                         entity_id=pid, project_id=pid,
                         after={"name": name, "risk_tier": risk_tier,
                                "redaction_policy": redaction_policy})
    except IntegrityError:
        raise Conflict(f"a project named {name!r} exists already", field="name") from None
    with store.read() as conn:
        return get_project(conn, int(new_id[0]))  # type: ignore[index]


def get_project(conn: Connection, key: str | int) -> Project:
    """A project by name or by id."""
    col = projects.c.id if isinstance(key, int) else projects.c.name
    row = conn.execute(select(projects).where(col == key)).first()
    if row is None:
        raise NotFound(f"no project {key!r}", field="project")
    return _project(row)


def list_projects(conn: Connection, ids: list[int] | None = None) -> list[Project]:
    q = select(projects).order_by(projects.c.name)
    if ids is not None:
        q = q.where(projects.c.id.in_(ids))
    return [_project(r) for r in conn.execute(q)]


def _signal(row: Any) -> Signal:
    return Signal(row.id, row.project_id, row.name, row.type, row.scale_min, row.scale_max,
                  row.labels, row.description)


def _check_storable(value: str, field: str) -> None:
    if unstorable(value):
        raise InvalidInput(f"{field} contains a NUL character or an unpaired surrogate",
                           field=field)


def create_signal(store: Store, project: Project, spec: SignalIn, *,
                  actor: str = "system") -> Signal:
    """Define a signal. Ordinal signals need a scale; categorical ones need labels."""
    _check_storable(spec.description, "description")
    for label in spec.labels or ():
        _check_storable(label, "labels")
    if spec.type == "ordinal":
        if spec.scale_min is None or spec.scale_max is None:
            raise InvalidInput("an ordinal signal needs scale_min and scale_max",
                               field="scale_min")
        if not (float(spec.scale_min).is_integer() and float(spec.scale_max).is_integer()):
            raise InvalidInput("an ordinal scale runs between whole numbers", field="scale_min")
    if spec.scale_min is not None and spec.scale_max is not None \
            and spec.scale_min >= spec.scale_max:
        raise InvalidInput("scale_min must be below scale_max", field="scale_max")
    if spec.type == "categorical":
        if not spec.labels or len(set(spec.labels)) < 2:
            raise InvalidInput("a categorical signal needs at least two distinct labels",
                               field="labels")
    elif spec.labels:
        raise InvalidInput("labels belong to categorical signals only", field="labels")
    if spec.type not in ("ordinal", "numeric") and (
            spec.scale_min is not None or spec.scale_max is not None):
        raise InvalidInput("a scale belongs to ordinal and numeric signals only",
                           field="scale_min")
    try:
        with store.transaction() as conn:
            new = conn.execute(signals.insert().values(
                project_id=project.id, name=spec.name, type=spec.type,
                scale_min=spec.scale_min, scale_max=spec.scale_max, labels=spec.labels,
                description=spec.description, created_at=utcnow())).inserted_primary_key
            audit.record(conn, actor=actor, action="signal.create", entity_kind="signal",
                         entity_id=int(new[0]), project_id=project.id,  # type: ignore[index]
                         after={"name": spec.name, "type": spec.type,
                                "scale_min": spec.scale_min, "scale_max": spec.scale_max,
                                "labels": spec.labels})
    except IntegrityError:
        raise Conflict(f"signal {spec.name!r} exists already in project {project.name!r}",
                       field="name") from None
    with store.read() as conn:
        return get_signal(conn, project.id, spec.name)


def get_signal(conn: Connection, project_id: int, name: str) -> Signal:
    row = conn.execute(select(signals).where(signals.c.project_id == project_id,
                                             signals.c.name == name)).first()
    if row is None:
        raise NotFound(f"no signal {name!r} in this project", field="signal")
    return _signal(row)


def list_signals(conn: Connection, project_id: int) -> list[Signal]:
    q = select(signals).where(signals.c.project_id == project_id).order_by(signals.c.name)
    return [_signal(r) for r in conn.execute(q)]


def signal_specs(conn: Connection, project_id: int) -> dict[str, SignalSpec]:
    return {s.name: s.spec() for s in list_signals(conn, project_id)}


def count_projects(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(projects)).scalar_one())
