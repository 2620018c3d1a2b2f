"""Pages: the fairness report over a cohort attribute (``/projects/{p}/fairness``).

A GET form (nothing is written, so no CSRF token is needed) chooses the attribute, the
human signal, optionally a classifier-like automated signal, a version, and a baseline
version for cohort regressions. The report shows each cohort's estimate with its interval
as a plot and a table, impact ratios against the four-fifths rule, satisfaction gaps,
classifier criteria, representation, and the check a release gate runs. Any role that
may read the project may see it; a bad value becomes a message on the page.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape
from starlette.responses import Response

from ..access import Principal
from ..capture.projects import list_signals
from ..errors import InvalidInput, NotFound
from ..evaluation.fairness import DEFAULT_MIN_COHORT, cohort_regressions, fairness_report
from .experiment_charts import nice_ticks
from .pages import _readable_project, _render, _signed_in, _store

__all__ = ["cohort_plot", "install_fairness_pages"]

_FIELDS = ("attribute", "signal", "metric", "version", "baseline", "tolerance", "min_ratio")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def cohort_plot(rows: Sequence[Mapping[str, Any]], *, title: str, kind: str,
                threshold: float | None = None, threshold_label: str = "") -> Markup | None:
    """Each cohort's estimate as a dot with its 95% interval as a whisker; an optional
    dashed line (the four-fifths threshold: ``min_ratio`` times the highest rate). ``rows``:
    ``cohort`` and an estimate dict (``value``, ``ci95``, ``n``)."""
    points = []
    for r in rows:
        v = _finite(r.get("value"))
        if v is None:
            continue
        ci = r.get("ci95") or [v, v]
        lo, hi = _finite(ci[0]), _finite(ci[1])
        points.append((str(r.get("cohort", "")), v, lo if lo is not None else v,
                       hi if hi is not None else v, int(r.get("n") or 0)))
    if not points:
        return None
    if kind == "rate":
        lo_axis, hi_axis = 0.0, 1.0
    else:
        lo_axis = min(p[2] for p in points)
        hi_axis = max(p[3] for p in points)
        pad = (hi_axis - lo_axis) * 0.1 or 1.0
        lo_axis, hi_axis = lo_axis - pad, hi_axis + pad
    row_h, left, width, top = 28, 160, 640, 12
    plot_w = width - left - 30
    height = top + row_h * len(points) + 34

    def px(v: float) -> float:
        return left + (min(max(v, lo_axis), hi_axis) - lo_axis) / (hi_axis - lo_axis) * plot_w

    parts = [f'<svg class="chart cohorts" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="system-ui, sans-serif">', f"<title>{escape(title)}</title>"]
    bottom = top + row_h * len(points)
    for t in nice_ticks(lo_axis, hi_axis, 5):
        label = f"{t:.0%}" if kind == "rate" else f"{t:.3g}"
        parts.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{bottom}" '
                     f'stroke="#eaecf0"/><text class="tick" x="{px(t):.1f}" '
                     f'y="{bottom + 14}" text-anchor="middle" font-size="11" '
                     f'fill="#667085">{escape(label)}</text>')
    for k, (name, v, lo, hi, n) in enumerate(points):
        y = top + k * row_h + row_h / 2
        fmt = (lambda x: f"{x * 100:.1f} %") if kind == "rate" else (lambda x: f"{x:.3g}")
        tip = f"{name}: {fmt(v)} [{fmt(lo)}, {fmt(hi)}], n = {n}"
        parts.append(f'<g class="cohort" data-cohort="{escape(name)}" data-value="{v:.6g}" '
                     f'data-lo="{lo:.6g}" data-hi="{hi:.6g}"><title>{escape(tip)}</title>'
                     f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
                     f'fill="#1d2330">{escape(name[:24])}</text>'
                     f'<line class="ci" x1="{px(lo):.1f}" x2="{px(hi):.1f}" y1="{y:.1f}" '
                     f'y2="{y:.1f}" stroke="#2f5bd3" stroke-width="2"/>'
                     f'<circle class="estimate" cx="{px(v):.1f}" cy="{y:.1f}" r="4" '
                     f'fill="#2f5bd3"/></g>')
    at = _finite(threshold)
    if at is not None:
        parts.append(f'<line class="threshold" x1="{px(at):.1f}" x2="{px(at):.1f}" y1="{top}" '
                     f'y2="{bottom}" stroke="#b54708" stroke-dasharray="4 3">'
                     f"<title>{escape(threshold_label)}</title></line>")
    parts.append("</svg>")
    return Markup("".join(parts))


def _chosen(request: Request) -> dict[str, str]:
    q = request.query_params
    return {k: (q.get(k) or "")[:300].strip() for k in _FIELDS}


def _number(text: str, field: str, default: float) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidInput(f"{field.replace('_', ' ')} must be a number", field=field) \
            from None
    if not math.isfinite(value):
        raise InvalidInput(f"{field.replace('_', ' ')} must be a finite number", field=field)
    return value


def _four_fifths_line(report: dict[str, Any]) -> tuple[float | None, str]:
    impact = report.get("impact_ratios") or {}
    rows = [r for r in impact.get("rows", []) if r.get("below_threshold") is not None]
    rates = [r["rate"]["value"] for r in rows if r["rate"]["value"] is not None]
    if not rates:
        return None, ""
    line = max(rates) * report["min_ratio"]
    return line, f"{report['min_ratio']:g} x the highest approval rate = {line * 100:.1f} %"


def _page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            signals = [s for s in list_signals(conn, project.id)
                       if s.type in ("binary", "ordinal", "numeric")]
        chosen = _chosen(request)
        report = regressions = None
        plots: dict[str, Markup | None] = {}
        errors: list[str] = []
        status = 200
        if chosen["attribute"] and chosen["signal"]:
            try:
                min_ratio = _number(chosen["min_ratio"], "min_ratio", 0.8)
                report = fairness_report(
                    store, project, attribute=chosen["attribute"], signal=chosen["signal"],
                    version=chosen["version"] or None, prediction=chosen["metric"] or None,
                    min_ratio=min_ratio, min_cohort_size=DEFAULT_MIN_COHORT)
                if chosen["baseline"]:
                    if not chosen["version"]:
                        raise InvalidInput("cohort regressions compare the version against "
                                           "the baseline: name the version", field="version")
                    regressions = cohort_regressions(
                        store, project, attribute=chosen["attribute"],
                        signal=chosen["signal"], baseline_version=chosen["baseline"],
                        candidate_version=chosen["version"],
                        tolerance=_number(chosen["tolerance"], "tolerance", 0.0))
            except (InvalidInput, NotFound) as exc:
                errors.append(exc.message)
                report = regressions = None
                status = 422
        elif chosen["attribute"] or chosen["signal"]:
            errors.append("choose both a cohort attribute and a signal")
            status = 422
        if report is not None:
            kind = report["kind"]
            unit = "approval rate" if kind == "rate" else "mean"
            plots["cohorts"] = cohort_plot(report["cohorts"], kind=kind,
                                           title=f"{report['signal']} {unit} by "
                                                 f"{report['attribute']}, 95% intervals")
            if report["impact_ratios"].get("available"):
                line, label = _four_fifths_line(report)
                plots["approval"] = cohort_plot(
                    [{"cohort": r["cohort"], **r["rate"]}
                     for r in report["impact_ratios"]["rows"]], kind="rate",
                    title="approval rate by cohort against the four-fifths line",
                    threshold=line, threshold_label=label)
        return _render(request, "fairness.html", status=status, principal=principal,
                       title=f"Fairness · {project.name}", project=project, signals=signals,
                       chosen=chosen, report=report, regressions=regressions, plots=plots,
                       errors=errors, active="Fairness")

    return _signed_in(request, build)


def install_fairness_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
    app.add_api_route("/projects/{name}/fairness", _page, methods=["GET"], name="fairness",
                      response_class=HTMLResponse, include_in_schema=False)
