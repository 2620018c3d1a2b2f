"""Throwaway databases for benchmarks: a SQLite file in a temporary folder, or a fresh
PostgreSQL database on the server named by ``FEEDBACKLOOP_TEST_PG_URL``; both migrated
with :meth:`Store.migrate`, both removed afterwards."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from feedbackloop.capture.projects import Project, create_project
from feedbackloop.settings import Settings, load_settings
from feedbackloop.store import Store

PG_URL_VARIABLE = "FEEDBACKLOOP_TEST_PG_URL"
PSEUDONYM_KEY = "benchmark-pseudonym-key"


def pg_url() -> str | None:
    return os.environ.get(PG_URL_VARIABLE) or None


def kinds() -> list[str]:
    """The databases to benchmark on; prints why PostgreSQL is left out when it is."""
    if pg_url() is None:
        print(f"note: {PG_URL_VARIABLE} is unset, PostgreSQL benchmarks are skipped "
              "(run `make bench` to get a throwaway server)")
        return ["sqlite"]
    return ["sqlite", "postgres"]


@dataclass
class BenchDatabase:
    """One migrated database with a project in it."""

    kind: str
    url: str
    workdir: Path
    project: Project

    def settings(self) -> Settings:
        return load_settings(database_url=self.url, data_dir=str(self.workdir / "data"),
                             pseudonym_key=PSEUDONYM_KEY)

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should use this database."""
        return {**os.environ, "FEEDBACKLOOP_DATABASE_URL": self.url,
                "FEEDBACKLOOP_PSEUDONYM_KEY": PSEUDONYM_KEY,
                "FEEDBACKLOOP_DATA_DIR": str(self.workdir / "data")}

    @property
    def sqlite_path(self) -> str:
        return self.url.split("///", 1)[1]

    @property
    def pg_conninfo(self) -> str:
        return self.url.replace("postgresql+psycopg://", "postgresql://", 1)

    def driver_connection(self) -> Any:
        """A raw DB-API connection, opened the way our store opens it."""
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.sqlite_path, isolation_level=None)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "busy_timeout=30000", "cache_size=-65536"):
                conn.execute(f"PRAGMA {pragma}")
            return conn
        import psycopg

        return psycopg.connect(self.pg_conninfo)


@contextmanager
def database(kind: str, project: str = "bench") -> Iterator[BenchDatabase]:
    """A fresh migrated database of ``kind`` holding one project (redaction on)."""
    workdir = Path(tempfile.mkdtemp(prefix="fl-bench-"))
    admin = None
    name = f"fl_bench_{uuid.uuid4().hex[:10]}"
    try:
        if kind == "sqlite":
            url = f"sqlite:///{workdir / 'bench.db'}"
        else:
            base = pg_url()
            assert base is not None
            admin = create_engine(base, isolation_level="AUTOCOMMIT")
            with admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
            url = base.replace("postgresql://", "postgresql+psycopg://", 1) \
                .rsplit("/", 1)[0] + f"/{name}"
        store = Store.from_url(url)
        try:
            store.migrate()
            proj = create_project(store, project, redaction_policy="redact")
        finally:
            store.dispose()
        yield BenchDatabase(kind, url, workdir, proj)
    finally:
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(workdir, ignore_errors=True)


def server_version(kind: str) -> str:
    if kind == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    base = pg_url()
    assert base is not None
    eng = create_engine(base)
    try:
        with eng.connect() as c:
            return str(c.execute(text("SHOW server_version")).scalar_one()).split()[0]
    finally:
        eng.dispose()
