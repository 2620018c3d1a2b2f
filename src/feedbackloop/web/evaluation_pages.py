"""The Understand stage's pages: the evaluations of a project (and the form that runs a
new one), an evaluation's report with its plots and discrepancy table, the tagging form,
and the knowledge base of root causes.

Reading needs the viewer role; running an evaluation and tagging need a role that may
manage signals (maintainer or admin). Forms carry the session's CSRF token, as sign-out
does; a bad value becomes a message on the page, never a server error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from ..access import Action, Principal, can
from ..capture.projects import Project, list_signals
from ..errors import FeedbackloopError, InvalidInput, NotFound
from ..evaluation import (
    CAUSES,
    EvaluationFilters,
    evaluate,
    get_evaluation,
    knowledge_base,
    list_evaluations,
    tag_discrepancy,
    tags_for,
)
from ..evaluation.service import COMPARABLE
from .evaluation_charts import agreement_plot, reliability_plot
from .pages import _readable_project, _render, _signed_in, _store, error_page
from .signin import csrf_valid

__all__ = ["RUN", "install_evaluation_pages"]

RUN = Action.EVALUATE
"""Running an evaluation and tagging a discrepancy: maintainers and admins."""
_MAX_ID = 2**31 - 1


def _form_text(form: FormData, name: str, limit: int = 5000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _evaluation_list(request: Request, name: str, *, principal: Principal,
                     errors: list[str] | None = None, chosen: dict[str, Any] | None = None,
                     status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    with store.read() as conn:
        signals = [s for s in list_signals(conn, project.id)
                   if s.type in (*COMPARABLE, "categorical")]
        rows = list_evaluations(conn, project)
    return _render(request, "evaluations.html", status=status, principal=principal,
                   title=f"Evaluations · {project.name}", project=project, rows=rows,
                   signals=signals, may_run=can(principal.role_in(project.id), RUN),
                   errors=errors or [], chosen=chosen or {}, active="Evaluations")


def _list_page(request: Request, name: str) -> Response:
    return _signed_in(request, lambda p: _evaluation_list(request, name, principal=p))


def _filters(form: FormData) -> EvaluationFilters:
    def when(field: str) -> datetime | None:
        raw = _form_text(form, field, 40).strip()
        if not raw:
            return None
        try:
            ts = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidInput(f"{field} must be a date such as 2025-03-01", field=field) \
                from None
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)

    attributes = {}
    raw = _form_text(form, "attribute", 500).strip()
    if raw:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise InvalidInput("the cohort filter is KEY=VALUE, e.g. locale=de",
                               field="attribute")
        attributes[key.strip()] = value.strip()
    return EvaluationFilters(model_version=_form_text(form, "model_version", 300).strip()
                             or None, attributes=attributes, since=when("since"),
                             until=when("until"))


async def _run(request: Request, name: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return error_page(request, 403, "The form expired; reload the page and try again.")
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, RUN)
        human = _form_text(form, "human", 200)
        metrics = [m for m in form.getlist("metric") if isinstance(m, str)][:50]
        chosen: dict[str, Any] = {"human": human, "metrics": metrics,
                  **{k: _form_text(form, k, 500) for k in
                     ("model_version", "attribute", "since", "until", "human_threshold")}}
        try:
            threshold_text = chosen["human_threshold"].strip()
            try:
                threshold = float(threshold_text) if threshold_text else None
            except ValueError:
                raise InvalidInput("the approval threshold must be a number",
                                   field="human_threshold") from None
            report = evaluate(store, project, human, metrics, filters=_filters(form),
                              human_threshold=threshold, created_by=principal.name)
        except (InvalidInput, NotFound) as exc:
            return _evaluation_list(request, name, principal=principal,
                                    errors=[exc.message], chosen=chosen, status=422)
        return RedirectResponse(f"/projects/{_quoted(project)}/evaluations/{report.id}",
                                status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


def _quoted(project: Project) -> str:
    from urllib.parse import quote

    return quote(project.name, safe="")


def _evaluation_page(request: Request, name: str, evaluation_id: int) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        if not 0 < evaluation_id <= _MAX_ID:
            raise NotFound(f"no evaluation {evaluation_id} in this project")
        with store.read() as conn:
            report = get_evaluation(conn, project, evaluation_id)
            tagged = tags_for(conn, project, evaluation_id)
        human = report.result["human"]
        plots = {}
        for m in report.result["metrics"]:
            plots[m["signal"]] = {
                "agreement": agreement_plot(m.get("plot", {}), human=human["signal"],
                                            human_type=human["type"], metric=m["signal"]),
                "reliability": reliability_plot(m.get("calibration") or {},
                                                metric=m["signal"]),
            }
        return _render(request, "evaluation.html", principal=principal,
                       title=f"Evaluation {report.id} · {project.name}", project=project,
                       report=report, human=human, plots=plots, tagged=tagged,
                       causes=CAUSES, may_tag=can(principal.role_in(project.id), RUN),
                       active="Evaluations")

    return _signed_in(request, build)


async def _tag(request: Request, name: str, evaluation_id: int) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return error_page(request, 403, "The form expired; reload the page and try again.")
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, RUN)
        if not 0 < evaluation_id <= _MAX_ID:
            raise NotFound(f"no evaluation {evaluation_id} in this project")
        with store.read() as conn:
            report = get_evaluation(conn, project, evaluation_id)
        metric = _form_text(form, "metric", 200)
        if metric not in report.metric_signals:
            raise InvalidInput("choose a metric of this evaluation", field="metric")
        ids = [i for i in form.getlist("interaction") if isinstance(i, str)][:1000]
        try:
            tag_discrepancy(store, project, ids, report.human_signal, metric,
                            _form_text(form, "cause", 100), note=_form_text(form, "note"),
                            created_by=principal.name, evaluation_id=report.id)
        except FeedbackloopError as exc:
            return error_page(request, exc.status, exc.message)
        return RedirectResponse(f"/projects/{_quoted(project)}/evaluations/{report.id}"
                                "#discrepancies", status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


def _knowledge_base_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        kb = knowledge_base(store, project)
        peak = max((w["total"] for w in kb["weeks"]), default=0)
        return _render(request, "knowledge_base.html", principal=principal,
                       title=f"Knowledge base · {project.name}", project=project, kb=kb,
                       peak=peak, active="Knowledge base")

    return _signed_in(request, build)


def install_evaluation_pages(app: FastAPI) -> None:
    """Mount the Understand stage's pages on ``app``."""
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/evaluations", _list_page, methods=["GET"],
                      name="evaluations", **html)
    app.add_api_route("/projects/{name}/evaluations", _run, methods=["POST"],
                      name="evaluation_run", **html)
    app.add_api_route("/projects/{name}/evaluations/{evaluation_id:int}", _evaluation_page,
                      methods=["GET"], name="evaluation", **html)
    app.add_api_route("/projects/{name}/evaluations/{evaluation_id:int}/tags", _tag,
                      methods=["POST"], name="evaluation_tag", **html)
    app.add_api_route("/projects/{name}/knowledge-base", _knowledge_base_page,
                      methods=["GET"], name="knowledge_base", **html)
