"""The model registry: versions of each component, their status, toggles and resolve.

A *component* is one replaceable model of a product (``ranking``, ``generation``,
``classification``, ``reward``…); a *version* is one trained artifact of it, stored by
content hash (:mod:`.artifacts`), with its metrics, parent, training run and datasets.

Statuses and how they change (every change is a ``model_events`` row)::

    candidate ──► staged ──► live ──► retired       (promote; the old live retires)
        └──────────────────► live ──► rolled_back   (rollback; the previous live returns)

One version per component is live. :func:`promote` to ``live`` retires the previous live
version; :func:`rollback` marks the live version ``rolled_back`` and makes the version that
was live before it (read from the events) live again. Without a previous live version a
rollback is an error and nothing changes.

Toggles (:mod:`.toggles`) decide which version serves whom; the default is the live
version. :func:`resolve` answers from an in-process cache of the compiled toggle (see
:func:`resolve` for how the cache stays fresh), so it costs tens of microseconds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from ..capture.projects import Project, get_project
from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    datasets,
    model_events,
    model_version_datasets,
    model_versions,
    toggles,
)
from .artifacts import ArtifactStore, fetch
from .toggles import Toggle

__all__ = [
    "CACHE_TTL_SECONDS",
    "STATUSES",
    "ModelVersion",
    "clear_model_cache",
    "clear_resolve_cache",
    "forget",
    "get_toggle",
    "get_version",
    "list_events",
    "list_versions",
    "load_model",
    "promote",
    "register_version",
    "resolve",
    "rollback",
    "set_toggle",
]

STATUSES = ("candidate", "staged", "live", "retired", "rolled_back")
NOT_SERVED = frozenset({"retired", "rolled_back"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,199}")
_COMPONENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,49}")
CACHE_TTL_SECONDS = 1.0
"""How long :func:`resolve` trusts its cached toggle before the cheap freshness check."""


@dataclass(frozen=True)
class ModelVersion:
    id: int
    project_id: int
    component: str
    name: str
    status: str
    artifact_uri: str | None
    artifact_hash: str | None
    trainer: str | None
    training_run_id: int | None
    parent: str | None
    metrics: dict[str, Any]
    datasets: list[str]
    description: str
    created_by: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project_id": self.project_id, "component": self.component,
                "name": self.name, "status": self.status, "artifact_uri": self.artifact_uri,
                "artifact_hash": self.artifact_hash, "trainer": self.trainer,
                "training_run_id": self.training_run_id, "parent": self.parent,
                "metrics": self.metrics, "datasets": list(self.datasets),
                "description": self.description, "created_by": self.created_by,
                "created_at": self.created_at.isoformat()}


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _check_component(component: str) -> None:
    if not isinstance(component, str) or not _COMPONENT.fullmatch(component):
        raise InvalidInput("component must be 1-50 letters, digits, '_', '.' or '-', "
                           f"starting with a letter or digit, not {component!r}",
                           field="component")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("a version name is 1-200 letters, digits or _ . : @ + -, "
                           f"starting with a letter or digit, not {name!r}", field="name")


def _dataset_labels(conn: Connection, version_ids: Sequence[int]) -> dict[int, list[str]]:
    if not version_ids:
        return {}
    t, d = model_version_datasets, datasets
    rows = conn.execute(
        select(t.c.model_version_id, d.c.name, d.c.version)
        .join(d, d.c.id == t.c.dataset_id)
        .where(t.c.model_version_id.in_(list(version_ids)))
        .order_by(d.c.name, d.c.version)).all()
    out: dict[int, list[str]] = {}
    for row in rows:
        out.setdefault(row.model_version_id, []).append(f"{row.name}@{row.version}")
    return out


def _versions(conn: Connection, where: Iterable[Any]) -> list[ModelVersion]:
    t = model_versions
    parent = t.alias("parent")
    rows = conn.execute(
        select(t, parent.c.name.label("parent_name"))
        .outerjoin(parent, parent.c.id == t.c.parent_id)
        .where(*where).order_by(t.c.component, t.c.id)).all()
    labels = _dataset_labels(conn, [r.id for r in rows])
    return [ModelVersion(
        id=r.id, project_id=r.project_id, component=r.component, name=r.name,
        status=r.status, artifact_uri=r.artifact_uri, artifact_hash=r.artifact_hash,
        trainer=r.trainer, training_run_id=r.training_run_id, parent=r.parent_name,
        metrics=r.metrics or {}, datasets=labels.get(r.id, []), description=r.description,
        created_by=r.created_by, created_at=as_utc(r.created_at),  # type: ignore[arg-type]
    ) for r in rows]


def get_version(conn: Connection, project: Project | str, component: str,
                name: str) -> ModelVersion:
    p = _project(conn, project)
    t = model_versions
    found = _versions(conn, [t.c.project_id == p.id, t.c.component == component,
                             t.c.name == name])
    if not found:
        raise NotFound(f"no version {name!r} of component {component!r} in project "
                       f"{p.name!r}", field="name", component=component, version=name)
    return found[0]


def list_versions(conn: Connection, project: Project | str,
                  component: str | None = None) -> list[ModelVersion]:
    """The project's versions, by component then registration order."""
    p = _project(conn, project)
    where = [model_versions.c.project_id == p.id]
    if component is not None:
        where.append(model_versions.c.component == component)
    return _versions(conn, where)


