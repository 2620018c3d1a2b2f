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

__all__ = ["BatchResult", "Ingestor", "PackedInteractions", "RecordResult", "compact",
           "init_writer", "pack_compact", "pack_interactions", "write_packed_in_worker"]

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


# The packed row: every column but the key, with the two timestamps last, so that a
# worker can pack all of it but what only the writer knows (the time of writing).
_PACKED_HEAD = ("project_id", "client_id", "model_version", "input", "output", "context",
                "reference", "attributes", "user_id", "session_id", "latency_ms", "error",
                "experiment", "arm", "propensity", "consent", "meta", "content_hash")
_PACKED_COLUMNS = (*_PACKED_HEAD, "timestamp", "ingested_at")
_ROW_HEAD = itemgetter(*_PACKED_HEAD[1:-1])


def copy_text_formatter() -> Any:
    """psycopg's own formatter of one ``COPY ... FROM STDIN`` text row (the function behind
    ``Copy.write_row``), or None where this psycopg does not expose it."""
    try:
        from psycopg._copy_base import format_row_text
        from psycopg.adapt import Transformer
    except ImportError:
        return None
    tx = Transformer()
    if getattr(tx, "encoding", "utf-8") != "utf-8":
        return None

    def fmt(row: tuple[Any, ...]) -> bytes:
        out = bytearray()
        format_row_text(row, tx, out)
        out[-1:] = b"\t"  # the row goes on with the timestamps the writer adds
        return bytes(out)

    return fmt


@dataclass(slots=True)
class PackedInteractions:
    """Prepared interactions of one chunk, packed where they were prepared (a worker
    process of the file import) into what the writer needs and no more: parallel lists,
    and each row as a tuple in ``_PACKED_HEAD`` order followed by its timestamp (None:
    the time of writing), or, for PostgreSQL, already as the text of its ``COPY`` line
    (``dated`` tells whether that line holds its timestamp). Unpickling this costs a
    tenth of a list of :class:`Prepared`, and the writer neither builds nor formats rows:
    that work moves to the workers, beside the writer.
    """

    rejects: list[Reject]
    index: list[int]
    ids: list[str]
    hashes: list[str]
    rows: list[Any]
    dated: list[bool] | None = None  # set when rows are COPY text


def pack_interactions(prepared: Sequence[Prepared | Reject], project_id: int,
                      copy_text: Any = None) -> PackedInteractions:
    """Pack prepared interactions for :meth:`Ingestor.write_packed_interactions`;
    ``copy_text`` is :func:`copy_text_formatter` when the rows go to PostgreSQL."""
    out = PackedInteractions([], [], [], [], [], [] if copy_text is not None else None)
    for p in prepared:
        if isinstance(p, Reject):
            out.rejects.append(p)
            continue
        row = p.row
        out.index.append(p.index)
        out.ids.append(p.id)
        out.hashes.append(p.content_hash)
        head = (project_id, *_ROW_HEAD(row), p.content_hash)
        ts = row["timestamp"]
        if copy_text is None:
            out.rows.append((*head, ts))
        else:
            assert out.dated is not None
            out.rows.append(copy_text(head if ts is None else (*head, ts)))
            out.dated.append(ts is not None)
    return out


# -- writing in another process (the embedded SDK) ----------------------------------------
_writer: dict[str, Any] = {}


def init_writer(url: str, settings: Settings, project: Project) -> None:
    """Process-pool initializer for :func:`write_packed_in_worker`: a store of its own."""
    _writer["ingestor"] = Ingestor(Store.from_url(url), settings, project)


