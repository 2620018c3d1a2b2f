"""Release gates and their sign-offs.

A gate is made for one model version of a component (and, usually, the experiment that
tested it). Its criteria are fixed when it is created (:data:`CRITERIA`):

``primary_metric``
    the experiment's primary metric improved for the version's arm: the interval of the
    difference to control excludes zero on the better side (the always-valid interval when
    the design is sequential, else the fixed-horizon one; :func:`experiments.analyze`).
``guardrails``
    no guardrail of that arm is ``breached`` or not estimable (``at_risk`` passes, shown).
``cohort_regressions``
    no cohort of an attribute regressed beyond its tolerance against the baseline version,
    Holm-corrected (:func:`evaluation.fairness.cohort_regressions`).
``fairness``
    the fairness criteria hold (:func:`evaluation.fairness.fairness_check`: four-fifths
    rule, parity ratios).
``safety_review``
    a safety review is signed (a ``safety`` approval), when the policy asks for one.

:func:`check_gate` evaluates them and stores each as pass / fail / not evaluated with its
evidence; the gate ``passed`` only when every criterion passed (one that could not be
evaluated fails). A gate may be checked again as data accrues until a release uses it.

Sign-offs (:func:`sign_gate`): a role signs only in the capacities
:data:`~.policy.ROLE_CAPACITIES` gives it; under ``second_person`` the gate's creator may not
approve it; ``maintainer`` and ``admin`` approvals need a passed gate (they approve the
release on its evidence), while ``expert`` and ``safety`` reviews may come first (the high
tier needs an expert's approval before any exposure). A rejection may be given at any time
and blocks the release while it stands. Refused sign-offs are recorded in the audit log
(``gate.sign.refused``) before the error is raised.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection, select

from ..capture.projects import Project, get_project
from ..errors import Conflict, FeedbackloopError, InvalidInput, NotFound, PermissionDenied
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    experiments,
    gates,
    memberships,
    model_versions,
    releases,
    signoffs,
    users,
)
from .audit import record
from .policy import CAPACITIES, ROLE_CAPACITIES, policy_for

__all__ = [
    "CRITERIA",
    "DECISIONS",
    "check_gate",
    "create_gate",
    "get_gate",
    "list_gates",
    "role_of_user",
    "sign_gate",
    "signoff_status",
]

CRITERIA = {
    "primary_metric": "primary metric improved, its interval excluding zero",
    "guardrails": "guardrails not breached",
    "cohort_regressions": "no cohort regressed beyond its tolerance (Holm-corrected)",
    "fairness": "fairness criteria met",
    "safety_review": "safety review signed",
}
DECISIONS = ("approve", "reject")
_MAX_TEXT = 10_000
_MAX_ID = 2**31 - 1


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _iso(value: Any) -> str | None:
    stamp = as_utc(value)
    return stamp.isoformat() if stamp is not None else None


def _text(value: Any, field: str, limit: int = 100) -> str:
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{field} must be text of at most {limit:,} characters",
                           field=field)
    return value


def _number(value: Any, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not lo <= value <= hi:
        raise InvalidInput(f"{field} must be a number in [{lo:g}, {hi:g}]", field=field)
    return float(value)


def _refused(store: Store, error: FeedbackloopError, *, actor: str, action: str,
             entity_kind: str, entity_id: Any, project_id: int | None,
             after: dict[str, Any]) -> FeedbackloopError:
    """Record a refusal in its own transaction; the caller raises the error."""
    with store.transaction() as conn:
        record(conn, actor=actor or "unknown", action=action, entity_kind=entity_kind,
               entity_id=entity_id, project_id=project_id, after=after,
               reason=error.message)
    return error


# -- reading ---------------------------------------------------------------------------------

def _gate_row(conn: Connection, p: Project, gate_id: Any, *, lock: bool = False) -> Any:
    if isinstance(gate_id, bool) or not isinstance(gate_id, int) or gate_id < 1:
        raise InvalidInput("a gate id is a positive whole number", field="gate_id")
    if gate_id > _MAX_ID:
        raise NotFound(f"no gate {gate_id} in project {p.name!r}", field="gate_id")
    q = select(gates).where(gates.c.id == gate_id, gates.c.project_id == p.id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no gate {gate_id} in project {p.name!r}", field="gate_id",
                       gate=gate_id)
    return row


def _signoffs(conn: Connection, gate_id: int) -> list[dict[str, Any]]:
    s = signoffs
    return [{"id": r.id, "actor": r.actor, "role": r.role, "capacity": r.capacity,
             "decision": r.decision, "comment": r.comment, "created_at": _iso(r.created_at)}
            for r in conn.execute(select(s).where(s.c.gate_id == gate_id).order_by(s.c.id))]


def signoff_status(conn: Connection, gate_row: Any, *,
                   release_actor: str | None = None) -> dict[str, Any]:
    """Whether the sign-offs the policy asks for are there: ``{"required": [{"capacity",
    "count", "have", "signers"}], "rejections", "met", "reasons"}``. Under
    ``second_person`` an approval by the gate's creator or by ``release_actor`` does not
    count."""
    policy = policy_for(conn, gate_row.project_id, gate_row.component)
    signed = _signoffs(conn, gate_row.id)
    excluded = set()
    if policy["second_person"]:
        excluded = {gate_row.created_by} | ({release_actor} if release_actor else set())
    rejections = [s for s in signed if s["decision"] == "reject"]
    required, reasons = [], []
    for need in policy["signoffs"]:
        signers = sorted({s["actor"] for s in signed
                          if s["decision"] == "approve" and s["capacity"] == need["capacity"]
                          and s["actor"] not in excluded})
        required.append({"capacity": need["capacity"], "count": need["count"],
                         "have": len(signers), "signers": signers})
        if len(signers) < need["count"]:
            reasons.append(f"{need['count']} {need['capacity']} approval(s) needed, "
                           f"{len(signers)} given"
                           + (" (the gate's creator and the release's author do not count)"
                              if excluded else ""))
    for s in rejections:
        reasons.append(f"{s['actor']} rejected it as {s['capacity']}: {s['comment'] or '-'}")
    return {"risk_tier": policy["risk_tier"], "second_person": policy["second_person"],
            "required": required, "rejections": rejections, "met": not reasons,
            "reasons": reasons}


def _gate_dict(conn: Connection, p: Project, row: Any) -> dict[str, Any]:
    v = conn.execute(select(model_versions.c.name, model_versions.c.status)
                     .where(model_versions.c.id == row.model_version_id)).one()
    exp = None
    if row.experiment_id is not None:
        exp = conn.execute(select(experiments.c.name).where(
            experiments.c.id == row.experiment_id)).scalar()
    released = conn.execute(select(releases.c.id).where(releases.c.gate_id == row.id)
                            .order_by(releases.c.id)).scalars().all()
    return {"id": row.id, "project": p.name, "component": row.component,
            "version": v.name, "version_status": v.status, "experiment": exp,
            "criteria": row.criteria, "result": row.result, "status": row.status,
            "risk_tier": row.risk_tier, "created_by": row.created_by,
            "created_at": _iso(row.created_at), "evaluated_at": _iso(row.evaluated_at),
            "signoffs": _signoffs(conn, row.id),
            "signoff_status": signoff_status(conn, row),
            "releases": [int(r) for r in released]}


def get_gate(conn: Connection, project: Project | str | int, gate_id: int) -> dict[str, Any]:
    """The gate with its criteria, last result, sign-offs and what they still lack."""
    p = _project(conn, project)
    return _gate_dict(conn, p, _gate_row(conn, p, gate_id))


def list_gates(conn: Connection, project: Project | str | int, *,
               component: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """The project's gates, newest first (without their sign-off detail)."""
    p = _project(conn, project)
    g, v, e = gates, model_versions, experiments
    q = (select(g.c.id, g.c.component, g.c.status, g.c.risk_tier, g.c.created_by,
                g.c.created_at, g.c.evaluated_at, v.c.name.label("version"),
                e.c.name.label("experiment"))
         .join(v, v.c.id == g.c.model_version_id)
         .outerjoin(e, e.c.id == g.c.experiment_id)
         .where(g.c.project_id == p.id).order_by(g.c.id.desc()).limit(limit))
    if component is not None:
        q = q.where(g.c.component == component)
    return [{"id": r.id, "component": r.component, "version": r.version,
             "experiment": r.experiment, "status": r.status, "risk_tier": r.risk_tier,
             "created_by": r.created_by, "created_at": _iso(r.created_at),
             "evaluated_at": _iso(r.evaluated_at)} for r in conn.execute(q)]