def list_events(conn: Connection, project: Project | str,
                component: str | None = None) -> list[dict[str, Any]]:
    """Status and toggle changes, oldest first."""
    p = _project(conn, project)
    e, v = model_events, model_versions
    q = (select(e, v.c.name.label("version")).outerjoin(v, v.c.id == e.c.model_version_id)
         .where(e.c.project_id == p.id).order_by(e.c.id))
    if component is not None:
        q = q.where(e.c.component == component)
    return [{"id": r.id, "component": r.component, "version": r.version, "kind": r.kind,
             "from_status": r.from_status, "to_status": r.to_status, "detail": r.detail,
             "actor": r.actor, "created_at": as_utc(r.created_at).isoformat()}  # type: ignore[union-attr]
            for r in conn.execute(q)]


def _event(conn: Connection, project_id: int, component: str, kind: str, *,
           version_id: int | None = None, from_status: str | None = None,
           to_status: str | None = None, detail: Mapping[str, Any] | None = None,
           actor: str = "") -> None:
    conn.execute(model_events.insert().values(
        project_id=project_id, model_version_id=version_id, component=component, kind=kind,
        from_status=from_status, to_status=to_status, detail=dict(detail or {}),
        actor=actor, created_at=utcnow()))
    # The audit log holds the same change, hash-chained (model_events stay: the registry
    # reads them to find the rollback target).
    audit.record(conn, actor=actor or "system",
                 action=_AUDIT_ACTIONS.get(kind, f"model.{kind}"),
                 entity_kind="component" if version_id is None else "model_version",
                 entity_id=component if version_id is None else version_id,
                 project_id=project_id,
                 before=None if from_status is None else {"status": from_status},
                 after={"component": component,
                        **({"status": to_status} if to_status else {}),
                        **dict(detail or {})})


_AUDIT_ACTIONS = {"registered": "model.register", "promoted": "model.promote",
                  "retired": "model.retire", "rolled_back": "model.rollback",
                  "toggle": "model.toggle"}


