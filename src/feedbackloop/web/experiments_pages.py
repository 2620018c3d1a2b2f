"""The Test stage's pages: the experiment list, the new-experiment form, an experiment's
page (per-arm table, lift with its interval, the confidence sequence over time, SRM,
guardrails, the Bayesian view, stopping rules, planned against actual sample, decision) and
its report for download; a bandit's page (per-arm state and the current probabilities).

* ``/projects/{p}/experiments``: every experiment and bandit, newest first.
* ``/projects/{p}/experiments/new``: plan an experiment (GET the form, POST it).
* ``/projects/{p}/experiments/{name}``: the analysis as it stands (A/B), or the bandit's
  state.
* ``/projects/{p}/experiments/{name}/report?format=html|md``: the report as a file.
* POST ``…/{name}/start``, ``…/{name}/stop``, ``…/{name}/decide``.

Reading needs the viewer role; planning, starting, stopping and deciding need
:data:`~feedbackloop.access.Action.MANAGE_EXPERIMENTS` (maintainers and admins). Forms carry
the session's CSRF token; a bad form value is a message on the page, never a server error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from ..access import Action, Principal, can
from ..capture.projects import Project, list_signals
from ..errors import FeedbackloopError, InvalidInput, NotFound
from ..experiments.report import (
    SEQUENTIAL_LESSON,
    confidence_sequence_svg,
    current_analysis,
    html_report,
    markdown_report,
    report_view,
)
from ..store import Store
from ..store.tables import experiment_decisions, experiments, model_versions
from .experiment_charts import probability_bars
from .pages import _readable_project, _render, _signed_in, _store, error_page
from .signin import csrf_valid

__all__ = ["bandit_view", "experiment_rows", "install_experiment_pages", "plan_from_form"]

MANAGE = Action.MANAGE_EXPERIMENTS
ARM_ROWS = 4  # arm rows on the new-experiment form
GUARDRAIL_ROWS = 2
METRIC_TYPES = ("binary", "categorical", "ordinal", "numeric")  # text, pairwise: no metric
_DECISIONS = ("ship", "iterate", "abandon")


def _quoted(value: str) -> str:
    return quote(value, safe="")


def _base(project: Project) -> str:
    return f"/projects/{_quoted(project.name)}/experiments"


def _may(principal: Principal, project: Project, action: Action) -> bool:
    return can(principal.role_in(project.id), action)


def _check_name(name: str) -> None:
    if len(name) > 100 or "\x00" in name:
        raise NotFound(f"no experiment {name[:100]!r} in this project")


# -- read-only queries the services do not offer ----------------------------------------

def experiment_rows(conn: Connection, project: Project) -> list[dict[str, Any]]:
    """Every experiment of the project for the list, newest first: name, kind, status,
    primary metric, started, the latest decision and what it supersedes."""
    e, d = experiments, experiment_decisions
    rows = conn.execute(select(e.c.id, e.c.name, e.c.kind, e.c.status, e.c.design,
                               e.c.hypothesis, e.c.component, e.c.created_at,
                               e.c.started_at, e.c.stopped_at, e.c.supersedes_id)
                        .where(e.c.project_id == project.id).order_by(e.c.id.desc())).all()
    names = {r.id: r.name for r in rows}
    decisions: dict[int, dict[str, Any]] = {}
    if rows:
        for dr in conn.execute(select(d.c.experiment_id, d.c.decision, d.c.arm,
                                      d.c.decided_by, d.c.created_at)
                               .where(d.c.experiment_id.in_(list(names)))
                               .order_by(d.c.id)):
            decisions[dr.experiment_id] = dict(dr._mapping)
    out = []
    for r in rows:
        design = r.design if isinstance(r.design, Mapping) else {}
        primary = design.get("primary") if isinstance(design.get("primary"), Mapping) else {}
        out.append({
            "id": r.id, "name": r.name, "kind": r.kind, "status": r.status,
            "hypothesis": r.hypothesis, "component": r.component,
            "metric": (primary or {}).get("metric") or design.get("reward_signal") or "",
            "created_at": r.created_at, "started_at": r.started_at,
            "stopped_at": r.stopped_at, "decision": decisions.get(r.id),
            "supersedes": names.get(r.supersedes_id) if r.supersedes_id else None,
            "arms": [a.get("name") for a in design.get("arms") or []
                     if isinstance(a, Mapping)],
        })
    return out


def _experiment_row(conn: Connection, project: Project, name: str) -> dict[str, Any]:
    _check_name(name)
    for row in experiment_rows(conn, project):
        if row["name"] == name:
            return row
    raise NotFound(f"no experiment {name!r} in this project")


def _superseded_by(conn: Connection, experiment_id: int) -> str | None:
    e = experiments
    return conn.execute(select(e.c.name).where(e.c.supersedes_id == experiment_id)
                        .order_by(e.c.id.desc()).limit(1)).scalar_one_or_none()


def _versions(conn: Connection, project: Project) -> dict[str, list[str]]:
    """Component -> its model version names, oldest first."""
    v = model_versions
    out: dict[str, list[str]] = {}
    for comp, name in conn.execute(select(v.c.component, v.c.name)
                                   .where(v.c.project_id == project.id)
                                   .order_by(v.c.component, v.c.id)):
        out.setdefault(comp, []).append(name)
    return out


# -- the list -------------------------------------------------------------------------------

def _experiment_list(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            rows = experiment_rows(conn, project)
        return _render(request, "experiments.html", principal=principal,
                       title=f"Experiments · {project.name}", project=project,
                       rows=rows, may_manage=_may(principal, project, MANAGE),
                       active="Experiments")

    return _signed_in(request, build)


# -- planning -----------------------------------------------------------------------------

_PLAN_FIELDS = ("name", "hypothesis", "component", "unit", "metric", "success", "cuped",
                "direction", "mde", "relative", "alpha", "power", "sides", "baseline",
                "sd", "sequential", "tuning_n", "looks", "correction", "max_days",
                "max_units",
                *(f"arm_{k}_{f}" for k in range(ARM_ROWS) for f in ("name", "version",
                                                                    "weight")),
                *(f"guard_{k}_{f}" for k in range(GUARDRAIL_ROWS)
                  for f in ("metric", "allowed", "relative", "direction")))


def _form_text(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _number(raw: str, field: str, label: str, *, integer: bool = False,
            required: bool = False) -> Any:
    raw = raw.strip()
    if not raw:
        if required:
            raise InvalidInput(f"give {label}", field=field)
        return None
    try:
        value: float | int = int(raw) if integer else float(raw)
    except (ValueError, OverflowError):
        raise InvalidInput(f"{label} must be {'a whole number' if integer else 'a number'}"
                           f", not {raw[:20]!r}", field=field) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{label} must be a finite number", field=field)
    return value


def plan_from_form(chosen: Mapping[str, str]) -> dict[str, Any]:
    """The new-experiment form as ``create_experiment`` arguments: ``name``,
    ``hypothesis``, ``component`` and the design. Only the form's own shape is checked
    here (numbers, at least two arms); the service checks the design in full and names
    the field at fault."""
    for key, value in chosen.items():
        if "\x00" in value:
            raise InvalidInput(f"{key} contains a NUL character", field=key)
    name = chosen.get("name", "").strip()
    if not name:
        raise InvalidInput("give the experiment a name", field="name")
    arms = []
    for k in range(ARM_ROWS):
        arm = chosen.get(f"arm_{k}_name", "").strip()
        version = chosen.get(f"arm_{k}_version", "").strip()
        weight = chosen.get(f"arm_{k}_weight", "")
        if not arm and not version:
            continue
        if not arm:
            raise InvalidInput(f"arm {k + 1}: give it a name", field=f"arm_{k}_name")
        item: dict[str, Any] = {"name": arm, "version": version or None}
        w = _number(weight, f"arm_{k}_weight", f"the weight of arm {arm!r}")
        if w is not None:
            item["weight"] = w
        arms.append(item)
    if len(arms) < 2:
        raise InvalidInput("an experiment needs at least two arms (the first is the "
                           "control)", field="arms")
    if 0 < sum("weight" in a for a in arms) < len(arms):
        raise InvalidInput("give every arm a weight, or none (equal split)", field="weight")
    metric = chosen.get("metric", "").strip()
    if not metric:
        raise InvalidInput("choose the primary metric", field="metric")
    primary: dict[str, Any] = {"metric": metric,
                               "higher_is_better": chosen.get("direction") != "lower"}
    if chosen.get("success", "").strip():
        primary["success"] = chosen["success"].strip()
    guardrails = []
    for k in range(GUARDRAIL_ROWS):
        g = chosen.get(f"guard_{k}_metric", "").strip()
        if not g:
            continue
        allowed = _number(chosen.get(f"guard_{k}_allowed", ""), f"guard_{k}_allowed",
                          f"the allowed change of guardrail {g}", required=True)
        guardrails.append({"metric": g,
                           "higher_is_better": chosen.get(f"guard_{k}_direction")
                           != "lower", "allowed_change": allowed,
                           "relative": chosen.get(f"guard_{k}_relative") == "yes"})
    looks_text = chosen.get("looks", "").strip()
    looks = None
    if looks_text:
        looks = [_number(x, "looks", "each planned look")
                 for x in looks_text.replace(";", ",").split(",") if x.strip()]
    design: dict[str, Any] = {
        "unit": chosen.get("unit") or "user", "arms": arms, "control": arms[0]["name"],
        "primary": primary, "guardrails": guardrails,
        "mde": _number(chosen.get("mde", ""), "mde", "the minimum detectable effect",
                       required=True),
        "relative": chosen.get("relative") == "yes",
        "cuped": chosen.get("cuped") == "yes",
        "alpha": _number(chosen.get("alpha", ""), "alpha", "alpha") or 0.05,
        "power": _number(chosen.get("power", ""), "power", "the power") or 0.8,
        "sides": _number(chosen.get("sides", "") or "2", "sides", "the sides",
                         integer=True),
        "baseline": _number(chosen.get("baseline", ""), "baseline", "the baseline"),
        "sd": _number(chosen.get("sd", ""), "sd", "the standard deviation"),
        "sequential": {"method": chosen.get("sequential") or "asymptotic-cs",
                       "tuning_n": _number(chosen.get("tuning_n", ""), "tuning_n",
                                           "the tuning sample size", integer=True)},
        "looks": looks,
        "correction": chosen.get("correction") or "holm",
        "max_days": _number(chosen.get("max_days", ""), "max_days",
                            "the maximum duration", integer=True) or 28,
        "max_units": _number(chosen.get("max_units", ""), "max_units",
                             "the maximum sample", integer=True),
    }
    return {"name": name, "hypothesis": chosen.get("hypothesis", "").strip(),
            "component": chosen.get("component", "").strip() or None, "design": design}


def _plan_form(request: Request, principal: Principal, project: Project, *,
               chosen: Mapping[str, str] | None = None, errors: list[str] | None = None,
               status: int = 200) -> Response:
    store = _store(request)
    with store.read() as conn:
        signals = [s for s in list_signals(conn, project.id) if s.type in METRIC_TYPES]
        versions = _versions(conn, project)
    component = next(iter(versions), "")
    names = versions.get(component, [])
    # The first and the newest version of the first component, as control and treatment.
    defaults = {"unit": "user", "mde": "0.05", "alpha": "0.05", "power": "0.8",
                "sides": "2", "sequential": "asymptotic-cs", "correction": "holm",
                "max_days": "28", "arm_0_name": "control", "arm_1_name": "treatment",
                "direction": "higher", "component": component,
                "arm_0_version": names[0] if names else "",
                "arm_1_version": names[-1] if len(names) > 1 else ""}
    return _render(request, "experiment_new.html", status=status, principal=principal,
                   title=f"New experiment · {project.name}", project=project,
                   signals=signals, versions=versions, arm_rows=ARM_ROWS,
                   guard_rows=GUARDRAIL_ROWS, chosen={**defaults, **(chosen or {})},
                   lesson=SEQUENTIAL_LESSON,
                   errors=errors or [], active="Experiments")


def _new_experiment_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        project = _readable_project(_store(request), principal, name)
        principal.require(project.id, MANAGE)
        return _plan_form(request, principal, project)

    return _signed_in(request, build)


def _expired(request: Request) -> Response:
    return error_page(request, 403, "The form expired; reload the page and try again.")


async def _create(request: Request, name: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return _expired(request)
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, MANAGE)
        chosen = {k: _form_text(form, k, 20_000 if k == "hypothesis" else 500)
                  for k in _PLAN_FIELDS}
        from ..experiments import create_experiment

        try:
            plan = plan_from_form(chosen)
            made = create_experiment(store, project, plan["name"], design=plan["design"],
                                     hypothesis=plan["hypothesis"],
                                     component=plan["component"],
                                     created_by=principal.name[:100])
        except FeedbackloopError as exc:
            if exc.status >= 500 or exc.status in (401, 403):
                raise
            return _plan_form(request, principal, project, chosen=chosen,
                              errors=[exc.message], status=exc.status)
        return RedirectResponse(f"{_base(project)}/{_quoted(made.name)}?done=created",
                                status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


# -- an experiment's page -----------------------------------------------------------------

def _analysis(store: Store, project: Project, name: str, *, status: str,
              looked_by: str) -> dict[str, Any]:
    """The analysis with the data logged so far: a running or stopped experiment copies
    new exposures and observations first (feedback on exposed units keeps arriving after a
    stop), and viewing a running one records the look, so the confidence sequence over
    time has a point for every time someone looked at new data."""
    return current_analysis(store, project, name, record_look=status == "running",
                            looked_by=looked_by)


def _bandit(store: Store, project: Project, name: str) -> dict[str, Any]:
    from ..experiments.bandits import bandit_status

    return bandit_status(store, project, name)


def bandit_view(status: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`~feedbackloop.experiments.bandits.bandit_status` for the page: per arm n,
    mean reward with its interval (or the reason there is none) and the current
    probability of being chosen; the floor, the policy and the methods."""
    bandit = status.get("bandit") or {}
    arms = []
    for a in status.get("arms") or []:
        mean = a.get("mean") if isinstance(a.get("mean"), Mapping) else {}
        ci = mean.get("ci95")
        arms.append({"name": str(a.get("name", "")), "version": a.get("version"),
                     "n": a.get("n", 0), "decisions": a.get("decisions", 0),
                     "mean": mean.get("estimate"),
                     "ci95": list(ci) if isinstance(ci, list | tuple) and len(ci) == 2
                     else None,
                     "reason": mean.get("reason") or "no rewards yet",
                     "method": mean.get("method") or "",
                     "probability": a.get("probability")})
    return {"arms": arms, "floor": bandit.get("floor"), "policy": bandit.get("policy"),
            "reward_kind": bandit.get("reward_kind"),
            "reward_signal": bandit.get("reward_signal"),
            "decisions": status.get("decisions"), "rewarded": status.get("rewarded"),
            "policy_method": status.get("policy_method") or "",
            "probability_method": status.get("probability_method") or ""}


