"""``feedbackloop campaign create|list|status|export|close`` and ``feedbackloop guideline
add|list|show``."""

from __future__ import annotations

import csv
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
    err,
    key_values,
    open_store,
    out,
    stage_progress,
)

__all__ = ["register"]

ExportFormat = Literal["jsonl", "csv"]
EXPORT_COLUMNS = ("campaign", "item", "interaction", "interaction_b", "rater", "assignment",
                  "signal", "value", "guideline_version", "is_gold", "gold_value", "swapped",
                  "policy", "leased_at", "finished_at", "correction", "comment",
                  "skip_reason")


def _read_text(path: str, option: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{option} {path!r} cannot be read: {exc}",
                           field=option.lstrip("-")) from None


def _read_json(path: str, option: str) -> Any:
    text = _read_text(path, option)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{option} {path!r} is not valid JSON: {exc}",
                           field=option.lstrip("-")) from None


def _json_or_text(value: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _policy(value: str) -> dict[str, float] | str:
    """``random`` or ``disagreement=0.7,random=0.3``."""
    if "=" not in value:
        return value.strip()
    out: dict[str, float] = {}
    for part in value.split(","):
        name, sep, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight)
        except ValueError:
            raise InvalidInput(f"--policy: {part!r} must look like NAME=WEIGHT",
                               field="policy") from None
        if not sep or not name.strip():
            raise InvalidInput(f"--policy: {part!r} must look like NAME=WEIGHT",
                               field="policy")
    return out


# -- campaign ------------------------------------------------------------------------------------
def campaign_create(
    project: ProjectName,
    spec: Annotated[str | None, typer.Option(
        "--spec", metavar="FILE",
        help="A campaign spec as JSON ('-' reads stdin); the options below override it.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Campaign name.")] = None,
    signal: Annotated[list[str] | None, typer.Option(
        "--signal", metavar="SIGNAL", help="A signal to annotate; repeat for several.")
    ] = None,
    rater: Annotated[list[str] | None, typer.Option(
        "--rater", metavar="USER", help="A rater (username); repeat for several.")] = None,
    budget: Annotated[int | None, typer.Option(
        "--budget", help="Items to select (gold items excluded).")] = None,
    overlap: Annotated[int | None, typer.Option(
        "--overlap", help="Distinct raters per item (default 1).")] = None,
    gold_rate: Annotated[float | None, typer.Option(
        "--gold-rate", help="Share of served items that are hidden gold items, 0-0.5.")
    ] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", metavar="POLICY",
        help="A policy (random, stratified, uncertainty, disagreement, recheck) or a mix "
             "such as disagreement=0.7,random=0.3.")] = None,
    option: Annotated[list[str] | None, typer.Option(
        "--option", metavar="KEY=VALUE",
        help="A policy option or filter; VALUE is JSON when it parses (e.g. "
             "by='[\"locale\"]'), else text. Repeat for several.")] = None,
    guideline_version: Annotated[list[str] | None, typer.Option(
        "--guideline-version", metavar="SIGNAL=N",
        help="Guideline version of a signal (default: its latest).")] = None,
    kind: Annotated[Literal["standard", "calibration"] | None, typer.Option(
        "--kind", help="calibration: every rater labels every item.")] = None,
    lease_minutes: Annotated[int | None, typer.Option(
        "--lease-minutes", help="Minutes a rater holds an item (default 30).")] = None,
    drift_threshold: Annotated[float | None, typer.Option(
        "--drift-threshold", help="Agreement below which a rater is flagged (default 0.6).")
    ] = None,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="Seed of the selection and of the gold draws.")] = None,
    description: Annotated[str | None, typer.Option(
        "--description", help="What the campaign is for (shown to raters).")] = None,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", show_default=False,
        help="A progress bar on stderr (default: when stderr is a terminal; never with "
             "--json).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Create a campaign: select its items by the policy and store them for the raters."""
    from ..annotation.campaigns import create_campaign, parse_spec

    data: dict[str, Any] = {}
    if spec is not None:
        loaded = _read_json(spec, "--spec")
        if not isinstance(loaded, dict):
            raise InvalidInput("--spec must hold a JSON object", field="spec")
        data.update(loaded)
    flags = {"name": name, "signals": list(signal) if signal else None,
             "raters": list(rater) if rater else None, "budget": budget, "overlap": overlap,
             "gold_rate": gold_rate, "policy": _policy(policy) if policy else None,
             "kind": kind, "lease_minutes": lease_minutes,
             "drift_threshold": drift_threshold, "seed": seed, "description": description}
    data.update({k: v for k, v in flags.items() if v is not None})
    if option:
        opts = dict(data.get("options") or {})
        opts.update({k: _json_or_text(v) for k, v in key_values(option, "--option").items()})
        data["options"] = opts
    if guideline_version:
        versions = dict(data.get("guideline_versions") or {})
        for k, v in key_values(guideline_version, "--guideline-version").items():
            if not v.isdigit():
                raise InvalidInput(f"--guideline-version {k}={v}: the version is a whole "
                                   "number", field="guideline_versions")
            versions[k] = int(v)
        data["guideline_versions"] = versions
    for required in ("name", "signals", "raters", "budget"):
        if required not in data:
            flag = {"signals": "--signal", "raters": "--rater"}.get(required,
                                                                    f"--{required}")
            raise InvalidInput(f"give {flag} (or {required} in --spec)", field=required)
    parsed = parse_spec(data)
    show = False if json else (sys.stderr.isatty() if progress is None else progress)
    with open_store(db) as (_settings, store), stage_progress(show, "selecting") as bar:
        camp = create_campaign(store, project, parsed, created_by="cli", progress=bar)
    if json:
        echo_json(camp.to_dict())
        return
    console = out()
    opts = camp.options
    console.print(f"Campaign [bold]{escape(camp.name)}[/] ({camp.kind}): "
                  f"{opts.get('n_items', 0):,} items, {opts.get('n_gold', 0):,} gold items, "
                  f"overlap {camp.overlap}, {len(camp.raters)} raters")
    for note in opts.get("selection_notes", []):
        console.print(f"  note: {escape(note)}")


