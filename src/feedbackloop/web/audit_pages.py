"""Pages: the audit log with its verification, the provenance trace, a release's case study.

* ``/projects/{p}/audit``: the project's audit entries, newest first, filtered by entity
  kind, entity id or action, paged by ``before``; whether the whole chain verifies.
* ``/projects/{p}/trace?kind=…&id=…``: the provenance graph around one node, drawn as an
  SVG (columns in loop order) with every node linked to its page; ``&format=md``
  downloads it as Markdown.
* ``/projects/{p}/releases/{id}/case-study`` (and ``…/case-study.md``): what changed, why,
  the evidence and what happened after.

Reading needs the viewer role; nothing here changes state.
"""

from __future__ import annotations

from html import escape
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup
from starlette.responses import Response

from ..access import Principal
from ..errors import InvalidInput
from ..governance import audit
from ..governance.case_study import build_case_study, case_study_markdown
from ..governance.provenance import KINDS, trace, trace_markdown
from .pages import _readable_project, _render, _signed_in, _store

__all__ = ["after_release_svg", "install_audit_pages", "provenance_svg"]

PAGE = 50
_KIND_LABELS = {"feedback": "Feedback", "finding": "Finding", "dataset": "Dataset",
                "model_version": "Model version", "experiment": "Experiment",
                "release": "Release"}


def _param(request: Request, name: str, limit: int = 200) -> str:
    value = request.query_params.get(name, "")
    if len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{name} is longer than {limit} characters", field=name)
    return value.strip()


