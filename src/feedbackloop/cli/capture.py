"""Commands that move records: ``ingest`` a file, ``export`` a project, run the ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..capture.importer import export as export_records
from ..capture.importer import import_file
from ..capture.projects import get_project
from ..errors import ConfigurationError
from .common import (
    EXIT_REJECTED,
    Db,
    FormatName,
    Json,
    KindName,
    ProjectName,
    echo_json,
    err,
    open_store,
    out,
    parse_time,
)

__all__ = ["register"]

Kind = Annotated[KindName, typer.Option("--kind", "-k",
                                   help="What the records are.")]
Format = Annotated[FormatName | None, typer.Option(
    "--format", "-f", show_default=False,
    help="File format; default: from the extension (.jsonl/.ndjson, .csv, .parquet; "
         ".gz for JSONL and CSV).")]
SHOWN_ERRORS = 20


def ingest(
    file: Annotated[Path, typer.Argument(help="JSONL, CSV or Parquet file to import.",
                                         show_default=False)],
    project: ProjectName,
    kind: Kind,
    format: Format = None,
    rejects: Annotated[Path | None, typer.Option(
        "--rejects", metavar="FILE", show_default=False,
        help="Write every rejected record (line, id, field, message and the record) "
             "to this JSONL file.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=0, max=64,
        help="Worker processes that validate and redact; 0 runs in this process.")] = 2,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", show_default=False,
        help="Show a progress bar on stderr (default: when stderr is a terminal).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Import interactions or feedback from a file, streaming. Exit code 1 when any record
    was rejected; running the same import again adds nothing twice."""
    with open_store(db) as (settings, store):
        with store.read() as conn:
            proj = get_project(conn, project)
        result = import_file(store, settings, proj, kind, file, format=format,
                             rejects=rejects, workers=workers, progress=progress)
    if json:
        echo_json(result.to_dict())
    else:
        out().print(f"{kind} from {escape(file.name)} into {proj.name}: "
                    f"[green]{result.accepted:,} accepted[/], "
                    f"{result.duplicates:,} duplicates, "
                    f"[{'red' if result.rejected else 'green'}]{result.rejected:,} rejected[/]")
        if result.rejected:
            _print_errors(result.errors, result.rejected, rejects)
    if result.rejected:
        raise typer.Exit(EXIT_REJECTED)


def _print_errors(errors: list[dict[str, object]], total: int, rejects: Path | None) -> None:
    table = Table("line", "id", "field", "message", title="Rejected records")
    for e in errors[:SHOWN_ERRORS]:
        table.add_row(str(e["line"]), escape(str(e["id"] or "")), escape(str(e["field"])),
                      escape(str(e["message"])))
    console = err()
    console.print(table)
    if total > SHOWN_ERRORS:
        where = f"all of them are in {rejects}" if rejects else "use --rejects FILE for all"
        console.print(f"… and {total - SHOWN_ERRORS:,} more; {where}.")


def export(
    project: ProjectName,
    kind: Kind,
    out_path: Annotated[Path, typer.Option(
        "--out", "-o", metavar="FILE", show_default=False,
        help="File to write; replaced only once the export is complete.")],
    format: Format = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="ISO-TIME", show_default=False,
        help="Only records from this time on (ISO 8601; UTC without a zone).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Export a project's interactions or feedback with the wire field names, so that the
    file imports again unchanged."""
    since_at = parse_time(since, "since")
    with open_store(db) as (_settings, store):
        with store.read() as conn:
            proj = get_project(conn, project)
        result = export_records(store, proj, kind, out_path, format=format, since=since_at)
    if json:
        echo_json(result.to_dict())
        return
    out().print(f"Wrote {result.records:,} {kind} of {proj.name} to "
                f"{escape(result.path)} ({result.format}).")


def demo(
    project: Annotated[str, typer.Option("--project", "-p", metavar="NAME",
                                         help="Project to fill with sample data.")] = "demo",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample data.")] = 0,
    interactions: Annotated[int | None, typer.Option(
        "--interactions", min=1, show_default=False,
        help="How many sample interactions (default: the demo's own).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Create a sample project and import realistic interactions and feedback into it."""
    try:
        from .. import demo as demo_job
    except ImportError as exc:
        raise ConfigurationError(f"the demo is not available in this installation: {exc}",
                                 setting="demo") from None
    with open_store(db) as (settings, _store):
        pass  # validates the settings and migrates before the demo starts
    extra = {"n_interactions": interactions} if interactions is not None else {}
    summary = demo_job.run(settings, project=project, seed=seed,
                           console=err() if json else out(), **extra)
    if json:
        echo_json(summary)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("export")(export)
    app.command("demo")(demo)
