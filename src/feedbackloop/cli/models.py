"""``feedbackloop train`` and ``feedbackloop models list|show|promote|rollback|resolve|
toggle``: train candidate versions and manage which version serves whom."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInput
from .common import (
    Db,
    Json,
    ProjectName,
    echo_json,
    key_values,
    open_store,
    out,
    stage_progress,
)

__all__ = ["parse_params", "register"]

PromoteTo = Literal["live", "staged", "retired"]

Component = Annotated[str, typer.Argument(metavar="COMPONENT",
                                          help="The component (ranking, reward, "
                                               "classification, generation…).")]
Artifacts = Annotated[str | None, typer.Option(
    "--artifacts", metavar="URL", show_default=False,
    help="Artifact store: a folder or an fsspec URL. Default: <data dir>/artifacts.")]


def _value(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def parse_params(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE that parses as JSON (a number, true/false, null, a list
    or an object) is taken as such, anything else as text."""
    params: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--param {pair!r} must look like KEY=VALUE", field="param")
        params[key.strip()] = _value(raw)
    return params


def _accuracy_line(metrics: dict[str, Any]) -> str | None:
    held = metrics.get("held_out") or {}
    acc = held.get("accuracy")
    if not acc or acc.get("value") is None:
        return None
    ci = acc.get("ci95") or [float("nan")] * 2
    parts = [f"held-out pairwise accuracy {acc['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
             f"on {acc['n']:,} {held['split']} pairs"]
    for name, b in (held.get("baselines") or {}).items():
        parts.append(f"{name.replace('_', ' ')} {b['value']:.3f}")
    return "; ".join(parts)


def _precision_line(metrics: dict[str, Any]) -> str | None:
    test = metrics.get("test") or {}
    prec = test.get("precision")
    if not prec or prec.get("value") is None:
        return None
    ci = prec.get("ci95") or [float("nan")] * 2
    th = metrics.get("threshold", {})
    return (f"threshold {th.get('threshold', float('nan')):.3f} ({th.get('metric')} ≥ "
            f"{th.get('target')}); test precision {prec['value']:.3f} [{ci[0]:.3f}, "
            f"{ci[1]:.3f}] on {prec['n']:,} predicted positives")


