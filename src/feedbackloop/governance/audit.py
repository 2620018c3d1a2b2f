"""The audit log: an append-only, hash-chained record of every state change.

Each entry says who did what to which entity, when and why, with the state before and
after. Its ``hash`` is SHA-256 over the entry's canonical content *and the previous entry's
hash* (``prev_hash``; the first entry's is :data:`GENESIS_HASH`), so editing, deleting or
reordering any entry breaks the chain from there on; ``audit_head`` holds the chain's tip,
so removing the newest entries is caught too. The database refuses UPDATE and DELETE on the
table (triggers, migration 0006); :func:`verify` catches what someone with the rights to
drop those triggers did anyway.

:func:`record` writes inside the caller's transaction, so the entry commits or rolls back
with the change it describes. Appends serialise on the ``audit_head`` row (``SELECT …
FOR UPDATE`` on PostgreSQL; SQLite's write transactions are serial already).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from ..store import Store, as_utc, utcnow
from ..store.tables import audit_head, audit_log

__all__ = ["GENESIS_HASH", "AuditEntry", "Verification", "entries", "entry_hash", "record",
           "refuse_change", "verify"]

GENESIS_HASH = "0" * 64
_MAX_TEXT = 10_000


@dataclass(frozen=True)
class AuditEntry:
    id: int
    project_id: int | None
    actor: str
    action: str
    entity_kind: str
    entity_id: str | None
    before: Any
    after: Any
    reason: str | None
    created_at: datetime
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project_id": self.project_id, "actor": self.actor,
                "action": self.action, "entity_kind": self.entity_kind,
                "entity_id": self.entity_id, "before": self.before, "after": self.after,
                "reason": self.reason, "created_at": self.created_at.isoformat(),
                "prev_hash": self.prev_hash, "hash": self.hash}


def _jsonable(value: Any) -> Any:
    # Round-trip through JSON now, so the hash is computed on exactly what is stored.
    if value is None:
        return None
    return orjson.loads(orjson.dumps(value, default=str,
                                     option=orjson.OPT_NON_STR_KEYS))


def entry_hash(*, entry_id: int, project_id: int | None, actor: str, action: str,
               entity_kind: str, entity_id: str | None, before: Any, after: Any,
               reason: str | None, created_at: datetime, prev_hash: str) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, UTC time to the microsecond)
    followed by the previous entry's hash."""
    stamp = as_utc(created_at)
    assert stamp is not None
    body = orjson.dumps(
        {"id": entry_id, "project_id": project_id, "actor": actor, "action": action,
         "entity_kind": entity_kind, "entity_id": entity_id, "before": before,
         "after": after, "reason": reason,
         "created_at": stamp.isoformat(timespec="microseconds")},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(body + b"\n" + prev_hash.encode()).hexdigest()


def record(conn: Connection, *, actor: str, action: str, entity_kind: str,
           entity_id: str | int | None = None, project_id: int | None = None,
           before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
           reason: str | None = None) -> AuditEntry:
    """Append one entry in the caller's (write) transaction and return it.

    ``action`` is a dotted verb (``model.promote``, ``finding.status``, ``gate.sign``…);
    ``before``/``after`` the parts of the entity's state that changed (JSON-able; dates
    become ISO text). ``actor`` is the principal's name ("cli:<user>" for the command
    line when no user is known)."""
    head = conn.execute(
        select(audit_head.c.last_id, audit_head.c.last_hash)
        .where(audit_head.c.id == 1).with_for_update()).one()
    values = {
        "project_id": project_id, "actor": (actor or "unknown")[:100],
        "action": action[:50], "entity_kind": entity_kind[:30],
        "entity_id": None if entity_id is None else str(entity_id)[:200],
        "before": _jsonable(before), "after": _jsonable(after),
        "reason": None if reason is None else reason[:_MAX_TEXT],
        "created_at": utcnow(),
    }
    new_id = int(head.last_id) + 1
    digest = entry_hash(entry_id=new_id, prev_hash=head.last_hash, **values)
    conn.execute(audit_log.insert().values(id=new_id, prev_hash=head.last_hash,
                                           hash=digest, **values))
    conn.execute(update(audit_head).where(audit_head.c.id == 1)
                 .values(last_id=new_id, last_hash=digest))
    return AuditEntry(id=new_id, prev_hash=head.last_hash, hash=digest, **values)


def _entry(row: Any) -> AuditEntry:
    created = as_utc(row.created_at)
    assert created is not None
    return AuditEntry(id=int(row.id), project_id=row.project_id, actor=row.actor,
                      action=row.action, entity_kind=row.entity_kind,
                      entity_id=row.entity_id, before=row.before, after=row.after,
                      reason=row.reason, created_at=created, prev_hash=row.prev_hash,
                      hash=row.hash)


def entries(conn: Connection, *, project_id: int | None = None,
            entity_kind: str | None = None, entity_id: str | None = None,
            before_id: int | None = None, limit: int = 100) -> list[AuditEntry]:
    """Newest first, optionally for one project or one entity; ``before_id`` pages."""
    q = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if project_id is not None:
        q = q.where(audit_log.c.project_id == project_id)
    if entity_kind is not None:
        q = q.where(audit_log.c.entity_kind == entity_kind)
    if entity_id is not None:
        q = q.where(audit_log.c.entity_id == entity_id)
    if before_id is not None:
        q = q.where(audit_log.c.id < before_id)
    return [_entry(r) for r in conn.execute(q)]


def refuse_change(store: Store, entry_id: int, *, actor: str, change: str,
                  project_id: int | None = None) -> None:
    """Refuse an edit or deletion of an audit entry (asked through the API): the attempt
    is recorded as ``audit.<change>.refused`` in its own transaction, then
    :class:`~feedbackloop.errors.Conflict` explains why. An entry that does not exist (in
    ``project_id``, when given) is NotFound, and nothing is recorded."""
    from ..errors import Conflict, NotFound

    with store.transaction() as conn:
        q = select(audit_log.c.id, audit_log.c.project_id).where(audit_log.c.id == entry_id)
        row = conn.execute(q).first() if 0 < entry_id < 2**63 else None
        if row is None or (project_id is not None and row.project_id != project_id):
            raise NotFound(f"no audit entry {entry_id}", field="entry_id")
        record(conn, actor=actor, action=f"audit.{change}.refused", entity_kind="audit_entry",
               entity_id=entry_id, project_id=row.project_id,
               reason=f"audit entries are append-only: {change} refused")
    raise Conflict(f"audit entry {entry_id} is closed: the audit log is append-only, so it "
                   f"cannot be changed ({change} refused; this attempt is recorded)",
                   field="entry_id")


def _walk(conn: Connection) -> Iterator[AuditEntry]:
    # Closed when the walk stops early (verify returns at the first bad entry): an open
    # server-side cursor on PostgreSQL would otherwise be left to the garbage collector.
    with conn.execution_options(yield_per=5000).execute(
            select(audit_log).order_by(audit_log.c.id)) as result:
        for row in result:
            yield _entry(row)


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    first_bad: int | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad": self.first_bad,
                "reason": self.reason}


