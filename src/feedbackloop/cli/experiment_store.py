"""``feedbackloop experiment create|revise|start|stop|status|decide|list|show|assign``:
stored experiments.

``create`` takes the design from options (``--arm``, ``--metric``, ``--guardrail``,
``--mde``…) or whole from ``--design FILE.json`` (options given beside it override its
fields). ``status`` refreshes the experiment from the logged interactions and feedback,
records the look, and prints the per-arm table, the lift with its fixed-horizon and
sequential intervals, the sample-ratio check, guardrails, the Bayesian view and the
stopping rules that fired.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, ProjectName, echo_json, err, open_store, out, stage_progress

__all__ = ["register"]

Unit = Literal["user", "session", "interaction"]
Sequential = Literal["asymptotic-cs", "msprt", "none"]
Correction = Literal["holm", "bh"]
Decision = Literal["ship", "iterate", "abandon"]
Status = Literal["draft", "running", "stopped", "decided", "superseded"]

Name = Annotated[str, typer.Argument(metavar="NAME", help="The experiment's name (what "
                                                          "interactions carry in "
                                                          "`experiment`).")]


def parse_arm(text: str) -> dict[str, Any]:
    """``NAME[=VERSION[:WEIGHT]]``; ``NAME=:WEIGHT`` for a weight without a version."""
    name, _, rest = text.partition("=")
    version, _, weight = rest.partition(":")
    arm: dict[str, Any] = {"name": name.strip()}
    if version.strip():
        arm["version"] = version.strip()
    if weight.strip():
        try:
            arm["weight"] = float(weight)
        except ValueError:
            raise InvalidInput(f"--arm {text!r}: the weight {weight!r} is not a number",
                               field="arm") from None
    if not arm["name"]:
        raise InvalidInput(f"--arm {text!r} must look like NAME[=VERSION[:WEIGHT]]",
                           field="arm")
    return arm


def parse_guardrail(text: str) -> dict[str, Any]:
    """``SIGNAL:ALLOWED`` (absolute) or ``SIGNAL:ALLOWED%`` (relative to the control)."""
    metric, sep, allowed = text.rpartition(":")
    if not sep or not metric:
        raise InvalidInput(f"--guardrail {text!r} must look like SIGNAL:ALLOWED or "
                           "SIGNAL:ALLOWED%", field="guardrail")
    relative = allowed.strip().endswith("%")
    try:
        value = float(allowed.strip().rstrip("%"))
    except ValueError:
        raise InvalidInput(f"--guardrail {text!r}: {allowed!r} is not a number",
                           field="guardrail") from None
    return {"metric": metric, "allowed_change": value / 100 if relative else value,
            "relative": relative}


def _read_design(path: Path) -> dict[str, Any]:
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InvalidInput(f"no design file {str(path)!r}", field="design") from None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: not JSON ({exc})", field="design") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: a design is a JSON object", field="design")
    return raw


def create_command(
    name: Name, project: ProjectName,
    design_file: Annotated[Path | None, typer.Option(
        "--design", metavar="FILE.json", show_default=False,
        help="The whole design as JSON (see docs/experiments.md); options given beside it "
             "override its fields.")] = None,
    arm: Annotated[list[str] | None, typer.Option(
        "--arm", metavar="NAME[=VERSION[:WEIGHT]]",
        help="An arm; repeat for each (at least 2). VERSION: a model version of "
             "--component; weights must add up to 1 (default: equal).")] = None,
    control: Annotated[str | None, typer.Option(
        "--control", metavar="ARM", show_default=False,
        help="The control arm (default: the first).")] = None,
    metric: Annotated[str | None, typer.Option(
        "--metric", metavar="SIGNAL", show_default=False,
        help="The primary metric: a binary, ordinal, numeric or categorical signal.")] = None,
    success: Annotated[str | None, typer.Option(
        "--success", metavar="LABEL", show_default=False,
        help="For a categorical metric: the label that counts as success.")] = None,
    lower_is_better: Annotated[bool, typer.Option(
        "--lower-is-better", help="A lower primary metric is better.")] = False,
    guardrail: Annotated[list[str] | None, typer.Option(
        "--guardrail", metavar="SIGNAL:ALLOWED",
        help="A guardrail metric and the harm allowed (absolute, or relative with a % "
             "sign: rating:5%); repeat for several.")] = None,
    mde: Annotated[float | None, typer.Option(
        "--mde", metavar="X", show_default=False,
        help="Minimum detectable effect (absolute, or relative with --relative).")] = None,
    relative: Annotated[bool | None, typer.Option(
        "--relative/--absolute", show_default=False,
        help="Whether the MDE is relative to the baseline (default: absolute).")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", show_default=False,
                                                help="Significance level (0.05).")] = None,
    power: Annotated[float | None, typer.Option("--power", show_default=False,
                                                help="Power to plan for (0.8).")] = None,
    sides: Annotated[int | None, typer.Option("--sides", show_default=False,
                                              help="1 or 2 sided (2).")] = None,
    baseline: Annotated[float | None, typer.Option(
        "--baseline", metavar="X", show_default=False,
        help="Baseline rate (or mean) for planning; default: from the last 14 days.")] = None,
    sd: Annotated[float | None, typer.Option(
        "--sd", metavar="X", show_default=False,
        help="Standard deviation of a mean metric for planning; default: from the last 14 "
             "days.")] = None,
    sequential: Annotated[Sequential | None, typer.Option(
        "--sequential", show_default=False,
        help="Always-valid method (asymptotic-cs, the default; msprt; none).")] = None,
    looks: Annotated[str | None, typer.Option(
        "--looks", metavar="F,F,...", show_default=False,
        help="Planned group-sequential looks as fractions of the sample, ending at 1 "
             "(0.25,0.5,0.75,1).")] = None,
    correction: Annotated[Correction | None, typer.Option(
        "--correction", show_default=False,
        help="Multiple-comparison correction across metrics and arms (holm).")] = None,
    cuped: Annotated[bool | None, typer.Option(
        "--cuped/--no-cuped", show_default=False,
        help="Adjust with the pre-period covariate sent with each assignment.")] = None,
    max_days: Annotated[int | None, typer.Option(
        "--max-days", show_default=False, help="Longest run in days (28).")] = None,
    max_units: Annotated[int | None, typer.Option(
        "--max-units", show_default=False, help="Most units before stopping.")] = None,
    unit: Annotated[Unit | None, typer.Option(
        "--unit", show_default=False,
        help="What is randomised: user (default), session or interaction.")] = None,
    hypothesis: Annotated[str, typer.Option(
        "--hypothesis", help="What you expect and why (shown on the page).")] = "",
    component: Annotated[str | None, typer.Option(
        "--component", metavar="COMPONENT", show_default=False,
        help="The model component whose versions the arms name.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Plan a new experiment (a draft): hypothesis, arms, primary metric, guardrails,
    MDE, alpha, power. The sample size and expected duration come from the project's
    recent traffic.

    Example: `feedbackloop experiment create tone -p shop --arm control=gen-1 --arm
    warm=gen-2 --component generation --metric helpful --guardrail rating:0.2 --mde 0.05
    --hypothesis "A warmer tone is rated more helpful"`.
    """
    from ..experiments import create_experiment

    design: dict[str, Any] = _read_design(design_file) if design_file else {}
    if arm:
        design["arms"] = [parse_arm(a) for a in arm]
    if metric is not None or success is not None or lower_is_better:
        primary = dict(design.get("primary") or {})
        if metric is not None:
            primary["metric"] = metric
        if success is not None:
            primary["success"] = success
        if lower_is_better:
            primary["higher_is_better"] = False
        design["primary"] = primary
    if guardrail:
        design["guardrails"] = [parse_guardrail(g) for g in guardrail]
    if looks is not None:
        try:
            design["looks"] = [float(x) for x in looks.split(",") if x.strip()]
        except ValueError:
            raise InvalidInput(f"--looks {looks!r} must be fractions like 0.5,1",
                               field="looks") from None
    for key, value in (("control", control), ("mde", mde), ("relative", relative),
                       ("alpha", alpha), ("power", power), ("sides", sides),
                       ("baseline", baseline), ("sd", sd), ("correction", correction),
                       ("cuped", cuped), ("max_days", max_days), ("max_units", max_units),
                       ("unit", unit)):
        if value is not None:
            design[key] = value
    if sequential is not None:
        design["sequential"] = {**(design.get("sequential") or {}), "method": sequential}
    if "arms" not in design:
        raise InvalidInput("give the arms (--arm NAME[=VERSION[:WEIGHT]], at least 2) or "
                           "--design FILE.json", field="arms")
    if "primary" not in design:
        raise InvalidInput("give the primary metric (--metric SIGNAL)", field="metric")
    with open_store(db) as (_settings, store):
        exp = create_experiment(store, project, name, design=design, hypothesis=hypothesis,
                                component=component, created_by="cli")
    if json:
        echo_json(exp.to_dict())
        return
    console = out()
    console.print(f"Created experiment [bold]{escape(name)}[/] (draft).")
    _print_plan(exp.design["planned"])
    console.print(f"Start it with `feedbackloop experiment start {escape(name)} -p "
                  f"{escape(project)}`.")