def campaign_list(project: ProjectName, db: Db = None, json: Json = False) -> None:
    """List the project's campaigns, newest first."""
    from ..annotation.campaigns import list_campaigns

    with open_store(db) as (_settings, store), store.read() as conn:
        found = list_campaigns(conn, project)
    if json:
        echo_json([c.to_dict() for c in found])
        return
    table = Table("name", "status", "kind", "signals", "items", "overlap", "raters",
                  "created")
    for c in found:
        table.add_row(escape(c.name), c.status, c.kind,
                      escape(", ".join(c.signal_names)), f"{c.options.get('n_items', 0):,}",
                      str(c.overlap), str(len(c.raters)), c.created_at.strftime("%Y-%m-%d"))
    out().print(table if found else "No campaigns yet.")


CampaignArg = Annotated[str, typer.Argument(metavar="CAMPAIGN", help="Campaign name or id.")]


def campaign_status_command(campaign: CampaignArg, project: ProjectName, db: Db = None,
                            json: Json = False) -> None:
    """Progress of a campaign: items complete, assignments, per rater and per policy."""
    from ..annotation.campaigns import campaign_status

    with open_store(db) as (_settings, store):
        status = campaign_status(store, project, campaign)
    if json:
        echo_json(status)
        return
    console = out()
    console.print(
        f"Campaign [bold]{escape(status['campaign'])}[/] ({status['status']}): "
        f"{status['items_complete']:,} of {status['items']:,} items complete, "
        f"{status['labels_done']:,} of {status['labels_needed']:,} labels "
        f"({status['progress']:.0%}); {status['gold_items']:,} gold items")
    a = status["assignments"]
    console.print(f"Assignments: {a.get('leased', 0):,} leased, {a.get('done', 0):,} done, "
                  f"{a.get('skipped', 0):,} skipped, {a.get('expired', 0):,} expired")
    table = Table("rater", "done", "skipped", "leased", "gold seen", "gold correct")
    for r in status["raters"]:
        table.add_row(escape(r["rater"]), f"{r['done']:,}", f"{r['skipped']:,}",
                      f"{r['leased']:,}", f"{r['gold_seen']:,}", f"{r['gold_correct']:,}")
    console.print(table)
    console.print("By policy: " + ", ".join(f"{escape(k)} {v:,}"
                                            for k, v in status["by_policy"].items()))
    for note in status["selection_notes"]:
        console.print(f"  note: {escape(note)}")


def campaign_export(
    campaign: CampaignArg, project: ProjectName,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="FILE", help="Write here instead of stdout.")] = None,
    format: Annotated[ExportFormat, typer.Option(
        "--format", help="jsonl (one object a line) or csv.")] = "jsonl",
    db: Db = None,
) -> None:
    """Export a campaign's annotations: a row per item, rater and signal; skips too.

    A skip is a row without signal, with its skip_reason."""
    from ..annotation.campaigns import export_campaign

    with open_store(db) as (_settings, store):
        rows = export_campaign(store, project, campaign)
        fh = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout  # noqa: SIM115
        n = 0
        try:
            if format == "csv":
                writer = csv.DictWriter(fh, fieldnames=list(EXPORT_COLUMNS))
                writer.writeheader()
                for row in rows:
                    writer.writerow({k: (orjson.dumps(v).decode()
                                         if isinstance(v, dict | list) else v)
                                     for k, v in row.items()})
                    n += 1
            else:
                for row in rows:
                    fh.write(orjson.dumps(row).decode() + "\n")
                    n += 1
        finally:
            if output:
                fh.close()
    if output:
        err().print(f"Wrote {n:,} rows to {escape(output)}")