def _download(body: str, stem: str) -> Response:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return Response(body, media_type="text/markdown; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{safe}.md"',
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


def _change(before: Any, after: Any) -> list[tuple[str, str, str]]:
    """(field, before, after) for the fields an entry changed, or all of ``after``."""
    b = before if isinstance(before, dict) else {}
    a = after if isinstance(after, dict) else {}
    keys = [k for k in a if b.get(k) != a.get(k)] + [k for k in b if k not in a]
    return [(str(k), "" if k not in b else _short(b[k]), "" if k not in a else _short(a[k]))
            for k in keys[:8]]


def _short(value: Any, n: int = 80) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= n else text[: n - 1] + "…"


def _audit_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        kind = _param(request, "kind", 30) or None
        entity = _param(request, "entity", 200) or None
        action = _param(request, "action", 50) or None
        before_text = _param(request, "before", 20)
        before = None
        if before_text:
            if not before_text.isdigit() or not 0 < int(before_text) < 2**62:
                raise InvalidInput("before must be an entry id", field="before")
            before = int(before_text)
        rows: list[audit.AuditEntry] = []
        cursor = before
        # Filter by action here (the index is by project and id); read pages until full.
        with store.read() as conn:
            for _ in range(20):
                batch = audit.entries(conn, project_id=project.id, entity_kind=kind,
                                      entity_id=entity, before_id=cursor, limit=PAGE)
                rows += [e for e in batch if action is None or e.action == action]
                if len(batch) < PAGE or len(rows) >= PAGE:
                    break
                cursor = batch[-1].id
        rows = rows[:PAGE]
        verification = audit.verify(store)
        entries = [{"entry": e, "changes": _change(e.before, e.after),
                    "trace": e.entity_kind in KINDS and e.entity_id is not None}
                   for e in rows]
        return _render(request, "audit.html", principal=principal,
                       title=f"Audit log · {project.name}", project=project,
                       entries=entries, verification=verification, kind=kind or "",
                       entity=entity or "", action=action or "",
                       older=rows[-1].id if len(rows) == PAGE else None,
                       active="Audit log")

    return _signed_in(request, build)


def provenance_svg(graph: dict[str, Any]) -> Markup:
    """The trace as an SVG: one column per kind in loop order, a box per node linking to its
    page (the starting node outlined), a line per edge. All text escaped."""
    kinds = [k for k in KINDS if any(n["kind"] == k for n in graph["nodes"])]
    col_w, box_w, box_h, gap, top = 190, 170, 38, 12, 28
    pos: dict[str, tuple[float, float]] = {}
    rows = 0
    for c, kind in enumerate(kinds):
        of_kind = [n for n in graph["nodes"] if n["kind"] == kind]
        rows = max(rows, len(of_kind))
        for r, n in enumerate(of_kind):
            pos[n["id"]] = (10 + c * col_w, top + r * (box_h + gap))
    width = max(1, len(kinds)) * col_w + 10
    height = top + max(1, rows) * (box_h + gap) + 4
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="provenance" id="provenance-graph"'
             f' viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img"'
             f' aria-label="Provenance graph of {escape(graph["start"])}">']
    for c, kind in enumerate(kinds):
        parts.append(f'<text x="{10 + c * col_w}" y="16" class="col">'
                     f'{escape(_KIND_LABELS[kind])}</text>')
    for e in graph["edges"]:
        if e["src"] not in pos or e["dst"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["src"]], pos[e["dst"]]
        if x1 < x2:
            a, b = (x1 + box_w, y1 + box_h / 2), (x2, y2 + box_h / 2)
        elif x1 > x2:
            a, b = (x1, y1 + box_h / 2), (x2 + box_w, y2 + box_h / 2)
        else:
            a, b = (x1 + box_w, y1 + box_h / 2), (x2 + box_w, y2 + box_h / 2)
        mid = (a[0] + b[0]) / 2 + (30 if x1 == x2 else 0)
        parts.append(f'<path class="edge" d="M{a[0]:.0f},{a[1]:.0f} C{mid:.0f},{a[1]:.0f} '
                     f'{mid:.0f},{b[1]:.0f} {b[0]:.0f},{b[1]:.0f}" fill="none" '
                     f'stroke="#8a94a6"><title>{escape(e["relation"])}</title></path>')
    for n in graph["nodes"]:
        x, y = pos[n["id"]]
        label = n["label"] if len(n["label"]) <= 26 else n["label"][:25] + "…"
        start = n["direction"] == "start"
        box = (f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5" '
               f'fill="{"#fff7e0" if start else "#f4f6fa"}" '
               f'stroke="{"#c98a00" if start else "#b8c0cc"}" '
               f'stroke-width="{2 if start else 1}"/>'
               f'<text x="{x + 8}" y="{y + 16}" class="label">{escape(label)}</text>'
               f'<text x="{x + 8}" y="{y + 31}" class="dir">{escape(n["direction"])}</text>'
               f'<title>{escape(n["label"])}</title>')
        if n.get("url"):
            box = f'<a href="{escape(n["url"])}" data-node="{escape(n["id"])}">{box}</a>'
        parts.append(f'<g class="node node-{escape(n["kind"])}">{box}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def after_release_svg(after: dict[str, Any]) -> Markup | None:
    """Feedback rate and negative share per window as points with their Wilson 95 %
    whiskers on a 0-100 % axis; None when no window has an estimate."""
    windows = [("new version since release", after.get("new_since_release")),
               ("previous, window before", after.get("previous_before_release")),
               ("previous since release", after.get("previous_since_release"))]
    rows = []
    for label, w in windows:
        if not w:
            continue
        for key, what in (("feedback_rate", "with feedback"), ("negative_share", "negative")):
            r = w[key]
            if r["value"] is not None and r["ci95"]:
                rows.append((f"{label}: {what}", r["value"], r["ci95"][0], r["ci95"][1],
                             r["n"]))
    if not rows:
        return None
    left, width, row_h = 250, 300, 22
    height = 30 + len(rows) * row_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="after-plot" class="chart" '
             f'viewBox="0 0 {left + width + 20} {height}" width="{left + width + 20}" '
             f'height="{height}" role="img" aria-label="Feedback before and after the '
             f'release with 95 % Wilson intervals">']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = left + tick * width
        parts.append(f'<line x1="{x:.0f}" y1="14" x2="{x:.0f}" y2="{height - 4}" '
                     f'stroke="#e4e7eb"/><text x="{x:.0f}" y="11" font-size="10" '
                     f'text-anchor="middle" fill="#52606d">{tick:.0%}</text>')
    for i, (label, value, lo, hi, n) in enumerate(rows):
        y = 28 + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 4}" font-size="11" text-anchor="end" '
                     f'fill="#1f2933">{escape(label)}</text>'
                     f'<line x1="{left + lo * width:.1f}" y1="{y}" x2="{left + hi * width:.1f}"'
                     f' y2="{y}" stroke="#3e4c59" stroke-width="2"/>'
                     f'<circle cx="{left + value * width:.1f}" cy="{y}" r="4" fill="#1f6feb">'
                     f'<title>{value:.1%} (95 % CI {lo:.1%}-{hi:.1%}, Wilson, n = {n})'
                     f'</title></circle>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _trace_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        kind = _param(request, "kind", 30)
        start = _param(request, "id", 300)
        fmt = _param(request, "format", 10) or "html"
        if fmt not in ("html", "md"):
            raise InvalidInput("format must be html or md", field="format")
        graph = None
        error = None
        if kind or start:
            if kind not in KINDS:
                error = f"choose what to start from ({', '.join(KINDS)})"
            elif not start:
                error = "give the id to start from"
            else:
                try:
                    graph = trace(store, project, kind, start)
                except InvalidInput as exc:
                    error = exc.message
        if fmt == "md":
            if graph is None:
                raise InvalidInput(error or "say where to start (kind and id)", field="id")
            return _download(trace_markdown(graph), f"trace-{graph['start']}")
        return _render(request, "trace.html", principal=principal,
                       title=f"Provenance · {project.name}", project=project, graph=graph,
                       svg=provenance_svg(graph) if graph else None, kinds=KINDS,
                       kind_labels=_KIND_LABELS, kind=kind, start=start, error=error,
                       active="Audit log")

    return _signed_in(request, build)


def _case_study_page(request: Request, name: str, release_id: int) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            study = build_case_study(conn, project.id, release_id)
        return _render(request, "case_study.html", principal=principal,
                       title=f"Case study of release {release_id} · {project.name}",
                       project=project, study=study, plot=after_release_svg(study["after"]),
                       active="Releases")

    return _signed_in(request, build)


def _case_study_md(request: Request, name: str, release_id: int) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            study = build_case_study(conn, project.id, release_id)
        return _download(case_study_markdown(study), f"case-study-release-{release_id}")

    return _signed_in(request, build)


def install_audit_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/audit", _audit_page, methods=["GET"],
                      name="audit_log", **html)
    app.add_api_route("/projects/{name}/trace", _trace_page, methods=["GET"],
                      name="trace", include_in_schema=False)
    app.add_api_route("/projects/{name}/releases/{release_id:int}/case-study",
                      _case_study_page, methods=["GET"], name="case_study", **html)
    app.add_api_route("/projects/{name}/releases/{release_id:int}/case-study.md",
                      _case_study_md, methods=["GET"], name="case_study_md",
                      include_in_schema=False)
