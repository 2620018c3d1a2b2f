"""``feedbackloop triage`` and ``feedbackloop findings``: route feedback, work the human
triage queue, theme comments, and manage the prioritised backlog of findings.

Whoever runs these commands holds the database, so they act with an administrator's rights
(as every command does); the audit log names the actor ``cli:<login>`` unless ``--actor``
says otherwise.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInput
from .common import Db, Json, ProjectName, echo_json, open_store, out, parse_time

__all__ = ["register"]

Route = Literal["ranking", "generation_quality", "factuality", "content_policy", "safety",
                "privacy", "latency", "ux", "other"]
ItemStatus = Literal["routed", "queued", "escalated", "resolved"]
FindingStatus = Literal["new", "triaged", "in_progress", "fixed", "verified", "closed"]
ThemeMethod = Literal["auto", "embeddings", "tfidf"]

Actor = Annotated[str | None, typer.Option(
    "--actor", metavar="NAME", show_default=False,
    help="Who is acting, for the audit log (default: cli:<login>).")]
FindingId = Annotated[int, typer.Argument(metavar="ID", help="The finding's id.")]


def _actor(actor: str | None) -> str:
    if actor:
        return actor[:100]
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except Exception:  # no login name in some containers
        return "cli"


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


# -- triage ---------------------------------------------------------------------------------

def run_command(project: ProjectName, limit: Annotated[int, typer.Option(
        "--limit", help="Route at most this many new items.")] = 20_000,
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Route the feedback not triaged yet: rules first, then the classifier trained on
    what people routed; low confidence waits in the queue, safety and privacy escalate."""
    from ..triage.service import run_triage

    with open_store(db) as (_s, store):
        summary = run_triage(store, project, actor=_actor(actor), limit=limit)
    if json:
        echo_json(summary)
        return
    c = out()
    c.print(f"{summary['items']} item(s) triaged: " + ", ".join(
        f"{n} {k}" for k, n in summary["by_status"].items() if n))
    if summary["by_route"]:
        c.print("  routes: " + ", ".join(f"{k} {n}" for k, n in summary["by_route"].items()))
    cl = summary["classifier"]
    if cl.get("method") == "none":
        c.print(f"  classifier: none ({escape(cl.get('reason', ''))})")
    else:
        c.print(f"  classifier: {cl['method']}, trained on {cl['n_train']} human routes, "
                f"calibration {cl['calibration']}; threshold {summary['threshold']:g}")
    if summary["escalated_items"]:
        c.print(f"  escalated to {summary['escalated_to']}: items "
                + ", ".join(map(str, summary["escalated_items"])))


def queue_command(project: ProjectName, status: Annotated[ItemStatus | None, typer.Option(
        "--status", show_default=False, help="Only this status (default: queued).")] = None,
        route: Annotated[Route | None, typer.Option("--route", show_default=False,
                                                    help="Only this route.")] = None,
        all_items: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
        limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 50,
        db: Db = None, json: Json = False) -> None:
    """The human triage queue (or the items of another status), oldest first."""
    from ..triage.service import list_items

    chosen = None if all_items else (status or "queued")
    with open_store(db) as (_s, store), store.read() as conn:
        items = list_items(conn, project, status=chosen, route=route, limit=limit)
    if json:
        echo_json({"items": [i.to_dict() for i in items]})
        return
    table = Table("item", "feedback", "signal", "value", "status", "route", "suggested",
                  "confidence", "text")
    for i in items:
        table.add_row(str(i.id), escape(i.feedback_client_id), escape(i.signal),
                      escape(orjson.dumps(i.value).decode()), i.status, i.route or "-",
                      i.suggested_route or "-", _fmt(i.confidence, 2),
                      escape((i.comment or i.correction or "")[:60]))
    out().print(table if items else "nothing here")