def train_command(
    project: ProjectName,
    trainer: Annotated[str, typer.Option("--trainer", "-t", metavar="NAME",
                                         help="reward-model, reranker, classifier, external "
                                              "or a plug-in trainer.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", metavar="NAME[@VERSION]",
                                         help="The dataset (its newest version unless "
                                              "@VERSION is given).")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", metavar="KEY=VALUE",
        help="A trainer parameter; repeat for several. JSON values are parsed "
             "(--param C=0.5 --param features=tfidf).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the run.")] = 0,
    name: Annotated[str | None, typer.Option(
        "--name", metavar="VERSION", show_default=False,
        help="Name of the new version (default: <trainer>-<run id>).")] = None,
    component: Annotated[str | None, typer.Option(
        "--component", metavar="COMPONENT", show_default=False,
        help="Component of the new version (default: the trainer's).")] = None,
    description: Annotated[str, typer.Option("--description", help="What this version is "
                                                                  "for.")] = "",
    artifacts: Artifacts = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", show_default=False,
        help="A progress bar on stderr (default: when stderr is a terminal; never with "
             "--json).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Train a candidate model version on a dataset. The run (seed, parameters, library
    versions, dataset hash, metrics) is recorded and the version registered as a
    candidate, linked to its dataset."""
    from ..improve.trainers import train

    params = parse_params(param)
    show = False if json else (sys.stderr.isatty() if progress is None else progress)
    with open_store(db) as (settings, store):
        if trainer in ("reward-model", "reranker", "classifier"):
            params.setdefault("cache_dir", str(settings.data_dir / "embeddings"))
        root = artifacts or str((settings.data_dir / "artifacts").resolve())
        with stage_progress(show, "training") as bar:
            run, version = train(store, project, trainer, dataset, params=params, seed=seed,
                                 name=name, component=component, created_by="cli",
                                 progress=bar, artifact_root=root, description=description)
    if json:
        echo_json({"run": run.to_dict(), "version": version.to_dict()})
        return
    console = out()
    console.print(f"Trained [bold]{escape(version.name)}[/] ({escape(version.component)}, "
                  f"candidate) in run {run.id} on {escape(', '.join(version.datasets))}; "
                  f"artifact sha256 {version.artifact_hash}")
    for line in (_accuracy_line(version.metrics), _precision_line(version.metrics)):
        if line:
            console.print(escape(line))


def list_command(
    project: ProjectName,
    component: Annotated[str | None, typer.Option(
        "--component", "-c", show_default=False, help="Only this component.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """List model versions with their status."""
    from ..improve.registry import list_versions

    with open_store(db) as (_settings, store), store.read() as conn:
        versions = list_versions(conn, project, component)
    if json:
        echo_json([v.to_dict() for v in versions])
        return
    table = Table("component", "version", "status", "trainer", "datasets", "created")
    for v in versions:
        style = "bold green" if v.status == "live" else ""
        table.add_row(escape(v.component), escape(v.name), f"[{style}]{v.status}[/]"
                      if style else v.status, escape(v.trainer or "-"),
                      escape(", ".join(v.datasets) or "-"),
                      v.created_at.strftime("%Y-%m-%d %H:%M"))
    out().print(table)


def runs_command(project: ProjectName, db: Db = None, json: Json = False) -> None:
    """List training runs: trainer, dataset, seed, status, and the error of a failed run."""
    from ..improve.trainers import list_training_runs

    with open_store(db) as (_settings, store), store.read() as conn:
        runs = list_training_runs(conn, project)
    if json:
        echo_json([r.to_dict() for r in runs])
        return
    table = Table("run", "trainer", "dataset", "seed", "status", "started", "error")
    for r in runs:
        error = (r.error or "").strip().splitlines()
        table.add_row(str(r.id), escape(r.trainer), escape(str(r.params.get("dataset", "-"))),
                      str(r.seed), r.status, r.started_at.strftime("%Y-%m-%d %H:%M"),
                      escape(error[-1][:80]) if error else "")
    out().print(table)


def show_command(project: ProjectName, component: Component,
                 name: Annotated[str, typer.Argument(metavar="VERSION")],
                 db: Db = None, json: Json = False) -> None:
    """Show a version: status, artifact, metrics, datasets, training run and events."""
    from ..improve.registry import get_version, list_events
    from ..improve.trainers import get_training_run

    with open_store(db) as (_settings, store), store.read() as conn:
        version = get_version(conn, project, component, name)
        events = [e for e in list_events(conn, project, component)
                  if e["version"] == name]
        run = get_training_run(conn, project, version.training_run_id).to_dict() \
            if version.training_run_id is not None else None
    doc = {**version.to_dict(), "events": events, "training_run": run}
    if json:
        echo_json(doc)
        return
    console = out()
    console.print(f"[bold]{escape(component)}/{escape(name)}[/]: {version.status}")
    for key in ("trainer", "training_run_id", "parent", "artifact_uri", "artifact_hash",
                "description"):
        if doc.get(key) not in (None, ""):
            console.print(f"  {key}: {escape(str(doc[key]))}")
    if version.datasets:
        console.print(f"  datasets: {escape(', '.join(version.datasets))}")
    for line in (_accuracy_line(version.metrics), _precision_line(version.metrics)):
        if line:
            console.print(f"  {escape(line)}")
    for e in events:
        console.print(f"  {e['created_at'][:19]} {e['kind']}: {e['from_status'] or '-'} → "
                      f"{e['to_status'] or '-'} {escape(e['actor'] or '')}")


def promote_command(project: ProjectName, component: Component,
                    name: Annotated[str, typer.Argument(metavar="VERSION")],
                    to: Annotated[PromoteTo, typer.Option(
                        "--to", help="The new status; going live retires the live "
                                     "version.")] = "live",
                    db: Db = None, json: Json = False) -> None:
    """Promote a version (to live by default). Recorded as an event."""
    from ..improve.registry import promote

    with open_store(db) as (_settings, store):
        version = promote(store, project, component, name, to=to, actor="cli")
    if json:
        echo_json(version.to_dict())
        return
    out().print(f"{escape(component)}/{escape(name)} is now {version.status}.")


def rollback_command(project: ProjectName, component: Component,
                     db: Db = None, json: Json = False) -> None:
    """Roll back a component: its live version becomes rolled_back and the version that
    was live before it is live again."""
    from ..improve.registry import rollback

    with open_store(db) as (_settings, store):
        version = rollback(store, project, component, actor="cli")
    if json:
        echo_json(version.to_dict())
        return
    out().print(f"Rolled back {escape(component)}: {escape(version.name)} is live again.")


def resolve_command(
    project: ProjectName, component: Component,
    unit: Annotated[str, typer.Option("--unit", "-u", metavar="ID",
                                      help="The unit (user, session…) to resolve for.")],
    attribute: Annotated[list[str] | None, typer.Option(
        "--attribute", "-a", metavar="KEY=VALUE",
        help="A cohort attribute of the unit; repeat for several.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Which version of a component serves a unit, and the toggle rule that decided."""
    from ..improve.registry import resolve

    with open_store(db) as (_settings, store):
        answer = resolve(store, project, component, unit, key_values(attribute, "--attribute"))
    if json:
        echo_json(answer)
        return
    why = f"rule {answer['rule']}" if answer["rule"] is not None else "the default"
    out().print(f"{escape(component)} for {escape(unit)}: "
                f"{escape(str(answer['version']))} ({answer['status']}; {why})")


