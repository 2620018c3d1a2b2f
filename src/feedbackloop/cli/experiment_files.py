"""``feedbackloop experiment sample-size|analyze``: on files, without a project.

``analyze`` reads unit-level CSV rows (one unit a row: its arm, its metric value, and
optionally a pre-period covariate for CUPED) or, with ``--summary``, one row per arm with
the columns ``arm,n,mean,sd``. Every message about the file names its line and column.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, echo_json, key_values, out, read_csv_rows

__all__ = ["register"]

KindChoice = Literal["auto", "mean", "proportion"]
SequentialChoice = Literal["asymptotic-cs", "msprt"]
CorrectionChoice = Literal["holm", "bh"]
SUMMARY_COLUMNS = ("arm", "n", "mean", "sd")


def _invalid(exc: ValueError, field: str | None = None) -> InvalidInput:
    return InvalidInput(str(exc), field=field)


# ------------------------------------------------------------------ sample size


def sample_size_command(
    baseline: Annotated[float | None, typer.Option(
        "--baseline", metavar="X", show_default=False,
        help="Baseline proportion of the control (0 < X < 1); with --sd, the baseline "
             "mean (needed for a --relative effect on a mean).")] = None,
    mde: Annotated[float | None, typer.Option(
        "--mde", metavar="X", show_default=False,
        help="Minimum detectable effect: an absolute difference, or a fraction of the "
             "baseline with --relative.")] = None,
    relative: Annotated[bool, typer.Option(
        "--relative", help="The MDE is relative to the baseline (0.2 = +20 %).")] = False,
    sd: Annotated[float | None, typer.Option(
        "--sd", metavar="X", show_default=False,
        help="Standard deviation of the metric: plan for a difference in means "
             "(two-sample t-test, as R power.t.test) instead of proportions.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    power: Annotated[float, typer.Option("--power", help="Power to reach.")] = 0.8,
    sides: Annotated[int, typer.Option("--sides", help="1 or 2 sided test.")] = 2,
    arms: Annotated[int, typer.Option(
        "--arms", help="Arms including the control; with more than 2, each comparison "
                       "uses alpha/(arms - 1).")] = 2,
    db: Db = None, json: Json = False,
) -> None:
    """Units per arm (and in total) to detect the MDE: for proportions the pooled
    two-proportion z-test, as R's power.prop.test; with --sd the two-sample t-test, as R's
    power.t.test.

    Examples: `feedbackloop experiment sample-size --baseline 0.10 --mde 0.02`;
    `feedbackloop experiment sample-size --sd 4.2 --mde 0.5 --json`.
    """
    from ..stats.experiments import sample_size_means, sample_size_proportions

    if mde is None:
        raise InvalidInput("give the minimum detectable effect with --mde", field="mde")
    try:
        if sd is None:
            if baseline is None:
                raise InvalidInput("give --baseline (a proportion) or --sd (for a mean)",
                                   field="baseline")
            plan = sample_size_proportions(baseline, mde, relative=relative, alpha=alpha,
                                           power=power, sides=sides, arms=arms)
        else:
            plan = sample_size_means(sd, mde, baseline=baseline, relative=relative,
                                     alpha=alpha, power=power, sides=sides, arms=arms)
    except ValueError as exc:
        raise _invalid(exc) from None
    if json:
        echo_json(plan.to_dict())
        return
    d = plan.detail
    console = out()
    console.print(f"[bold]{plan.per_arm:,}[/] units per arm, {plan.total:,} in total "
                  f"({arms} arms)")
    if sd is None:
        what = f"{d['p1']:.4g} -> {d['p2']:.4g}"
    else:
        what = f"a difference of {d['delta']:.4g} with sd {sd:g}"
    console.print(f"to detect {what} with power {power:g} at alpha {alpha:g} "
                  f"({sides}-sided" + (f", {d['alpha_per_comparison']:.4g} per comparison"
                                       if arms > 2 else "") + ")", markup=False)
    console.print(f"method: {plan.method}; exact n per arm {d['n']:.2f}", markup=False)


# ------------------------------------------------------------------ reading files


def _read_rows(file: Path, delimiter: str, needed: dict[str, str]
               ) -> tuple[list[dict[str, str]], list[int]]:
    rows, lines = read_csv_rows(file, delimiter, needed)
    if not rows:
        raise InvalidInput(f"{file.name} has a header but no rows", field="file")
    return rows, lines


def _number(text: str, file: Path, line: int, column: str, option: str) -> float:
    if not text:
        raise InvalidInput(f"line {line} of {file.name}: column {column!r} is empty",
                           field=option)
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"line {line} of {file.name}: column {column!r} has {text!r}, "
                           "not a number", field=option) from None
    if not math.isfinite(value):
        raise InvalidInput(f"line {line} of {file.name}: column {column!r} has {text!r}, "
                           "not a finite number", field=option)
    return value


def _arm_name(text: str, file: Path, line: int, column: str) -> str:
    if not text:
        raise InvalidInput(f"line {line} of {file.name}: column {column!r} (the arm) is "
                           "empty", field="arm")
    return text


def _unit_level(file: Path, arm: str, metric: str, covariate: str | None, delimiter: str
                ) -> tuple[dict[str, list[float]], dict[str, list[float]] | None]:
    needed = {arm: "--arm", metric: "--metric"}
    if covariate is not None:
        needed[covariate] = "--covariate"
    rows, lines = _read_rows(file, delimiter, needed)
    values: dict[str, list[float]] = {}
    covs: dict[str, list[float]] | None = {} if covariate is not None else None
    for row, line in zip(rows, lines, strict=True):
        name = _arm_name(row[arm], file, line, arm)
        values.setdefault(name, []).append(_number(row[metric], file, line, metric,
                                                   "metric"))
        if covs is not None and covariate is not None:
            covs.setdefault(name, []).append(_number(row[covariate], file, line, covariate,
                                                     "covariate"))
    return values, covs


def _summary_rows(file: Path, arm: str, delimiter: str) -> list[tuple[str, int, float,
                                                                      float]]:
    columns = {arm: "--arm", "n": "column n", "mean": "column mean", "sd": "column sd"}
    rows, lines = _read_rows(file, delimiter, columns)
    out_rows: list[tuple[str, int, float, float]] = []
    seen: set[str] = set()
    for row, line in zip(rows, lines, strict=True):
        name = _arm_name(row[arm], file, line, arm)
        if name in seen:
            raise InvalidInput(f"line {line} of {file.name}: arm {name!r} appears twice",
                               field="arm")
        seen.add(name)
        n = _number(row["n"], file, line, "n", "n")
        if n != int(n) or n < 0:
            raise InvalidInput(f"line {line} of {file.name}: column 'n' must be a whole "
                               f"number >= 0, got {row['n']!r}", field="n")
        mean = _number(row["mean"], file, line, "mean", "mean")
        sd = _number(row["sd"], file, line, "sd", "sd")
        if sd < 0:
            raise InvalidInput(f"line {line} of {file.name}: column 'sd' must be >= 0, got "
                               f"{row['sd']!r}", field="sd")
        out_rows.append((name, int(n), mean, sd))
    return out_rows


# ------------------------------------------------------------------ analysis


def analyze_file(file: Path, *, arm: str = "arm", metric: str | None = None,
                 control: str | None = None, covariate: str | None = None,
                 summary: bool = False, kind: KindChoice = "auto", sequential: bool = True,
                 method: SequentialChoice = "asymptotic-cs", tuning_n: int | None = None,
                 alpha: float = 0.05, sides: int = 2,
                 weights: dict[str, float] | None = None,
                 correction: CorrectionChoice = "holm", delimiter: str = ",",
                 higher_is_better: bool = True) -> dict[str, Any]:
    """Analyse an experiment in a CSV file: per-arm summaries, each treatment against the
    control (Welch absolute, delta-method relative, the sequential interval, optionally
    CUPED), the SRM check, corrected p-values and the probability each arm is best."""
    from ..stats.experiments import (
        ArmSummary,
        SequentialConfig,
        adjust_p_values,
        compare,
        prob_best,
        srm_test,
    )

    notes: list[str] = []
    if summary:
        if covariate is not None:
            raise InvalidInput("--covariate needs unit-level rows, not --summary",
                               field="covariate")
        summaries = [ArmSummary(name, n, mean, sd)
                     for name, n, mean, sd in _summary_rows(file, arm, delimiter)]
        resolved: str = "mean" if kind == "auto" else kind
    else:
        if metric is None:
            raise InvalidInput("give the metric column with --metric (or use --summary)",
                               field="metric")
        values, covs = _unit_level(file, arm, metric, covariate, delimiter)
        binary = all(v in (0.0, 1.0) for vs in values.values() for v in vs)
        resolved = ("proportion" if binary else "mean") if kind == "auto" else kind
        if resolved == "proportion" and not binary:
            raise InvalidInput(f"--kind proportion needs 0/1 values in column {metric!r}",
                               field="kind")
        summaries = [ArmSummary.from_values(name, vs, None if covs is None else covs[name])
                     for name, vs in values.items()]
    names = [s.name for s in summaries]
    if len(summaries) < 2:
        raise InvalidInput(f"an experiment needs at least 2 arms; {file.name} has only "
                           f"{', '.join(repr(n) for n in names)}", field="arm")
    empty = [s.name for s in summaries if s.n == 0]
    if empty:
        raise InvalidInput(f"arm {empty[0]!r} has no units", field="arm")
    if control is None:
        control = "control" if "control" in names else names[0]
    elif control not in names:
        raise InvalidInput(f"no arm {control!r} (--control) in {file.name}; its arms are "
                           f"{', '.join(repr(n) for n in names)}", field="control")
    if weights is not None and set(weights) != set(names):
        raise InvalidInput(f"--weights names the arms {', '.join(sorted(weights))} but "
                           f"{file.name} has {', '.join(sorted(names))}", field="weights")
    ctrl = summaries[names.index(control)]
    try:
        config = SequentialConfig(method=method, tuning_n=tuning_n) if sequential else None
        comparisons = [compare(ctrl, s, kind=resolved,  # type: ignore[arg-type]
                               alpha=alpha, sides=sides, cuped=covariate is not None,
                               sequential=config, higher_is_better=higher_is_better)
                       for s in summaries if s.name != control]
        srm = srm_test([s.n for s in summaries],
                       None if weights is None else [weights[n] for n in names])
        bayes = prob_best(summaries, kind=resolved,  # type: ignore[arg-type]
                          rng=np.random.default_rng(0), higher_is_better=higher_is_better)
    except ValueError as exc:
        raise _invalid(exc) from None
    p_values = [c.absolute.get("p_value") for c in comparisons]
    known = [i for i, p in enumerate(p_values) if p is not None]
    adjusted = adjust_p_values([float(p_values[i] or 0.0) for i in known], correction)
    rows = []
    for i, c in enumerate(comparisons):
        row = c.to_dict()
        row["adjusted_p_value"] = float(adjusted[known.index(i)]) if i in known else None
        rows.append(row)
        for part in ("absolute", "relative"):
            if not row[part].get("estimable"):
                notes.append(f"{c.arm} vs {control}: the {part} difference is not "
                             f"estimable: {row[part]['reason']}")
        if row["cuped"] is not None and not row["cuped"].get("estimable"):
            notes.append(f"{c.arm} vs {control}: CUPED not applied: {row['cuped']['reason']}")
    if srm.flagged:
        notes.append(f"sample-ratio mismatch: p = {srm.p_value:.2g} < 0.001; the split of "
                     "units does not match the design, so the comparison may be biased")
    return {"file": str(file), "kind": resolved, "control": control, "metric": metric,
            "alpha": alpha, "sides": sides, "correction": correction,
            "arms": [s.to_dict() for s in summaries], "srm_p_value": srm.p_value,
            "srm": srm.to_dict(), "comparisons": rows, "bayes": bayes, "notes": notes}


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _ci(ci: list[float | None] | None) -> str:
    if not ci:
        return "-"
    lo = "-inf" if ci[0] is None else f"{ci[0]:.4g}"
    hi = "inf" if ci[1] is None else f"{ci[1]:.4g}"
    return f"[{lo}, {hi}]"


def _p(p: float | None) -> str:
    return "-" if p is None else ("<0.0001" if p < 1e-4 else f"{p:.4f}")


def _part(part: dict[str, Any] | None, pct: bool = False) -> tuple[str, str, str]:
    if part is None:
        return "-", "-", "-"
    if not part.get("estimable"):
        return "n/a", "not estimable", "-"
    if pct:
        est = f"{part['estimate']:+.2%}"
        lo, hi = part["ci"]
        ci_text = (f"[{'-inf' if lo is None else f'{lo:+.2%}'}, "
                   f"{'inf' if hi is None else f'{hi:+.2%}'}]")
        return est, escape(ci_text), _p(part["p_value"])
    return f"{part['estimate']:+.4g}", escape(_ci(part["ci"])), _p(part["p_value"])


def _print_analysis(result: dict[str, Any]) -> None:
    console = out()
    level = f"{1 - result['alpha']:.0%}"
    console.print(f"{escape(Path(result['file']).name)}: {len(result['arms'])} arms, "
                  f"metric {escape(result['metric'] or 'mean')} ({result['kind']}), "
                  f"control [bold]{escape(result['control'])}[/]")
    arms = Table("arm", "units", "mean", "sd", "P(best)", "expected loss")
    bayes = {b["arm"]: b for b in result["bayes"]}
    for a in result["arms"]:
        b = bayes[a["arm"]]
        arms.add_row(escape(a["arm"]), f"{a['n']:,}", _fmt(a["mean"]), _fmt(a["sd"]),
                     f"{b['p_best']:.3f}", _fmt(b["expected_loss"], 3))
    console.print(arms)
    table = Table("arm", "measure", "estimate", f"{level} interval", "p",
                  f"p ({result['correction']})", title=f"Against {escape(result['control'])}")
    for c in result["comparisons"]:
        abs_est, abs_ci, abs_p = _part(c["absolute"])
        table.add_row(escape(c["arm"]), "difference", abs_est, abs_ci, abs_p,
                      _p(c["adjusted_p_value"]))
        table.add_row("", "relative lift", *_part(c["relative"], pct=True), "")
        seq = c["sequential"]
        if seq is not None:
            table.add_row("", "seq. difference", *_part(seq), "")
            table.add_row("", "seq. relative", *_part(seq.get("relative"),
                                                              pct=True), "")
    console.print(table)
    methods = {c["method"] for c in result["comparisons"]}
    seqs = {c["sequential"]["description"] for c in result["comparisons"]
            if c["sequential"] and c["sequential"].get("description")}
    console.print("method: " + "; ".join(sorted(methods | seqs))
                  + "; relative lift by the delta method", markup=False)
    for c in result["comparisons"]:
        cuped = c["cuped"]
        if cuped and cuped.get("estimable"):
            console.print(f"CUPED ({c['arm']}): theta {cuped['theta']:.4g}, variance "
                          f"reduced by {cuped['variance_reduction']:.1%}", markup=False)
    srm = result["srm"]
    status = "[bold red]MISMATCH[/]" if srm["flagged"] else "ok"
    console.print(f"sample ratio: chi2 {srm['chi2']:.3f}, p = {_p(srm['p_value'])} "
                  f"({status}; flagged below 0.001)")
    for note in result["notes"]:
        console.print(f"note: {note}", markup=False)


def analyze_command(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", show_default=False,
        help="A CSV file: one unit a row, or with --summary one arm a row (arm,n,mean,sd).")],
    arm: Annotated[str, typer.Option("--arm", metavar="COL",
                                     help="Column of the arm name.")] = "arm",
    metric: Annotated[str | None, typer.Option(
        "--metric", metavar="COL", show_default=False,
        help="Column of the unit's metric value (not with --summary).")] = None,
    control: Annotated[str | None, typer.Option(
        "--control", metavar="NAME", show_default=False,
        help="The control arm. Default: the arm named 'control', else the first arm in "
             "the file.")] = None,
    covariate: Annotated[str | None, typer.Option(
        "--covariate", metavar="COL", show_default=False,
        help="Column of a pre-period covariate: CUPED variance reduction.")] = None,
    summary: Annotated[bool, typer.Option(
        "--summary", help="FILE has one row per arm with the columns arm,n,mean,sd.")
    ] = False,
    kind: Annotated[KindChoice, typer.Option(
        "--kind", help="proportion (0/1 values, binomial variance) or mean; auto: "
                       "proportion when every value is 0 or 1 (mean for --summary).")
    ] = "auto",
    sequential: Annotated[bool, typer.Option(
        "--sequential/--no-sequential",
        help="Report the always-valid interval, safe to look at after every batch.")
    ] = True,
    sequential_method: Annotated[SequentialChoice, typer.Option(
        "--sequential-method", help="asymptotic-cs (GrowthBook's confidence sequence) or "
                                    "msprt.")] = "asymptotic-cs",
    tuning_n: Annotated[int | None, typer.Option(
        "--tuning-n", metavar="N", show_default=False,
        help="Total units at which the sequential interval is narrowest (the planned "
             "total). Default 5000.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level.")] = 0.05,
    sides: Annotated[int, typer.Option(
        "--sides", help="1 (the treatment is better) or 2.")] = 2,
    lower_is_better: Annotated[bool, typer.Option(
        "--lower-is-better", help="Smaller metric values are better (one-sided tests and "
                                  "P(best)).")] = False,
    weights: Annotated[list[str] | None, typer.Option(
        "--weights", metavar="ARM=W", show_default=False,
        help="Design weight of an arm for the sample-ratio check (repeat for every arm). "
             "Default: equal.")] = None,
    correction: Annotated[CorrectionChoice, typer.Option(
        "--correction", help="Multiple-comparison correction across treatment arms: holm "
                             "or bh (Benjamini-Hochberg).")] = "holm",
    delimiter: Annotated[str, typer.Option("--delimiter", help="CSV field separator.")
                         ] = ",",
    db: Db = None, json: Json = False,
) -> None:
    """Analyse an A/B(/n) test in a CSV file: per-arm stats, each arm against the control
    (Welch difference and delta-method relative lift with intervals and p-values, the
    sequential interval), the sample-ratio check, and the probability each arm is best.

    Examples: `feedbackloop experiment analyze units.csv --arm variant --metric converted`;
    `feedbackloop experiment analyze arms.csv --summary --json`.
    """
    parsed: dict[str, float] | None = None
    if weights:
        parsed = {}
        for name, text in key_values(weights, "--weights").items():
            try:
                parsed[name] = float(text)
            except ValueError:
                raise InvalidInput(f"--weights {name}={text!r}: the weight is not a number",
                                   field="weights") from None
    result = analyze_file(file, arm=arm, metric=metric, control=control, covariate=covariate,
                          summary=summary, kind=kind, sequential=sequential,
                          method=sequential_method, tuning_n=tuning_n, alpha=alpha,
                          sides=sides, weights=parsed, correction=correction,
                          delimiter=delimiter, higher_is_better=not lower_is_better)
    if json:
        echo_json(result)
        return
    _print_analysis(result)


def register(experiment: typer.Typer) -> None:
    """Add this module's commands to the ``experiment`` group."""
    experiment.command("sample-size")(sample_size_command)
    experiment.command("analyze")(analyze_command)
