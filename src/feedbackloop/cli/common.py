"""What every command shares: the ``--db`` and ``--json`` options, opening the store,
printing, and turning our errors into exit codes.

Exit codes: 0 success, 1 input partly rejected, 2 usage or configuration error (a
:class:`~feedbackloop.errors.FeedbackloopError`, or a Typer usage error).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.console import Console
from typer.core import TyperGroup

from ..errors import FeedbackloopError, InvalidInput
from ..settings import Settings, load_settings
from ..store import Store

__all__ = ["Db", "Json", "ProjectName", "echo_json", "err", "open_store", "out"]

# Choices as Literal types so that --help lists them; tests pin them to the domain tuples
# (RISK_TIERS, POLICIES, SIGNAL_TYPES, ROLES, KINDS, FORMATS).
RiskTier = Literal["low", "medium", "high"]
RedactionPolicy = Literal["redact", "hash", "drop"]
SignalType = Literal["binary", "ordinal", "numeric", "categorical", "pairwise", "text"]
RoleName = Literal["admin", "maintainer", "expert", "annotator", "viewer", "ingest"]
KindName = Literal["interactions", "feedback"]
FormatName = Literal["jsonl", "csv", "parquet"]

EXIT_REJECTED = 1
EXIT_USAGE = 2

Db = Annotated[str | None, typer.Option(
    "--db", metavar="URL", show_default=False,
    help="Database URL; overrides FEEDBACKLOOP_DATABASE_URL. Default: SQLite under "
         ".feedbackloop/.")]
Json = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ProjectName = Annotated[str, typer.Option("--project", "-p", metavar="NAME",
                                          help="Project name.")]


def out() -> Console:
    """Human output (stdout)."""
    return Console(highlight=False)


def err() -> Console:
    """Messages and errors (stderr), so that stdout stays clean for pipes."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def echo_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, default=str).decode() + "\n")
    sys.stdout.flush()


def parse_time(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date or time from an option (UTC when it has no zone), or None."""
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--{field} {value!r} is not an ISO 8601 date or time",
                           field=field) from None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def settings_for(db: str | None) -> Settings:
    return load_settings(database_url=db)


@contextmanager
def open_store(db: str | None) -> Iterator[tuple[Settings, Store]]:
    """Settings and a migrated store (migrated lazily: cheap when current)."""
    settings = settings_for(db)
    store = Store.from_url(settings.resolved_database_url)
    try:
        store.ensure_schema()
        yield settings, store
    finally:
        store.dispose()


def _message(exc: FeedbackloopError) -> str:
    field = exc.details.get("field")
    if isinstance(exc, InvalidInput) and field and field not in exc.message:
        return f"{exc.message} (field {field})"
    return exc.message


class CommandGroup(TyperGroup):
    """The root group: maps our errors to a message on stderr and exit code 2, so every
    command behaves alike under the CLI, in tests and in scripts."""

    def invoke(self, ctx: Any) -> Any:
        from sqlalchemy.exc import OperationalError

        try:
            return super().invoke(ctx)
        except FeedbackloopError as exc:
            err().print(f"[bold red]error:[/] {_escape(_message(exc))}")
            raise typer.Exit(EXIT_USAGE) from None
        except OperationalError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
            err().print(f"[bold red]error:[/] cannot use the database: {_escape(reason)}")
            raise typer.Exit(EXIT_USAGE) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def key_values(values: list[str] | None, option: str) -> dict[str, str]:
    """Repeated ``KEY=VALUE`` options as a dict of text; a malformed one names the option."""
    found: dict[str, str] = {}
    for pair in values or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} {pair!r} must look like KEY=VALUE",
                               field=option.lstrip("-"))
        found[key.strip()] = value.strip()
    return found


@contextmanager
def stage_progress(show: bool, first: str) -> Iterator[Any]:
    """A Rich progress bar on stderr fed by a service's ``progress(stage, done, total)``
    callback; yields the callback, or None when not shown."""
    if not show:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description:<28}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   console=err(), transient=True)
    task = bar.add_task(first, total=1)

    def update(stage: str, done: int, total: int) -> None:
        bar.update(task, description=stage, completed=done, total=max(total, 1))

    with bar:
        yield update