def route_command(item: Annotated[int, typer.Argument(metavar="ITEM", help="Item id.")],
                  route: Annotated[Route, typer.Argument(metavar="ROUTE",
                                                         help="The route.")],
                  project: ProjectName,
                  reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
                  actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Route an item by hand (it then trains the classifier); a safety or privacy route
    escalates it to the role on duty."""
    from ..triage.service import route_item

    with open_store(db) as (_s, store):
        done = route_item(store, project, item, route, actor=_actor(actor), reason=reason)
    if json:
        echo_json(done.to_dict())
        return
    extra = f", escalated to {done.escalated_to}" if done.status == "escalated" else ""
    out().print(f"item {done.id} → {done.route} ({done.status}{extra})")


def resolve_command(item: Annotated[int, typer.Argument(metavar="ITEM", help="Item id.")],
                    project: ProjectName,
                    note: Annotated[str, typer.Option("--note", help="What was done.")],
                    actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Resolve an escalated item, saying what was done (the command line acts as admin)."""
    from ..triage.service import resolve_item

    with open_store(db) as (_s, store):
        done = resolve_item(store, project, item, actor=_actor(actor), actor_role="admin",
                            note=note)
    if json:
        echo_json(done.to_dict())
        return
    out().print(f"item {done.id} resolved")


def escalations_command(project: ProjectName, db: Db = None, json: Json = False) -> None:
    """The project's escalation criteria (rules, routes, role on duty) and the items
    waiting for that role."""
    from ..triage.service import escalation_criteria, list_items

    with open_store(db) as (_s, store), store.read() as conn:
        crit = escalation_criteria(conn, project)
        items = list_items(conn, project, status="escalated")
    if json:
        echo_json({**crit, "items": [i.to_dict() for i in items]})
        return
    c = out()
    c.print(f"escalated to: [bold]{crit['escalate_to']}[/] ({escape(crit['source'])})")
    c.print(f"routes that escalate: {', '.join(crit['escalation_routes'])}")
    for r in crit["rules"]:
        flag = "escalates" if r["escalate"] else f"route {r['route']}"
        c.print(f"  rule {escape(r['name'])} ({flag}): "
                f"{escape(orjson.dumps(r['conditions']).decode())}")
    c.print(crit["note"])
    c.print(f"{len(items)} item(s) waiting" + (": " + ", ".join(
        str(i.id) for i in items) if items else ""))


def rules_add_command(
        name: Annotated[str, typer.Argument(metavar="NAME", help="The rule's name.")],
        project: ProjectName,
        route: Annotated[Route, typer.Option("--route", help="Where it sends items.")],
        when: Annotated[str, typer.Option(
            "--when", metavar="JSON",
            help='Conditions as JSON, e.g. \'{"text": "password|email", "signal": '
                 '"thumbs"}\' (keys: signal, value, value_in, value_min, value_max, '
                 'source, text, text_fields, attributes).')],
        escalate: Annotated[bool, typer.Option(
            "--escalate", help="Escalate what it matches to the role on duty.")] = False,
        position: Annotated[int | None, typer.Option(
            "--position", show_default=False,
            help="Order among the rules (default: after the last).")] = None,
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Add a routing rule (tried in position order before the classifier)."""
    from ..triage.service import add_rule

    try:
        conditions = orjson.loads(when)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"--when is not JSON: {exc}", field="when") from None
    with open_store(db) as (_s, store):
        rule = add_rule(store, project, name, route, conditions, escalate=escalate,
                        position=position, actor=_actor(actor))
    if json:
        echo_json(rule.to_dict())
        return
    out().print(f"rule {escape(rule.name)} (position {rule.position}) → {rule.route}"
                + (" [escalates]" if rule.escalate else ""))


def rules_list_command(project: ProjectName, db: Db = None, json: Json = False) -> None:
    """The project's rules in the order they are tried, and the confidence threshold."""
    from ..triage.service import get_threshold, list_rules

    with open_store(db) as (_s, store), store.read() as conn:
        rules = list_rules(conn, project)
        threshold = get_threshold(conn, project)
    if json:
        echo_json({"threshold": threshold, "rules": [r.to_dict() for r in rules]})
        return
    table = Table("position", "name", "route", "escalate", "conditions")
    for r in rules:
        table.add_row(str(r.position), escape(r.name), r.route, "yes" if r.escalate else "",
                      escape(orjson.dumps(r.conditions).decode()))
    c = out()
    c.print(table if rules else "no rules")
    c.print(f"classifier confidence threshold: {threshold:g}")


def rules_delete_command(
        name: Annotated[str, typer.Argument(metavar="NAME", help="The rule's name.")],
        project: ProjectName,
        reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
        actor: Actor = None, db: Db = None) -> None:
    """Remove a rule (items it routed keep their route)."""
    from ..triage.service import delete_rule

    with open_store(db) as (_s, store):
        delete_rule(store, project, name, actor=_actor(actor), reason=reason)
    out().print(f"rule {escape(name)} removed")


def rules_threshold_command(
        value: Annotated[float, typer.Argument(metavar="X", help="0 to 1.")],
        project: ProjectName, actor: Actor = None, db: Db = None) -> None:
    """Set the classifier confidence below which an item waits for a person (0.6)."""
    from ..triage.service import set_threshold

    with open_store(db) as (_s, store):
        set_threshold(store, project, value, actor=_actor(actor))
    out().print(f"threshold {value:g}")


def themes_command(
        project: ProjectName,
        method: Annotated[ThemeMethod, typer.Option(
            "--method", help="embeddings (MiniLM, needs the embeddings extra), tfidf, or "
                             "auto (embeddings when installed).")] = "auto",
        k: Annotated[int | None, typer.Option(
            "--k", show_default=False,
            help="Number of themes (default: chosen by silhouette).")] = None,
        since: Annotated[str | None, typer.Option(
            "--since", metavar="WHEN", show_default=False,
            help="Only feedback from this ISO date or time on.")] = None,
        show: Annotated[bool, typer.Option(
            "--show", help="Show the latest run instead of clustering again.")] = False,
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Cluster comments and corrections into themes with labels, examples, counts and a
    weekly trend (stored; `--show` prints the latest run)."""
    from ..triage.themes import latest_run, run_themes

    with open_store(db) as (_s, store):
        if show:
            with store.read() as conn:
                run = latest_run(conn, project)
            if run is None:
                raise InvalidInput(f"no theme run in project {project!r} yet; run "
                                   "`feedbackloop triage themes` without --show",
                                   field="show")
        else:
            run = run_themes(store, project, method=method, k=k,
                             since=parse_time(since, "since"), actor=_actor(actor))
    if json:
        echo_json(run)
        return
    c = out()
    c.print(f"theme run {run['id']}: {run['n_items']} texts, {run['method']}, "
            f"k={run['params']['k']}")
    for t in run["themes"]:
        trend = " ".join(f"{w['week'][5:]}:{w['count']}" for w in t["trend"][-6:])
        c.print(f"[bold]#{t['id']} {escape(t['label'])}[/] — {t['size']} "
                f"({t['share']:.0%}); weekly {trend}")
        for e in t["examples"]:
            c.print(f"    · {escape(e['text'][:100])}")


# -- findings -------------------------------------------------------------------------------

def _ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise InvalidInput(f"--feedback {text!r} must be feedback ids separated by commas",
                           field="feedback") from None


def _print_finding(d: dict[str, Any]) -> None:
    c = out()
    c.print(f"[bold]finding {d['id']}: {escape(d['title'])}[/] ({d['status']})")
    for key in ("owner", "route", "component", "theme_id"):
        if d.get(key) is not None:
            c.print(f"  {key}: {escape(str(d[key]))}")
    r = d["reach"]
    c.print(f"  reach: {r['users']} users, {r['interactions']} interactions")
    c.print(f"  severity {_fmt(d['severity'])}, effort {_fmt(d['effort'])} person-days, "
            f"risk {_fmt(d['risk'])}, confidence {_fmt(d['confidence'])}")
    c.print(f"  priority: {_fmt(d['priority'], 4)}  ({escape(d['formula'])})")
    b = d.get("expected_benefit")
    if b is not None:
        if b["value"] is None:
            c.print(f"  expected benefit: not estimable ({escape(b['reason'])})")
        else:
            lo, hi = b["ci95"]
            c.print(f"  expected benefit: removes {b['value']:.1%} of negative feedback "
                    f"(95% CI {lo:.1%}-{hi:.1%}; {b['method']})")


def findings_list_command(project: ProjectName, status: Annotated[
        FindingStatus | None, typer.Option("--status", show_default=False,
                                           help="Only this status.")] = None,
        db: Db = None, json: Json = False) -> None:
    """Findings, highest priority first (unscored last)."""
    from ..triage.findings import list_findings

    with open_store(db) as (_s, store), store.read() as conn:
        found = list_findings(conn, project, status=status)
    if json:
        echo_json({"items": [f.to_dict() for f in found]})
        return
    _table([f.to_dict() for f in found])


def _table(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "title", "status", "owner", "users", "sev", "effort", "risk",
                  "conf", "priority")
    for d in rows:
        table.add_row(str(d["id"]), escape(d["title"][:50]), d["status"],
                      escape(d["owner"] or "-"), str(d["reach"]["users"]),
                      _fmt(d["severity"]), _fmt(d["effort"]), _fmt(d["risk"]),
                      _fmt(d["confidence"]), _fmt(d["priority"], 4))
    out().print(table if rows else "no findings")


def findings_rank_command(project: ProjectName, all_items: Annotated[bool, typer.Option(
        "--all", help="Include closed findings.")] = False,
        db: Db = None, json: Json = False) -> None:
    """The ranked backlog with the priority formula and each finding's expected benefit."""
    from ..triage.findings import ranked_backlog

    with open_store(db) as (_s, store), store.read() as conn:
        backlog = ranked_backlog(conn, project, include_closed=all_items)
    if json:
        echo_json(backlog)
        return
    _table(backlog["items"])
    c = out()
    c.print(escape(backlog["formula"]))
    for d in backlog["items"]:
        b = d["expected_benefit"]
        text = ("not estimable: " + b["reason"] if b["value"] is None else
                f"{b['value']:.1%} (95% CI {b['ci95'][0]:.1%}-{b['ci95'][1]:.1%})")
        c.print(f"  #{d['rank']} finding {d['id']}: expected benefit {escape(text)}")


def findings_show_command(finding: FindingId, project: ProjectName, db: Db = None,
                          json: Json = False) -> None:
    """One finding: inputs, priority with its formula, expected benefit, linked feedback
    and datasets."""
    from ..triage.findings import finding_detail

    with open_store(db) as (_s, store), store.read() as conn:
        d = finding_detail(conn, project, finding)
    if json:
        echo_json(d)
        return
    _print_finding(d)
    c = out()
    c.print(f"  linked feedback: {d['linked_feedback']}; next: "
            f"{', '.join(d['next_statuses']) or '-'}")
    for ds in d["datasets"]:
        c.print(f"  dataset {escape(ds['name'])} v{ds['version']} ({ds['relation']})")


Severity = Annotated[int | None, typer.Option("--severity", show_default=False,
                                              help="1 (cosmetic) to 5 (critical).")]
Effort = Annotated[float | None, typer.Option("--effort", show_default=False,
                                              help="Person-days (more than 0).")]
Risk = Annotated[int | None, typer.Option("--risk", show_default=False,
                                          help="Risk that the fix breaks something, 1-5.")]
Confidence = Annotated[float | None, typer.Option("--confidence", show_default=False,
                                                  help="0 to 1.")]
Owner = Annotated[str | None, typer.Option("--owner", show_default=False, help="Who owns it.")]
RouteOpt = Annotated[Route | None, typer.Option("--route", show_default=False,
                                                help="The route it belongs to.")]
Component = Annotated[str | None, typer.Option("--component", show_default=False,
                                               help="The model component it concerns.")]


def findings_create_command(
        project: ProjectName,
        title: Annotated[str, typer.Option("--title", help="What is wrong, in a line.")],
        theme: Annotated[int | None, typer.Option(
            "--theme", show_default=False, help="Make it from this theme.")] = None,
        feedback_ids: Annotated[str | None, typer.Option(
            "--feedback", metavar="ID,ID,...", show_default=False,
            help="Hand-picked feedback ids.")] = None,
        description: Annotated[str, typer.Option("--description", help="Details.")] = "",
        owner: Owner = None, route: RouteOpt = None, component: Component = None,
        severity: Severity = None, effort: Effort = None, risk: Risk = None,
        confidence: Confidence = None,
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """A finding from a theme or hand-picked feedback (reach is counted from the data)."""
    from ..triage.findings import create_finding

    with open_store(db) as (_s, store):
        f = create_finding(store, project, title=title, description=description,
                           feedback_ids=_ids(feedback_ids), theme_id=theme, owner=owner,
                           route=route, component=component, severity=severity,
                           effort=effort, risk=risk, confidence=confidence,
                           actor=_actor(actor))
    if json:
        echo_json(f.to_dict())
        return
    out().print(f"finding {f.id} created ({f.reach_users} users, {f.reach_interactions} "
                f"interactions; priority {_fmt(f.priority, 4)})")


def findings_update_command(
        finding: FindingId, project: ProjectName,
        title: Annotated[str | None, typer.Option("--title", show_default=False,
                                                  help="New title.")] = None,
        description: Annotated[str | None, typer.Option(
            "--description", show_default=False, help="New description.")] = None,
        owner: Owner = None, route: RouteOpt = None, component: Component = None,
        severity: Severity = None, effort: Effort = None, risk: Risk = None,
        confidence: Confidence = None,
        reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Change a finding's owner, route or priority inputs; priority is recomputed."""
    from ..triage.findings import update_finding

    given = {"title": title, "description": description, "owner": owner, "route": route,
             "component": component, "severity": severity, "effort": effort, "risk": risk,
             "confidence": confidence}
    with open_store(db) as (_s, store):
        f = update_finding(store, project, finding, actor=_actor(actor), reason=reason,
                           **{k: v for k, v in given.items() if v is not None})
    if json:
        echo_json(f.to_dict())
        return
    out().print(f"finding {f.id} updated; priority {_fmt(f.priority, 4)}")


def findings_status_command(
        finding: FindingId,
        status: Annotated[FindingStatus, typer.Argument(metavar="STATUS",
                                                        help="The new status.")],
        project: ProjectName,
        reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Move a finding: new → triaged → in_progress → fixed → verified → closed (fixed →
    in_progress when verification fails; new or triaged → closed with a reason)."""
    from ..triage.findings import set_status

    with open_store(db) as (_s, store):
        f = set_status(store, project, finding, status, actor=_actor(actor), reason=reason)
    if json:
        echo_json(f.to_dict())
        return
    out().print(f"finding {f.id} is {f.status}")


def findings_link_command(
        finding: FindingId, project: ProjectName,
        dataset: Annotated[str | None, typer.Option(
            "--dataset", metavar="NAME", show_default=False,
            help="A dataset that addresses the finding (provenance).")] = None,
        version: Annotated[int | None, typer.Option(
            "--version", show_default=False, help="The dataset's version (latest).")] = None,
        feedback_ids: Annotated[str | None, typer.Option(
            "--feedback", metavar="ID,ID,...", show_default=False,
            help="More feedback for the finding.")] = None,
        actor: Actor = None, db: Db = None, json: Json = False) -> None:
    """Link a dataset (finding → dataset in the provenance graph) or more feedback."""
    from ..triage.findings import link_dataset, link_feedback

    if dataset is None and not feedback_ids:
        raise InvalidInput("give --dataset or --feedback", field="dataset")
    result: dict[str, Any] = {}
    with open_store(db) as (_s, store):
        if feedback_ids:
            result["finding"] = link_feedback(store, project, finding, _ids(feedback_ids),
                                              actor=_actor(actor)).to_dict()
        if dataset is not None:
            result["dataset_link"] = link_dataset(store, project, finding, dataset,
                                                  version=version, actor=_actor(actor))
    if json:
        echo_json(result)
        return
    if "finding" in result:
        out().print(f"finding {finding}: reach {result['finding']['reach']['users']} users")
    if "dataset_link" in result:
        ds = result["dataset_link"]["dataset"]
        out().print(f"finding {finding} → dataset {escape(ds['name'])} v{ds['version']}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
    triage = typer.Typer(help="Triage feedback: route it (rules, classifier, human queue), "
                              "escalate safety and privacy, and find themes.",
                         no_args_is_help=True)
    triage.command("run")(run_command)
    triage.command("queue")(queue_command)
    triage.command("route")(route_command)
    triage.command("resolve")(resolve_command)
    triage.command("escalations")(escalations_command)
    triage.command("themes")(themes_command)
    rules = typer.Typer(help="Routing rules and the confidence threshold.",
                        no_args_is_help=True)
    rules.command("add")(rules_add_command)
    rules.command("list")(rules_list_command)
    rules.command("delete")(rules_delete_command)
    rules.command("threshold")(rules_threshold_command)
    triage.add_typer(rules, name="rules")
    app.add_typer(triage, name="triage")

    findings = typer.Typer(help="Findings: the prioritised backlog of what to fix.",
                           no_args_is_help=True)
    findings.command("list")(findings_list_command)
    findings.command("rank")(findings_rank_command)
    findings.command("show")(findings_show_command)
    findings.command("create")(findings_create_command)
    findings.command("update")(findings_update_command)
    findings.command("status")(findings_status_command)
    findings.command("link")(findings_link_command)
    app.add_typer(findings, name="findings")
