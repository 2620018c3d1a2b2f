"""``feedbackloop gate create|check|sign|show|list``, ``release promote|rollback|list|show``
and ``policy show|set``: release governance by risk tier.

Who acts: ``--user NAME`` acts as that project member, and their role must allow the action
(signing needs it: the role decides the capacities one may sign in). Without ``--user`` the
command acts as ``cli:<login>``, the operator who holds the database itself.
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any, Literal

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import InvalidInput, PermissionDenied
from .common import Db, Json, ProjectName, RiskTier, echo_json, open_store, out

__all__ = ["register"]

Capacity = Literal["maintainer", "expert", "safety", "admin"]
GateId = Annotated[int, typer.Argument(metavar="GATE", help="The gate's id.")]
Component = Annotated[str, typer.Argument(metavar="COMPONENT",
                                          help="The component (ranking, generation…).")]
Version = Annotated[str, typer.Argument(metavar="VERSION", help="The model version.")]
User = Annotated[str | None, typer.Option(
    "--user", metavar="NAME", show_default=False,
    help="Act as this project member (their role must allow it); default cli:<login>.")]


def _actor(store: Any, project: str, user: str | None, action: Any) -> tuple[str, str]:
    """(actor, role): the member and their checked role, or the operator as admin."""
    from ..access.roles import can
    from ..governance.gates import role_of_user

    if user is None:
        try:
            login = getpass.getuser()
        except Exception:  # no login name in some containers
            login = "operator"
        return f"cli:{login}"[:100], "admin"
    with store.read() as conn:
        role = role_of_user(conn, user, project)
    if not can(role, action):
        raise PermissionDenied(f"{user} is {role} in {project!r}: that role may not "
                               f"{action.value.replace('_', ' ')}", field="user", role=role)
    return user, role


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _print_gate(gate: dict[str, Any]) -> None:
    console = out()
    exp = f", experiment {escape(gate['experiment'])}" if gate["experiment"] else ""
    console.print(f"Gate [bold]{gate['id']}[/]: {escape(gate['component'])} "
                  f"{escape(gate['version'])}{exp} — [bold]{gate['status']}[/] "
                  f"({gate['risk_tier']} risk, created by {escape(gate['created_by'])})")
    results = {r["name"]: r for r in gate["result"] or []}
    table = Table("criterion", "status", "evidence")
    for c in gate["criteria"]:
        r = results.get(c["name"])
        table.add_row(escape(c["label"]), r["status"] if r else "not checked",
                      escape(r["summary"]) if r else "-")
    if gate["criteria"]:
        console.print(table)
    else:
        console.print("  no criteria (sign-offs only)")
    st = gate["signoff_status"]
    for need in st["required"]:
        who = ", ".join(need["signers"]) or "-"
        console.print(f"  sign-off {need['capacity']}: {need['have']}/{need['count']} "
                      f"({escape(who)})")
    for s in gate["signoffs"]:
        console.print(f"  {escape(s['actor'])} ({s['role']}) {s['decision']}d as "
                      f"{s['capacity']}" + (f": {escape(s['comment'])}" if s["comment"]
                                            else ""))
    for reason in st["reasons"]:
        console.print(f"  [yellow]missing:[/] {escape(reason)}")


# -- gate --------------------------------------------------------------------------------------

def gate_create_command(
    component: Component, version: Version, project: ProjectName,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", "-e", metavar="NAME", show_default=False,
        help="The A/B experiment that tested the version (primary metric and guardrail "
             "criteria).")] = None,
    cohort_attribute: Annotated[str | None, typer.Option(
        "--cohort-attribute", metavar="ATTR", show_default=False,
        help="Check that no cohort of this interaction attribute regressed.")] = None,
    cohort_signal: Annotated[str | None, typer.Option(
        "--cohort-signal", metavar="SIGNAL", show_default=False,
        help="The signal compared per cohort (default: the primary metric).")] = None,
    tolerance: Annotated[float, typer.Option(
        "--tolerance", metavar="X",
        help="The regression a cohort may show, in the signal's units.")] = 0.05,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", metavar="VERSION", show_default=False,
        help="The version cohorts are compared with (default: the control arm's, else "
             "the live one).")] = None,
    fairness_attribute: Annotated[str | None, typer.Option(
        "--fairness-attribute", metavar="ATTR", show_default=False,
        help="Check the fairness criteria over this attribute's cohorts.")] = None,
    fairness_signal: Annotated[str | None, typer.Option(
        "--fairness-signal", metavar="SIGNAL", show_default=False,
        help="The signal judged (default: the primary metric).")] = None,
    min_ratio: Annotated[float, typer.Option(
        "--min-ratio", metavar="R", help="The least ratio (four-fifths rule: 0.8).")] = 0.8,
    prediction: Annotated[str | None, typer.Option(
        "--prediction", metavar="SIGNAL", show_default=False,
        help="An automated signal read as the prediction (parity and equalised odds).")
    ] = None,
    user: User = None, db: Db = None, json: Json = False,
) -> None:
    """Create a gate for VERSION of COMPONENT with its criteria fixed now."""
    from ..access.roles import Action
    from ..governance.gates import create_gate

    with open_store(db) as (_settings, store):
        actor, _ = _actor(store, project, user, Action.RELEASE)
        gate = create_gate(store, project, component, version, actor=actor,
                           experiment=experiment, cohort_attribute=cohort_attribute,
                           cohort_signal=cohort_signal, cohort_tolerance=tolerance,
                           baseline_version=baseline, fairness_attribute=fairness_attribute,
                           fairness_signal=fairness_signal, fairness_min_ratio=min_ratio,
                           fairness_prediction=prediction)
    if json:
        echo_json(gate)
        return
    _print_gate(gate)
    out().print(f"Check it with `feedbackloop gate check {gate['id']} -p {escape(project)}`.")


def gate_check_command(gate_id: GateId, project: ProjectName, user: User = None,
                       db: Db = None, json: Json = False) -> None:
    """Evaluate the gate's criteria and store each with its evidence. Exit code 1 when the
    gate failed."""
    from ..access.roles import Action
    from ..governance.gates import check_gate

    with open_store(db) as (_settings, store):
        actor, _ = _actor(store, project, user, Action.RELEASE)
        gate = check_gate(store, project, gate_id, actor=actor)
    if json:
        echo_json(gate)
    else:
        _print_gate(gate)
    if gate["status"] != "passed":
        raise typer.Exit(1)


def gate_sign_command(
    gate_id: GateId, project: ProjectName,
    user: Annotated[str, typer.Option("--user", metavar="NAME",
                                      help="Who signs: a project member.")],
    capacity: Annotated[Capacity, typer.Option(
        "--as", metavar="CAPACITY",
        help="maintainer, expert, safety or admin (what the member's role allows).")],
    reject: Annotated[bool, typer.Option("--reject",
                                         help="Reject instead of approve.")] = False,
    comment: Annotated[str, typer.Option("--comment", help="Why (required to reject).")
                       ] = "",
    db: Db = None, json: Json = False,
) -> None:
    """Sign the gate off (or reject it) as a project member in a capacity."""
    from ..governance.gates import role_of_user, sign_gate

    with open_store(db) as (_settings, store):
        with store.read() as conn:
            role = role_of_user(conn, user, project)
        gate = sign_gate(store, project, gate_id, actor=user, role=role, capacity=capacity,
                         decision="reject" if reject else "approve", comment=comment)
    if json:
        echo_json(gate)
        return
    out().print(f"{escape(user)} {'rejected' if reject else 'approved'} gate {gate_id} as "
                f"{capacity}.")
    _print_gate(gate)


def gate_show_command(gate_id: GateId, project: ProjectName, db: Db = None,
                      json: Json = False) -> None:
    """A gate: its criteria with their last result and evidence, and its sign-offs."""
    from ..governance.gates import get_gate

    with open_store(db) as (_settings, store), store.read() as conn:
        gate = get_gate(conn, project, gate_id)
    if json:
        echo_json(gate)
        return
    _print_gate(gate)


def gate_list_command(project: ProjectName, component: Annotated[str | None, typer.Option(
        "--component", "-c", show_default=False, help="Only this component.")] = None,
        db: Db = None, json: Json = False) -> None:
    """The project's gates, newest first."""
    from ..governance.gates import list_gates

    with open_store(db) as (_settings, store), store.read() as conn:
        rows = list_gates(conn, project, component=component)
    if json:
        echo_json(rows)
        return
    table = Table("id", "component", "version", "experiment", "status", "tier", "created by")
    for g in rows:
        table.add_row(str(g["id"]), escape(g["component"]), escape(g["version"]),
                      escape(g["experiment"] or "-"), g["status"], g["risk_tier"],
                      escape(g["created_by"]))
    out().print(table)


