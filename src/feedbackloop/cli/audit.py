"""``feedbackloop audit verify|list`` and ``feedbackloop trace``: the audit log and the
provenance graph.

``audit verify`` walks the whole hash chain: exit 0 when it is intact, 1 when an entry was
edited, deleted or reordered (the first bad entry is named); ``--json`` prints
``{"ok", "entries", "first_bad"}``. ``trace`` explains a node of the loop from both sides:
what it came from and what it led to.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from ..errors import InvalidInput
from .common import EXIT_REJECTED, Db, Json, echo_json, err, open_store, out

__all__ = ["register"]

OptionalProject = Annotated[str | None, typer.Option(
    "--project", "-p", metavar="NAME", show_default=False,
    help="Project name (default: the project the starting node belongs to).")]
TraceFormat = Literal["text", "md"]


def verify_command(db: Db = None, json: Json = False) -> None:
    """Check the audit log's hash chain: exit 0 when intact, 1 when an entry was edited,
    deleted or reordered (the first bad entry is named, with the reason on stderr)."""
    from ..governance.audit import verify

    with open_store(db) as (_settings, store):
        result = verify(store)
    if json:
        echo_json({"ok": result.ok, "entries": result.entries,
                   "first_bad": result.first_bad})
        if not result.ok:
            err().print(f"[bold red]broken:[/] {escape(result.reason or '')}")
    elif result.ok:
        out().print(f"audit log intact: {result.entries:,} entries, every hash chains to the "
                    "one before and the head matches")
    else:
        err().print(f"[bold red]audit log broken at entry {result.first_bad}:[/] "
                    f"{escape(result.reason or '')} ({result.entries:,} entries read)")
    if not result.ok:
        raise typer.Exit(EXIT_REJECTED)


def _entity(text: str | None) -> tuple[str | None, str | None]:
    if text is None:
        return None, None
    kind, sep, ident = text.partition(":")
    if not kind.strip() or (sep and not ident.strip()):
        raise InvalidInput(f"--entity {text!r} must look like KIND or KIND:ID", field="entity")
    return kind.strip(), ident.strip() or None


def list_command(
    project: OptionalProject = None,
    entity: Annotated[str | None, typer.Option(
        "--entity", metavar="KIND[:ID]", show_default=False,
        help="Only entries about this kind of entity (project, model_version, experiment, "
             "finding, gate, release…), or this one entity.")] = None,
    before: Annotated[int | None, typer.Option(
        "--before", metavar="ID", show_default=False,
        help="Only entries older than this id (to page back).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000,
                                       help="At most this many entries.")] = 50,
    db: Db = None, json: Json = False,
) -> None:
    """Audit entries, newest first: who did what to which entity, when and why, with the
    state before and after."""
    from ..capture.projects import get_project
    from ..governance.audit import entries

    kind, ident = _entity(entity)
    with open_store(db) as (_settings, store), store.read() as conn:
        project_id = get_project(conn, project).id if project is not None else None
        found = entries(conn, project_id=project_id, entity_kind=kind, entity_id=ident,
                        before_id=before, limit=limit)
    if json:
        echo_json([e.to_dict() for e in found])
        return
    if not found:
        out().print("no audit entries match")
        return
    console = out()
    for e in found:
        change = _change(e.before, e.after)
        entity = e.entity_kind + (f":{e.entity_id}" if e.entity_id else "")
        console.print(f"[bold]#{e.id}[/] {e.created_at:%Y-%m-%d %H:%M:%S} UTC  "
                      f"{escape(e.actor)}  [bold]{escape(e.action)}[/]  {escape(entity)}"
                      + (f"  {escape(change)}" if change else "")
                      + (f"  — {escape(e.reason[:80])}" if e.reason else ""))


def _change(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = [k for k in after if before.get(k) != after.get(k)]
        if keys:
            return ", ".join(f"{k}: {before.get(k)!s} → {after.get(k)!s}"
                             for k in keys[:3])[:120]
    if isinstance(after, dict):
        return ", ".join(f"{k}={v!s}" for k, v in list(after.items())[:4])[:120]
    return ""


def trace_command(
    feedback: Annotated[str | None, typer.Option(
        "--feedback", metavar="ID", show_default=False,
        help="Start at a feedback item (its id or client id).")] = None,
    model_version: Annotated[str | None, typer.Option(
        "--model-version", metavar="COMPONENT:NAME", show_default=False,
        help="Start at a model version.")] = None,
    finding: Annotated[int | None, typer.Option(
        "--finding", metavar="ID", show_default=False, help="Start at a finding.")] = None,
    dataset: Annotated[int | None, typer.Option(
        "--dataset", metavar="ID", show_default=False, help="Start at a dataset.")] = None,
    experiment: Annotated[int | None, typer.Option(
        "--experiment", metavar="ID", show_default=False,
        help="Start at an experiment.")] = None,
    release: Annotated[int | None, typer.Option(
        "--release", metavar="ID", show_default=False, help="Start at a release.")] = None,
    project: OptionalProject = None,
    limit: Annotated[int, typer.Option(
        min=1, max=1000, help="At most this many neighbours of one kind per node (the "
                              "rest are counted).")] = 25,
    format: Annotated[TraceFormat, typer.Option(
        "--format",
        help="text: a list for the terminal; md: a Markdown document with links.")] = "text",
    db: Db = None, json: Json = False,
) -> None:
    """Explain a node of the loop both ways: feedback → finding → dataset → model version →
    experiment → release. Upstream is what it came from, downstream what it led to."""
    from ..capture.projects import get_project
    from ..governance.provenance import project_of, trace, trace_markdown

    given = [(k, v) for k, v in (("feedback", feedback), ("model_version", model_version),
                                 ("finding", finding), ("dataset", dataset),
                                 ("experiment", experiment), ("release", release))
             if v is not None]
    if len(given) != 1:
        raise InvalidInput("say where to start: exactly one of --feedback, --model-version, "
                           "--finding, --dataset, --experiment, --release", field="start")
    kind, start = given[0]
    with open_store(db) as (_settings, store):
        with store.read() as conn:
            proj = get_project(conn, project) if project is not None \
                else project_of(conn, kind, start)
        graph = trace(store, proj, kind, start, limit=limit)
    if json:
        echo_json(graph)
        return
    if format == "md":
        typer.echo(trace_markdown(graph), nl=False)
        return
    console = out()
    console.print(f"[bold]provenance of {graph['start']}[/] (project {escape(graph['project'])})")
    for n in graph["nodes"]:
        console.print(f"  {n['direction']:<10} {escape(n['label'])}"
                      + (f"  [dim]{escape(n['url'])}[/]" if n["url"] else ""))
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    for e in graph["edges"]:
        out().print(f"  {escape(labels[e['src']])} —{e['relation']}→ {escape(labels[e['dst']])}")
    for t in graph["truncated"]:
        out().print(f"[dim]{t['from']}: showing {t['shown']} of {t['total']} {t['kind']} "
                    "links (raise --limit)[/]")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
    group = typer.Typer(help="The audit log: verify its hash chain, list entries.",
                        no_args_is_help=True)
    group.command("verify")(verify_command)
    group.command("list")(list_command)
    app.add_typer(group, name="audit")
    app.command("trace")(trace_command)
