"""Pages: the triage queue, themes, the ranked backlog and a finding.

* ``/projects/{p}/triage``: counts, the escalation criteria and the escalated items, the
  human queue (route each item), the rules, and the latest themes with their weekly trend
  (make a finding from one).
* ``/projects/{p}/findings``: the ranked backlog with the priority formula and a plot of
  each finding's expected benefit with its interval.
* ``/projects/{p}/findings/{id}``: a finding: reach, inputs, priority, benefit, status
  moves, linked feedback and datasets.
* POST ``…/triage/run``, ``…/triage/themes``, ``…/triage/rules``,
  ``…/triage/items/{item}/route``, ``…/triage/items/{item}/resolve``, ``…/findings``,
  ``…/findings/{id}/status``, ``…/findings/{id}/update``, ``…/findings/{id}/link``.

Reading needs the viewer role; acting needs
:data:`~feedbackloop.access.Action.MANAGE_FINDINGS`, except resolving an escalated item,
which needs the role it was escalated to (or admin). Forms carry the session's CSRF token;
a bad value is a message on the page, never a server error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from ..access import Action, Principal, can
from ..capture.projects import Project
from ..errors import FeedbackloopError, InvalidInput, NotFound
from ..store import Store
from ..triage import findings as fnd
from ..triage import service as tri
from ..triage import themes as thm
from ..triage.rules import ROUTES
from .pages import _readable_project, _render, _signed_in, _store, error_page
from .signin import csrf_valid

__all__ = ["benefit_plot", "install_triage_pages", "trend_sparkline"]

MANAGE = Action.MANAGE_FINDINGS
_MAX_ID = 2_147_483_647


def _base(project: Project) -> str:
    return f"/projects/{quote(project.name, safe='')}"


def _may(principal: Principal, project: Project) -> bool:
    return can(principal.role_in(project.id), MANAGE)


def _text(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character", field=name)
    return value[:limit]


def _int(raw: str, field: str, *, required: bool = True) -> int | None:
    raw = raw.strip()
    if not raw:
        if required:
            raise InvalidInput(f"{field} is required", field=field)
        return None
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{field} must be a whole number, not {raw!r}",
                           field=field) from None
    if not 0 < value <= _MAX_ID:
        raise InvalidInput(f"{field} out of range", field=field)
    return value


def _float(raw: str, field: str) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{field} must be a number, not {raw!r}", field=field) from None
    if not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number", field=field)
    return value


def _page_id(raw: str, what: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise NotFound(f"no {what} {raw[:50]!r} in this project") from None
    if not 0 < value <= _MAX_ID:
        raise NotFound(f"no {what} {raw[:50]!r} in this project")
    return value


# -- plots ----------------------------------------------------------------------------------

def trend_sparkline(trend: Sequence[Mapping[str, Any]], *, label: str) -> Markup | None:
    """A theme's members per week as small bars (inline SVG); None without weeks."""
    counts = [int(w.get("count", 0)) for w in trend]
    if not counts:
        return None
    width, height, gap = 120, 28, 2
    bar = max(2.0, (width - gap * (len(counts) - 1)) / len(counts))
    top = max(counts) or 1
    parts = [f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" role="img" aria-label="{escape(label)}" '
             'xmlns="http://www.w3.org/2000/svg">']
    for k, (w, n) in enumerate(zip(trend, counts, strict=True)):
        h = max(1.0, (height - 2) * n / top)
        parts.append(f'<rect x="{k * (bar + gap):.1f}" y="{height - h:.1f}" '
                     f'width="{bar:.1f}" height="{h:.1f}" fill="#2f5bd3">'
                     f'<title>week of {escape(str(w.get("week", "")))}: {n}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))


def benefit_plot(items: Sequence[Mapping[str, Any]]) -> Markup | None:
    """The expected benefit of each ranked finding (share of negative feedback removed)
    as a dot with its 95% interval; findings without an estimate are left out."""
    rows = [(i, b) for i in items if (b := i.get("expected_benefit") or {})
            and isinstance(b.get("value"), int | float) and b.get("ci95")]
    if not rows:
        return None
    left, right, row_h, top = 220, 30, 26, 24
    width = 720
    height = top + row_h * len(rows) + 24
    hi = max(float(b["ci95"][1]) for _, b in rows) or 1.0
    scale = (width - left - right) / hi

    def x(v: float) -> float:
        return left + v * scale

    parts = [f'<svg class="chart benefit" viewBox="0 0 {width} {height}" width="100%" '
             'role="img" aria-label="Expected benefit of each finding with its 95% '
             'interval" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{left}" y1="{top - 6}" x2="{left}" y2="{height - 20}" '
             'stroke="#98a2b3"/>']
    for k in range(5):
        v = hi * k / 4
        parts.append(f'<text x="{x(v):.1f}" y="{height - 6}" font-size="11" '
                     f'text-anchor="middle" fill="#475467">{v * 100:.0f}%</text>')
    for n, (item, b) in enumerate(rows):
        y = top + n * row_h + row_h / 2
        lo, up = float(b["ci95"][0]), float(b["ci95"][1])
        title = str(item.get("title", ""))
        short = title if len(title) <= 30 else title[:29] + "…"
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" '
                     f'text-anchor="end" fill="#101828">#{item.get("rank")} '
                     f'{escape(short)}</text>')
        parts.append(f'<line x1="{x(lo):.1f}" y1="{y:.1f}" x2="{x(up):.1f}" y2="{y:.1f}" '
                     'stroke="#2f5bd3" stroke-width="2"/>')
        parts.append(f'<circle cx="{x(float(b["value"])):.1f}" cy="{y:.1f}" r="4" '
                     f'fill="#2f5bd3"><title>{escape(title)}: {float(b["value"]):.1%} '
                     f'(95% CI {lo:.1%} to {up:.1%})</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


# -- the triage page ------------------------------------------------------------------------

def _render_triage(request: Request, principal: Principal, name: str, *,
                   errors: list[str] | None = None, status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    with store.read() as conn:
        counts = tri.status_counts(conn, project)
        queue = tri.list_items(conn, project, status="queued", limit=100)
        escalated = tri.list_items(conn, project, status="escalated", limit=100)
        criteria = tri.escalation_criteria(conn, project)
        rules = tri.list_rules(conn, project)
        run = thm.latest_run(conn, project)
    sparks = {t["id"]: trend_sparkline(t["trend"], label=f"weekly count of {t['label']}")
              for t in (run or {}).get("themes", [])}
    role = principal.role_in(project.id)
    return _render(request, "triage.html", status=status, principal=principal,
                   title=f"Triage · {project.name}", project=project, active="Triage",
                   counts=counts, queue=queue, escalated=escalated, criteria=criteria,
                   rules=rules, run=run, sparks=sparks, routes=ROUTES,
                   may_manage=_may(principal, project),
                   may_resolve=role in (criteria["escalate_to"], "admin"),
                   errors=errors or [], notice=request.query_params.get("done", "")[:20],
                   to_json=lambda v: orjson.dumps(v).decode())


def _triage_page(request: Request, name: str) -> Response:
    return _signed_in(request, lambda p: _render_triage(request, p, name))


# -- the backlog and a finding --------------------------------------------------------------

def _render_backlog(request: Request, principal: Principal, name: str, *,
                    errors: list[str] | None = None, status: int = 200,
                    chosen: Mapping[str, str] | None = None) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    show_closed = request.query_params.get("closed") == "1"
    with store.read() as conn:
        backlog = fnd.ranked_backlog(conn, project, include_closed=show_closed)
    return _render(request, "findings.html", status=status, principal=principal,
                   title=f"Backlog · {project.name}", project=project, active="Backlog",
                   backlog=backlog, plot=benefit_plot(backlog["items"]),
                   may_manage=_may(principal, project), errors=errors or [],
                   chosen=chosen or {}, routes=ROUTES, show_closed=show_closed)


def _backlog_page(request: Request, name: str) -> Response:
    return _signed_in(request, lambda p: _render_backlog(request, p, name))


def _render_finding(request: Request, principal: Principal, name: str, finding: str, *,
                    errors: list[str] | None = None, status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    fid = _page_id(finding, "finding")
    with store.read() as conn:
        detail = fnd.finding_detail(conn, project, fid)
    return _render(request, "finding.html", status=status, principal=principal,
                   title=f"Finding {fid} · {project.name}", project=project,
                   active="Backlog", f=detail, may_manage=_may(principal, project),
                   errors=errors or [], routes=ROUTES,
                   notice=request.query_params.get("done", "")[:20],
                   to_json=lambda v: orjson.dumps(v).decode())


def _finding_page(request: Request, name: str, finding: str) -> Response:
    return _signed_in(request, lambda p: _render_finding(request, p, name, finding))


# -- actions --------------------------------------------------------------------------------

Apply = Callable[..., str]  # (store, project, form, principal, **path parameters)


def _action(apply: Apply, *, back: Callable[[Project, str, Mapping[str, str]], str],
            rerender: Callable[[Request, Principal, str, Mapping[str, str], list[str], int],
                               Response],
            needs_manage: bool = True) -> Any:
    async def handle(request: Request, name: str, **path: str) -> Response:
        form = await request.form()

        def build(principal: Principal) -> Response:
            csrf = form.get("csrf")
            if not csrf_valid(request, csrf if isinstance(csrf, str) else "",
                              signed_in=True):
                return error_page(request, 403,
                                  "The form expired; reload the page and try again.")
            store = _store(request)
            project = _readable_project(store, principal, name)
            if needs_manage:
                principal.require(project.id, MANAGE)
            try:
                done = apply(store, project, form, principal, **path)
            except FeedbackloopError as exc:
                if exc.status >= 500 or exc.status in (401, 403):
                    raise
                return rerender(request, principal, name, path, [exc.message], exc.status)
            return RedirectResponse(back(project, done, path), status_code=303)

        return await run_in_threadpool(_signed_in, request, build)

    return handle


def _triage_again(request: Request, principal: Principal, name: str,
                  path: Mapping[str, str], errors: list[str], status: int) -> Response:
    return _render_triage(request, principal, name, errors=errors, status=status)


def _backlog_again(request: Request, principal: Principal, name: str,
                   path: Mapping[str, str], errors: list[str], status: int) -> Response:
    return _render_backlog(request, principal, name, errors=errors, status=status)


def _finding_again(request: Request, principal: Principal, name: str,
                   path: Mapping[str, str], errors: list[str], status: int) -> Response:
    return _render_finding(request, principal, name, path["finding"], errors=errors,
                           status=status)


def _to_triage(project: Project, done: str, path: Mapping[str, str]) -> str:
    return f"{_base(project)}/triage?done={done}"


def _to_finding(project: Project, done: str, path: Mapping[str, str]) -> str:
    fid, _, what = done.partition(":")
    return f"{_base(project)}/findings/{fid}?done={what}"


def _run(store: Store, project: Project, form: FormData, principal: Principal) -> str:
    tri.run_triage(store, project, actor=principal.name[:100])
    return "run"


def _themes(store: Store, project: Project, form: FormData, principal: Principal) -> str:
    method = _text(form, "method", 20) or "auto"
    k = _int(_text(form, "k", 10), "k", required=False)
    thm.run_themes(store, project, method=method, k=k, actor=principal.name[:100])
    return "themes"


def _rule(store: Store, project: Project, form: FormData, principal: Principal) -> str:
    raw = _text(form, "conditions", 5000)
    try:
        conditions = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput("conditions must be a JSON object, e.g. "
                           '{"text": "password|email"}', field="conditions") from None
    tri.add_rule(store, project, _text(form, "name", 100).strip(), _text(form, "route", 30),
                 conditions, escalate=_text(form, "escalate", 5) == "on",
                 actor=principal.name[:100])
    return "rule"


def _route(store: Store, project: Project, form: FormData, principal: Principal,
           item: str) -> str:
    tri.route_item(store, project, _page_id(item, "triage item"), _text(form, "route", 30),
                   actor=principal.name[:100], reason=_text(form, "reason", 2000))
    return "routed"


def _resolve(store: Store, project: Project, form: FormData, principal: Principal,
             item: str) -> str:
    tri.resolve_item(store, project, _page_id(item, "triage item"),
                     actor=principal.name[:100], actor_role=principal.role_in(project.id),
                     note=_text(form, "note", 10_000))
    return "resolved"


def _inputs(form: FormData) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("severity", "risk"):
        raw = _text(form, key, 20).strip()
        if raw:
            # Whole numbers go to the service as given, so its range message names them.
            out[key] = (int(raw) if raw.lstrip("-").isdigit() and len(raw) < 12
                        else _float(raw, key))
    for key in ("effort", "confidence"):
        value = _float(_text(form, key, 40), key)
        if value is not None:
            out[key] = value
    for key, limit in (("owner", 100), ("component", 50)):
        text = _text(form, key, limit + 1).strip()
        if text:
            out[key] = text
    route = _text(form, "route", 30)
    if route:
        out["route"] = route
    return out


def _create(store: Store, project: Project, form: FormData, principal: Principal) -> str:
    theme: int | None = _int(_text(form, "theme", 20), "theme", required=False)
    raw_ids = _text(form, "feedback", 200_000).replace(" ", "")
    try:
        ids = [int(x) for x in raw_ids.split(",") if x]
    except ValueError:
        raise InvalidInput("feedback must be ids separated by commas",
                           field="feedback") from None
    made = fnd.create_finding(store, project, title=_text(form, "title", 201).strip(),
                              description=_text(form, "description", 10_001),
                              feedback_ids=ids, theme_id=theme,
                              actor=principal.name[:100], **_inputs(form))
    return f"{made.id}:created"


def _status(store: Store, project: Project, form: FormData, principal: Principal,
            finding: str) -> str:
    fid = _page_id(finding, "finding")
    fnd.set_status(store, project, fid, _text(form, "status", 20),
                   actor=principal.name[:100], reason=_text(form, "reason", 10_000))
    return f"{fid}:status"


def _update(store: Store, project: Project, form: FormData, principal: Principal,
            finding: str) -> str:
    fid = _page_id(finding, "finding")
    changes = _inputs(form)
    title = _text(form, "title", 201).strip()
    if title:
        changes["title"] = title
    if not changes:
        raise InvalidInput("change at least one field", field="fields")
    fnd.update_finding(store, project, fid, actor=principal.name[:100],
                       reason=_text(form, "reason", 10_000), **changes)
    return f"{fid}:updated"


def _link(store: Store, project: Project, form: FormData, principal: Principal,
          finding: str) -> str:
    fid = _page_id(finding, "finding")
    dataset = _text(form, "dataset", 101).strip()
    if not dataset:
        raise InvalidInput("name the dataset that addresses this finding", field="dataset")
    fnd.link_dataset(store, project, fid, dataset,
                     version=_int(_text(form, "version", 12), "version", required=False),
                     actor=principal.name[:100])
    return f"{fid}:linked"


def install_triage_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/triage", _triage_page, methods=["GET"],
                      name="triage", **html)
    app.add_api_route("/projects/{name}/findings", _backlog_page, methods=["GET"],
                      name="findings", **html)
    app.add_api_route("/projects/{name}/findings/{finding}", _finding_page, methods=["GET"],
                      name="finding", **html)
    posts: list[tuple[str, Apply, Any, Any, bool]] = [
        ("/triage/run", _run, _to_triage, _triage_again, True),
        ("/triage/themes", _themes, _to_triage, _triage_again, True),
        ("/triage/rules", _rule, _to_triage, _triage_again, True),
        ("/triage/items/{item}/route", _route, _to_triage, _triage_again, True),
        ("/triage/items/{item}/resolve", _resolve, _to_triage, _triage_again, False),
        ("/findings", _create, _to_finding, _backlog_again, True),
        ("/findings/{finding}/status", _status, _to_finding, _finding_again, True),
        ("/findings/{finding}/update", _update, _to_finding, _finding_again, True),
        ("/findings/{finding}/link", _link, _to_finding, _finding_again, True),
    ]
    for suffix, apply, back, again, manage in posts:
        handler = _action(apply, back=back, rerender=again, needs_manage=manage)
        _with_path(app, f"/projects/{{name}}{suffix}", handler,
                   name="triage_post" + suffix.replace("/", "_").replace("{", "")
                   .replace("}", ""), html=html)


def _with_path(app: FastAPI, path: str, handler: Any, *, name: str,
               html: dict[str, Any]) -> None:
    """Register ``handler`` with a signature naming the path's parameters (FastAPI reads
    them from the signature)."""
    import inspect

    params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]

    async def endpoint(request: Request, **kwargs: str) -> Response:
        name_ = kwargs.pop("name")
        return await handler(request, name_, **kwargs)

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           annotation=Request)]
        + [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY, annotation=str)
           for p in params])
    app.add_api_route(path, endpoint, methods=["POST"], name=name, **html)