def verify(store: Store) -> Verification:
    """Walk the whole chain in id order. The first entry whose content does not hash to its
    ``hash``, whose ``prev_hash`` is not the previous entry's hash, or whose id skips, is
    named with the reason; a chain whose tip is not ``audit_head``'s lost its newest
    entries."""
    n = 0
    prev_hash, prev_id = GENESIS_HASH, 0
    with store.read() as conn:
        for e in _walk(conn):
            n += 1
            if e.id != prev_id + 1:
                return Verification(False, n, e.id, f"entry {e.id} follows entry {prev_id}: "
                                    f"{e.id - prev_id - 1} entr(ies) missing or renumbered")
            if e.prev_hash != prev_hash:
                return Verification(False, n, e.id, f"entry {e.id} does not chain to the "
                                    "entry before it (reordered, or one before it changed)")
            expected = entry_hash(
                entry_id=e.id, project_id=e.project_id, actor=e.actor, action=e.action,
                entity_kind=e.entity_kind, entity_id=e.entity_id, before=e.before,
                after=e.after, reason=e.reason, created_at=e.created_at,
                prev_hash=e.prev_hash)
            if expected != e.hash:
                return Verification(False, n, e.id,
                                    f"entry {e.id}'s content does not match its hash (edited)")
            prev_hash, prev_id = e.hash, e.id
        head = conn.execute(select(audit_head.c.last_id, audit_head.c.last_hash)
                            .where(audit_head.c.id == 1)).one_or_none()
    if head is None:
        return Verification(False, n, None, "the chain's head record is missing")
    if int(head.last_id) != prev_id or head.last_hash != prev_hash:
        return Verification(False, n, prev_id + 1,
                            f"the chain ends at entry {prev_id} but its head says "
                            f"{int(head.last_id)}: the newest entries were removed")
    return Verification(True, n, None, None)
