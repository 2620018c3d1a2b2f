"""Storing batches of interactions and feedback, idempotently.

The client id is the idempotency key: a record whose id is stored already with the same
content hash is a ``duplicate`` (nothing is written); the same id with other content is
``rejected`` as a conflict. Valid records of a batch are written in one transaction;
invalid ones are reported, none is half-written.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime
from sqlalchemy.exc import IntegrityError

from ..settings import Settings
from ..store import Store, utcnow
from ..store.tables import feedback, interactions
from .prepare import (
    FeedbackPreparer,
    InteractionPreparer,
    Prepared,
    Reject,
    sqlite_timestamp,
)
from .projects import Project, signal_specs

__all__ = ["BatchResult", "Ingestor", "RecordResult"]

@dataclass(slots=True)
class RecordResult:
    index: int
    id: str | None
    status: str  # accepted | duplicate | rejected
    field: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "id": self.id, "status": self.status}
        if self.status == "rejected":
            out["field"] = self.field
            out["message"] = self.message
        return out


@dataclass
class BatchResult:
    results: list[RecordResult] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(r.status == "accepted" for r in self.results)

    @property
    def duplicates(self) -> int:
        return sum(r.status == "duplicate" for r in self.results)

    @property
    def rejected(self) -> int:
        return sum(r.status == "rejected" for r in self.results)

    def errors(self) -> list[RecordResult]:
        return [r for r in self.results if r.status == "rejected"]

    def extend(self, other: BatchResult) -> None:
        self.results.extend(other.results)

    def summary(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected}


def _existing(conn: Connection, table: Any, project_id: int, ids: Sequence[str]) -> dict[str, Any]:
    """client id → (pk, content hash) of the ids stored already.

    One statement whatever the number of ids, with the ids as a single parameter (an array
    on PostgreSQL, a JSON array on SQLite): compiling ``IN (:p1, ..., :p500)`` cost more
    than running it, and both forms probe the unique (project_id, client_id) index.
    """
    if not ids:
        return {}
    cols = f"SELECT client_id, id, content_hash FROM {table.name} WHERE project_id = "
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(cols + "%s AND client_id = ANY(%s)",
                                    (project_id, list(ids)))
    else:
        rows = conn.exec_driver_sql(
            cols + "? AND client_id IN (SELECT value FROM json_each(?))",
            (project_id, orjson.dumps(list(ids)).decode()))
    return {cid: (pk, h) for cid, pk, h in rows}


def _dedupe(items: Sequence[Prepared | Reject], results: list[RecordResult],
            kind: str) -> list[Prepared]:
    """Keep the first of each id in a batch; later copies are duplicates or conflicts."""
    seen: dict[str, str] = {}
    keep: list[Prepared] = []
    for item in items:
        if isinstance(item, Reject):
            results.append(RecordResult(item.index, item.id, "rejected", item.field,
                                        item.message))
            continue
        prior = seen.get(item.id)
        if prior is None:
            seen[item.id] = item.content_hash
            keep.append(item)
        elif prior == item.content_hash:
            results.append(RecordResult(item.index, item.id, "duplicate"))
        else:
            results.append(RecordResult(
                item.index, item.id, "rejected", "id",
                f"{kind} id {item.id!r} appears twice in this batch with different content"))
    return keep


class Ingestor:
    """Writes batches for one project. ``allowed_sources`` narrows feedback sources (the
    ``ingest`` role may only send end-user feedback)."""

    def __init__(self, store: Store, settings: Settings, project: Project, *,
                 allowed_sources: tuple[str, ...] | None = None) -> None:
        self.store = store
        self.project = project
        key = settings.pseudonym_key_bytes()
        policy, limit = project.redaction_policy, settings.max_field_bytes
        names = settings.detect_person_names
        self._sqlite = store.dialect == "sqlite"
        self.interaction_preparer = InteractionPreparer(
            policy=policy, key=key, max_field_bytes=limit, detect_names=names,
            sqlite_timestamps=self._sqlite)
        self.feedback_preparer = FeedbackPreparer(
            policy=policy, key=key, max_field_bytes=limit, detect_names=names,
            sqlite_timestamps=self._sqlite, allowed_sources=allowed_sources)
        self._signals_loaded = False

    def _now(self) -> datetime | str:
        now = utcnow()
        return sqlite_timestamp(now) if self._sqlite else now

    # -- interactions ------------------------------------------------------------------
    def interactions(self, records: Sequence[Any], *, start: int = 0) -> BatchResult:
        """Validate, redact and store interaction records; ``start`` numbers the first."""
        prep = self.interaction_preparer
        prepared = [prep.prepare(start + i, r) for i, r in enumerate(records)]
        return self.write_interactions(prepared)

    def write_interactions(self, prepared: Sequence[Prepared | Reject]) -> BatchResult:
        """Store prepared interaction rows (prepared here or in a worker process)."""
        for attempt in range(3):
            try:
                return self._write_interactions(prepared)
            except IntegrityError:
                # A concurrent writer stored one of these ids between our look-up and insert:
                # on the next attempt it is seen as existing.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write_interactions(self, prepared: Sequence[Prepared | Reject]) -> BatchResult:
        results: list[RecordResult] = []
        keep = _dedupe(prepared, results, "interaction")
        now = self._now()
        rows = []
        with self.store.transaction() as conn:
            existing = _existing(conn, interactions, self.project.id, [p.id for p in keep])
            for p in keep:
                old = existing.get(p.id)
                if old is None:
                    row = p.row
                    row["project_id"] = self.project.id
                    row["content_hash"] = p.content_hash
                    row["ingested_at"] = now
                    if row["timestamp"] is None:
                        row["timestamp"] = now
                    rows.append(row)
                    results.append(RecordResult(p.index, p.id, "accepted"))
                elif old[1] == p.content_hash:
                    results.append(RecordResult(p.index, p.id, "duplicate"))
                else:
                    results.append(RecordResult(
                        p.index, p.id, "rejected", "id",
                        f"interaction {p.id!r} is stored already with different content"))
            if rows:
                insert_rows(conn, interactions, rows)
        results.sort(key=lambda r: r.index)
        return BatchResult(results)

    # -- feedback ----------------------------------------------------------------------
    def _load_signals(self) -> None:
        if not self._signals_loaded:
            with self.store.read() as conn:
                self.feedback_preparer.signals = signal_specs(conn, self.project.id)
            self._signals_loaded = True

    def feedback(self, records: Sequence[Any], *, start: int = 0) -> BatchResult:
        self._load_signals()
        prep = self.feedback_preparer
        prepared = [prep.prepare(start + i, r) for i, r in enumerate(records)]
        return self.write_feedback(prepared)

    def write_feedback(self, prepared: Sequence[Prepared | Reject], *,
                       conn: Connection | None = None) -> BatchResult:
        """Write prepared feedback in one transaction: the caller's ``conn`` when given
        (so other rows can commit with it, all or nothing), else a new one retried on a
        race with a concurrent writer of the same ids."""
        if conn is not None:
            return self._write_feedback(prepared, conn)
        for attempt in range(3):
            try:
                return self._write_feedback(prepared)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write_feedback(self, prepared: Sequence[Prepared | Reject],
                        outer: Connection | None = None) -> BatchResult:
        results: list[RecordResult] = []
        keep = _dedupe(prepared, results, "feedback")
        now = self._now()
        rows = []
        with nullcontext(outer) if outer is not None else self.store.transaction() as conn:
            wanted = sorted({p.extra["interaction_id"] for p in keep}
                            | {p.extra["interaction_id_b"] for p in keep
                               if p.extra.get("interaction_id_b")})
            targets = _existing(conn, interactions, self.project.id, wanted)
            existing = _existing(conn, feedback, self.project.id, [p.id for p in keep])
            for p in keep:
                a = targets.get(p.extra["interaction_id"])
                b_id = p.extra.get("interaction_id_b")
                b = targets.get(b_id) if b_id else None
                old = existing.get(p.id)
                if old is not None:
                    if old[1] == p.content_hash:
                        results.append(RecordResult(p.index, p.id, "duplicate"))
                    else:
                        results.append(RecordResult(
                            p.index, p.id, "rejected", "id",
                            f"feedback {p.id!r} is stored already with different content"))
                    continue
                if a is None:
                    results.append(RecordResult(
                        p.index, p.id, "rejected", "interaction_id",
                        f"unknown interaction {p.extra['interaction_id']!r} in this project"))
                    continue
                if b_id and b is None:
                    results.append(RecordResult(
                        p.index, p.id, "rejected", "interaction_id_b",
                        f"unknown interaction {b_id!r} in this project"))
                    continue
                row = p.row
                row["project_id"] = self.project.id
                row["interaction_id"] = a[0]
                row["interaction_b_id"] = b[0] if b else None
                row["content_hash"] = p.content_hash
                row["ingested_at"] = now
                if row["timestamp"] is None:
                    row["timestamp"] = now
                rows.append(row)
                results.append(RecordResult(p.index, p.id, "accepted"))
            if rows:
                insert_rows(conn, feedback, rows)
        results.sort(key=lambda r: r.index)
        return BatchResult(results)


def insert_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk insert inside the caller's transaction, on the driver's own fast path.

    SQLAlchemy's per-row parameter processing cost more than the insert itself, so rows go
    to the DBAPI cursor as lists: ``executemany`` on SQLite (timestamps in SQLAlchemy's
    SQLite storage format, naive UTC) and ``COPY`` on PostgreSQL. JSON columns arrive as
    JSON text already (see ``capture.prepare``).
    """
    cols = [c.name for c in table.columns if c.name != "id"]
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    getter = itemgetter(*cols)
    try:
        if conn.dialect.name == "postgresql":
            with dbapi.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                    f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(getter(row))
            return
        # Rows from the Ingestor carry SQLite timestamps as text already; convert the rest.
        ts_idx = [i for i, c in enumerate(cols) if isinstance(table.c[c].type, DateTime)]
        params = []
        for row in rows:
            values = list(getter(row))
            for i in ts_idx:
                v = values[i]
                if v is not None and v.__class__ is not str:
                    values[i] = sqlite_timestamp(v)
            params.append(values)
        sql = (f"INSERT INTO {table.name} ({', '.join(cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        cur = dbapi.cursor()
        try:
            cur.executemany(sql, params)
        finally:
            cur.close()
    except conn.dialect.loaded_dbapi.IntegrityError as exc:
        # The same exception SQLAlchemy would raise, so callers need to know one type.
        raise IntegrityError(f"INSERT INTO {table.name}", None, exc) from exc