def campaign_close(campaign: CampaignArg, project: ProjectName, db: Db = None,
                   json: Json = False) -> None:
    """Close a campaign: nothing more is served; open leases end."""
    from ..annotation.campaigns import close_campaign

    with open_store(db) as (_settings, store):
        camp = close_campaign(store, project, campaign, actor="cli")
    if json:
        echo_json(camp.to_dict())
        return
    out().print(f"Closed campaign [bold]{escape(camp.name)}[/].")


# -- guideline ----------------------------------------------------------------------------------
SignalOpt = Annotated[str, typer.Option("--signal", "-s", metavar="SIGNAL",
                                        help="The signal the guideline is for.")]


def guideline_add(
    project: ProjectName, signal: SignalOpt,
    body_file: Annotated[str | None, typer.Option(
        "--body-file", metavar="FILE", help="The guideline as Markdown ('-' reads stdin).")
    ] = None,
    body: Annotated[str | None, typer.Option("--body", help="The guideline text itself.")
                    ] = None,
    rubric: Annotated[str | None, typer.Option(
        "--rubric", metavar="FILE",
        help='Rubric anchors as JSON: [{"value", "label", "description", "examples"}].')
    ] = None,
    note: Annotated[str, typer.Option("--note", help="What changed from the last version.")
                    ] = "",
    db: Db = None, json: Json = False,
) -> None:
    """Add the next version of a signal's guideline (old versions are never edited)."""
    from ..annotation.guidelines import create_guideline

    if (body is None) == (body_file is None):
        raise InvalidInput("give the guideline with --body-file FILE or --body TEXT (one "
                           "of them)", field="body")
    text = body if body is not None else _read_text(body_file or "-", "--body-file")
    anchors = _read_json(rubric, "--rubric") if rubric else None
    with open_store(db) as (_settings, store):
        g = create_guideline(store, project, signal, text, anchors, note=note,
                             created_by="cli")
    if json:
        echo_json(g.to_dict())
        return
    out().print(f"Guideline of [bold]{escape(g.signal)}[/]: version {g.version} "
                f"({len(g.rubric)} rubric anchors)")


def guideline_list(project: ProjectName, signal: SignalOpt, db: Db = None,
                   json: Json = False) -> None:
    """List the versions of a signal's guideline, newest first."""
    from ..annotation.guidelines import list_guidelines

    with open_store(db) as (_settings, store), store.read() as conn:
        found = list_guidelines(conn, project, signal)
    if json:
        echo_json([g.to_dict() for g in found])
        return
    table = Table("version", "created", "by", "anchors", "note")
    for g in found:
        table.add_row(str(g.version),
                      g.created_at.strftime("%Y-%m-%d %H:%M") if g.created_at else "",
                      escape(g.created_by), str(len(g.rubric)), escape(g.note))
    out().print(table if found else f"Signal {escape(signal)} has no guideline yet.")


def guideline_show(
    project: ProjectName, signal: SignalOpt,
    version: Annotated[int | None, typer.Option(
        "--version", help="The version to show (default: the latest).")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Print one version of a signal's guideline: the Markdown text and the rubric."""
    from ..annotation.guidelines import get_guideline

    with open_store(db) as (_settings, store), store.read() as conn:
        g = get_guideline(conn, project, signal, version)
    if json:
        echo_json(g.to_dict())
        return
    console = out()
    console.print(f"[bold]{escape(g.signal)}[/] guideline, version {g.version}"
                  + (f" — {escape(g.note)}" if g.note else ""))
    console.print(escape(g.body), markup=True)
    if g.rubric:
        table = Table("value", "label", "description", "examples")
        for a in g.rubric:
            table.add_row(escape(str(a["value"])), escape(a["label"]),
                          escape(a["description"]),
                          escape("\n".join(a.get("examples") or [])))
        console.print(table)


def register(app: typer.Typer) -> None:
    campaign = typer.Typer(help="Annotation campaigns: create, follow, export, close.",
                           no_args_is_help=True)
    campaign.command("create")(campaign_create)
    campaign.command("list")(campaign_list)
    campaign.command("status")(campaign_status_command)
    campaign.command("export")(campaign_export)
    campaign.command("close")(campaign_close)
    app.add_typer(campaign, name="campaign")
    guideline = typer.Typer(help="Versioned annotation guidelines per signal.",
                            no_args_is_help=True)
    guideline.command("add")(guideline_add)
    guideline.command("list")(guideline_list)
    guideline.command("show")(guideline_show)
    app.add_typer(guideline, name="guideline")