def _rules_from(text: str) -> Any:
    raw = Path(text[1:]).read_text() if text.startswith("@") else text
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"--rules is not JSON: {exc}", field="rules") from None


def toggle_command(
    project: ProjectName, component: Component,
    rules: Annotated[str | None, typer.Option(
        "--rules", metavar="JSON|@FILE", show_default=False,
        help='All rules as JSON (or @file.json): [{"when": [{"attribute": "tier", "op": '
             '"eq", "value": "beta"}], "split": {"v2": 10}}].')] = None,
    serve: Annotated[list[str] | None, typer.Option(
        "--serve", metavar="VERSION=PERCENT",
        help="One rule: serve VERSION to PERCENT of the matching units; repeat to split "
             "between versions.")] = None,
    when: Annotated[list[str] | None, typer.Option(
        "--when", metavar="KEY=VALUE",
        help="A condition of the --serve rule (attribute equals value); repeat for "
             "several.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every rule.")] = False,
    db: Db = None, json: Json = False,
) -> None:
    """Show or set the toggle of a component: the rules deciding which version serves
    whom (the live version serves everyone else). Without options it shows the rules."""
    from ..improve.registry import get_toggle, set_toggle

    given = [x for x in (rules is not None, bool(serve), clear) if x]
    if len(given) > 1:
        raise InvalidInput("give one of --rules, --serve or --clear", field="rules")
    if when and not serve:
        raise InvalidInput("--when needs --serve", field="when")
    new: Any = None
    if clear:
        new = []
    elif rules is not None:
        new = _rules_from(rules)
    elif serve:
        split: dict[str, Any] = {}
        for version, pct in key_values(serve, "--serve").items():
            value = _value(pct)
            split[version] = value
        new = [{"when": [{"attribute": k, "op": "eq", "value": v}
                         for k, v in key_values(when, "--when").items()], "split": split}]
    with open_store(db) as (_settings, store):
        if new is None:
            with store.read() as conn:
                toggle = get_toggle(conn, project, component)
        else:
            if not isinstance(new, list):
                raise InvalidInput("--rules must be a JSON list of rules", field="rules")
            toggle = set_toggle(store, project, component, new, actor="cli")
    if json:
        echo_json(toggle)
        return
    console = out()
    console.print(f"Toggle of [bold]{escape(component)}[/]: default "
                  f"{escape(str(toggle['default']))} (live)")
    if not toggle["rules"]:
        console.print("  no rules: the live version serves everyone")
    for i, rule in enumerate(toggle["rules"]):
        conds = " and ".join(f"{c['attribute']} {c.get('op', 'eq')} {c['value']}"
                             for c in rule.get("when") or []) or "everyone"
        shares = ", ".join(f"{v} {p:g} %" for v, p in rule["split"].items())
        console.print(f"  rule {i}: {escape(conds)} → {escape(shares)}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    models = typer.Typer(help="Model versions: list, show, promote, roll back, resolve and "
                              "toggle; training runs.", no_args_is_help=True)
    models.command("list")(list_command)
    models.command("show")(show_command)
    models.command("runs")(runs_command)
    models.command("promote")(promote_command)
    models.command("rollback")(rollback_command)
    models.command("resolve")(resolve_command)
    models.command("toggle")(toggle_command)
    app.add_typer(models, name="models")