# -- release -----------------------------------------------------------------------------------

def _cohort(when: list[str] | None, percent: float) -> dict[str, Any] | None:
    if not when:
        return None
    conditions = []
    for item in when:
        attribute, sep, value = item.partition("=")
        if not sep or not attribute.strip():
            raise InvalidInput(f"--cohort {item!r} must look like ATTRIBUTE=VALUE",
                               field="cohort")
        conditions.append({"attribute": attribute.strip(), "op": "eq",
                           "value": value.strip()})
    return {"when": conditions, "percent": percent}


def _print_release(r: dict[str, Any]) -> None:
    cohort = "everyone" if r["cohort"] is None else ", ".join(
        f"{c['attribute']} {c['op']} {c['value']}" for c in r["cohort"]["when"]) + \
        f" ({r['cohort']['percent']:g} %)"
    out().print(f"Release [bold]{r['id']}[/]: {escape(r['component'])} "
                f"{escape(r['version'] or '-')} to {escape(cohort)} — {r['status']}; "
                f"rollback target {escape(r['rollback_to'] or '-')}; gate "
                f"{_fmt(r['gate_id'])}; by {escape(r['released_by'])} at "
                f"{r['released_at'][:19]}")


def release_promote_command(
    component: Component, version: Version, project: ProjectName,
    gate: Annotated[int, typer.Option("--gate", metavar="ID",
                                      help="The passed gate of this version.")],
    cohort: Annotated[list[str] | None, typer.Option(
        "--cohort", metavar="ATTR=VALUE",
        help="Release to this cohort only (repeat: all must hold); default everyone.")
    ] = None,
    percent: Annotated[float, typer.Option(
        "--percent", metavar="P", help="Share of the cohort served (with --cohort).")
    ] = 100.0,
    reason: Annotated[str | None, typer.Option("--reason", show_default=False,
                                               help="Why, for the audit log.")] = None,
    user: User = None, db: Db = None, json: Json = False,
) -> None:
    """Release VERSION: refused until its gate passed and the tier's sign-offs are there;
    names the rollback target and writes the case study."""
    from ..access.roles import Action
    from ..governance.releases import promote

    with open_store(db) as (_settings, store):
        actor, _ = _actor(store, project, user, Action.RELEASE)
        release = promote(store, project, component, version, gate_id=gate, actor=actor,
                          cohort=_cohort(cohort, percent), reason=reason)
    if json:
        echo_json(release)
        return
    _print_release(release)
    out().print(f"Roll back with `feedbackloop release rollback {escape(component)} -p "
                f"{escape(project)}`.")