def register_version(store: Store, project: Project | str, component: str, name: str, *,
                     artifact: Path | str | bytes | None = None,
                     artifact_root: str | Path | ArtifactStore | None = None,
                     trainer: str | None = None, training_run_id: int | None = None,
                     parent: str | None = None, metrics: Mapping[str, Any] | None = None,
                     dataset_ids: Sequence[int] = (), description: str = "",
                     created_by: str = "", conn: Connection | None = None) -> ModelVersion:
    """A new ``candidate`` version. ``artifact`` (a file, a folder or bytes) is stored by
    its SHA-256 under ``artifact_root`` (default ``<data_dir>/artifacts``) first: storing
    is idempotent, so a failed registration leaves at most an unreferenced file.

    ``conn``: join the caller's transaction (the trainers register with their run)."""
    _check_component(component)
    _check_name(name)
    if len(description) > 10_000:
        raise InvalidInput("description longer than 10,000 characters", field="description")
    stored = None
    if artifact is not None:
        arts = artifact_root if isinstance(artifact_root, ArtifactStore) \
            else ArtifactStore(artifact_root)
        stored = arts.put(artifact)
    if conn is None:
        try:
            with store.transaction() as own:
                version_id = _register(own, project, component, name, stored, trainer,
                                       training_run_id, parent, metrics, dataset_ids,
                                       description, created_by)
        except IntegrityError:  # the same name registered at the same moment elsewhere
            raise Conflict(f"version {name!r} of component {component!r} exists already",
                           field="name", component=component, version=name) from None
    else:
        version_id = _register(conn, project, component, name, stored, trainer,
                               training_run_id, parent, metrics, dataset_ids, description,
                               created_by)
        return _versions(conn, [model_versions.c.id == version_id])[0]
    with store.read() as read:
        return _versions(read, [model_versions.c.id == version_id])[0]


def _register(conn: Connection, project: Project | str, component: str, name: str,
              stored: Any, trainer: str | None, training_run_id: int | None,
              parent: str | None, metrics: Mapping[str, Any] | None,
              dataset_ids: Sequence[int], description: str, created_by: str) -> int:
    p = _project(conn, project)
    t = model_versions
    taken = conn.execute(select(t.c.id).where(t.c.project_id == p.id,
                                              t.c.component == component,
                                              t.c.name == name)).first()
    if taken is not None:
        raise Conflict(f"version {name!r} of component {component!r} exists already",
                       field="name", component=component, version=name)
    parent_id = None
    if parent is not None:
        parent_id = get_version(conn, p, component, parent).id
    ids = sorted({int(i) for i in dataset_ids})
    if ids:
        found = {r.id for r in conn.execute(select(datasets.c.id).where(
            datasets.c.id.in_(ids), datasets.c.project_id == p.id))}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no dataset with id {missing[0]} in project {p.name!r}",
                           field="dataset_ids")
    version_id = int(conn.execute(t.insert().values(
        project_id=p.id, component=component, name=name, status="candidate",
        artifact_uri=stored.uri if stored else None,
        artifact_hash=stored.sha256 if stored else None, trainer=trainer,
        training_run_id=training_run_id, parent_id=parent_id, metrics=dict(metrics or {}),
        description=description, created_by=created_by, created_at=utcnow(),
    )).inserted_primary_key[0])  # type: ignore[index]
    if ids:
        conn.execute(model_version_datasets.insert(),
                     [{"model_version_id": version_id, "dataset_id": i} for i in ids])
    _event(conn, p.id, component, "registered", version_id=version_id, to_status="candidate",
           detail={"artifact_hash": stored.sha256 if stored else None, "trainer": trainer,
                   "training_run_id": training_run_id},
           actor=created_by)
    return version_id