def role_of_user(conn: Connection, username: str, project: Project | str | int) -> str:
    """The project role of a user (``admin`` for an instance administrator), or an error
    naming the user."""
    p = _project(conn, project)
    user = conn.execute(select(users.c.id, users.c.is_superuser)
                        .where(users.c.username == username)).first()
    if user is None:
        raise NotFound(f"no user named {username!r}", field="user")
    if user.is_superuser:
        return "admin"
    role = conn.execute(select(memberships.c.role).where(
        memberships.c.user_id == user.id, memberships.c.project_id == p.id)).scalar()
    if role is None:
        raise PermissionDenied(f"user {username!r} has no role in project {p.name!r}",
                               field="user")
    return str(role)


# -- create ----------------------------------------------------------------------------------

def create_gate(store: Store, project: Project | str, component: str, version: str, *,
                actor: str, experiment: str | None = None,
                cohort_attribute: str | None = None, cohort_signal: str | None = None,
                cohort_tolerance: float = 0.05, baseline_version: str | None = None,
                fairness_attribute: str | None = None, fairness_signal: str | None = None,
                fairness_min_ratio: float = 0.8,
                fairness_prediction: str | None = None) -> dict[str, Any]:
    """A pending gate for ``version`` of ``component`` with its criteria fixed now.

    With ``experiment`` (an A/B experiment of the component with an arm serving the
    version): the primary-metric and guardrail criteria. With ``cohort_attribute`` (and
    ``cohort_signal``, default the experiment's primary metric): no cohort regressed beyond
    ``cohort_tolerance`` against ``baseline_version`` (default the control arm's version,
    else the live version). With ``fairness_attribute``: the fairness criteria on
    ``fairness_signal``. The safety review when the policy asks for one. Where automation
    may not promote, a component that has a live version needs an experiment: a change is
    released on evidence, not on offline metrics alone."""
    _text(actor, "actor")
    for value, field in ((cohort_attribute, "cohort_attribute"),
                         (cohort_signal, "cohort_signal"), (baseline_version,
                                                            "baseline_version"),
                         (fairness_attribute, "fairness_attribute"),
                         (fairness_signal, "fairness_signal"),
                         (fairness_prediction, "fairness_prediction"),
                         (experiment, "experiment")):
        if value is not None:
            _text(value, field, 200)
            if not value:
                raise InvalidInput(f"{field} may not be empty", field=field)
    tolerance = _number(cohort_tolerance, "cohort_tolerance", 0.0, 1e12)
    min_ratio = _number(fairness_min_ratio, "fairness_min_ratio", 0.0, 1.0)
    with store.transaction() as conn:
        p = _project(conn, project)
        v = model_versions
        vrow = conn.execute(select(v.c.id, v.c.status).where(
            v.c.project_id == p.id, v.c.component == component, v.c.name == version)).first()
        if vrow is None:
            raise NotFound(f"no version {version!r} of component {component!r} in project "
                           f"{p.name!r}", field="version", component=component)
        live = conn.execute(select(v.c.name).where(
            v.c.project_id == p.id, v.c.component == component, v.c.status == "live")
        ).scalar()
        if live == version:
            raise Conflict(f"version {version!r} of {component!r} is live already",
                           field="version")
        policy = policy_for(conn, p, component)
        criteria: list[dict[str, Any]] = []
        exp_id = None
        control_version = None
        primary_metric = None
        higher_is_better = True
        if experiment is not None:
            erow = conn.execute(select(experiments).where(
                experiments.c.project_id == p.id, experiments.c.name == experiment)).first()
            if erow is None:
                raise NotFound(f"no experiment {experiment!r} in project {p.name!r}",
                               field="experiment")
            if erow.kind != "ab":
                raise InvalidInput(f"{experiment!r} is a bandit; a gate reads an A/B "
                                   "experiment's analysis", field="experiment")
            if erow.component != component:
                raise InvalidInput(f"experiment {experiment!r} tests component "
                                   f"{erow.component!r}, not {component!r}",
                                   field="experiment")
            arms = erow.design["arms"]
            arm = next((a for a in arms if a.get("version") == version), None)
            if arm is None or arm["name"] == erow.design["control"]:
                raise InvalidInput(f"no treatment arm of {experiment!r} serves version "
                                   f"{version!r}", field="experiment")
            control_version = next((a.get("version") for a in arms
                                    if a["name"] == erow.design["control"]), None)
            primary_metric = erow.design["primary"]["metric"]
            higher_is_better = bool(erow.design["primary"].get("higher_is_better", True))
            exp_id = erow.id
            criteria.append({"name": "primary_metric", "label": CRITERIA["primary_metric"],
                             "experiment": experiment, "arm": arm["name"],
                             "metric": primary_metric})
            criteria.append({"name": "guardrails", "label": CRITERIA["guardrails"],
                             "experiment": experiment, "arm": arm["name"],
                             "metrics": [g["metric"] for g in
                                         erow.design.get("guardrails") or []]})
        elif not policy["automation_may_promote"] and live is not None:
            raise InvalidInput(
                f"under the {policy['risk_tier']}-risk policy a gate for {component!r} "
                f"(live: {live!r}) needs the experiment that tested the version",
                field="experiment")
        if cohort_attribute is not None:
            signal = cohort_signal or primary_metric
            if signal is None:
                raise InvalidInput("name the signal to compare cohorts on", field="cohort_signal")
            baseline = baseline_version or control_version or live
            if baseline is None:
                raise InvalidInput("no baseline version to compare cohorts with: name one",
                                   field="baseline_version")
            if baseline == version:
                raise InvalidInput("the baseline is the version itself",
                                   field="baseline_version")
            criteria.append({"name": "cohort_regressions",
                             "label": CRITERIA["cohort_regressions"],
                             "attribute": cohort_attribute, "signal": signal,
                             "baseline_version": baseline, "tolerance": tolerance,
                             "alpha": 0.05, "higher_is_better": higher_is_better
                             if signal == primary_metric else True})
        elif cohort_signal is not None or baseline_version is not None:
            raise InvalidInput("a cohort criterion needs the cohort attribute",
                               field="cohort_attribute")
        if fairness_attribute is not None:
            signal = fairness_signal or primary_metric
            if signal is None:
                raise InvalidInput("name the signal to judge fairness on",
                                   field="fairness_signal")
            criteria.append({"name": "fairness", "label": CRITERIA["fairness"],
                             "attribute": fairness_attribute, "signal": signal,
                             "min_ratio": min_ratio, "prediction": fairness_prediction})
        elif fairness_signal is not None or fairness_prediction is not None:
            raise InvalidInput("a fairness criterion needs the attribute",
                               field="fairness_attribute")
        if policy["safety_review"]:
            criteria.append({"name": "safety_review", "label": CRITERIA["safety_review"]})
        now = utcnow()
        gate_id = int(conn.execute(gates.insert().values(
            project_id=p.id, component=component, model_version_id=vrow.id,
            experiment_id=exp_id, criteria=criteria, result=None, status="pending",
            risk_tier=policy["risk_tier"], created_by=actor, created_at=now,
        )).inserted_primary_key[0])  # type: ignore[index]
        record(conn, actor=actor, action="gate.create", entity_kind="gate",
               entity_id=gate_id, project_id=p.id,
               after={"component": component, "version": version,
                      "experiment": experiment, "criteria": criteria,
                      "risk_tier": policy["risk_tier"], "status": "pending"})
        return _gate_dict(conn, p, _gate_row(conn, p, gate_id))


