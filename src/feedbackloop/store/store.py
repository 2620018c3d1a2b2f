"""The Store: one engine, explicit transactions, migrations.

Services open transactions with :meth:`Store.transaction` and commit by leaving the block;
functions that take a ``Connection`` never commit on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect

from ..errors import ConfigurationError

__all__ = ["Store", "as_utc", "utcnow"]

MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """Timestamps come back naive from SQLite; they were stored in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _json_loads(value: Any) -> Any:
    # SQLite gives a column declared JSON numeric affinity, so a stored scalar such as
    # 0.75 comes back as a number rather than as its JSON text.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


_JSON = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()
    # The sqlite3 module would open a transaction only at the first write, so the reads of
    # a read-check-write sequence ran outside it and two writers could both act on the same
    # stale read. SQLAlchemy's documented recipe: the driver stays out of the way and
    # _sqlite_begin says BEGIN itself.
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # Write transactions (Store.transaction) take the write lock up front, so what they
    # read stays true until they commit; read transactions get a consistent snapshot.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """Access to the database behind feedbackloop. Build it with :meth:`from_url`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Store:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Pooled connections stay open between transactions. With a connection per
            # transaction, the last close of a WAL database checkpoints and deletes the WAL
            # every time, which halved the batch write rate.
            engine = create_engine(url, echo=echo, pool_size=5, max_overflow=20,
                                   pool_timeout=60, **_JSON)
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        elif url.startswith("postgresql+psycopg"):
            # No server-side prepared statements: after five runs psycopg prepares a query,
            # and PostgreSQL's generic plan for the ingest's `client_id IN (500 ids)` look-up
            # filters every row of the project against every id (0.5 s a chunk, not 5 ms).
            engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=5,
                                   max_overflow=10, connect_args={"prepare_threshold": None},
                                   **_JSON)
        else:
            raise ConfigurationError(
                f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite:/// or "
                "postgresql+psycopg://", setting="database_url")
        return cls(engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error.

        On SQLite it begins IMMEDIATE: writers queue at the start (up to the busy timeout)
        instead of failing or racing when a read-then-write transaction upgrades its lock.
        Do not open a second write transaction while holding one: it waits for the first.
        """
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # -- migrations ----------------------------------------------------------------------
    def _alembic_config(self, conn: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def migrate(self) -> None:
        """Bring the schema to the newest revision (idempotent)."""
        from alembic import command

        with self.engine.begin() as conn:
            command.upgrade(self._alembic_config(conn), "head")

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        with self.engine.connect() as conn:
            head = ScriptDirectory.from_config(self._alembic_config(conn)).get_current_head()
        assert head is not None
        return head

    def ensure_schema(self) -> None:
        """Migrate when the database is behind; cheap when it is current."""
        if self.current_revision() != self.head_revision():
            self.migrate()

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def dispose(self) -> None:
        self.engine.dispose()
