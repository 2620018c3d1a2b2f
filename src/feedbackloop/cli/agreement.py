"""``feedbackloop agreement`` (rater reliability of a CSV file or of stored feedback) and
``feedbackloop aggregate`` (aggregated labels from a signal's ratings)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, echo_json, err, open_store, out

__all__ = ["register"]

LevelName = Literal["nominal", "ordinal", "interval", "ratio"]
MethodName = Literal["majority", "dawid-skene", "mean", "bradley-terry"]


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "-"


def _print_summary(result: dict[str, Any], title: str) -> None:
    console = out()
    console.print(f"{title}: {result['units']:,} units, {result['n_raters']:,} raters, "
                  f"{result['ratings']:,} ratings ({result['pairable_units']:,} units "
                  f"pairable), level {result['level']}")
    table = Table("statistic", "value", "95% interval")
    rows = [("Krippendorff's alpha", "krippendorff_alpha", "alpha_ci95"),
            ("Fleiss' kappa", "fleiss_kappa", "fleiss_kappa_ci95"),
            ("Gwet's AC1", "gwet_ac1", "gwet_ac1_ci95"),
            ("Gwet's AC2", "gwet_ac2", "gwet_ac2_ci95"),
            ("Cohen's kappa", "cohen_kappa", "cohen_kappa_ci95"),
            ("ICC(2,1)", "icc", "icc_ci95")]
    for name, key, ci in rows:
        table.add_row(name, _num(result.get(key)), _ci(result.get(ci)))
    console.print(table)
    for note in result.get("notes", []):
        console.print(f"note: {note}", markup=False)


def _print_raters(result: dict[str, Any]) -> None:
    table = Table("rater", "ratings", "compared", "consensus", "latest window", "gold",
                  "drift", title=f"Raters (window {result['window']}, drift below "
                                 f"{result['drift_threshold']:g})")
    for r in result["raters"]:
        latest = r["latest"]
        gold = f"{_num(r['gold_accuracy'])} of {r['gold_n']}" if r["gold_n"] else "-"
        table.add_row(str(r["rater"]), f"{r['n']:,}", f"{r['n_compared']:,}",
                      _num(r["consensus_agreement"]),
                      f"{_num(latest['consensus_agreement'])} ({latest['n_compared']})",
                      gold, "[bold red]DRIFT[/]" if r["drift"] else "ok")
    out().print(table)
    for r in result["raters"]:
        for reason in r["drift_reasons"]:
            out().print(f"{r['rater']}: {reason}", markup=False)
    calibration = result.get("calibration")
    if calibration:
        cal = Table("item", "interaction", "signal", "disagreement", "ratings",
                    title="Calibration: items with the most disagreement")
        for c in calibration:
            values = ", ".join(f"{x['rater']}={x['value']}" for x in c["ratings"])
            cal.add_row(str(c["item"]), c["interaction"], c["signal"],
                        _num(c["disagreement"]), values)
        out().print(cal)


def agreement_command(
    file: Annotated[Path | None, typer.Argument(
        metavar="[FILE]", show_default=False,
        help="A long-format CSV file: one rating per row (no project needed).")] = None,
    project: Annotated[str | None, typer.Option(
        "--project", "-p", metavar="NAME",
        help="Use the stored feedback of this project instead of a file.")] = None,
    signal: Annotated[str | None, typer.Option(
        "--signal", "-s", metavar="SIGNAL", help="The signal (with --project).")] = None,
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", metavar="NAME",
        help="Only this campaign's annotations (with --project).")] = None,
    level: Annotated[LevelName | None, typer.Option(
        "--level", help="Level of measurement. Default: nominal for a file; from the "
                        "signal's type for a project.")] = None,
    unit: Annotated[str, typer.Option("--unit", metavar="COL",
                                      help="Column of the unit (item) id.")] = "unit",
    rater: Annotated[str, typer.Option("--rater", metavar="COL",
                                       help="Column of the rater id.")] = "rater",
    value: Annotated[str, typer.Option(
        "--value", metavar="COL", help="Column of the rating; empty = missing.")] = "value",
    scale: Annotated[tuple[float, float] | None, typer.Option(
        "--scale", metavar="MIN MAX", show_default=False,
        help="Check that every rating lies on this scale (file only).")] = None,
    delimiter: Annotated[str, typer.Option("--delimiter", help="CSV field separator.")
                         ] = ",",
    bootstrap: Annotated[int, typer.Option(
        "--bootstrap", metavar="N", help="Unit resamples for the 95% intervals (0: none).")
    ] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    window: Annotated[int, typer.Option(
        "--window", help="Per-rater window: this many consecutive annotations.")] = 50,
    min_items: Annotated[int, typer.Option(
        "--min-items", help="Flag drift only when the latest window compares at least this "
                            "many annotations.")] = 20,
    db: Db = None, json: Json = False,
) -> None:
    """Agreement between raters: Krippendorff's alpha with its bootstrap interval, Fleiss'
    kappa, Gwet's AC1/AC2, Cohen's kappa (two raters), the ICC; for a project also each
    rater's agreement with the others and on gold items over time, with drift flags.

    Examples: `feedbackloop agreement ratings.csv --level ordinal --json`;
    `feedbackloop agreement --project shop --signal helpful --campaign round-1`.
    """
    if (file is None) == (project is None):
        raise InvalidInput("give a CSV FILE or --project with --signal (not both)",
                           field="file")
    if bootstrap < 0:
        raise InvalidInput("--bootstrap must be 0 or more", field="bootstrap")
    if file is not None:
        if signal is not None or campaign is not None:
            raise InvalidInput("--signal and --campaign go with --project, not a FILE",
                               field="signal")
        from ..annotation.reliability import agreement_from_csv

        with err().status("Computing agreement...") if not json else _nothing():
            result = agreement_from_csv(file, level=level or "nominal", unit=unit,
                                        rater=rater, value=value, scale=scale, seed=seed,
                                        n_boot=bootstrap, delimiter=delimiter)
        if json:
            echo_json(result)
            return
        _print_summary(result, f"Agreement in {file.name}")
        return
    if signal is None:
        raise InvalidInput("--project needs --signal", field="signal")
    if scale is not None:
        raise InvalidInput("--scale is for a FILE; a signal has its own scale",
                           field="scale")
    with open_store(db) as (_settings, store):
        from ..annotation.reliability import project_agreement

        with err().status("Computing agreement...") if not json else _nothing():
            result = project_agreement(store, project, signal,  # type: ignore[arg-type]
                                       campaign=campaign, seed=seed, n_boot=bootstrap,
                                       level=level, window=window, min_items=min_items)
    if json:
        echo_json(result)
        return
    scope = f" (campaign {result['campaign']})" if result["campaign"] else ""
    _print_summary(result, f"Agreement on {result['signal']} in {result['project']}{scope}")
    _print_raters(result)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _write_labels(path: Path, result: dict[str, Any]) -> None:
    labels = result["labels"]
    fields = ["interaction", "interaction_b", "value", "confidence", "se", "n_ratings"]
    try:
        if path.suffix.lower() == ".csv":
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                for row in labels:
                    writer.writerow({k: ("" if row[k] is None else row[k]) for k in fields})
        else:
            with path.open("wb") as handle:
                for row in labels:
                    handle.write(orjson.dumps(row) + b"\n")
    except OSError as exc:
        raise InvalidInput(f"cannot write {str(path)!r}: {exc.strerror}", field="output") \
            from None


def aggregate_command(
    project: Annotated[str, typer.Option("--project", "-p", metavar="NAME",
                                         help="Project name.")],
    signal: Annotated[str, typer.Option("--signal", "-s", metavar="SIGNAL",
                                        help="The signal to aggregate.")],
    method: Annotated[MethodName, typer.Option(
        "--method", "-m",
        help="majority (labels), dawid-skene (labels, weighting raters by their confusion "
             "matrices), mean (rater-bias-corrected means of scales), bradley-terry "
             "(pairwise: a ranking of model versions).")],
    campaign: Annotated[str | None, typer.Option(
        "--campaign", "-c", metavar="NAME", help="Only this campaign's annotations.")] = None,
    ties: Annotated[Literal["half", "drop"], typer.Option(
        "--ties", help="bradley-terry: a tie is half a win to each side, or dropped.")
    ] = "half",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="Also write the labels to FILE: CSV when it ends in .csv, else JSON lines.")
    ] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Aggregate a signal's human ratings into one label (or mean, or ranking) per item;
    the result is saved and its id printed."""
    if output is not None and not output.parent.is_dir():
        raise InvalidInput(f"cannot write {str(output)!r}: no directory "
                           f"{str(output.parent)!r}", field="output")
    with open_store(db) as (_settings, store):
        from ..annotation.aggregate import aggregate

        with err().status(f"Aggregating by {method}...") if not json else _nothing():
            result = aggregate(store, project, signal, method, campaign=campaign,
                               created_by="cli", ties=ties)
    if output is not None:
        _write_labels(output, result)
    if json:
        echo_json(result)
        return
    console = out()
    scope = f" (campaign {result['campaign']})" if result["campaign"] else ""
    console.print(f"Aggregation [bold]{result['id']}[/] of {result['signal']}{scope} by "
                  f"{method}: {result['n_items']:,} items from "
                  f"{result['summary']['n_ratings']:,} ratings by "
                  f"{result['summary']['n_raters']:,} raters")
    summary = result["summary"]
    if method == "bradley-terry":
        table = Table("rank", "model version", "score", "95% interval", "wins", "losses",
                      "ties")
        for r in summary["ranking"]:
            table.add_row(str(r["rank"]), str(r["model_version"]), f"{r['score']:+.3f}",
                          _ci(r["ci95"]), str(r["wins"]), str(r["losses"]), str(r["ties"]))
        console.print(table)
        if summary["dropped"]:
            console.print("left out: " + ", ".join(f"{n} {why}" for why, n
                                                    in summary["dropped"].items()),
                          markup=False)
    elif method == "mean":
        table = Table("rater", "bias")
        for rater, bias in summary["biases"].items():
            table.add_row(rater, f"{bias:+.3f}")
        console.print(table)
    elif method == "dawid-skene":
        table = Table("rater", "estimated accuracy")
        for rater, acc in summary["rater_accuracy"].items():
            table.add_row(rater, f"{acc:.3f}")
        console.print(table)
        console.print(f"EM: {summary['n_iter']} iterations, "
                      f"{'converged' if summary['converged'] else 'not converged'}; "
                      f"{summary['changed_from_majority']} labels differ from majority vote")
    else:
        console.print(", ".join(f"{k}: {v:,}" for k, v in summary["label_counts"].items()),
                      markup=False)
    if output is not None:
        console.print(f"Labels written to {output}", markup=False)
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("agreement")(agreement_command)
    app.command("aggregate")(aggregate_command)
