"""What every command shares: the ``--db`` and ``--json`` options, opening the store,
printing, and turning our errors into exit codes.

Exit codes: 0 success, 1 input partly rejected, 2 usage or configuration error (a
:class:`~feedbackloop.errors.FeedbackloopError`, or a Typer usage error).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.console import Console
from typer.core import TyperGroup

from ..errors import FeedbackloopError, InvalidInput, NotFound
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


def read_csv_rows(file: Path, delimiter: str, needed: dict[str, str], *,
                  max_rows: int | None = None) -> tuple[list[dict[str, str]], list[int]]:
    """The rows of a CSV file with a header, checking that the ``needed`` columns (name →
    option) exist; blank lines are skipped; each row's values stripped, with its line number.
    Errors name the file, the line and the column (or the option that named it)."""
    if len(delimiter) != 1 or delimiter in "\r\n\"":
        raise InvalidInput(f"the delimiter must be one character other than a quote or a "
                           f"line break, got {delimiter!r}", field="delimiter")
    if not file.is_file():
        raise NotFound(f"no file {str(file)!r}", field="file")
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle, delimiter=delimiter)
            header = reader.fieldnames
            if not header:
                raise InvalidInput(f"{file.name} is empty: expected a header row with the "
                                   f"columns {', '.join(needed)}", field="file")
            for name, option in needed.items():
                if name not in header:
                    raise InvalidInput(
                        f"unknown column {name!r} ({option}): {file.name} has the columns "
                        f"{', '.join(repr(h) for h in header)}", field=option.lstrip("-"))
            for row in reader:
                if None in row:
                    raise InvalidInput(f"line {reader.line_num} of {file.name} has more "
                                       "fields than the header", field="file")
                if all(not (x or "").strip() for x in row.values()):
                    continue
                if max_rows is not None and len(rows) >= max_rows:
                    raise InvalidInput(f"{file.name} has more than {max_rows:,} rows",
                                       field="file")
                rows.append({k: (v or "").strip() for k, v in row.items()})
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise InvalidInput(f"{file.name} is not UTF-8 text", field="file") from None
    except csv.Error as exc:
        raise InvalidInput(f"{file.name} is not a valid CSV file: {exc}", field="file") \
            from None
    return rows, lines
