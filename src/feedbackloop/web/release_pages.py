"""The Release stage's pages: releases and gates, a gate with its evidence and sign-offs, a
release with its rollback target.

* ``/projects/{p}/releases``: the policy in force, the releases and the gates, and (for
  maintainers) the form that creates a gate.
* ``/projects/{p}/gates/{id}``: each criterion with pass/fail and its evidence, a plot of
  the intervals the gate judged, the sign-offs the tier asks for; forms to check, sign and
  release.
* ``/projects/{p}/releases/{id}``: what was released to whom, its gate, its rollback target
  and the link to its case study (``…/case-study``, drawn by the audit pages); the
  rollback form.

Reading needs the viewer role. Creating and checking a gate, releasing and rolling back need
:data:`~feedbackloop.access.Action.RELEASE`; any member may try to sign, and the service
refuses (and records) a capacity the role may not sign in. Forms carry the session's CSRF
token; a refused or bad form is a message on the page, never a server error.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from ..access import Action, Principal, can
from ..capture.projects import Project
from ..errors import FeedbackloopError, InvalidInput, NotFound
from ..governance import gates as gate_service
from ..governance import releases as release_service
from ..governance.policy import ROLE_CAPACITIES, policy_for
from ..store import Store
from ..store.tables import model_versions
from .experiment_charts import nice_ticks
from .pages import _readable_project, _render, _signed_in, _store, error_page
from .signin import csrf_valid

__all__ = ["install_release_pages", "interval_plot"]

RELEASE = Action.RELEASE


def _q(value: Any) -> str:
    return quote(str(value), safe="")


def _base(project: Project) -> str:
    return f"/projects/{_q(project.name)}"


def _form_text(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    text = value[:limit] if isinstance(value, str) else ""
    if "\x00" in text:
        raise InvalidInput(f"{name} contains a NUL character", field=name)
    return text


def _id(raw: str, what: str) -> int:
    if not raw.isdigit() or len(raw) > 10:
        raise NotFound(f"no {what} {raw[:20]!r} in this project")
    return int(raw)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


# -- the plot ------------------------------------------------------------------------------

def interval_plot(rows: Sequence[Mapping[str, Any]], *, title: str,
                  limit: float | None = None, limit_label: str = "") -> Markup | None:
    """A forest plot: one row per ``{"label", "estimate", "lo", "hi", "ok"}`` (open ends
    None), a zero line and an optional dashed ``limit`` (a tolerance)."""
    drawn = [r for r in rows if _finite(r.get("estimate")) is not None]
    if not drawn:
        return None
    values = [v for r in drawn for v in (_finite(r.get("estimate")), _finite(r.get("lo")),
                                         _finite(r.get("hi"))) if v is not None] + [0.0]
    if limit is not None:
        values.append(limit)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 0.05
    lo, hi = lo - pad, hi + pad
    row_h, left, width, top = 28, 170, 640, 12
    plot_w = width - left - 20
    height = top + row_h * len(drawn) + 34

    def px(v: float) -> float:
        return left + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    parts = [f'<svg class="chart intervals" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="system-ui, sans-serif">', f"<title>{escape(title)}</title>"]
    bottom = top + row_h * len(drawn)
    for t in nice_ticks(lo, hi):
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{bottom}" '
                     f'stroke="#eaecf0"/><text class="tick" x="{px(t):.1f}" '
                     f'y="{bottom + 14}" text-anchor="middle" font-size="11" '
                     f'fill="#667085">{t:.3g}</text>')
    parts.append(f'<line class="zero" x1="{px(0):.1f}" x2="{px(0):.1f}" y1="{top}" '
                 f'y2="{bottom}" stroke="#1d2330"/>')
    if limit is not None:
        parts.append(f'<line class="limit" x1="{px(limit):.1f}" x2="{px(limit):.1f}" '
                     f'y1="{top}" y2="{bottom}" stroke="#b54708" stroke-dasharray="4 3">'
                     f"<title>{escape(limit_label)}</title></line>")
    for k, r in enumerate(drawn):
        y = top + k * row_h + row_h / 2
        est = _finite(r.get("estimate"))
        assert est is not None
        a, b = _finite(r.get("lo")), _finite(r.get("hi"))
        colour = "#067647" if r.get("ok") else "#b42318"
        shown = "[{}, {}]".format("-inf" if a is None else f"{a:.3g}",
                                  "+inf" if b is None else f"{b:.3g}")
        label = str(r.get("label", ""))
        parts.append(
            f'<g class="row" data-label="{escape(label)}"><text x="{left - 8}" y="{y + 4}" '
            f'text-anchor="end" font-size="12" fill="#1d2330">{escape(label[:26])}</text>'
            f'<line x1="{px(a if a is not None else lo):.1f}" '
            f'x2="{px(b if b is not None else hi):.1f}" y1="{y}" y2="{y}" '
            f'stroke="{colour}" stroke-width="3"/>'
            f'<circle cx="{px(est):.1f}" cy="{y}" r="4" fill="{colour}">'
            f"<title>{escape(label)}: {est:.4g} {shown}</title></circle></g>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _gate_plot(gate: dict[str, Any]) -> Markup | None:
    rows: list[dict[str, Any]] = []
    limit = None
    for r in gate.get("result") or []:
        ev = r.get("evidence") or {}
        if r["name"] == "primary_metric" and ev.get("ci"):
            rows.append({"label": f"{ev.get('metric')} ({ev.get('arm')})",
                         "estimate": ev.get("estimate"), "lo": ev["ci"][0],
                         "hi": ev["ci"][1], "ok": r["passed"]})
        elif r["name"] == "cohort_regressions":
            sign = 1 if ev.get("higher_is_better", True) else -1
            limit = -sign * float(ev.get("tolerance") or 0.0)
            for c in ev.get("cohorts") or []:
                ci = c.get("ci95") or [None, None]
                rows.append({"label": f"{ev.get('attribute')}={c.get('cohort')}",
                             "estimate": c.get("difference"), "lo": ci[0], "hi": ci[1],
                             "ok": not c.get("regressed")})
    return interval_plot(rows, title="Differences to the baseline with their intervals",
                         limit=limit, limit_label="cohort tolerance")


# -- pages ---------------------------------------------------------------------------------

def _releases_page(request: Request, name: str) -> Response:
    return _signed_in(request, lambda p: _render_releases(request, p, name))


def _render_releases(request: Request, principal: Principal, name: str, *,
                     errors: list[str] | None = None, chosen: Mapping[str, str] | None = None,
                     status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    with store.read() as conn:
        releases = release_service.list_releases(conn, project)
        gates = gate_service.list_gates(conn, project)
        policy = policy_for(conn, project)
        v = model_versions
        components = sorted(set(conn.execute(select(v.c.component).where(
            v.c.project_id == project.id)).scalars()))
    return _render(request, "releases.html", status=status, principal=principal,
                   title=f"Releases · {project.name}", project=project, releases=releases,
                   gates=gates, policy=policy, components=components,
                   may_release=can(principal.role_in(project.id), RELEASE),
                   errors=errors or [], chosen=chosen or {}, active="Releases")


def _gate_page(request: Request, name: str, gate_id: str) -> Response:
    return _signed_in(request, lambda p: _render_gate(request, p, name, gate_id))


def _render_gate(request: Request, principal: Principal, name: str, gate_id: str, *,
                 errors: list[str] | None = None, chosen: Mapping[str, str] | None = None,
                 status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    with store.read() as conn:
        gate = gate_service.get_gate(conn, project, _id(gate_id, "gate"))
    role = principal.role_in(project.id)
    return _render(request, "gate.html", status=status, principal=principal,
                   title=f"Gate {gate['id']} · {project.name}", project=project, gate=gate,
                   plot=_gate_plot(gate), results={r["name"]: r for r in gate["result"] or []},
                   capacities=ROLE_CAPACITIES.get(role or "", ()),
                   may_release=can(role, RELEASE), errors=errors or [],
                   chosen=chosen or {}, notice=request.query_params.get("done", "")[:20],
                   active="Releases")


def _release_page(request: Request, name: str, release_id: str) -> Response:
    return _signed_in(request, lambda p: _render_release(request, p, name, release_id))


def _render_release(request: Request, principal: Principal, name: str, release_id: str, *,
                    errors: list[str] | None = None, status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    with store.read() as conn:
        release = release_service.get_release(conn, project, _id(release_id, "release"))
        newest = release_service.list_releases(conn, project,
                                               component=release["component"], limit=50)
    standing = next((r for r in newest if r["status"] == "released"), None)
    return _render(request, "release.html", status=status, principal=principal,
                   title=f"Release {release['id']} · {project.name}", project=project,
                   release=release, study=release["case_study"] or {},
                   may_rollback=can(principal.role_in(project.id), RELEASE)
                   and standing is not None and standing["id"] == release["id"],
                   errors=errors or [], notice=request.query_params.get("done", "")[:20],
                   active="Releases")


# -- actions -------------------------------------------------------------------------------

def _expired(request: Request) -> Response:
    return error_page(request, 403, "The form expired; reload the page and try again.")


def _form_action(handler: Callable[[Request, Principal, FormData, Store, Project, str],
                                   Response],
                 render: Callable[..., Response]) -> Callable[..., Awaitable[Response]]:
    """CSRF, the project, then ``handler``; a refused or bad form re-renders the page with
    the message and the error's status."""
    async def handle(request: Request, name: str, key: str = "") -> Response:
        form = await request.form()

        def build(principal: Principal) -> Response:
            if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
                return _expired(request)
            store = _store(request)
            project = _readable_project(store, principal, name)
            try:
                return handler(request, principal, form, store, project, key)
            except FeedbackloopError as exc:
                if exc.status >= 500 or exc.status == 404:
                    raise
                chosen = {k: v for k, v in form.items()
                          if isinstance(v, str) and k != "csrf"}
                args = (request, principal, name) + ((key,) if key else ())
                kwargs: dict[str, Any] = {"errors": [exc.message], "status": exc.status}
                if render is not _render_release:
                    kwargs["chosen"] = chosen
                return render(*args, **kwargs)

        return await run_in_threadpool(_signed_in, request, build)

    return handle