def release_rollback_command(
    component: Component, project: ProjectName,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit log.")] = "",
    user: User = None, db: Db = None, json: Json = False,
) -> None:
    """Undo the component's newest release in one step (the previous live version, or the
    cohort's rule removed)."""
    from ..access.roles import Action
    from ..governance.releases import rollback

    with open_store(db) as (_settings, store):
        actor, _ = _actor(store, project, user, Action.RELEASE)
        done = rollback(store, project, component, actor=actor, reason=reason)
    if json:
        echo_json(done)
        return
    what = f"release {done['release']['id']}" if done["release"] else "the live version"
    out().print(f"Rolled back {what} of {escape(component)}; live now: "
                f"{escape(done['live'] or '-')}.")


def release_list_command(project: ProjectName,
                         component: Annotated[str | None, typer.Option(
                             "--component", "-c", show_default=False,
                             help="Only this component.")] = None,
                         db: Db = None, json: Json = False) -> None:
    """The project's releases, newest first."""
    from ..governance.releases import list_releases

    with open_store(db) as (_settings, store), store.read() as conn:
        rows = list_releases(conn, project, component=component)
    if json:
        echo_json(rows)
        return
    table = Table("id", "component", "version", "cohort", "status", "rollback to", "gate",
                  "by", "at")
    for r in rows:
        table.add_row(str(r["id"]), escape(r["component"]), escape(r["version"] or "-"),
                      "everyone" if r["cohort"] is None else "cohort", r["status"],
                      escape(r["rollback_to"] or "-"), _fmt(r["gate_id"]),
                      escape(r["released_by"]), r["released_at"][:19])
    out().print(table)