def write_packed_in_worker(packed: PackedInteractions) -> tuple[str, Any]:
    """Write packed interactions; ("ok", outcomes) or ("retry", reason) for a transient
    database error, so that no driver exception has to cross the process boundary."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        result = _writer["ingestor"].write_packed_interactions(packed)
    except (OperationalError, InterfaceError) as exc:
        return "retry", f"{type(exc).__name__}: {exc.orig}"
    return "ok", [(r.status, r.field, r.message) for r in result.results]


def compact(prepared: Prepared) -> tuple[str, str, tuple[Any, ...], Any]:
    """A prepared interaction as plain values: (id, content hash, the ``_PACKED_HEAD``
    columns bar project and hash, timestamp). Unlike a :class:`Prepared`, the collector
    stops tracking it at once, so records waiting in a client's queue do not set off full
    garbage collections (they cost the embedded SDK about 10 µs a record)."""
    return prepared.id, prepared.content_hash, _ROW_HEAD(prepared.row), \
        prepared.row["timestamp"]


def pack_compact(items: Sequence[tuple[str, str, tuple[Any, ...], Any]], project_id: int,
                 copy_text: Any = None) -> PackedInteractions:
    """:func:`pack_interactions` for a batch of :func:`compact` interactions."""
    n = len(items)
    out = PackedInteractions([], list(range(n)), [c[0] for c in items],
                             [c[1] for c in items], [],
                             [] if copy_text is not None else None)
    rows, dated = out.rows, out.dated
    for _, h, values, ts in items:
        head = (project_id, *values, h)
        if dated is None:
            rows.append((*head, ts))
        else:
            rows.append(copy_text(head if ts is None else (*head, ts)))
            dated.append(ts is not None)
    return out


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

    def write_packed_interactions(self, packed: PackedInteractions) -> BatchResult:
        """Store interactions packed by :func:`pack_interactions` for this project."""
        for attempt in range(3):
            try:
                return self._write_packed(packed)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _write_packed(self, packed: PackedInteractions) -> BatchResult:
        results = [RecordResult(r.index, r.id, "rejected", r.field, r.message)
                   for r in packed.rejects]
        index, ids, hashes = packed.index, packed.ids, packed.hashes
        seen: dict[str, str] = {}
        keep: list[int] = []
        for k, cid in enumerate(ids):
            prior = seen.get(cid)
            if prior is None:
                seen[cid] = hashes[k]
                keep.append(k)
            elif prior == hashes[k]:
                results.append(RecordResult(index[k], cid, "duplicate"))
            else:
                results.append(RecordResult(
                    index[k], cid, "rejected", "id",
                    f"interaction id {cid!r} appears twice in this batch with different "
                    "content"))
        with self.store.transaction() as conn:
            existing = _existing(conn, interactions, self.project.id, list(seen))
            if existing:
                new = []
                for k in keep:
                    old = existing.get(ids[k])
                    if old is None:
                        new.append(k)
                    elif old[1] == hashes[k]:
                        results.append(RecordResult(index[k], ids[k], "duplicate"))
                    else:
                        results.append(RecordResult(
                            index[k], ids[k], "rejected", "id",
                            f"interaction {ids[k]!r} is stored already with different "
                            "content"))
                keep = new
            results.extend(RecordResult(index[k], ids[k], "accepted") for k in keep)
            if keep:
                self._insert_packed(conn, packed, keep)
        results.sort(key=lambda r: r.index)
        return BatchResult(results)

    def _insert_packed(self, conn: Connection, packed: PackedInteractions,
                       keep: list[int]) -> None:
        now = utcnow()
        rows = packed.rows
        cols = ", ".join(_PACKED_COLUMNS)
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        try:
            if packed.dated is not None:
                # Lines formatted by psycopg in the worker: the writer only adds the time.
                dated = packed.dated
                stamp = str(now).encode()
                tails = (b"\t".join((stamp, stamp)) + b"\n", stamp + b"\n")
                data = b"".join(b for k in keep for b in (rows[k], tails[dated[k]]))
                with dbapi.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                        f"COPY interactions ({cols}) FROM STDIN") as copy:
                    copy.write(data)
                return
            values: list[tuple[Any, ...]] = []
            now_db: Any = sqlite_timestamp(now) if self._sqlite else now
            for k in keep:
                row = rows[k]
                ts = row[-1]
                if ts is None:
                    values.append((*row[:-1], now_db, now_db))
                else:
                    if self._sqlite and ts.__class__ is not str:
                        ts = sqlite_timestamp(ts)
                    values.append((*row[:-1], ts, now_db))
            if self._sqlite:
                cur = dbapi.cursor()
                try:
                    cur.executemany(f"INSERT INTO interactions ({cols}) VALUES "
                                    f"({', '.join('?' for _ in _PACKED_COLUMNS)})", values)
                finally:
                    cur.close()
            else:
                with dbapi.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                        f"COPY interactions ({cols}) FROM STDIN") as copy:
                    for v in values:
                        copy.write_row(v)
        except conn.dialect.loaded_dbapi.IntegrityError as exc:
            raise IntegrityError("INSERT INTO interactions", None, exc) from exc

    def copy_text(self) -> bool:
        """Whether interaction rows for this store can be packed as ``COPY`` text:
        PostgreSQL, a psycopg that exposes its row formatter, a UTF-8 connection."""
        if self.store.dialect != "postgresql" or copy_text_formatter() is None:
            return False
        with self.store.read() as conn:
            dbapi = conn.connection.dbapi_connection
            return str(getattr(getattr(dbapi, "info", None), "encoding", "")) == "utf-8"

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