def _create_gate(request: Request, principal: Principal, form: FormData, store: Store,
                 project: Project, _: str) -> Response:
    principal.require(project.id, RELEASE)

    def opt(field: str) -> str | None:
        return _form_text(form, field, 200).strip() or None

    def num(field: str, default: float) -> float:
        raw = _form_text(form, field, 40).strip()
        if not raw:
            return default
        try:
            return float(raw)
        except ValueError:
            raise InvalidInput(f"{field.replace('_', ' ')} must be a number",
                               field=field) from None

    gate = gate_service.create_gate(
        store, project, _form_text(form, "component", 50).strip(),
        _form_text(form, "version", 200).strip(), actor=principal.name[:100],
        experiment=opt("experiment"), cohort_attribute=opt("cohort_attribute"),
        cohort_tolerance=num("cohort_tolerance", 0.05),
        fairness_attribute=opt("fairness_attribute"),
        fairness_min_ratio=num("fairness_min_ratio", 0.8))
    return RedirectResponse(f"{_base(project)}/gates/{gate['id']}?done=created",
                            status_code=303)


def _check(request: Request, principal: Principal, form: FormData, store: Store,
           project: Project, gate_id: str) -> Response:
    principal.require(project.id, RELEASE)
    gate = gate_service.check_gate(store, project, _id(gate_id, "gate"),
                                   actor=principal.name[:100])
    return RedirectResponse(f"{_base(project)}/gates/{gate['id']}?done=checked",
                            status_code=303)