def release_show_command(
    release_id: Annotated[int, typer.Argument(metavar="ID", help="The release's id.")],
    project: ProjectName,
    case_study: Annotated[bool, typer.Option(
        "--case-study", help="Print the release's case study as Markdown.")] = False,
    db: Db = None, json: Json = False,
) -> None:
    """A release; with --case-study its case study (what changed, why, the evidence, what
    happened after) as Markdown."""
    from ..governance.releases import get_release

    with open_store(db) as (_settings, store), store.read() as conn:
        release = get_release(conn, project, release_id)
    if json:
        echo_json(release)
        return
    if case_study:
        from ..governance.case_study import case_study_markdown

        typer.echo(case_study_markdown(release["case_study"]))
        return
    _print_release(release)


# -- policy ------------------------------------------------------------------------------------

def _parse_set(values: list[str] | None) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in values or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--set {pair!r} must look like KEY=JSON", field="set")
        try:
            found[key.strip()] = orjson.loads(value)
        except orjson.JSONDecodeError:
            found[key.strip()] = value.strip()  # a bare word: a role name, for one
    return found


def policy_show_command(project: ProjectName, component: Annotated[str | None, typer.Option(
        "--component", "-c", show_default=False,
        help="The policy that applies to this component.")] = None,
        db: Db = None, json: Json = False) -> None:
    """The risk-tier policy in force, and the stored overrides."""
    from ..governance.policy import list_policies, policy_for

    with open_store(db) as (_settings, store), store.read() as conn:
        policy = policy_for(conn, project, component)
        stored = list_policies(conn, project)
    if json:
        echo_json({"policy": policy, "stored": stored})
        return
    console = out()
    console.print(f"Policy for {escape(project)}"
                  + (f" / {escape(component)}" if component else "")
                  + f": [bold]{policy['risk_tier']}[/] risk ({policy['source']})")
    for key, value in policy.items():
        if key in ("risk_tier", "component", "source"):
            continue
        console.print(f"  {key}: {escape(orjson.dumps(value).decode())}")
    for row in stored:
        console.print(f"  stored: {escape(row['component'] or '(project)')} "
                      f"{row['risk_tier']} {escape(orjson.dumps(row['overrides']).decode())}"
                      f" by {escape(row['updated_by'])}")


def policy_set_command(
    project: ProjectName,
    component: Annotated[str | None, typer.Option(
        "--component", "-c", show_default=False,
        help="Set the policy of this component (default: the project's).")] = None,
    tier: Annotated[RiskTier | None, typer.Option(
        "--tier", show_default=False, help="The risk tier.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=JSON",
        help='Override one key, e.g. --set second_person=false --set '
             '\'signoffs=[{"capacity": "expert", "count": 2}]\'; replaces the stored '
             "overrides.")] = None,
    clear: Annotated[bool, typer.Option("--clear",
                                        help="Remove the stored overrides.")] = False,
    reason: Annotated[str | None, typer.Option("--reason", show_default=False,
                                               help="Why, for the audit log.")] = None,
    user: User = None, db: Db = None, json: Json = False,
) -> None:
    """Set the tier and overrides of the project or of one component (audited)."""
    from ..access.roles import Action
    from ..governance.policy import set_policy

    overrides = {} if clear else (_parse_set(set_) if set_ else None)
    with open_store(db) as (_settings, store):
        actor, _ = _actor(store, project, user, Action.MANAGE_PROJECT)
        policy = set_policy(store, project, component=component, risk_tier=tier,
                            overrides=overrides, actor=actor, reason=reason)
    if json:
        echo_json(policy)
        return
    out().print(f"Policy of {escape(project)}" + (f" / {escape(component)}" if component
                                                 else "")
                + f" set: {policy['risk_tier']} risk.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
    gate = typer.Typer(help="Release gates: criteria, checks with evidence, sign-offs.",
                       no_args_is_help=True)
    gate.command("create")(gate_create_command)
    gate.command("check")(gate_check_command)
    gate.command("sign")(gate_sign_command)
    gate.command("show")(gate_show_command)
    gate.command("list")(gate_list_command)
    app.add_typer(gate, name="gate")
    release = typer.Typer(help="Release a version through its gate; roll back in one step.",
                          no_args_is_help=True)
    release.command("promote")(release_promote_command)
    release.command("rollback")(release_rollback_command)
    release.command("list")(release_list_command)
    release.command("show")(release_show_command)
    app.add_typer(release, name="release")
    policy = typer.Typer(help="Human-in-the-loop policy by risk tier.", no_args_is_help=True)
    policy.command("show")(policy_show_command)
    policy.command("set")(policy_set_command)
    app.add_typer(policy, name="policy")
