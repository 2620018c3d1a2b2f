"""Commands about the instance and its projects: ``init``, ``projects``, ``signals`` and
``status``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.engine import make_url

from ..capture.browse import project_status
from ..capture.projects import (
    create_project,
    create_signal,
    get_project,
    list_projects,
    list_signals,
)
from ..capture.schema import SignalIn
from ..errors import InvalidInput
from .common import (
    Db,
    Json,
    ProjectName,
    RedactionPolicy,
    RiskTier,
    SignalType,
    echo_json,
    open_store,
    out,
)

__all__ = ["register"]


def init(db: Db = None, json: Json = False) -> None:
    """Create the data folder and the database, and bring the schema up to date."""
    with open_store(db) as (settings, store):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.is_embedded:
            settings.pseudonym_key_bytes()  # generated once, beside the database
        url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        info = {"database": url, "data_dir": str(settings.data_dir.resolve()),
                "revision": store.current_revision()}
    if json:
        echo_json(info)
        return
    out().print(f"Database ready: [bold]{info['database']}[/] (schema {info['revision']})")
    out().print(f"Data folder: {info['data_dir']}")


def projects_create(
    name: Annotated[str, typer.Argument(help="Project name: letters, digits, '_', '.', '-'.")],
    risk_tier: Annotated[RiskTier, typer.Option(
        "--risk-tier",
        help="Sets which roles must sign off a release.")] = "medium",
    redaction: Annotated[RedactionPolicy, typer.Option(
        "--redaction",
        help="What to do with PII in texts: replace it, hash it, or refuse the record.")
    ] = "redact",
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    db: Db = None, json: Json = False,
) -> None:
    """Create a project."""
    with open_store(db) as (_settings, store):
        project = create_project(store, name, description=description, risk_tier=risk_tier,
                                 redaction_policy=redaction, actor="cli")
    if json:
        echo_json(project.to_dict())
        return
    out().print(f"Created project [bold]{project.name}[/] (risk tier {project.risk_tier}, "
                f"redaction {project.redaction_policy}).")


def projects_list(db: Db = None, json: Json = False) -> None:
    """List the projects."""
    with open_store(db) as (_settings, store), store.read() as conn:
        found = list_projects(conn)
    if json:
        echo_json([p.to_dict() for p in found])
        return
    table = Table("name", "risk tier", "redaction", "created", "description", title="Projects")
    for p in found:
        table.add_row(p.name, p.risk_tier, p.redaction_policy,
                      p.created_at.strftime("%Y-%m-%d %H:%M"), p.description)
    out().print(table if found else "No projects yet: feedbackloop projects create NAME")


def signals_create(
    name: Annotated[str, typer.Argument(help="Signal name, e.g. thumbs, rating, issue.")],
    project: ProjectName,
    type: Annotated[SignalType, typer.Option(
        "--type", "-t",
        help="What kind of judgement it is.")],
    scale_min: Annotated[float | None, typer.Option(
        "--min", help="Lowest value (ordinal, numeric).")] = None,
    scale_max: Annotated[float | None, typer.Option(
        "--max", help="Highest value (ordinal, numeric).")] = None,
    labels: Annotated[list[str] | None, typer.Option(
        "--label", "-l", help="An allowed label (categorical); repeat for each.")] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    db: Db = None, json: Json = False,
) -> None:
    """Define a signal (a named thing that is judged) in a project."""
    try:
        spec = SignalIn(name=name, type=type, scale_min=scale_min,
                        scale_max=scale_max, labels=labels or None, description=description)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "signal"
        raise InvalidInput(f"signal {field}: {first['msg']}", field=field) from None
    with open_store(db) as (_settings, store):
        with store.read() as conn:
            proj = get_project(conn, project)
        signal = create_signal(store, proj, spec, actor="cli")
    if json:
        echo_json(signal.to_dict())
        return
    out().print(f"Created signal [bold]{signal.name}[/] ({signal.type}) in {proj.name}.")


def signals_list(project: ProjectName, db: Db = None, json: Json = False) -> None:
    """List a project's signals."""
    with open_store(db) as (_settings, store), store.read() as conn:
        found = list_signals(conn, get_project(conn, project).id)
    if json:
        echo_json([s.to_dict() for s in found])
        return
    table = Table("name", "type", "scale", "labels", "description",
                  title=f"Signals of {project}")
    for s in found:
        scale = f"{s.scale_min:g}..{s.scale_max:g}" if s.scale_min is not None \
            and s.scale_max is not None else ""
        table.add_row(s.name, s.type, scale, ", ".join(s.labels or []), s.description)
    out().print(table if found else f"No signals in {project} yet.")


def status(
    project: Annotated[str | None, typer.Option(
        "--project", "-p", metavar="NAME", help="One project (default: all).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Counts of interactions and feedback by kind, signal, source and model version."""
    with open_store(db) as (_settings, store), store.read() as conn:
        chosen = [get_project(conn, project)] if project else list_projects(conn)
        report = [{"project": p.name, **project_status(conn, p.id)} for p in chosen]
    if json:
        echo_json({"projects": report})
        return
    console = out()
    if not report:
        console.print("No projects yet: feedbackloop projects create NAME")
    for item in report:
        console.print(_status_table(item))


def _status_table(item: dict[str, Any]) -> Table:
    table = Table("group", "value", "count", title=f"Project {item['project']}")
    table.add_row("kind", "interactions", f"{item['interactions']:,}")
    table.add_row("kind", "feedback", f"{item['feedback']:,}")
    for group, key in (("signal", "by_signal"), ("source", "by_source"),
                       ("model version", "by_model_version")):
        for value, n in item[key].items():
            table.add_row(group, str(value), f"{n:,}")
    return table


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("status")(status)
    projects = typer.Typer(help="Create and list projects.", no_args_is_help=True)
    projects.command("create")(projects_create)
    projects.command("list")(projects_list)
    app.add_typer(projects, name="projects")
    signals = typer.Typer(help="Define and list the signals of a project.",
                          no_args_is_help=True)
    signals.command("create")(signals_create)
    signals.command("list")(signals_list)
    app.add_typer(signals, name="signals")