def _experiment_page(request: Request, name: str, experiment: str) -> Response:
    return _signed_in(request, lambda p: _render_experiment(request, p, name, experiment))


def _render_experiment(request: Request, principal: Principal, name: str, experiment: str,
                       *, errors: list[str] | None = None,
                       chosen: Mapping[str, str] | None = None,
                       status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    with store.read() as conn:
        row = _experiment_row(conn, project, experiment)
        superseded_by = _superseded_by(conn, row["id"])
    analysis = view = chart = bandit = bars = None
    if row["kind"] == "bandit":
        bandit = bandit_view(_bandit(store, project, experiment))
        bars = probability_bars(bandit["arms"], floor=bandit["floor"],
                                title="Probability of choosing each arm now")
    elif row["status"] != "draft":
        analysis = _analysis(store, project, experiment, status=row["status"],
                             looked_by=principal.name[:100])
        view = report_view(analysis)
        superseded_by = analysis["experiment"].get("superseded_by") or superseded_by
        chart = confidence_sequence_svg(analysis)
    with store.read() as conn:
        design = conn.execute(select(experiments.c.design).where(
            experiments.c.id == row["id"])).scalar_one()
    may_manage = _may(principal, project, MANAGE)
    return _render(request, "experiment.html", status=status, principal=principal,
                   title=f"{row['name']} · {project.name}", project=project, row=row,
                   design=design if isinstance(design, Mapping) else {},
                   analysis=analysis, v=view, chart=chart, bandit=bandit, bars=bars,
                   superseded_by=superseded_by, may_manage=may_manage,
                   supersedes=(view or {}).get("supersedes") or row["supersedes"],
                   lesson=SEQUENTIAL_LESSON, decisions=_DECISIONS,
                   errors=errors or [], chosen=chosen or {},
                   notice=request.query_params.get("done", "")[:20],
                   active="Experiments")


def _report(request: Request, name: str, experiment: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        fmt = request.query_params.get("format", "html")
        if fmt not in ("html", "md"):
            raise InvalidInput("format must be html or md", field="format")
        with store.read() as conn:
            row = _experiment_row(conn, project, experiment)
        if row["kind"] == "bandit" or row["status"] == "draft":
            raise InvalidInput(f"experiment {experiment!r} has no analysis to report "
                               f"({'a bandit' if row['kind'] == 'bandit' else 'a draft'})",
                               field="experiment")
        analysis = _analysis(store, project, experiment, status=row["status"],
                             looked_by=principal.name[:100])
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in experiment)[:80]
        if fmt == "md":
            return Response(markdown_report(analysis), media_type="text/markdown; "
                            "charset=utf-8", headers={
                                "Content-Disposition": f'attachment; filename="{stem}.md"',
                                "Cache-Control": "no-store",
                                "X-Content-Type-Options": "nosniff"})
        return HTMLResponse(html_report(analysis), headers={
            "Content-Disposition": f'attachment; filename="{stem}.html"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "img-src data:"})

    return _signed_in(request, build)


# -- actions ------------------------------------------------------------------------------

def _checked(form: FormData, principal: Principal, request: Request, name: str,
             experiment: str) -> tuple[Store, Project] | Response:
    """CSRF, the project, the role; the experiment must exist."""
    if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
        return _expired(request)
    store = _store(request)
    project = _readable_project(store, principal, name)
    principal.require(project.id, MANAGE)
    with store.read() as conn:
        _experiment_row(conn, project, experiment)
    return store, project


def _back(project: Project, experiment: str, done: str) -> Response:
    return RedirectResponse(f"{_base(project)}/{_quoted(experiment)}?done={done}",
                            status_code=303)


def _action(kind: str) -> Any:
    async def handle(request: Request, name: str, experiment: str) -> Response:
        form = await request.form()

        def build(principal: Principal) -> Response:
            checked = _checked(form, principal, request, name, experiment)
            if isinstance(checked, Response):
                return checked
            store, project = checked
            chosen = {k: _form_text(form, k, 20_000 if k == "rationale" else 200)
                      for k in ("decision", "arm", "rationale", "reason")}
            try:
                for key, value in chosen.items():
                    if "\x00" in value:
                        raise InvalidInput(f"{key} contains a NUL character", field=key)
                _apply(kind, store, project, experiment, chosen, principal.name[:100])
            except FeedbackloopError as exc:
                if exc.status >= 500 or exc.status in (401, 403):
                    raise
                return _render_experiment(request, principal, name, experiment,
                                          errors=[exc.message], chosen=chosen,
                                          status=exc.status)
            return _back(project, experiment, {"start": "started", "stop": "stopped",
                                               "decide": "decided"}[kind])

        return await run_in_threadpool(_signed_in, request, build)

    return handle


def _apply(kind: str, store: Store, project: Project, experiment: str,
           chosen: Mapping[str, str], actor: str) -> None:
    from .. import experiments as service

    if kind == "start":
        service.start_experiment(store, project, experiment, actor=actor)
    elif kind == "stop":
        service.stop_experiment(store, project, experiment,
                                reason=chosen["reason"].strip() or "stopped on the page",
                                actor=actor)
    else:
        decision = chosen["decision"]
        if decision not in _DECISIONS:
            raise InvalidInput("choose ship, iterate or abandon", field="decision")
        if not chosen["rationale"].strip():
            raise InvalidInput("write the rationale: why this decision, on which evidence",
                               field="rationale")
        arm = chosen["arm"].strip() or None
        if decision == "ship" and arm is None:
            raise InvalidInput("choose the arm to ship", field="arm")
        service.decide(store, project, experiment, decision, chosen["rationale"].strip(),
                       arm=arm if decision == "ship" else None, decided_by=actor)


def install_experiment_pages(app: FastAPI) -> None:
    """Mount the Test stage's pages on ``app``."""
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/experiments", _experiment_list, methods=["GET"],
                      name="experiment_list", **html)
    app.add_api_route("/projects/{name}/experiments/new", _new_experiment_page,
                      methods=["GET"], name="experiment_new", **html)
    app.add_api_route("/projects/{name}/experiments/new", _create, methods=["POST"],
                      name="experiment_create", **html)
    app.add_api_route("/projects/{name}/experiments/{experiment}", _experiment_page,
                      methods=["GET"], name="experiment", **html)
    app.add_api_route("/projects/{name}/experiments/{experiment}/report", _report,
                      methods=["GET"], name="experiment_report", include_in_schema=False)
    for kind in ("start", "stop", "decide"):
        app.add_api_route(f"/projects/{{name}}/experiments/{{experiment}}/{kind}",
                          _action(kind), methods=["POST"], name=f"experiment_{kind}",
                          **html)
