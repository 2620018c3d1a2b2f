"""Reading interactions and feedback back: filters, keyset pagination, status counts.

Lists are ordered newest first by (timestamp, id); the cursor is the last row's key, so a
page costs one index range scan however deep the caller pages.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from ..errors import InvalidInput, NotFound
from ..store import as_utc
from ..store.tables import feedback, interactions, signals

__all__ = [
    "FeedbackRecord",
    "InteractionFilter",
    "InteractionRecord",
    "Page",
    "get_interaction",
    "list_feedback",
    "list_interactions",
    "project_status",
]


@dataclass(frozen=True)
class InteractionRecord:
    """A stored interaction, as the wire names it."""

    id: str
    timestamp: datetime
    model_version: str | None
    input: str
    output: str
    context: Any
    reference: str | None
    attributes: dict[str, Any] | None
    user_id: str | None
    session_id: str | None
    latency_ms: float | None
    error: str | None
    experiment: str | None
    arm: str | None
    propensity: float | None
    consent: bool
    metadata: dict[str, Any] | None

    def to_wire(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["timestamp"] = self.timestamp.isoformat()
        return d


@dataclass(frozen=True)
class FeedbackRecord:
    """A stored feedback item, as the wire names it."""

    id: str
    interaction_id: str
    interaction_id_b: str | None
    signal: str
    value: Any
    source: str
    rater_id: str | None
    correction: str | None
    comment: str | None
    guideline_version: str | None
    timestamp: datetime

    def to_wire(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["timestamp"] = self.timestamp.isoformat()
        return d


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None


@dataclass
class InteractionFilter:
    model_version: str | None = None
    attributes: dict[str, str] | None = None
    signal_id: int | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    experiment: str | None = None


def encode_cursor(ts: datetime, pk: int) -> str:
    raw = orjson.dumps([as_utc(ts).isoformat(), pk])  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        pad = "=" * (-len(cursor) % 4)
        ts, pk = orjson.loads(base64.urlsafe_b64decode(cursor + pad))
        return datetime.fromisoformat(ts), int(pk)
    except Exception:
        raise InvalidInput("malformed cursor; pass the next_cursor of a previous page",
                           field="cursor") from None


def _db_ts(conn: Connection, ts: datetime) -> datetime:
    # SQLite compares the stored naive UTC strings; PostgreSQL compares aware values.
    ts = as_utc(ts)  # type: ignore[assignment]
    return ts.replace(tzinfo=None) if conn.dialect.name == "sqlite" else ts


def _interaction(row: Any) -> InteractionRecord:
    return InteractionRecord(
        id=row.client_id, timestamp=as_utc(row.timestamp),  # type: ignore[arg-type]
        model_version=row.model_version, input=row.input, output=row.output,
        context=row.context, reference=row.reference, attributes=row.attributes,
        user_id=row.user_id, session_id=row.session_id, latency_ms=row.latency_ms,
        error=row.error, experiment=row.experiment, arm=row.arm, propensity=row.propensity,
        consent=bool(row.consent), metadata=row.meta)


def _attribute_equals(conn: Connection, key: str, value: str) -> Any:
    """Attribute ``key`` equals ``value`` as the user typed it: text, number or boolean."""
    col = interactions.c.attributes[key]
    if conn.dialect.name == "sqlite" and value in ("true", "false"):
        # SQLite's json_extract gives 1/0 for JSON booleans; json_type names them.
        return or_(col.as_string() == value,
                   func.json_type(interactions.c.attributes, f'$."{key}"') == value)
    return col.as_string() == value


def list_interactions(conn: Connection, project_id: int, *, limit: int = 100,
                      cursor: str | None = None,
                      where: InteractionFilter | None = None) -> Page:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    t = interactions
    q = select(t).where(t.c.project_id == project_id)
    f = where or InteractionFilter()
    if f.model_version is not None:
        q = q.where(t.c.model_version == f.model_version)
    if f.experiment is not None:
        q = q.where(t.c.experiment == f.experiment)
    for key, value in (f.attributes or {}).items():
        q = q.where(_attribute_equals(conn, key, value))
    if f.since is not None:
        q = q.where(t.c.timestamp >= _db_ts(conn, f.since))
    if f.until is not None:
        q = q.where(t.c.timestamp < _db_ts(conn, f.until))
    if f.signal_id is not None or f.source is not None:
        cond = [feedback.c.interaction_id == t.c.id]
        if f.signal_id is not None:
            cond.append(feedback.c.signal_id == f.signal_id)
        if f.source is not None:
            cond.append(feedback.c.source == f.source)
        q = q.where(exists().where(and_(*cond)))
    if cursor:
        ts, pk = decode_cursor(cursor)
        ts_db = _db_ts(conn, ts)
        q = q.where(or_(t.c.timestamp < ts_db, and_(t.c.timestamp == ts_db, t.c.id < pk)))
    q = q.order_by(t.c.timestamp.desc(), t.c.id.desc()).limit(limit + 1)
    rows = conn.execute(q).all()
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = encode_cursor(rows[-1].timestamp, rows[-1].id) if more and rows else None
    return Page([_interaction(r) for r in rows], nxt)


def get_interaction(conn: Connection, project_id: int, client_id: str) -> InteractionRecord:
    row = conn.execute(select(interactions).where(
        interactions.c.project_id == project_id,
        interactions.c.client_id == client_id)).first()
    if row is None:
        raise NotFound(f"no interaction {client_id!r} in this project", field="id")
    return _interaction(row)


def list_feedback(conn: Connection, project_id: int, *, limit: int = 100,
                  cursor: str | None = None, interaction_id: str | None = None,
                  signal_id: int | None = None, source: str | None = None,
                  since: datetime | None = None, until: datetime | None = None) -> Page:
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    ia = aliased(interactions)
    ib = aliased(interactions)
    f = feedback
    q = (select(f, ia.c.client_id.label("a_id"), ib.c.client_id.label("b_id"),
                signals.c.name.label("signal_name"))
         .join(ia, ia.c.id == f.c.interaction_id)
         .outerjoin(ib, ib.c.id == f.c.interaction_b_id)
         .join(signals, signals.c.id == f.c.signal_id)
         .where(f.c.project_id == project_id))
    if interaction_id is not None:
        q = q.where(or_(ia.c.client_id == interaction_id, ib.c.client_id == interaction_id),
                    ia.c.project_id == project_id)
    if signal_id is not None:
        q = q.where(f.c.signal_id == signal_id)
    if source is not None:
        q = q.where(f.c.source == source)
    if since is not None:
        q = q.where(f.c.timestamp >= _db_ts(conn, since))
    if until is not None:
        q = q.where(f.c.timestamp < _db_ts(conn, until))
    if cursor:
        ts, pk = decode_cursor(cursor)
        ts_db = _db_ts(conn, ts)
        q = q.where(or_(f.c.timestamp < ts_db, and_(f.c.timestamp == ts_db, f.c.id < pk)))
    q = q.order_by(f.c.timestamp.desc(), f.c.id.desc()).limit(limit + 1)
    rows = conn.execute(q).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [FeedbackRecord(
        id=r.client_id, interaction_id=r.a_id, interaction_id_b=r.b_id,
        signal=r.signal_name, value=r.value, source=r.source, rater_id=r.rater_id,
        correction=r.correction, comment=r.comment, guideline_version=r.guideline_version,
        timestamp=as_utc(r.timestamp)) for r in rows]  # type: ignore[arg-type]
    nxt = encode_cursor(rows[-1].timestamp, rows[-1].id) if more and rows else None
    return Page(items, nxt)


def project_status(conn: Connection, project_id: int) -> dict[str, Any]:
    """Counts by kind, signal, source and model version."""
    n_int = conn.execute(select(func.count()).select_from(interactions)
                         .where(interactions.c.project_id == project_id)).scalar_one()
    n_fb = conn.execute(select(func.count()).select_from(feedback)
                        .where(feedback.c.project_id == project_id)).scalar_one()
    by_signal = {name: n for name, n in conn.execute(
        select(signals.c.name, func.count(feedback.c.id))
        .select_from(signals.outerjoin(feedback, feedback.c.signal_id == signals.c.id))
        .where(signals.c.project_id == project_id).group_by(signals.c.name)
        .order_by(signals.c.name))}
    by_source = {s: n for s, n in conn.execute(
        select(feedback.c.source, func.count()).where(feedback.c.project_id == project_id)
        .group_by(feedback.c.source).order_by(feedback.c.source))}
    by_version = {(v if v is not None else "(none)"): n for v, n in conn.execute(
        select(interactions.c.model_version, func.count())
        .where(interactions.c.project_id == project_id)
        .group_by(interactions.c.model_version).order_by(interactions.c.model_version))}
    return {"interactions": int(n_int), "feedback": int(n_fb), "by_signal": by_signal,
            "by_source": by_source, "by_model_version": by_version}