def _sign(request: Request, principal: Principal, form: FormData, store: Store,
          project: Project, gate_id: str) -> Response:
    role = principal.role_in(project.id) or ""
    decision = _form_text(form, "decision", 10) or "approve"
    gate_service.sign_gate(store, project, _id(gate_id, "gate"), actor=principal.name[:100],
                           role=role, capacity=_form_text(form, "capacity", 20),
                           decision=decision, comment=_form_text(form, "comment", 10_000))
    return RedirectResponse(f"{_base(project)}/gates/{_q(gate_id)}?done=signed",
                            status_code=303)


def _release(request: Request, principal: Principal, form: FormData, store: Store,
             project: Project, gate_id: str) -> Response:
    principal.require(project.id, RELEASE)
    with store.read() as conn:
        gate = gate_service.get_gate(conn, project, _id(gate_id, "gate"))
    cohort = None
    attribute = _form_text(form, "cohort_attribute", 200).strip()
    if attribute:
        raw = _form_text(form, "cohort_percent", 20).strip() or "100"
        try:
            percent = float(raw)
        except ValueError:
            raise InvalidInput("the share of the cohort must be a number",
                               field="cohort_percent") from None
        cohort = {"when": [{"attribute": attribute, "op": "eq",
                            "value": _form_text(form, "cohort_value", 200).strip()}],
                  "percent": percent}
    release = release_service.promote(
        store, project, gate["component"], gate["version"], gate_id=gate["id"],
        actor=principal.name[:100], cohort=cohort,
        reason=_form_text(form, "reason", 10_000).strip() or None)
    return RedirectResponse(f"{_base(project)}/releases/{release['id']}?done=released",
                            status_code=303)


def _rollback(request: Request, principal: Principal, form: FormData, store: Store,
              project: Project, release_id: str) -> Response:
    principal.require(project.id, RELEASE)
    with store.read() as conn:
        release = release_service.get_release(conn, project, _id(release_id, "release"))
    if release["status"] != "released":
        raise InvalidInput(f"release {release['id']} is {release['status'].replace('_', ' ')}",
                           field="release")
    done = release_service.rollback(store, project, release["component"],
                                    actor=principal.name[:100],
                                    reason=_form_text(form, "reason", 10_000).strip())
    target = done["release"]["id"] if done["release"] else release["id"]
    return RedirectResponse(f"{_base(project)}/releases/{target}?done=rolled_back",
                            status_code=303)


def install_release_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/releases", _releases_page, methods=["GET"],
                      name="releases", **html)
    app.add_api_route("/projects/{name}/gates", _form_action(_create_gate, _render_releases),
                      methods=["POST"], name="gate_create", **html)
    app.add_api_route("/projects/{name}/gates/{key}", _gate_page_route, methods=["GET"],
                      name="gate", **html)
    for kind, handler in (("check", _check), ("sign", _sign), ("release", _release)):
        app.add_api_route(f"/projects/{{name}}/gates/{{key}}/{kind}",
                          _form_action(handler, _render_gate), methods=["POST"],
                          name=f"gate_{kind}", **html)
    app.add_api_route("/projects/{name}/releases/{key}", _release_page_route,
                      methods=["GET"], name="release", **html)
    app.add_api_route("/projects/{name}/releases/{key}/rollback",
                      _form_action(_rollback, _render_release), methods=["POST"],
                      name="release_rollback", **html)


def _gate_page_route(request: Request, name: str, key: str) -> Response:
    return _gate_page(request, name, key)


def _release_page_route(request: Request, name: str, key: str) -> Response:
    return _release_page(request, name, key)
