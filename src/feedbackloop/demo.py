"""The demo job behind ``feedbackloop demo`` and ``make demo``: a project full of realistic
support-assistant traffic and feedback, imported through the real ingest path, then a
status summary.

It is idempotent: the sample is deterministic by seed, so a second run finds every record
stored already (all duplicates) and the counts stay the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from sqlalchemy import func, or_, select

from .capture.browse import project_status
from .capture.ingest import BatchResult, Ingestor
from .capture.projects import Project, create_project, create_signal, get_project, list_signals
from .capture.sample import SAMPLE_SIGNALS, generate_feedback, generate_interactions
from .errors import Conflict, NotFound
from .settings import Settings
from .store import Store
from .store.tables import feedback, interactions

__all__ = ["BATCH", "count_redacted", "run"]

BATCH = 2_000
"""Records per ingest call: one transaction each, as an API batch would be."""

PLACEHOLDERS = ("EMAIL", "PHONE", "CREDIT_CARD", "IP_ADDRESS", "IBAN", "PERSON")


def _project(store: Store, name: str) -> tuple[Project, bool]:
    """The project named ``name``, created (risk tier medium) when missing."""
    with store.read() as conn:
        try:
            return get_project(conn, name), False
        except NotFound:
            pass
    try:
        return create_project(store, name, risk_tier="medium",
                              description="Sample support-assistant traffic from the demo."
                              ), True
    except Conflict:  # created meanwhile by a concurrent run
        with store.read() as conn:
            return get_project(conn, name), False


def _ensure_signals(store: Store, project: Project) -> list[str]:
    """Create the sample signals the project lacks; the names created."""
    with store.read() as conn:
        have = {s.name for s in list_signals(conn, project.id)}
    made = []
    for spec in SAMPLE_SIGNALS:
        if spec.name not in have:
            try:
                create_signal(store, project, spec)
                made.append(spec.name)
            except Conflict:
                pass
    return made


def _import(records: Sequence[dict[str, Any]], write: Callable[..., BatchResult],
            progress: Progress, label: str) -> BatchResult:
    total = BatchResult()
    task = progress.add_task(label, total=len(records))
    for i in range(0, len(records), BATCH):
        part = records[i : i + BATCH]
        total.extend(write(part, start=i))
        progress.advance(task, len(part))
    return total


def count_redacted(store: Store, project_id: int) -> dict[str, int]:
    """Stored texts holding a redaction placeholder, by kind: interactions whose input or
    output, and feedback whose comment or correction, contains ``<KIND>``. Counts texts,
    not findings; cheap enough for a summary (one LIKE scan per kind)."""
    out: dict[str, int] = {}
    with store.read() as conn:
        for kind in PLACEHOLDERS:
            pat = f"%<{kind}>%"
            n_i = conn.execute(select(func.count()).select_from(interactions).where(
                interactions.c.project_id == project_id,
                or_(interactions.c.input.like(pat), interactions.c.output.like(pat)))
            ).scalar_one()
            n_f = conn.execute(select(func.count()).select_from(feedback).where(
                feedback.c.project_id == project_id,
                or_(feedback.c.comment.like(pat), feedback.c.correction.like(pat)))
            ).scalar_one()
            if n_i or n_f:
                out[kind] = int(n_i) + int(n_f)
    return out


def _counts_table(title: str, counts: dict[str, int], key: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column("count", justify="right")
    for name, n in counts.items():
        table.add_row(str(name), f"{n:,}")
    return table


def _import_table(results: dict[str, dict[str, int]]) -> Table:
    table = Table(title="This run", title_justify="left")
    for col in ("kind", "accepted", "duplicates", "rejected"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind, s in results.items():
        table.add_row(kind, f"{s['accepted']:,}", f"{s['duplicates']:,}", f"{s['rejected']:,}")
    return table


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    status = summary["status"]
    console.print(_import_table(summary["import"]))
    console.print(_counts_table(f"Project {summary['project']!r}",
                                {"interactions": status["interactions"],
                                 "feedback": status["feedback"]}, "kind"))
    console.print(_counts_table("Feedback by signal", status["by_signal"], "signal"))
    console.print(_counts_table("Feedback by source", status["by_source"], "source"))
    console.print(_counts_table("By model version", status["by_model_version"],
                                "model version"))
    if summary["redacted"]:
        console.print(_counts_table("Texts with PII redacted", summary["redacted"],
                                    "placeholder"))
    console.print(f"Done in {summary['seconds']:.1f} s. Next: create a sign-in with "
                  "[bold].venv/bin/feedbackloop users create NAME --password-stdin "
                  "--superuser[/], run [bold]make serve[/] and open http://127.0.0.1:8000")


def run(settings: Settings, *, project: str = "demo", seed: int = 0,
        n_interactions: int = 20_000, console: Console | None = None) -> dict[str, Any]:
    """Create ``project`` with the sample signals when missing, import ``n_interactions``
    sample interactions and their feedback, print the status and return it as a dict:
    ``project``, ``created``, ``import`` (accepted/duplicates/rejected per kind),
    ``status`` (see :func:`~feedbackloop.capture.browse.project_status`), ``redacted``
    and ``seconds``."""
    console = console or Console()
    began = time.perf_counter()
    store = Store.from_url(settings.resolved_database_url)
    try:
        store.ensure_schema()
        proj, created = _project(store, project)
        _ensure_signals(store, proj)
        records = list(generate_interactions(n_interactions, seed=seed))
        items: Iterable[dict[str, Any]] = generate_feedback(records, seed=seed)
        feedback_records = list(items)
        ingestor = Ingestor(store, settings, proj)
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            int_result = _import(records, ingestor.interactions, progress, "interactions")
            fb_result = _import(feedback_records, ingestor.feedback, progress, "feedback")
        with store.read() as conn:
            status = project_status(conn, proj.id)
        summary: dict[str, Any] = {
            "project": proj.name,
            "created": created,
            "import": {"interactions": int_result.summary(),
                       "feedback": fb_result.summary()},
            "status": status,
            "redacted": count_redacted(store, proj.id),
            "seconds": round(time.perf_counter() - began, 2),
        }
    finally:
        store.dispose()
    _print_summary(console, summary)
    return summary