def _lock_component(conn: Connection, project_id: int, component: str) -> list[Any]:
    """The component's version rows, read under a lock so that two promotions (or toggle
    changes) of one component run one after the other and the second sees the first's
    result. PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite: the Python driver begins the
    transaction only at the first write, so a plain read would see a state another writer
    is about to change; a no-op UPDATE first takes the database's write lock (other writers
    wait, up to the busy timeout) before anything is read."""
    t = model_versions
    where = (t.c.project_id == project_id, t.c.component == component)
    q = select(t.c.id, t.c.name, t.c.status).where(*where).order_by(t.c.id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    else:
        conn.execute(t.update().where(*where).values(status=t.c.status))
    return list(conn.execute(q))


def _set_status(conn: Connection, version_id: int, status: str) -> None:
    conn.execute(model_versions.update().where(model_versions.c.id == version_id)
                 .values(status=status))


_PROMOTIONS = {"staged": ("candidate",),
               "live": ("candidate", "staged", "retired", "rolled_back"),
               "retired": ("candidate", "staged", "rolled_back")}


def promote(store: Store, project: Project | str, component: str, name: str, *,
            to: str = "live", actor: str = "", gated: bool = False,
            conn: Connection | None = None) -> ModelVersion:
    """Move a version to ``staged``, ``live`` or ``retired``. Going live retires the
    previous live version of the component; both changes are recorded as events.

    Going live needs a release (``feedbackloop release promote``: a passed gate and its
    sign-offs) unless the project's risk-tier policy lets automation promote (the low tier):
    otherwise the promotion is refused, and the refusal recorded in the audit log.
    ``gated`` says the caller (:func:`feedbackloop.governance.releases.promote`) checked the
    gate. ``conn``: join the caller's transaction (the caller then drops the resolve cache
    with :func:`forget` after its commit)."""
    if to not in _PROMOTIONS:
        raise InvalidInput(f"a version can be promoted to {', '.join(_PROMOTIONS)}, "
                           f"not {to!r}", field="to")
    from ..governance.policy import PolicyRefusal, record_refusal

    check = to == "live" and not gated
    if conn is not None:
        return _promote(conn, project, component, name, to, actor, check)[0]
    try:
        with store.transaction() as own:
            version, p = _promote(own, project, component, name, to, actor, check)
    except PolicyRefusal as refused:
        record_refusal(store, refused, actor=actor, action="model.promote.refused",
                       entity_kind="model_version", entity_id=f"{component}:{name}",
                       after={"to": to})
        raise
    _forget(store, p, component)
    return version


def _promote(conn: Connection, project: Project | str, component: str, name: str, to: str,
             actor: str, check_policy: bool = False) -> tuple[ModelVersion, Project]:
    p = _project(conn, project)
    rows = _lock_component(conn, p.id, component)
    row = next((r for r in rows if r.name == name), None)
    if row is None:
        raise NotFound(f"no version {name!r} of component {component!r} in project "
                       f"{p.name!r}", field="name", component=component, version=name)
    if check_policy:
        from ..governance.policy import check_plain_promotion

        check_plain_promotion(conn, p, component, to)
    if row.status not in _PROMOTIONS[to]:
        raise Conflict(f"version {name!r} of {component!r} is {row.status}; it cannot "
                       f"become {to} (allowed from {', '.join(_PROMOTIONS[to])})",
                       field="to", status=row.status)
    previous = next((r for r in rows if r.status == "live"), None)
    if to == "live" and previous is not None:
        _set_status(conn, previous.id, "retired")
        _event(conn, p.id, component, "retired", version_id=previous.id,
               from_status="live", to_status="retired", detail={"replaced_by": name},
               actor=actor)
    _set_status(conn, row.id, to)
    detail = {"previous_live": previous.name} if to == "live" and previous else {}
    _event(conn, p.id, component, "retired" if to == "retired" else "promoted",
           version_id=row.id, from_status=row.status, to_status=to, detail=detail,
           actor=actor)
    return _versions(conn, [model_versions.c.id == row.id])[0], p


def rollback(store: Store, project: Project | str, component: str, *,
             actor: str = "", conn: Connection | None = None) -> ModelVersion:
    """The live version becomes ``rolled_back`` and the version live before it is live
    again (the newest earlier go-live in the events whose version was not rolled back).
    No live version, or none before it: Conflict, and nothing changes. ``conn``: join the
    caller's transaction (the caller calls :func:`forget` after its commit)."""
    if conn is not None:
        return _rollback(conn, project, component, actor)[0]
    with store.transaction() as own:
        version, p = _rollback(own, project, component, actor)
    _forget(store, p, component)
    return version


def _rollback(conn: Connection, project: Project | str, component: str,
              actor: str) -> tuple[ModelVersion, Project]:
    p = _project(conn, project)
    rows = _lock_component(conn, p.id, component)
    if not rows:
        raise NotFound(f"component {component!r} has no versions in project "
                       f"{p.name!r}", field="component")
    by_id = {r.id: r for r in rows}
    live = next((r for r in rows if r.status == "live"), None)
    if live is None:
        raise Conflict(f"component {component!r} has no live version to roll back",
                       field="component")
    e = model_events
    went_live = conn.execute(
        select(e.c.model_version_id).where(
            e.c.project_id == p.id, e.c.component == component, e.c.to_status == "live",
            e.c.model_version_id.is_not(None)).order_by(e.c.id.desc())).scalars().all()
    target = next((by_id[v] for v in went_live
                   if v != live.id and v in by_id and by_id[v].status != "rolled_back"),
                  None)
    if target is None:
        raise Conflict(f"cannot roll back {component!r}: no version was live before "
                       f"{live.name!r}", field="component", live=live.name)
    _set_status(conn, live.id, "rolled_back")
    _event(conn, p.id, component, "rolled_back", version_id=live.id, from_status="live",
           to_status="rolled_back", detail={"restored": target.name}, actor=actor)
    _set_status(conn, target.id, "live")
    _event(conn, p.id, component, "promoted", version_id=target.id,
           from_status=target.status, to_status="live",
           detail={"rollback_of": live.name}, actor=actor)
    return _versions(conn, [model_versions.c.id == target.id])[0], p


# -- toggles -----------------------------------------------------------------------------

def _live_name(conn: Connection, project_id: int, component: str) -> str | None:
    t = model_versions
    return conn.execute(select(t.c.name).where(
        t.c.project_id == project_id, t.c.component == component,
        t.c.status == "live")).scalar()


def get_toggle(conn: Connection, project: Project | str, component: str) -> dict[str, Any]:
    """The component's rules and who changed them when; ``default`` is the live version
    (served to every unit no rule places)."""
    p = _project(conn, project)
    t = toggles
    row = conn.execute(select(t).where(t.c.project_id == p.id,
                                       t.c.component == component)).first()
    return {"component": component, "rules": list(row.rules) if row else [],
            "default": _live_name(conn, p.id, component),
            "updated_by": row.updated_by if row else None,
            "updated_at": as_utc(row.updated_at).isoformat() if row else None}  # type: ignore[union-attr]


def set_toggle(store: Store, project: Project | str, component: str,
               rules: Sequence[Mapping[str, Any]], *, actor: str = "",
               conn: Connection | None = None) -> dict[str, Any]:
    """Replace the component's rules (an empty list clears them). Rules are checked by
    :meth:`Toggle.from_dict` (errors name the rule) and every version they name must be a
    version of this component; the change is recorded as a ``toggle`` event. ``conn``:
    join the caller's transaction (the caller calls :func:`forget` after its commit)."""
    _check_component(component)
    if not isinstance(rules, Sequence) or isinstance(rules, str | bytes):
        raise InvalidInput("rules must be a list of rule objects", field="rules")
    toggle = Toggle.from_dict(component, rules)
    clean = [dict(r) for r in rules]
    if conn is not None:
        return _set_toggle(conn, project, component, toggle, clean, actor)[0]
    with store.transaction() as own:
        result, p = _set_toggle(own, project, component, toggle, clean, actor)
    _forget(store, p, component)
    return result


def _set_toggle(conn: Connection, project: Project | str, component: str, toggle: Toggle,
                clean: list[dict[str, Any]], actor: str) -> tuple[dict[str, Any], Project]:
    p = _project(conn, project)
    known = {r.name for r in _lock_component(conn, p.id, component)}
    for i, rule in enumerate(toggle.rules):
        for version in rule.split:
            if version not in known:
                where = f"rules[{i}]" + (f" ({rule.name})" if rule.name else "")
                raise InvalidInput(f"{where}: no version {version!r} of component "
                                   f"{component!r} is registered",
                                   field=f"rules[{i}].split", version=version)
    t = toggles
    row = conn.execute(select(t).where(t.c.project_id == p.id,
                                       t.c.component == component)).first()
    # Serving a version to a cohort exposes it: under the high tier's expert-before-
    # exposure a version the rules did not serve before needs an expert's approval.
    served = {v for r in (row.rules if row else []) if isinstance(r, Mapping)
              for v in (r.get("split") or {})}
    newly = {v for rule in toggle.rules for v in rule.split} - served
    if newly:
        from ..governance.policy import check_exposure

        check_exposure(conn, p, component, newly, what="the toggle")
    now = utcnow()
    if row is None:
        conn.execute(t.insert().values(project_id=p.id, component=component, rules=clean,
                                       updated_by=actor, updated_at=now))
    else:
        conn.execute(t.update().where(t.c.id == row.id).values(
            rules=clean, updated_by=actor, updated_at=now))
    _event(conn, p.id, component, "toggle",
           detail={"rules": clean, "previous": list(row.rules) if row else []},
           actor=actor)
    return get_toggle(conn, p, component), p


# -- resolve -----------------------------------------------------------------------------

@dataclass
class _Entry:
    toggle: Toggle
    statuses: dict[str, str]
    stamp: int | None
    checked: float
    project_id: int


_cache: dict[tuple[str, str, str], _Entry] = {}
_project_ids: dict[tuple[str, str], int] = {}
_cache_lock = threading.Lock()


def _store_key(store: Store) -> str:
    return str(store.engine.url)


def forget(store: Store, project: Project, component: str) -> None:
    """Drop the component's cached toggle in this process (after a change committed in a
    caller's transaction)."""
    _forget(store, project, component)


def _forget(store: Store, project: Project, component: str) -> None:
    key = _store_key(store)
    with _cache_lock:
        for pk in (project.name, str(project.id)):
            _cache.pop((key, pk, component), None)


def clear_resolve_cache() -> None:
    """Forget every cached toggle (tests; after editing the database by hand)."""
    with _cache_lock:
        _cache.clear()
        _project_ids.clear()


def _stamp(conn: Connection, project_id: int, component: str) -> int | None:
    """The newest event of the component: every toggle and status change writes one, so
    an unchanged stamp means an unchanged toggle and unchanged statuses."""
    e = model_events
    return conn.execute(select(func.max(e.c.id)).where(
        e.c.project_id == project_id, e.c.component == component)).scalar()


def _load_entry(conn: Connection, project_id: int, component: str) -> _Entry:
    t = model_versions
    rows = conn.execute(select(t.c.name, t.c.status).where(
        t.c.project_id == project_id, t.c.component == component)).all()
    statuses = {r.name: r.status for r in rows}
    row = conn.execute(select(toggles.c.rules).where(
        toggles.c.project_id == project_id, toggles.c.component == component)).first()
    live = next((n for n, s in statuses.items() if s == "live"), None)
    toggle = Toggle.from_dict(component, list(row.rules) if row else [], default=live)
    stamp = _stamp(conn, project_id, component)
    return _Entry(toggle, statuses, stamp, time.monotonic(), project_id)


def resolve(store: Store, project: Project | str, component: str, unit_id: str,
            attributes: Mapping[str, Any] | None = None, *,
            ttl: float = CACHE_TTL_SECONDS) -> dict[str, Any]:
    """Which version of ``component`` serves ``unit_id`` with these cohort attributes:
    ``{"component", "version", "rule", "status", "bucket"}`` (``rule`` None: the default,
    the live version).

    The compiled toggle is cached per (database, project, component). Within ``ttl``
    seconds of its last check a call touches no database; after that one query compares
    the component's newest event id (every toggle and status change writes an event)
    and reloads only when it moved. Changes made through this process's :func:`set_toggle`,
    :func:`promote` and :func:`rollback` drop the entry at once; changes by other processes
    are seen within ``ttl``. A version that is retired or rolled back is never served: a
    unit a rule would give it gets the default instead.
    """
    if not isinstance(unit_id, str) or not unit_id:
        raise InvalidInput("unit_id must be a non-empty string", field="unit_id")
    store_key = _store_key(store)
    project_key = project.name if isinstance(project, Project) else str(project)
    key = (store_key, project_key, component)
    entry = _cache.get(key)
    now = time.monotonic()
    if entry is None or now - entry.checked > ttl:
        entry = _refresh(store, project, key, entry, now)
    res = entry.toggle.resolve(unit_id, attributes)
    version, rule, bucket = res.version, res.rule, res.bucket
    status = entry.statuses.get(version) if version is not None else None
    if rule is not None and status in NOT_SERVED:
        version, rule, bucket = entry.toggle.default, None, None
        status = entry.statuses.get(version) if version is not None else None
    return {"component": component, "version": version, "rule": rule, "status": status,
            "bucket": bucket}


def _refresh(store: Store, project: Project | str, key: tuple[str, str, str],
             entry: _Entry | None, now: float) -> _Entry:
    component = key[2]
    with store.read() as conn:
        if entry is not None:
            if _stamp(conn, entry.project_id, component) == entry.stamp:
                entry.checked = now
                return entry
            project_id = entry.project_id
        else:
            pid = _project_ids.get(key[:2])
            if pid is None:
                pid = project.id if isinstance(project, Project) \
                    else _project(conn, project).id
            project_id = pid
        fresh = _load_entry(conn, project_id, component)
    if not fresh.statuses and not fresh.toggle.rules:
        raise NotFound(f"component {component!r} has no versions", field="component",
                       component=component)
    with _cache_lock:
        _project_ids[key[:2]] = project_id
        _cache[key] = fresh
    return fresh


# -- predictors --------------------------------------------------------------------------

_loaded: dict[str, Any] = {}
_loaded_lock = threading.Lock()
_LOADED_MAX = 16


def clear_model_cache() -> None:
    """Forget loaded predictors, so the next :func:`load_model` re-reads and re-checks
    its artifact (tests; after replacing artifacts by hand)."""
    with _loaded_lock:
        _loaded.clear()


def load_model(store: Store, project: Project | str, component: str, name: str) -> Any:
    """The predictor of a version trained by a built-in (or plug-in) trainer: its artifact
    is fetched, checked against its hash and loaded by the trainer that wrote it. Loaded
    predictors are kept per artifact hash (the last 16)."""
    with store.read() as conn:
        version = get_version(conn, project, component, name)
    if version.artifact_uri is None or version.artifact_hash is None:
        raise InvalidInput(f"version {name!r} of {component!r} has no artifact to load",
                           field="name")
    if version.trainer is None:
        raise InvalidInput(f"version {name!r} of {component!r} was not made by a trainer, "
                           "so feedbackloop cannot load it", field="name")
    cached = _loaded.get(version.artifact_hash)
    if cached is not None:
        return cached
    from .trainers.registry import get_trainer

    data = fetch(version.artifact_uri, version.artifact_hash,
                 version=f"{component}/{name}")
    predictor = get_trainer(version.trainer).load(data)
    with _loaded_lock:
        _loaded[version.artifact_hash] = predictor
        while len(_loaded) > _LOADED_MAX:
            _loaded.pop(next(iter(_loaded)))
    return predictor
