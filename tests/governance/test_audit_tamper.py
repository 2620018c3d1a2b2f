"""Tampering with the audit table, on SQLite and PostgreSQL: the database refuses UPDATE and
DELETE through the application's own connection; someone who drops the triggers first can
edit, delete or reorder entries, and ``feedbackloop audit verify`` then exits 1 naming the
first bad entry (``--json``: ``{"ok": false, "entries": n, "first_bad": id}``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Connection, select, text, update
from sqlalchemy.exc import DBAPIError

from feedbackloop.capture.projects import create_project
from feedbackloop.governance import audit
from feedbackloop.store import Store
from feedbackloop.store.tables import audit_head, audit_log

from ..cli.test_cli import Cli


def _seed(store: Store, n: int = 6) -> None:
    p = create_project(store, "shop", actor="ana")
    with store.transaction() as conn:
        for i in range(n - 1):
            audit.record(conn, actor="ana", action="finding.status", entity_kind="finding",
                         entity_id=i, project_id=p.id, before={"status": "new"},
                         after={"status": "triaged"}, reason=f"step {i}")


def _drop_triggers(conn: Connection) -> None:
    for op in ("update", "delete"):
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"DROP TRIGGER audit_log_no_{op} ON audit_log"))
        else:
            conn.execute(text(f"DROP TRIGGER audit_log_no_{op}"))


def _verify(cli: Cli, code: int) -> dict:
    result = cli("audit", "verify", "--json", code=code)
    return orjson.loads(result.stdout)


def test_an_intact_chain_verifies(db_url: str, store: Store, tmp_path: Path) -> None:
    cli = Cli(db_url, tmp_path)
    assert _verify(cli, 0) == {"ok": True, "entries": 0, "first_bad": None}
    _seed(store)
    assert _verify(cli, 0) == {"ok": True, "entries": 6, "first_bad": None}
    assert "audit log intact: 6 entries" in cli("audit", "verify").stdout


def test_the_database_refuses_update_and_delete(store: Store) -> None:
    _seed(store)
    for statement in (update(audit_log).where(audit_log.c.id == 2).values(actor="eve"),
                      audit_log.delete().where(audit_log.c.id == 6)):
        with pytest.raises(DBAPIError, match="append-only"), store.transaction() as conn:
            conn.execute(statement)
    assert audit.verify(store).ok


def _edit(conn: Connection) -> None:
    conn.execute(update(audit_log).where(audit_log.c.id == 3).values(reason="nothing to see"))


def _edit_and_rehash(conn: Connection) -> None:
    # A careful forger recomputes the edited entry's own hash: the next entry still points at
    # the old one, so the chain breaks one entry later.
    row = conn.execute(select(audit_log).where(audit_log.c.id == 3)).one()
    forged = audit.entry_hash(entry_id=3, project_id=row.project_id, actor="eve",
                              action=row.action, entity_kind=row.entity_kind,
                              entity_id=row.entity_id, before=row.before, after=row.after,
                              reason=row.reason, created_at=row.created_at,
                              prev_hash=row.prev_hash)
    conn.execute(update(audit_log).where(audit_log.c.id == 3).values(actor="eve",
                                                                      hash=forged))


def _delete_middle(conn: Connection) -> None:
    conn.execute(audit_log.delete().where(audit_log.c.id == 4))


def _delete_newest(conn: Connection) -> None:
    conn.execute(audit_log.delete().where(audit_log.c.id == 6))


def _swap(conn: Connection) -> None:
    """Reorder: entries 2 and 5 exchange everything but their ids."""
    cols = [c for c in audit_log.c if c.name != "id"]
    rows = {r.id: r for r in conn.execute(select(audit_log).where(audit_log.c.id.in_([2, 5])))}
    for a, b in ((2, 5), (5, 2)):
        conn.execute(update(audit_log).where(audit_log.c.id == a)
                     .values({c.name: getattr(rows[b], c.name) for c in cols}))


def _rewrite_tail(conn: Connection) -> None:
    # Delete the newest entry and move the head back with it: the head's own hash no longer
    # matches... unless the forger rewrites it too; then only the missing id would show,
    # and there is none. What stays detectable is a head that was not moved.
    conn.execute(audit_log.delete().where(audit_log.c.id == 6))
    conn.execute(update(audit_head).values(last_id=6))


@pytest.mark.parametrize(("tamper", "first_bad", "why"), [
    (_edit, 3, "content does not match its hash"),
    (_edit_and_rehash, 4, "does not chain to the entry before it"),
    (_delete_middle, 5, "1 entr(ies) missing"),
    (_delete_newest, 6, "newest entries were removed"),
    (_swap, 2, "does not chain"),
    (_rewrite_tail, 6, "newest entries were removed"),
])
def test_tampering_is_detected_and_named(db_url: str, store: Store, tmp_path: Path,
                                         tamper: Callable[[Connection], None],
                                         first_bad: int, why: str) -> None:
    _seed(store)
    with store.transaction() as conn:
        _drop_triggers(conn)
        tamper(conn)
    cli = Cli(db_url, tmp_path)
    found = _verify(cli, 1)
    assert found["ok"] is False and found["first_bad"] == first_bad
    assert set(found) == {"ok", "entries", "first_bad"}
    result = audit.verify(store)
    assert result.first_bad == first_bad and why in (result.reason or "")
    human = cli("audit", "verify", code=1)
    assert f"broken at entry {first_bad}" in " ".join(human.stderr.split())
