"""Shared fixtures: every test gets its own database, on SQLite and on PostgreSQL.

PostgreSQL tests use the server that ``make test`` starts (``FEEDBACKLOOP_TEST_PG_URL``);
each test gets a fresh database copied from a migrated template. Without the server they
skip, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from feedbackloop.settings import Settings, load_settings
from feedbackloop.store import Store

PG_URL = os.environ.get("FEEDBACKLOOP_TEST_PG_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _admin_engine():  # type: ignore[no-untyped-def]
    assert PG_URL is not None
    return create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """Name of a migrated template database on the test server (None without a server)."""
    if PG_URL is None:
        yield None
        return
    name = f"fl_template_{uuid.uuid4().hex[:8]}"
    eng = _admin_engine()
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    store = Store.from_url(PG_URL.rsplit("/", 1)[0] + f"/{name}")
    store.migrate()
    store.dispose()
    yield name
    with eng.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    eng.dispose()


def _pg_database(template: str | None) -> Iterator[str]:
    if PG_URL is None or template is None:
        if IN_CI:
            pytest.fail("CI=true but no PostgreSQL server: FEEDBACKLOOP_TEST_PG_URL is unset "
                        "(run the suite through `make test`)")
        pytest.skip("PostgreSQL not available (run through `make test` with it installed)")
    name = f"fl_test_{uuid.uuid4().hex[:12]}"
    eng = _admin_engine()
    with eng.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with eng.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path,
           pg_template: str | None) -> Iterator[str]:
    """A fresh, migrated database URL: SQLite file and PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fl.db'}"
        s = Store.from_url(url)
        s.migrate()
        s.dispose()
        yield url
    else:
        yield from _pg_database(pg_template)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'fl.db'}"
    s = Store.from_url(url)
    s.migrate()
    s.dispose()
    return url


@pytest.fixture
def pg_url(pg_template: str | None) -> Iterator[str]:
    yield from _pg_database(pg_template)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return load_settings(data_dir=str(tmp_path / "data"), database_url=db_url,
                         pseudonym_key="test-pseudonym-key")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store.from_url(db_url)
    yield s
    s.dispose()
