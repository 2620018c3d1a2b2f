"""The store: migrations on both databases, WAL mode, round trips."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import text

from feedbackloop.capture.browse import get_interaction
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

EXPECTED_TABLES = {"projects", "signals", "interactions", "feedback", "users", "memberships",
                   "api_tokens", "alembic_version", "score_cache", "score_errors", "evaluations",
                   "discrepancy_tags"}


def test_migrations_create_every_table(store: Store) -> None:
    assert set(store.table_names()) >= EXPECTED_TABLES
    assert store.current_revision() == store.head_revision()
    store.ensure_schema()  # idempotent
    assert store.current_revision() == store.head_revision()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    store = Store.from_url(sqlite_url)
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_default_database_is_sqlite_under_data_dir(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = load_settings(data_dir=str(tmp_path / "d"))
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'd' / 'feedbackloop.db'}"
    store = Store.from_url(s.resolved_database_url)
    store.ensure_schema()
    assert (tmp_path / "d" / "feedbackloop.db").exists()


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=200).filter(lambda s: "@" not in s and not any(c.isdigit() for c in s))
_attr = st.dictionaries(st.text(st.characters(codec="ascii", categories=("L",)), min_size=1,
                                max_size=10),
                        st.one_of(st.text(st.characters(codec="ascii", categories=("L",)),
                                          max_size=10), st.booleans(),
                                  st.integers(-1000, 1000)), max_size=4)


def test_write_then_read_round_trips(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Whatever text goes in (bar PII, which is redacted) comes back unchanged, on both
    databases: Unicode, quotes, JSON attributes, time zones."""
    settings = load_settings(data_dir=str(tmp_path), database_url=db_url, pseudonym_key="k")
    store = Store.from_url(db_url)
    project = create_project(store, "rt")
    ingestor = Ingestor(store, settings, project)
    counter = iter(range(10**6))

    @hsettings(max_examples=40, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(inp=_text, out=_text, attrs=_attr,
           ts=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1),
                           timezones=st.just(UTC)),
           latency=st.one_of(st.none(), st.floats(0, 1e7)))
    def check(inp: str, out: str, attrs: dict, ts: datetime, latency: float | None) -> None:
        cid = f"r{next(counter)}"
        rec = {"id": cid, "input": inp, "output": out, "attributes": attrs,
               "timestamp": ts.isoformat(), "latency_ms": latency}
        result = ingestor.interactions([rec])
        assert result.accepted == 1, result.results
        with store.read() as conn:
            got = get_interaction(conn, project.id, cid)
        assert got.input == inp
        assert got.output == out
        assert got.attributes == attrs
        assert got.timestamp == ts.replace(microsecond=ts.microsecond)
        assert got.latency_ms == latency
        # sending it again is a duplicate, never a second row
        assert ingestor.interactions([rec]).duplicates == 1

    check()
    store.dispose()
