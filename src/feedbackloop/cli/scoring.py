"""The ``score`` command: run automated scorers over a project and store the results.

Without ``--scorer`` it runs every cheap built-in scorer that needs no options and whose
fields the project has (a reference, a context); embedding and LLM scorers load a model or
call an API, so they run only when named.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Column, Table
from sqlalchemy import exists, select

from ..capture.projects import Project, get_project
from ..errors import FeedbackloopError, InvalidInput
from ..scoring.base import Scorer
from ..store import Store
from ..store.tables import interactions
from .common import (
    EXIT_REJECTED,
    Db,
    Json,
    ProjectName,
    echo_json,
    err,
    open_store,
    out,
    parse_time,
)

__all__ = ["EMBEDDING_SCORERS", "NAMED_ONLY", "parse_options", "register"]

EMBEDDING_SCORERS = frozenset({"semantic_relevance", "semantic_similarity"})

# Slow or paid: they load a sentence-embedding model or call a language model.
NAMED_ONLY = ("semantic_relevance", "semantic_similarity", "llm_judge")
SHOWN_ERRORS = 5


def parse_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """``NAME.KEY=VALUE`` pairs → {scorer: {key: value}}. A VALUE that parses as JSON (a
    number, true/false, a list or an object) is taken as such, anything else as text."""
    options: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        head, sep, raw = pair.partition("=")
        name, dot, key = head.partition(".")
        if not sep or not dot or not name or not key:
            raise InvalidInput(f"--option {pair!r} must look like SCORER.KEY=VALUE",
                               field="option")
        try:
            value: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
        options.setdefault(name, {})[key] = value
    return options


def _fields_present(store: Store, project: Project) -> set[str]:
    """The optional interaction fields that at least one of the project's interactions has."""
    t = interactions
    present = {"input", "output"}
    with store.read() as conn:
        for name, col in (("reference", t.c.reference), ("context", t.c.context)):
            if conn.execute(select(exists().where(t.c.project_id == project.id,
                                                  col.is_not(None)))).scalar():
                present.add(name)
    return present


def _chosen(store: Store, project: Project, names: list[str] | None,
            options: dict[str, dict[str, Any]]) -> list[Scorer]:
    from ..scoring.registry import available_scorers, get_scorer

    if names:
        for name in options:
            if name not in names:
                raise InvalidInput(f"--option for scorer {name!r}, which is not run: add "
                                   f"--scorer {name}", field="option")
        # An unknown name is InvalidInput listing the valid ones (exit 2).
        return [get_scorer(n, **options.get(n, {})) for n in dict.fromkeys(names)]
    present = _fields_present(store, project)
    chosen: list[Scorer] = []
    for name in available_scorers():
        if name in NAMED_ONLY:
            continue
        try:
            scorer = get_scorer(name, **options.get(name, {}))
        except FeedbackloopError:
            if name in options:
                raise
            continue  # needs options (a pattern, a schema) or an extra: run it by name
        info = scorer.info
        builtin = type(scorer).__module__.startswith("feedbackloop.scoring.")
        if builtin and info.cpu_bound and set(info.needs) <= present:
            chosen.append(scorer)
    chosen_names = {s.info.name for s in chosen}
    for name in options:
        if name not in chosen_names:
            raise InvalidInput(f"--option for scorer {name!r}, which is not run: add "
                               f"--scorer {name}", field="option")
    if not chosen:
        raise InvalidInput("no scorer to run: name one with --scorer", field="scorer")
    return chosen


def score(
    project: ProjectName,
    scorer: Annotated[list[str] | None, typer.Option(
        "--scorer", "-s", metavar="NAME", show_default=False,
        help="Scorer to run (repeat for several). Default: every cheap built-in scorer "
             "that needs no options and whose fields the project has.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", metavar="NAME.KEY=VALUE", show_default=False,
        help="A scorer option, e.g. regex_match.pattern='^\\d+$' (repeatable). VALUE is read "
             "as JSON when it is JSON, else as text.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", metavar="ISO-TIME", show_default=False,
        help="Only interactions from this time on (ISO 8601; UTC without a zone).")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, max=256, show_default=False,
        help="Processes for CPU-bound scorers (default: one per core); 0 scores in this "
             "process.")] = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, max=100_000, help="Interactions per scorer call.")] = 256,
    retry_errors: Annotated[bool, typer.Option(
        "--retry-errors", help="Try again the items that failed before (e.g. after an API "
                               "outage) instead of skipping them.")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", show_default=False,
        help="Progress bars on stderr (default: when stderr is a terminal; never with "
             "--json).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Score a project's interactions with automated metrics; each scorer's values are
    stored as automated feedback under a signal of its name. Only interactions not yet
    scored by the scorer's version are scored, and content scored before is served from the
    cache, so running it again is cheap. Exit code 1 when some items could not be scored
    (the errors are recorded and listed); 2 for a usage error such as an unknown scorer."""
    from ..scoring.engine import score_project

    since_at = parse_time(since, "since")
    options = parse_options(option or [])
    with open_store(db) as (settings, store):
        with store.read() as conn:
            proj = get_project(conn, project)
        # Embeddings persist beside the database unless told otherwise, so a re-run with a
        # new scorer version or another project skips the model for texts seen before.
        for name in EMBEDDING_SCORERS & set(scorer or ()):
            options.setdefault(name, {}).setdefault(
                "cache_dir", str(settings.data_dir / "embeddings"))
        scorers = _chosen(store, proj, scorer, options)
        # The default set is about what the data allows: a reference metric skips the
        # interactions without a reference. A scorer named explicitly scores them all.
        report = score_project(store, settings, proj, scorers, since=since_at,
                               batch_size=batch_size, workers=workers,
                               progress=False if json else progress,
                               retry_errors=retry_errors, skip_incomplete=not scorer)
    if json:
        echo_json(report.to_dict())
    else:
        table = Table(Column("scorer", no_wrap=True), Column("version", overflow="fold"),
                      *(Column(h, justify="right") for h in ("scored", "cached", "skipped",
                                                             "n/a", "errors", "items/s")),
                      title=f"Scoring {escape(proj.name)}")
        for r in report.scorers:
            table.add_row(escape(r.scorer), escape(r.version), f"{r.scored:,}",
                          f"{r.cached:,}", f"{r.skipped:,}", f"{r.not_applicable:,}",
                          f"[red]{r.errors:,}[/]" if r.errors else "0",
                          f"{r.items_per_second:,.0f}")
        out().print(table)
        for r in report.scorers:
            if not r.errors:
                continue
            console = err()
            console.print(f"[red]{r.errors:,} items could not be scored by "
                          f"{escape(r.scorer)}[/] (recorded; --retry-errors tries again):")
            for e in r.error_samples[:SHOWN_ERRORS]:
                console.print(f"  {escape(e['interaction_id'])}: {escape(e['message'])}")
    if report.errors:
        raise typer.Exit(EXIT_REJECTED)


def register(app: typer.Typer) -> None:
    app.command("score")(score)
