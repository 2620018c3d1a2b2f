"""``feedbackloop experiment report``: an experiment's HTML or Markdown report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from ..errors import InvalidInput
from .common import Db, ProjectName, err, open_store

__all__ = ["register"]

Format = Literal["html", "md"]


def report_command(
        name: Annotated[str, typer.Argument(metavar="NAME", help="The experiment.")],
        project: ProjectName,
        fmt: Annotated[Format, typer.Option(
            "--format", "-f", help="html: one self-contained page (inline style and "
                                   "plot, nothing fetched); md: Markdown with tables.")
        ] = "html",
        output: Annotated[Path | None, typer.Option(
            "--output", "-o", metavar="FILE", show_default=False,
            help="Write the report here instead of standard output.")] = None,
        db: Db = None) -> None:
    """Write an experiment's report: per-arm table, lift with its intervals (Welch and
    sequential), the confidence sequence over time, SRM, guardrails, the Bayesian view,
    stopping rules, planned against actual sample, and the decision. New exposures and
    ratings are copied in first."""
    from ..experiments.report import current_analysis, render_report

    with open_store(db) as (_settings, store):
        analysis = current_analysis(store, project, name)
    text = render_report(analysis, fmt)
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    if output.is_dir():
        raise InvalidInput(f"--output {str(output)!r} is a folder; give a file name",
                           field="output")
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {str(output)!r}: {exc.strerror or exc}",
                           field="output") from None
    err().print(escape(f"wrote the {fmt} report of {name} to {output}"))


def register(experiment: typer.Typer) -> None:
    """Add this module's commands to the ``experiment`` group."""
    experiment.command("report")(report_command)
