"""``feedbackloop evaluate`` (a two-channel evaluation) and ``feedbackloop discrepancies
tag`` (the root cause of a disagreement)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import InvalidInput
from ..evaluation.pairs import EvaluationFilters
from ..evaluation.tags import CAUSES, tag_discrepancy
from .common import Db, Json, ProjectName, echo_json, open_store, out, parse_time

__all__ = ["register"]


def _attributes(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"an attribute filter is KEY=VALUE, got {pair!r}",
                               field="attribute")
        out[key.strip()] = value.strip()
    return out


def _fmt(est: dict[str, Any] | None) -> str:
    if not est:
        return "-"
    if est.get("value") is None:
        return f"n/a ({est.get('reason')})"
    ci = est.get("ci95")
    band = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else " (no interval)"
    return f"{est['value']:.3f}{band}"


def evaluate_command(
    project: ProjectName,
    human: Annotated[str, typer.Option("--human", metavar="SIGNAL",
                                       help="The human signal (the reference).")],
    metric: Annotated[list[str], typer.Option(
        "--metric", metavar="SIGNAL", help="An automated signal; repeat for several.")],
    model_version: Annotated[str | None, typer.Option(
        "--model-version", help="Only interactions of this model version.")] = None,
    attribute: Annotated[list[str] | None, typer.Option(
        "--attribute", metavar="KEY=VALUE",
        help="Only interactions with this cohort attribute; repeat to require several.")
    ] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Interactions at or after this ISO date/time (UTC if no zone).")
    ] = None,
    until: Annotated[str | None, typer.Option(
        "--until", help="Interactions before this ISO date/time.")] = None,
    human_threshold: Annotated[float | None, typer.Option(
        "--human-threshold",
        help="Human approval starts at this value (default: the middle of the scale).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap and the folds.")
                    ] = 0,
    db: Db = None, json: Json = False,
) -> None:
    """Evaluate automated metrics against a human signal: agreement, calibration, the
    corrected approval rate, the worst discrepancies. The report is saved."""
    filters = EvaluationFilters(model_version=model_version,
                                attributes=_attributes(attribute),
                                since=parse_time(since, "since"), until=parse_time(until, "until"))
    with open_store(db) as (_settings, store):
        from ..evaluation.service import evaluate

        report = evaluate(store, project, human, list(metric), filters=filters,
                          human_threshold=human_threshold, seed=seed, created_by="cli")
    if json:
        echo_json(report.to_dict())
        return
    console = out()
    h = report.result["human"]
    console.print(f"Evaluation [bold]{report.id}[/] of {report.project}: human signal "
                  f"{h['signal']} ({h['type']}, {h['n_items']:,} items, {h['n_labels']:,} "
                  "labels)")
    table = Table("metric", "pairs", "spearman", "kendall", "auroc", "kappa",
                  "approval: ppi", "naive", "labelled only")
    for m in report.result["metrics"]:
        cls = m.get("classification") or {}
        rate = m.get("approval_rate") or {}
        table.add_row(m["signal"], f"{m['n_paired']:,}", _fmt(m.get("spearman")),
                      _fmt(m.get("kendall")), _fmt(cls.get("auroc")), _fmt(m.get("kappa")),
                      _fmt(rate.get("ppi")), _fmt(rate.get("naive")),
                      _fmt(rate.get("classical")))
    console.print(table)
    stack = report.result.get("stacking")
    if stack and stack.get("available"):
        weights = ", ".join(f"{k} {v:+.3f}" for k, v in stack["weights"].items())
        console.print(f"Combined score: weights {weights}; cross-validated AUROC "
                      f"{_fmt(stack['cv_auroc'])}")
    elif stack:
        console.print(f"Combined score: n/a ({stack['reason']})")


def tag_command(
    project: ProjectName,
    interaction: Annotated[list[str], typer.Option(
        "--interaction", metavar="ID", help="An interaction id; repeat to tag several.")],
    human: Annotated[str, typer.Option("--human", metavar="SIGNAL",
                                       help="The human signal of the discrepancy.")],
    metric: Annotated[str, typer.Option("--metric", metavar="SIGNAL",
                                        help="The metric signal of the discrepancy.")],
    cause: Annotated[str, typer.Option(
        "--cause", help=f"Root cause: {', '.join(CAUSES)}.")],
    note: Annotated[str, typer.Option("--note", help="What was found.")] = "",
    evaluation: Annotated[int | None, typer.Option(
        "--evaluation", help="The evaluation that showed the discrepancy.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Tag the discrepancy on one or more interactions with its root cause."""
    with open_store(db) as (_settings, store):
        ids = tag_discrepancy(store, project, list(interaction), human, metric, cause,
                              note=note, created_by="cli", evaluation_id=evaluation)
    if json:
        echo_json({"tags": ids, "cause": cause})
        return
    out().print(f"Tagged {len(ids)} interaction{'s' if len(ids) != 1 else ''} as {cause}.")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
    discrepancies = typer.Typer(help="Tag the root causes of discrepancies.",
                                no_args_is_help=True)
    discrepancies.command("tag")(tag_command)
    app.add_typer(discrepancies, name="discrepancies")