# -- check -----------------------------------------------------------------------------------

def _outcome(criterion: dict[str, Any], status: str, summary: str,
             evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": criterion["name"], "label": criterion["label"], "status": status,
            "passed": status == "pass", "summary": summary, "evidence": evidence or {}}


def _interval(comp: dict[str, Any]) -> tuple[list[Any] | None, str, str | None]:
    """(ci, method, reason): the always-valid interval when there is one."""
    seq = comp.get("sequential")
    if seq and seq.get("ci") is not None and seq.get("estimable", True):
        return list(seq["ci"]), f"always-valid interval ({seq.get('method')})", None
    absolute = comp.get("absolute") or {}
    if not absolute.get("estimable", absolute.get("ci") is not None):
        return None, comp.get("method") or "Welch t", absolute.get("reason") or \
            "the difference is not estimable"
    return list(absolute["ci"]), f"fixed-horizon {comp.get('method') or 'Welch t'}", None


def _primary(analysis: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    primary = analysis["primary"]
    comp = next((x for x in primary["comparisons"] if x["arm"] == c["arm"]), None)
    if comp is None:
        return _outcome(c, "not_evaluated", f"arm {c['arm']!r} is not in the analysis")
    ci, method, reason = _interval(comp)
    absolute = comp.get("absolute") or {}
    evidence = {"experiment": c["experiment"], "arm": c["arm"], "control": comp["control"],
                "metric": primary["metric"], "higher_is_better": primary["higher_is_better"],
                "estimate": absolute.get("estimate"), "ci": ci, "method": method,
                "p_value": absolute.get("p_value"),
                "adjusted_p_value": comp.get("adjusted_p_value"), "n": comp.get("n"),
                "experiment_status": analysis["experiment"]["status"],
                "decision": (analysis.get("decision") or {}).get("decision")}
    if ci is None:
        return _outcome(c, "fail", f"not estimable: {reason}", evidence)
    lo, hi = ci
    better = (lo is not None and lo > 0) if primary["higher_is_better"] \
        else (hi is not None and hi < 0)

    shown = "[{}, {}]".format("-inf" if lo is None else f"{lo:.4g}",
                              "+inf" if hi is None else f"{hi:.4g}")
    if better:
        return _outcome(c, "pass", f"{primary['metric']} improved: {shown} excludes 0 "
                        f"({method})", evidence)
    return _outcome(c, "fail", f"{primary['metric']}: {shown} does not exclude 0 on the "
                    f"better side ({method})", evidence)


def _guardrails(analysis: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for g in analysis.get("guardrails") or []:
        comp = next((x for x in g["comparisons"] if x["arm"] == c["arm"]), None)
        st = (comp or {}).get("guardrail") or {"status": "not_estimable",
                                                "reason": "no comparison for the arm"}
        rows.append({"metric": g["metric"], "status": st["status"],
                     "reason": st.get("reason"), "interval": st.get("interval"),
                     "allowed_change": g.get("allowed_change")})
    if not rows:
        return _outcome(c, "pass", "the design has no guardrails", {"guardrails": []})
    bad = [r for r in rows if r["status"] in ("breached", "not_estimable")]
    risky = [r["metric"] for r in rows if r["status"] == "at_risk"]
    if bad:
        return _outcome(c, "fail", "; ".join(f"{r['metric']} {r['status'].replace('_', ' ')}"
                                             for r in bad), {"guardrails": rows})
    note = f" ({', '.join(risky)} at risk: the interval still includes the harm)" \
        if risky else ""
    return _outcome(c, "pass", f"no guardrail breached{note}", {"guardrails": rows})


def _judged(c: dict[str, Any], result: dict[str, Any], summary: str) -> dict[str, Any]:
    return _outcome(c, "pass" if result.get("passed") else "fail", summary, result)


def _cohorts_summary(r: dict[str, Any]) -> str:
    regressed = [str(x["cohort"]) for x in r.get("cohorts", []) if x.get("regressed")]
    if regressed:
        return "regressed beyond the tolerance: " + ", ".join(regressed)
    if not r.get("passed"):
        return r.get("reason") or "no cohort has data under both versions"
    return f"no cohort of {r.get('attribute')} regressed ({len(r.get('cohorts', []))} compared)"


def _fairness_summary(r: dict[str, Any]) -> str:
    failed = [x.get("name", "?") for x in r.get("criteria", []) if not x.get("passed")]
    return "failed: " + ", ".join(failed) if failed else "every fairness criterion met"


def _evaluate(store: Store, p: Project, row: Any, version: str) -> list[dict[str, Any]]:
    from ..experiments import analyze, refresh

    out: list[dict[str, Any]] = []
    analysis: dict[str, Any] | None = None
    analysis_error: str | None = None
    needs_analysis = any(c["name"] in ("primary_metric", "guardrails") for c in row.criteria)
    if needs_analysis:
        name = next(c["experiment"] for c in row.criteria if "experiment" in c)
        try:
            refresh(store, p, name)
            analysis = analyze(store, p, name)
        except FeedbackloopError as exc:
            analysis_error = exc.message
    for c in row.criteria:
        kind = c["name"]
        if kind in ("primary_metric", "guardrails"):
            if analysis is None:
                out.append(_outcome(c, "not_evaluated", f"not evaluated: {analysis_error}"))
            elif kind == "primary_metric":
                out.append(_primary(analysis, c))
            else:
                out.append(_guardrails(analysis, c))
        elif kind == "cohort_regressions":
            from ..evaluation.fairness import cohort_regressions

            try:
                found = cohort_regressions(
                    store, p, attribute=c["attribute"], signal=c["signal"],
                    baseline_version=c["baseline_version"], candidate_version=version,
                    tolerance=c["tolerance"], alpha=c["alpha"],
                    higher_is_better=c.get("higher_is_better", True))
            except FeedbackloopError as exc:
                out.append(_outcome(c, "not_evaluated", f"not evaluated: {exc.message}"))
            else:
                out.append(_judged(c, found, _cohorts_summary(found)))
        elif kind == "fairness":
            from ..evaluation.fairness import fairness_check

            try:
                found = fairness_check(store, p, attribute=c["attribute"], signal=c["signal"],
                                       version=version, min_ratio=c["min_ratio"],
                                       prediction=c.get("prediction"))
            except FeedbackloopError as exc:
                out.append(_outcome(c, "not_evaluated", f"not evaluated: {exc.message}"))
            else:
                out.append(_judged(c, found, _fairness_summary(found)))
        elif kind == "safety_review":
            with store.read() as conn:
                signed = [s for s in _signoffs(conn, row.id) if s["capacity"] == "safety"]
            approvals = [s for s in signed if s["decision"] == "approve"]
            rejects = [s for s in signed if s["decision"] == "reject"]
            if rejects:
                out.append(_outcome(c, "fail", f"rejected by {rejects[0]['actor']}",
                                    {"signoffs": signed}))
            elif approvals:
                out.append(_outcome(c, "pass", f"signed by {approvals[0]['actor']}",
                                    {"signoffs": signed}))
            else:
                out.append(_outcome(c, "fail", "no safety review signed yet (gate sign "
                                    "--as safety)", {"signoffs": signed}))
        else:  # pragma: no cover - criteria are written by create_gate only
            out.append(_outcome(c, "not_evaluated", f"unknown criterion {kind!r}"))
    return out


def check_gate(store: Store, project: Project | str, gate_id: int, *,
               actor: str) -> dict[str, Any]:
    """Evaluate every criterion and store the result (audited as ``gate.check``)."""
    _text(actor, "actor")
    with store.read() as conn:
        p = _project(conn, project)
        row = _gate_row(conn, p, gate_id)
        version = conn.execute(select(model_versions.c.name).where(
            model_versions.c.id == row.model_version_id)).scalar_one()
    results = _evaluate(store, p, row, version)
    status = "passed" if all(r["passed"] for r in results) else "failed"
    with store.transaction() as conn:
        current = _gate_row(conn, p, gate_id, lock=True)
        used = conn.execute(select(releases.c.id).where(releases.c.gate_id == gate_id)).first()
        if used is not None:
            raise Conflict(f"gate {gate_id} was used by release {used.id}; its evidence is "
                           "frozen (create a new gate to check again)", field="gate_id")
        # A maintainer's or admin's approval vouches for the evidence it was given on:
        # re-checking would let it stand behind different numbers.
        approved = conn.execute(select(signoffs.c.actor).where(
            signoffs.c.gate_id == gate_id, signoffs.c.decision == "approve",
            signoffs.c.capacity.in_(("maintainer", "admin")))).first()
        if approved is not None:
            raise Conflict(f"gate {gate_id} was approved by {approved.actor} on its evidence, "
                           "which is frozen now (create a new gate to check again)",
                           field="gate_id")
        conn.execute(gates.update().where(gates.c.id == gate_id).values(
            result=results, status=status, evaluated_at=utcnow()))
        record(conn, actor=actor, action="gate.check", entity_kind="gate", entity_id=gate_id,
               project_id=p.id, before={"status": current.status},
               after={"status": status,
                      "criteria": {r["name"]: r["status"] for r in results}})
        return _gate_dict(conn, p, _gate_row(conn, p, gate_id))


# -- sign ------------------------------------------------------------------------------------

def sign_gate(store: Store, project: Project | str, gate_id: int, *, actor: str, role: str,
              capacity: str, decision: str = "approve", comment: str = "") -> dict[str, Any]:
    """Sign the gate in ``capacity`` as ``actor`` holding project ``role``. Refusals (a
    capacity the role may not sign in, self-approval under ``second_person``, an approval
    of a gate that has not passed, a second signature in one capacity) are recorded as
    ``gate.sign.refused`` and raised."""
    _text(actor, "actor")
    if not actor:
        raise InvalidInput("say who signs", field="actor")
    if capacity not in CAPACITIES:
        raise InvalidInput(f"capacity must be one of {', '.join(CAPACITIES)}, not "
                           f"{capacity!r}", field="capacity")
    if decision not in DECISIONS:
        raise InvalidInput(f"decision must be approve or reject, not {decision!r}",
                           field="decision")
    _text(comment, "comment", _MAX_TEXT)
    if decision == "reject" and not comment.strip():
        raise InvalidInput("a rejection needs its reason", field="comment")
    attempt = {"capacity": capacity, "decision": decision, "role": role}
    with store.read() as conn:
        p = _project(conn, project)
        _gate_row(conn, p, gate_id)
    try:
        with store.transaction() as conn:
            row = _gate_row(conn, p, gate_id, lock=True)
            allowed = ROLE_CAPACITIES.get(role, ())
            if capacity not in allowed:
                raise PermissionDenied(
                    f"role {role!r} may not sign off as {capacity}"
                    + (f" (it may sign as {', '.join(allowed)})" if allowed
                       else " (it may not sign off at all)"),
                    field="capacity", role=role)
            policy = policy_for(conn, p, row.component)
            if decision == "approve" and policy["second_person"] and actor == row.created_by:
                raise PermissionDenied(
                    f"{actor} created gate {gate_id}; the {policy['risk_tier']}-risk policy "
                    "requires a second person to approve it (no self-approval)",
                    field="actor")
            if conn.execute(select(releases.c.id).where(releases.c.gate_id == gate_id)
                            ).first() is not None:
                raise Conflict(f"gate {gate_id} has been released; sign-offs are closed",
                               field="gate_id")
            if decision == "approve" and capacity in ("maintainer", "admin") \
                    and row.status != "passed":
                raise Conflict(
                    f"gate {gate_id} is {row.status}: a {capacity} approves a release on "
                    "passed checks (run gate check first)", field="gate_id",
                    status=row.status)
            taken = conn.execute(select(signoffs.c.id).where(
                signoffs.c.gate_id == gate_id, signoffs.c.actor == actor,
                signoffs.c.capacity == capacity)).first()
            if taken is not None:
                raise Conflict(f"{actor} has signed gate {gate_id} as {capacity} already",
                               field="capacity")
            now = utcnow()
            sid = int(conn.execute(signoffs.insert().values(
                gate_id=gate_id, actor=actor, role=role, capacity=capacity,
                decision=decision, comment=comment, created_at=now,
            )).inserted_primary_key[0])  # type: ignore[index]
            record(conn, actor=actor, action="gate.sign", entity_kind="gate",
                   entity_id=gate_id, project_id=p.id,
                   after={**attempt, "signoff_id": sid}, reason=comment or None)
            return _gate_dict(conn, p, row)
    except (PermissionDenied, Conflict) as exc:
        raise _refused(store, exc, actor=actor, action="gate.sign.refused",
                       entity_kind="gate", entity_id=gate_id, project_id=p.id,
                       after=attempt) from None
