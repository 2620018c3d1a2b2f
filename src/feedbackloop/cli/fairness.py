"""``feedbackloop fairness``: stratified evaluation over a cohort attribute, with
fairness criteria and representation; on a project's data or on a CSV file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, echo_json, open_store, out, read_csv_rows

__all__ = ["register"]

MAX_FILE_ROWS = 5_000_000


def _fmt(est: dict[str, Any] | None, digits: int = 3) -> str:
    if not est:
        return "-"
    if est.get("value") is None:
        return f"n/a ({est.get('reason')})"
    ci = est.get("ci95")
    band = f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else ""
    return f"{est['value']:.{digits}f}{band}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _read_csv(file: Path, columns: dict[str, str], delimiter: str
              ) -> dict[str, list[str]]:
    """The named columns (column → option) of a CSV file with a header."""
    rows, _ = read_csv_rows(file, delimiter, columns, max_rows=MAX_FILE_ROWS)
    return {name: [row.get(name, "") for row in rows] for name in columns}


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def _numbers(texts: list[str], column: str, option: str) -> np.ndarray:
    values = []
    for k, t in enumerate(texts):
        low = t.lower()
        if low in _TRUE or low in _FALSE:
            values.append(1.0 if low in _TRUE else 0.0)
            continue
        try:
            v = float(t)
        except ValueError:
            raise InvalidInput(f"row {k + 1}: column {column!r} has {t!r}, not a number or "
                               "true/false", field=option) from None
        if not math.isfinite(v):
            raise InvalidInput(f"row {k + 1}: column {column!r} is not a finite number",
                               field=option)
        values.append(v)
    return np.array(values, dtype=float)


def _file_report(file: Path, attribute: str, signal: str, metric: str | None,
                 threshold: float | None, min_ratio: float, min_cohort_size: int,
                 delimiter: str, seed: int) -> dict[str, Any]:
    from ..evaluation.fairness import MAX_COHORTS, analyse, check_criteria

    columns = {attribute: "--attribute", signal: "--signal"}
    if metric is not None:
        if metric in columns:
            raise InvalidInput("--metric must name another column", field="metric")
        columns[metric] = "--metric"
    data = _read_csv(file, columns, delimiter)
    keep = [k for k, c in enumerate(data[attribute]) if c and data[signal][k]]
    if not keep:
        raise InvalidInput(f"{file.name} has no row with both {attribute!r} and {signal!r}",
                           field="file")
    cohorts = np.array([data[attribute][k] for k in keep], dtype=object).astype(str)
    if len(set(cohorts.tolist())) > MAX_COHORTS:
        raise InvalidInput(f"column {attribute!r} has more than {MAX_COHORTS} distinct "
                           "values: not a cohort attribute", field="attribute")
    values = _numbers([data[signal][k] for k in keep], signal, "signal")
    binary = bool(np.all((values == 0) | (values == 1)))
    if threshold is not None and not math.isfinite(threshold):
        raise InvalidInput("--threshold must be a finite number", field="threshold")
    approved = None
    rule = "a value of 1 (or true) is approval"
    if threshold is not None:
        approved = (values >= threshold).astype(float)
        rule = f"approved at or above {threshold:g}"
    elif binary:
        approved = values
    labels = preds = None
    rows = np.ones(len(keep), dtype=bool)
    if metric is not None:
        if approved is None:
            raise InvalidInput("--metric needs 0/1 values in the signal column or a "
                               "--threshold", field="metric")
        texts = [data[metric][k] for k in keep]
        rows = np.array([bool(t) for t in texts])
        preds = _numbers([t for t in texts if t], metric, "metric")
        if not np.all((preds == 0) | (preds == 1)):
            raise InvalidInput(f"column {metric!r} must hold 0/1 (or true/false) "
                               "predictions", field="metric")
        labels = approved[rows]
    report = analyse(values, cohorts, "rate" if binary and threshold is None else "mean",
                     approved=approved, min_ratio=min_ratio, min_cohort_size=min_cohort_size,
                     rng=np.random.default_rng(seed))
    if labels is not None and preds is not None:
        from ..stats.fairness import classifier_fairness

        report["classifier"] = {**classifier_fairness(
            labels, preds, cohorts[rows], rng=np.random.default_rng(seed)).to_dict(),
            "prediction": metric, "label": f"{signal} ({rule})"}
    report.update(file=file.name, attribute=attribute, signal=signal, prediction=metric,
                  version=None, approval_rule=rule, missing_attribute=len(
                      data[attribute]) - len(keep), representation=None, seed=seed)
    report["check"] = check_criteria(report, signal=signal, prediction=metric,
                                     min_ratio=min_ratio)
    return report


def _print_report(rep: dict[str, Any]) -> None:
    console = out()
    where = rep.get("project") or rep.get("file")
    version = f", version {rep['version']}" if rep.get("version") else ""
    unit = "rate" if rep["kind"] == "rate" else "mean"
    console.print(f"Fairness of {rep['signal']} over {rep['attribute']} in {where}{version}: "
                  f"{rep['n']:,} interactions"
                  + (f" ({rep['missing_attribute']:,} without the attribute left out)"
                     if rep.get("missing_attribute") else ""), markup=False)
    table = Table("cohort", "n", f"{unit} [95% CI]", "gap vs rest [95% CI]", "Holm p")
    gaps = {g["cohort"]: g for g in rep["gaps"]}
    for c in rep["cohorts"]:
        g = gaps.get(c["cohort"], {})
        table.add_row(c["cohort"], f"{c['n']:,}", _fmt(c),
                      _fmt(g.get("difference")) + (" *" if g.get("flagged") else ""),
                      _p(g.get("adjusted_p_value")))
    console.print(table)
    impact = rep["impact_ratios"]
    if impact.get("available"):
        t = Table("cohort", "approval rate", "impact ratio [95% CI]", "four-fifths")
        for r in impact["rows"]:
            verdict = {True: "below", False: "ok", None: "not judged"}[r["below_threshold"]]
            t.add_row(r["cohort"], _fmt(r["rate"]), _fmt(r["ratio"]), verdict)
        console.print(t)
    else:
        console.print(f"Impact ratios: n/a ({impact['reason']})", markup=False)
    cf = rep.get("classifier")
    if cf:
        console.print(f"Classifier {cf['prediction']} against {cf['label']}:", markup=False)
        for key in ("demographic_parity_difference", "demographic_parity_ratio",
                    "equalized_odds_difference", "equalized_odds_ratio"):
            note = f" ({cf[key]['reason']})" if cf[key].get("value") is not None \
                and cf[key].get("reason") else ""
            console.print(f"  {key.replace('_', ' ')}: {_fmt(cf[key])}{note}", markup=False)
        for note in cf.get("notes", []):
            console.print(f"  note: {note}", markup=False)
    repn = rep.get("representation")
    if repn and repn.get("cohorts"):
        t = Table("cohort", "users", "givers", "share of users", "share of givers [95% CI]",
                  "ratio [95% CI]")
        for r in repn["cohorts"]:
            share = r["share_of_users"]
            t.add_row(r["cohort"], f"{r['users']:,}", f"{r['givers']:,}",
                      "-" if share is None else f"{share:.3f}", _fmt(r["share_of_givers"]),
                      _fmt(r["ratio"]))
        console.print(t)
        test = repn["test"]
        console.print(f"Representation: chi-square {test['statistic'] or 0:.2f}, df "
                      f"{test['df']}, p {_p(test['p_value'])}"
                      + (f" ({test['reason']})" if test.get("reason") else ""), markup=False)
    check = rep["check"]
    console.print(f"Fairness check: {'PASSED' if check['passed'] else 'FAILED'}",
                  markup=False)
    for c in check["criteria"]:
        state = {True: "pass", False: "fail", None: "not estimable"}[c["passed"]]
        value = "-" if c["value"] is None else f"{c['value']:.3f}"
        console.print(f"  {c['name']}: {state} (value {value}, threshold {c['threshold']:g})"
                      + (f": {c['reason']}" if c.get("reason") else ""), markup=False)


def _print_regressions(res: dict[str, Any]) -> None:
    console = out()
    console.print(f"Cohort regressions of {res['signal']} over {res['attribute']}: "
                  f"{res['candidate_version']} against {res['baseline_version']}, tolerance "
                  f"{res['tolerance']:g}", markup=False)
    t = Table("cohort", "baseline", "candidate", "difference [95% CI]", "p", "Holm p",
              "regressed")
    for c in res["cohorts"]:
        ci = c["ci95"]
        diff = "n/a" if c["difference"] is None else (
            f"{c['difference']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""))
        t.add_row(c["cohort"], _fmt(c["baseline"]), _fmt(c["candidate"]), diff,
                  _p(c["p_value"]), _p(c["adjusted_p_value"]),
                  "yes" if c["regressed"] else ("n/a" if c["p_value"] is None else "no"))
    console.print(t)
    console.print(f"method: {res['method']}", markup=False)
    console.print(f"Cohort regressions: {'PASSED' if res['passed'] else 'FAILED'}"
                  + (f" ({res['reason']})" if res.get("reason") else ""), markup=False)


def fairness_command(
    attribute: Annotated[str, typer.Option(
        "--attribute", "-a", metavar="ATTR",
        help="The cohort attribute (interactions' attributes[ATTR]; a column with --file).")],
    project: Annotated[str | None, typer.Option(
        "--project", "-p", metavar="NAME", help="Project name (or use --file).")] = None,
    signal: Annotated[str | None, typer.Option(
        "--signal", "-s", metavar="SIGNAL",
        help="The human signal (binary, ordinal or numeric); a column with --file. Default: "
             "the project's only such signal.")] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", "-m", metavar="SIGNAL",
        help="An automated binary signal to judge as a classifier of the human signal "
             "(demographic parity, equalised odds); a column with --file.")] = None,
    version: Annotated[str | None, typer.Option(
        "--version", "-v", metavar="V",
        help="Only interactions of this model version (the candidate with --baseline).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", metavar="V",
        help="Compare --version against this version per cohort (cohort regressions).")
    ] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", help="With --baseline: the drop (in the signal's units) a cohort may "
                            "take before it counts as regressed.")] = 0.0,
    min_ratio: Annotated[float, typer.Option(
        "--min-ratio", help="Impact-ratio threshold (the four-fifths rule: 0.8).")] = 0.8,
    min_cohort_size: Annotated[int, typer.Option(
        "--min-cohort-size", help="Smaller cohorts are shown, not judged.")] = 20,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", metavar="CSV",
        help="Read a CSV file (one interaction a row) instead of a project.")] = None,
    threshold: Annotated[float | None, typer.Option(
        "--threshold", help="With --file: approval starts at this value of the signal "
                            "column (default: the column is 0/1).")] = None,
    delimiter: Annotated[str, typer.Option("--delimiter", help="CSV field separator.")
                         ] = ",",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the bootstrap.")] = 0,
    check: Annotated[bool, typer.Option(
        "--check", help="Exit with code 1 when the fairness check (or, with --baseline, "
                        "the regression check) fails.")] = False,
    db: Db = None, json: Json = False,
) -> None:
    """Fairness over a cohort attribute: per-cohort estimates with CIs, impact ratios and
    the four-fifths rule, satisfaction gaps (Holm), demographic parity and equalised odds
    for a classifier-like --metric, and who gives feedback against who uses the product.

    Examples: `feedbackloop fairness -p shop -a locale -s thumbs --version v7`;
    `feedbackloop fairness -p shop -a locale -s thumbs --baseline v6 --version v7
    --tolerance 0.02`; `feedbackloop fairness --file rows.csv -a group -s hired`.
    """
    if (project is None) == (file is None):
        raise InvalidInput("name a --project or a --file (one of them)", field="project")
    if file is not None:
        if signal is None:
            raise InvalidInput("--signal names the value column of the file", field="signal")
        if baseline is not None or version is not None:
            raise InvalidInput("--baseline and --version need a --project", field="baseline")
        rep = _file_report(file, attribute, signal, metric, threshold, min_ratio,
                           min_cohort_size, delimiter, seed)
        _finish(rep, json, check, rep["check"]["passed"], _print_report)
        return
    assert project is not None
    with open_store(db) as (_settings, store):
        if signal is None:
            signal = _only_signal(store, project)
        if baseline is not None:
            from ..evaluation.fairness import cohort_regressions

            if version is None:
                raise InvalidInput("--baseline compares --version (the candidate) against "
                                   "it: name the --version", field="version")
            res = cohort_regressions(store, project, attribute=attribute, signal=signal,
                                     baseline_version=baseline, candidate_version=version,
                                     tolerance=tolerance)
            _finish(res, json, check, res["passed"], _print_regressions)
            return
        from ..evaluation.fairness import fairness_report

        rep = fairness_report(store, project, attribute=attribute, signal=signal,
                              version=version, prediction=metric, min_ratio=min_ratio,
                              min_cohort_size=min_cohort_size, seed=seed)
    _finish(rep, json, check, rep["check"]["passed"], _print_report)


def _only_signal(store: Any, project: str) -> str:
    from ..capture.projects import get_project, list_signals

    with store.read() as conn:
        sigs = [s.name for s in list_signals(conn, get_project(conn, project).id)
                if s.type in ("binary", "ordinal", "numeric")]
    if len(sigs) != 1:
        raise InvalidInput("name the --signal: the project has "
                           + (f"{len(sigs)} binary, ordinal or numeric signals ("
                              f"{', '.join(sigs)})" if sigs else
                              "no binary, ordinal or numeric signal"), field="signal")
    return sigs[0]


def _finish(result: dict[str, Any], json: bool, check: bool, passed: bool,
            printer: Any) -> None:
    if json:
        echo_json(result)
    else:
        printer(result)
    if check and not passed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
    app.command("fairness")(fairness_command)