def _print_plan(planned: dict[str, Any]) -> None:
    console = out()
    if planned.get("per_arm") is None:
        console.print(f"  sample size not planned: {escape(str(planned.get('reason')))}")
        return
    line = (f"  planned: {planned['per_arm']:,} units per arm, {planned['total']:,} in all "
            f"({escape(str(planned['method']))})")
    if planned.get("expected_days") is not None:
        line += (f"; about {planned['expected_days']:g} days at "
                 f"{planned['units_per_day']:g} units/day")
    console.print(line)


def revise_command(
    name: Name, project: ProjectName,
    design_file: Annotated[Path, typer.Option(
        "--design", metavar="FILE.json", help="The whole new design as JSON.")],
    new_name: Annotated[str | None, typer.Option(
        "--new-name", metavar="NAME", show_default=False,
        help="Open a new experiment with this name that supersedes this one (required "
             "once it has started: its design is frozen).")] = None,
    hypothesis: Annotated[str | None, typer.Option(
        "--hypothesis", show_default=False, help="A new hypothesis.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Change a design: a draft in place; a started experiment only by opening a new one
    (--new-name) that records which it supersedes."""
    from ..experiments import update_design

    design = _read_design(design_file)
    with open_store(db) as (_settings, store):
        exp = update_design(store, project, name, design, new_name=new_name,
                            hypothesis=hypothesis, created_by="cli")
    if json:
        echo_json(exp.to_dict())
        return
    if exp.name != name:
        out().print(f"Opened {escape(exp.name)} ({exp.status}), superseding {escape(name)}.")
    else:
        out().print(f"Design of {escape(name)} updated.")
    _print_plan(exp.design.get("planned") or {})


def start_command(name: Name, project: ProjectName, db: Db = None,
                  json: Json = False) -> None:
    """Start a draft: units are assigned from now on and the design is frozen."""
    from ..experiments import start_experiment

    with open_store(db) as (_settings, store):
        exp = start_experiment(store, project, name, actor="cli")
    if json:
        echo_json(exp.to_dict())
        return
    out().print(f"Experiment {escape(name)} is running; its design is frozen.")


def stop_command(name: Name, project: ProjectName,
                 reason: Annotated[str, typer.Option("--reason",
                                                     help="Why it stops.")] = "",
                 db: Db = None, json: Json = False) -> None:
    """Stop a running experiment: no more assignment; the data stays for the decision."""
    from ..experiments import stop_experiment

    with open_store(db) as (_settings, store):
        exp = stop_experiment(store, project, name, reason, actor="cli")
    if json:
        echo_json(exp.to_dict())
        return
    out().print(f"Experiment {escape(name)} stopped.")


def _fmt(x: Any, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _ci(part: dict[str, Any] | None, key: str = "ci") -> str:
    if not part or not part.get("estimable"):
        return "not estimable" + (f" ({part['reason']})" if part and part.get("reason")
                                  else "")
    lo, hi = part[key]
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _print_comparison(c: dict[str, Any]) -> None:
    console = out()
    absolute, rel, seq = c["absolute"], c["relative"], c.get("sequential")
    head = f"  {escape(c['arm'])} vs {escape(c['control'])}: "
    if not absolute.get("estimable"):
        console.print(head + f"not estimable: {escape(str(absolute.get('reason')))}")
        return
    level = f"{absolute['level']:.0%}"
    adjusted = c.get("adjusted_p_value")
    console.print(head + f"{absolute['estimate']:+.4g} {level} CI {_ci(absolute)}, p = "
                  f"{_fmt(absolute['p_value'], 3)}"
                  + (f" (adjusted {_fmt(adjusted, 3)})" if adjusted is not None else "")
                  + f" [{escape(c['method'])}]")
    if rel.get("estimable"):
        console.print(f"    relative {rel['estimate']:+.2%} CI {_ci(rel)}, p = "
                      f"{_fmt(rel['p_value'], 3)} [delta method]")
    else:
        console.print(f"    relative: not estimable ({escape(str(rel.get('reason')))})")
    if seq is not None:
        if seq.get("estimable"):
            console.print(f"    sequential ({escape(str(seq['method']))}) CI {_ci(seq)}, "
                          f"p = {_fmt(seq['p_value'], 3)}: valid at every look")
        else:
            console.print(f"    sequential: not estimable ({escape(str(seq.get('reason')))})")
    if c.get("cuped"):
        vr = c["cuped"].get("variance_reduction")
        console.print(f"    CUPED variance reduction {_fmt(vr, 3)}")


def print_analysis(a: dict[str, Any]) -> None:
    """The analysis dict for people."""
    console = out()
    e = a["experiment"]
    console.print(f"[bold]{escape(e['name'])}[/] ({e['status']}) as of {a['as_of'][:19]}")
    if e.get("hypothesis"):
        console.print(f"  hypothesis: {escape(e['hypothesis'])}")
    _print_plan(a["planned"])
    primary = a["primary"]
    table = Table("arm", "version", "weight", "exposed", f"n ({primary['metric']})", "mean",
                  "sd", title=None)
    for arm in a["arms"]:
        table.add_row(escape(arm["name"]), escape(str(arm["version"] or "-")),
                      f"{arm['weight']:.3g}", f"{arm['exposed']:,}", f"{arm['n']:,}",
                      _fmt(arm["mean"]), _fmt(arm["sd"]))
    console.print(table)
    console.print(f"Primary metric {escape(primary['metric'])} ({primary['kind']}, "
                  f"{'higher' if primary['higher_is_better'] else 'lower'} is better; "
                  f"p-values adjusted by {a['correction']}):")
    for c in primary["comparisons"]:
        _print_comparison(c)
    srm = a["srm"]
    if srm.get("p_value") is None:
        console.print(f"SRM: not estimable ({escape(str(srm.get('reason')))})")
    else:
        flag = "[bold red]MISMATCH[/]" if srm["flagged"] else "ok"
        console.print(f"SRM: {flag} (chi-square p = {_fmt(srm['p_value'], 3)}, observed "
                      f"{srm['observed']})")
    for g in a["guardrails"]:
        console.print(f"Guardrail {escape(g['metric'])} (allowed change "
                      f"{g['allowed_change']:g}{' relative' if g['relative'] else ''}): "
                      f"{g['status']}")
        for c in g["comparisons"]:
            _print_comparison(c)
    if a["bayes"]:
        console.print("Bayesian: " + "; ".join(
            f"{escape(b['arm'])} P(best) {b['p_best']:.3f}, expected loss "
            f"{b['expected_loss']:.3g}" for b in a["bayes"]))
    gs = a.get("group_sequential")
    if gs and gs.get("looks"):
        console.print("Group-sequential looks: " + "; ".join(
            f"{lk['fraction']:.0%} boundary {lk['boundary']:.3f}"
            + (f" z {lk['z']:.3f}" if lk.get("z") is not None else "") for lk in gs["looks"]))
    stop = a["stopping"]
    fired = ", ".join(stop["fired"]) or "none"
    console.print(f"Stopping rules fired: {fired} → {stop['recommendation']}")
    for rule, d in (stop.get("details") or {}).items():
        if d.get("fired"):
            console.print(f"  {rule}: {escape(str(d.get('reason')))}")
    if a.get("decision"):
        d = a["decision"]
        console.print(f"Decision: {d['decision']}"
                      + (f" {escape(d['arm'])}" if d.get("arm") else "")
                      + f" by {escape(d['decided_by'] or '-')} on {d['created_at'][:10]}: "
                        f"{escape(d['rationale'])}")
    for note in a["notes"]:
        console.print(f"[dim]note: {escape(note)}[/]")


def status_command(
    name: Name, project: ProjectName,
    refresh_first: Annotated[bool, typer.Option(
        "--refresh/--no-refresh",
        help="Copy new exposures and feedback from the logs first.")] = True,
    look: Annotated[bool, typer.Option(
        "--look/--no-look",
        help="Record this look (when the sample grew): the looks draw the confidence "
             "sequence over time.")] = True,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", show_default=False,
        help="A progress bar on stderr while refreshing (default: when stderr is a "
             "terminal; never with --json).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Where an experiment stands: the per-arm table, the lift with its fixed-horizon and
    always-valid (sequential) intervals, SRM, guardrails, the Bayesian view and which
    stopping rules fired. `--json` prints the analysis dict."""
    from ..experiments import analyze, refresh

    show = False if json else (sys.stderr.isatty() if progress is None else progress)
    with open_store(db) as (_settings, store):
        if refresh_first:
            with stage_progress(show, "exposures") as bar:
                added = refresh(store, project, name, progress=bar)
            if not json and (added["exposures"] or added["observations"]):
                err().print(f"refreshed: {added['exposures']:,} new exposures, "
                            f"{added['observations']:,} new observations")
        analysis = analyze(store, project, name, record_look=look, looked_by="cli")
    if json:
        echo_json(analysis)
        return
    print_analysis(analysis)


def decide_command(
    name: Name, project: ProjectName,
    decision: Annotated[Decision, typer.Option("--decision", "-d",
                                               help="ship, iterate or abandon.")],
    rationale: Annotated[str, typer.Option("--rationale", "-r",
                                           help="Why: kept with the decision.")],
    arm: Annotated[str | None, typer.Option(
        "--arm", metavar="ARM", show_default=False,
        help="The arm shipped (required with ship).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Record the decision with its rationale and the analysis it was made on; a running
    experiment stops."""
    from ..experiments import decide

    with open_store(db) as (_settings, store):
        made = decide(store, project, name, decision, rationale, arm=arm, decided_by="cli")
    if json:
        echo_json(made)
        return
    out().print(f"Recorded: {decision}" + (f" {escape(arm)}" if arm else "")
                + f" for {escape(name)}.")


def list_command(
    project: ProjectName,
    status: Annotated[Status | None, typer.Option("--status", show_default=False,
                                                  help="Only this status.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """List experiments and bandits: status, primary metric, arms, started."""
    from ..experiments import list_experiments

    with open_store(db) as (_settings, store), store.read() as conn:
        found = list_experiments(conn, project, status=status)
    if json:
        echo_json([e.to_dict() for e in found])
        return
    table = Table("name", "kind", "status", "primary metric", "arms", "started", "supersedes")
    for e in found:
        primary = (e.design.get("primary") or {}).get("metric") \
            or e.design.get("reward_signal") or "-"
        arms = ", ".join(str(a.get("name")) for a in e.design.get("arms") or [])
        table.add_row(escape(e.name), e.kind, e.status, escape(str(primary)), escape(arms),
                      e.started_at.strftime("%Y-%m-%d %H:%M") if e.started_at else "-",
                      escape(e.supersedes or "-"))
    out().print(table)


def show_command(name: Name, project: ProjectName, db: Db = None,
                 json: Json = False) -> None:
    """Show an experiment's record: hypothesis, design, plan, status and dates."""
    from ..experiments import get_experiment

    with open_store(db) as (_settings, store), store.read() as conn:
        exp = get_experiment(conn, project, name)
    doc = exp.to_dict()
    if json:
        echo_json(doc)
        return
    console = out()
    console.print(f"[bold]{escape(name)}[/] ({exp.kind}, {exp.status})")
    for key in ("hypothesis", "component", "supersedes", "superseded_by", "created_at",
                "started_at", "stopped_at", "stop_reason"):
        if doc.get(key) not in (None, ""):
            console.print(f"  {key}: {escape(str(doc[key]))}")
    design = {k: v for k, v in exp.design.items() if k != "planned"}
    console.print(f"  design: {escape(orjson.dumps(design).decode())}")
    if exp.kind == "ab":
        _print_plan(exp.design.get("planned") or {})


def assign_command(
    name: Name, project: ProjectName,
    unit: Annotated[str, typer.Option("--unit", "-u", metavar="ID",
                                      help="The user, session or interaction id.")],
    covariate: Annotated[float | None, typer.Option(
        "--covariate", metavar="X", show_default=False,
        help="The unit's pre-period value of the metric (for CUPED).")] = None,
    log: Annotated[bool, typer.Option("--log/--no-log",
                                      help="Record the unit's first exposure.")] = True,
    db: Db = None, json: Json = False,
) -> None:
    """Which arm serves a unit (deterministic), logging its first exposure: for trying an
    experiment out; applications call the SDK's Client.assign."""
    from ..experiments import assign

    with open_store(db) as (settings, store):
        got = assign(store, project, name, unit, covariate=covariate, log=log,
                     pseudonym_key=settings.pseudonym_key_bytes())
    if json:
        echo_json(got)
        return
    version = f" (version {escape(got['version'])})" if got.get("version") else ""
    out().print(f"{escape(unit)} → {escape(got['arm'])}{version}, propensity "
                f"{got['propensity']:g}")


def register(experiment: typer.Typer) -> None:
    """Add this module's commands to the ``experiment`` group."""
    experiment.command("create")(create_command)
    experiment.command("revise")(revise_command)
    experiment.command("start")(start_command)
    experiment.command("stop")(stop_command)
    experiment.command("status")(status_command)
    experiment.command("decide")(decide_command)
    experiment.command("list")(list_command)
    experiment.command("show")(show_command)
    experiment.command("assign")(assign_command)
