"""The Improve stage's pages: datasets (with their lineage) and model versions (with their
metrics, status history and toggles).

* ``/projects/{p}/datasets``: every version of every dataset.
* ``/projects/{p}/datasets/{name}`` (the newest version, or ``?version=N``) and
  ``/projects/{p}/datasets/{name}/{version}``: the card, counts drawn as bars, sample rows
  per split whose feedback ids link to the interactions they judged, and the model versions
  trained on the dataset.
* ``/projects/{p}/models``: components, their live version, every version with its status,
  trainer and key metric with its interval.
* ``/projects/{p}/models/{component}/{name}``: a version's metrics and baselines, parent,
  datasets, training run, artifact hash, status history, and the component's toggle rules
  with the share of recent traffic each serves.

Reading needs the viewer role. Promote, roll back and set a toggle need :data:`RELEASE`
(maintainers and admins; roles.py has no model action yet and governance will gate these
later): POST forms with the session's CSRF token and a confirmation box the server checks.
A bad form value is a message on the page, never a server error.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup, escape
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from ..access import Action, Principal, can
from ..capture.projects import Project
from ..errors import FeedbackloopError, InvalidInput, NotFound
from ..improve.datasets import Dataset, get_dataset, iter_rows, list_datasets
from ..improve.registry import (
    _PROMOTIONS,
    NOT_SERVED,
    ModelVersion,
    get_toggle,
    get_version,
    list_events,
    list_versions,
    promote,
    rollback,
    set_toggle,
)
from ..improve.toggles import Toggle
from ..stats.intervals import wilson_interval
from ..store.tables import (
    feedback,
    interactions,
    model_events,
    model_version_datasets,
    model_versions,
)
from .charts import nice_ceiling
from .pages import _readable_project, _render, _signed_in, _store, error_page
from .signin import csrf_valid

__all__ = [
    "RELEASE",
    "estimate",
    "install_improve_pages",
    "interactions_of",
    "key_metric",
    "models_trained_on",
    "rollback_target",
    "rule_shares",
]

RELEASE = Action.MANAGE_CAMPAIGNS
"""Promote, roll back, set a toggle: maintainers and admins."""
SAMPLE = 50  # rows of one split
SAMPLE_PER_SPLIT = 10  # rows of each split when no split is chosen
TRAFFIC = 2000  # recent interactions the toggle shares are estimated on
_MAX_VERSION = 2**31 - 1
_CONDITION = re.compile(r"^\s*([^=!\s][^=!]*?)\s*(!=|=|\bnot in\b|\bin\b)\s*(.*?)\s*$")


# -- read-only queries the services do not offer ----------------------------------------

def interactions_of(conn: Connection, project: Project,
                    feedback_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
    """Feedback client id -> (client id of its interaction, of its second interaction)."""
    wanted = sorted(set(feedback_ids))
    out: dict[str, tuple[str | None, str | None]] = {}
    ia, ib = interactions.alias("ia"), interactions.alias("ib")
    for start in range(0, len(wanted), 500):
        q = (select(feedback.c.client_id, ia.c.client_id, ib.c.client_id)
             .select_from(feedback.outerjoin(ia, ia.c.id == feedback.c.interaction_id)
                          .outerjoin(ib, ib.c.id == feedback.c.interaction_b_id))
             .where(feedback.c.project_id == project.id,
                    feedback.c.client_id.in_(wanted[start:start + 500])))
        out.update({f: (a, b) for f, a, b in conn.execute(q)})
    return out


def models_trained_on(conn: Connection, dataset_id: int) -> list[dict[str, Any]]:
    """The model versions trained on a dataset (``model_version_datasets``)."""
    v, link = model_versions, model_version_datasets
    q = (select(v.c.component, v.c.name, v.c.status, v.c.trainer, v.c.created_at)
         .join(link, link.c.model_version_id == v.c.id)
         .where(link.c.dataset_id == dataset_id).order_by(v.c.component, v.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def rollback_target(conn: Connection, project: Project, component: str) -> str | None:
    """The version a rollback of ``component`` would make live again (None: no rollback
    possible), read as :func:`registry.rollback` decides it."""
    t, e = model_versions, model_events
    rows = conn.execute(select(t.c.id, t.c.name, t.c.status).where(
        t.c.project_id == project.id, t.c.component == component)).all()
    by_id = {r.id: r for r in rows}
    live = next((r for r in rows if r.status == "live"), None)
    if live is None:
        return None
    went_live = conn.execute(select(e.c.model_version_id).where(
        e.c.project_id == project.id, e.c.component == component, e.c.to_status == "live",
        e.c.model_version_id.is_not(None)).order_by(e.c.id.desc())).scalars().all()
    return next((by_id[v].name for v in went_live
                 if v != live.id and v in by_id and by_id[v].status != "rolled_back"), None)


# -- metrics ------------------------------------------------------------------------------

def _is_estimate(value: Any) -> bool:
    return isinstance(value, Mapping) and "value" in value and \
        ("ci95" in value or "method" in value)


def estimate(value: Mapping[str, Any]) -> dict[str, Any]:
    """A trainer's ``{"value", "ci95", "n", "method"}`` with every key the estimate macro
    reads (trainers leave ``reason`` out when there is a value)."""
    ci = value.get("ci95")
    return {"value": value.get("value"), "ci95": list(ci) if isinstance(ci, list | tuple)
            and len(ci) == 2 else None, "n": value.get("n", ""),
            "method": value.get("method", ""), "reason": value.get("reason") or "unavailable"}


def key_metric(metrics: Mapping[str, Any]) -> dict[str, Any] | None:
    """The number a version is judged by, with its interval: held-out pairwise accuracy
    (reward model, reranker), test precision at the threshold (classifier), else the first
    estimate the trainer reported."""
    held = metrics.get("held_out")
    if isinstance(held, Mapping) and _is_estimate(held.get("accuracy")):
        return {"label": f"pairwise accuracy on {held.get('split')}",
                "estimate": estimate(held["accuracy"])}
    test = metrics.get("test")
    if isinstance(test, Mapping) and _is_estimate(test.get("precision")):
        return {"label": "test precision at the threshold",
                "estimate": estimate(test["precision"])}
    for key, value in metrics.items():
        if _is_estimate(value):
            return {"label": str(key).replace("_", " "), "estimate": estimate(value)}
    return None


def baselines(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model's held-out accuracy beside the zero-label baselines measured on the same
    pairs (reward model, reranker)."""
    held = metrics.get("held_out")
    if not isinstance(held, Mapping) or not _is_estimate(held.get("accuracy")):
        return []
    rows = [{"label": "this model", "estimate": estimate(held["accuracy"]), "model": True}]
    for name, value in (held.get("baselines") or {}).items():
        if _is_estimate(value):
            rows.append({"label": str(name).replace("_", " "), "estimate": estimate(value),
                         "model": False})
    return rows


def flat_metrics(metrics: Mapping[str, Any], prefix: str = "",
                 depth: int = 0) -> list[dict[str, Any]]:
    """Every metric as a row: ``path`` and either an estimate or a plain value."""
    rows: list[dict[str, Any]] = []
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if _is_estimate(value):
            rows.append({"path": path, "estimate": estimate(value)})
        elif isinstance(value, Mapping) and depth < 3:
            rows += flat_metrics(value, f"{path}.", depth + 1)
        else:
            rows.append({"path": path, "value": value})
    return rows


# -- toggles --------------------------------------------------------------------------------

def describe_condition(cond: Mapping[str, Any]) -> str:
    op = {"eq": "=", "ne": "≠", "in": "in", "not_in": "not in"}.get(str(cond.get("op")),
                                                                   str(cond.get("op")))
    value = cond.get("value")
    shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return f"{cond.get('attribute')} {op} {shown}"


def rule_shares(conn: Connection, project: Project, component: str,
                rules: list[dict[str, Any]], default: str | None,
                statuses: Mapping[str, str], limit: int = TRAFFIC) -> dict[str, Any]:
    """Which rule would serve each of the project's newest ``limit`` interactions (unit:
    user id, else session id, else the interaction id; attributes: its cohort attributes),
    as shares with Wilson 95 % intervals. A rule's version that is retired or rolled back
    is not served (as in :func:`registry.resolve`): those units count for the default."""
    i = interactions
    q = (select(i.c.client_id, i.c.user_id, i.c.session_id, i.c.attributes)
         .where(i.c.project_id == project.id)
         .order_by(i.c.timestamp.desc(), i.c.id.desc()).limit(limit))
    toggle = Toggle.from_dict(component, rules, default=default)
    counts: Counter[int | None] = Counter()
    n = 0
    for cid, user, session, attrs in conn.execute(q):
        n += 1
        res = toggle.resolve(user or session or cid, attrs if isinstance(attrs, dict) else {})
        rule = res.rule
        if rule is not None and statuses.get(res.version or "") in NOT_SERVED:
            rule = None
        counts[rule] += 1

    def share(k: int | None) -> dict[str, Any]:
        e = wilson_interval(counts.get(k, 0), n)
        return {"value": e.value, "ci95": list(e.ci) if e.ci else None, "n": n,
                "method": "wilson", "reason": e.reason or "no interactions"}

    return {"n": n, "rules": [share(k) for k in range(len(rules))], "default": share(None)}


def _readable_rules(rules: list[dict[str, Any]], statuses: Mapping[str, str]
                    ) -> list[dict[str, Any]]:
    out = []
    for k, rule in enumerate(rules):
        split = rule.get("split") or {}
        out.append({
            "index": k, "name": rule.get("name") or "",
            "when": [describe_condition(c) for c in rule.get("when") or []],
            "split": [{"version": v, "percent": p, "status": statuses.get(v, "unknown"),
                       "served": statuses.get(v) not in NOT_SERVED}
                      for v, p in split.items()],
        })
    return out


# -- charts ----------------------------------------------------------------------------

def bar_list(items: Sequence[tuple[str, int]], *, title: str, kind: str = "",
             width: int = 560) -> Markup:
    """Horizontal bars, one per (label, count), drawn on the server. Labels are escaped."""
    row, left, right = 24, 150, 70
    height = max(len(items), 1) * row + 8
    top_value = nice_ceiling(max((n for _, n in items), default=0))
    span = width - left - right
    parts = [f'<svg class="chart bars {escape(kind)}" viewBox="0 0 {width} {height}" '
             f'width="100%" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for k, (label, n) in enumerate(items):
        y = 4 + k * row
        w = span * n / top_value if top_value else 0
        shown = label if len(label) <= 22 else label[:21] + "…"
        parts.append(f'<text class="tick" x="{left - 8}" y="{y + 15}" text-anchor="end">'
                     f"{escape(shown)}</text>")
        parts.append(f'<rect class="bar" x="{left}" y="{y + 3}" width="{w:.1f}" height="16" '
                     f'data-label="{escape(label)}" data-count="{n}"><title>'
                     f"{escape(label)}: {n:,}</title></rect>")
        parts.append(f'<text class="tick value" x="{left + w + 6:.1f}" y="{y + 15}">'
                     f"{n:,}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))


def dataset_charts(ds: Dataset) -> list[dict[str, Any]]:
    counts = ds.counts
    charts = []
    splits = [(str(s), int(n)) for s, n in (counts.get("splits") or {}).items()]
    if splits:
        charts.append({"id": "chart-splits", "title": "Rows by split",
                       "svg": bar_list(splits, title="Rows by split", kind="splits")})
    labels = [(str(s), int(n)) for s, n in (counts.get("labels") or {}).items()]
    if labels:
        charts.append({"id": "chart-labels", "title": "Rows by label",
                       "svg": bar_list(labels, title="Rows by label", kind="labels")})
    dropped = [(f"row: {k.replace('_', ' ')}", int(n))
               for k, n in (counts.get("dropped") or {}).items()]
    dropped += [(f"feedback: {k.replace('_', ' ')}", int(n))
                for k, n in ((counts.get("feedback") or {}).get("dropped") or {}).items()]
    if dropped:
        charts.append({"id": "chart-dropped", "title": "Dropped, by reason",
                       "svg": bar_list(dropped, title="Dropped, by reason", kind="dropped")})
    return charts


# -- dataset pages ----------------------------------------------------------------------

def _quoted(value: str) -> str:
    return quote(value, safe="")


def _dataset_list(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            rows = list_datasets(conn, project)
        rows.sort(key=lambda d: (d.name, -d.version))
        versions = Counter(d.name for d in rows)
        return _render(request, "datasets.html", principal=principal,
                       title=f"Datasets · {project.name}", project=project, rows=rows,
                       versions=versions, active="Datasets")

    return _signed_in(request, build)


def _version_param(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not 0 < int(raw) <= _MAX_VERSION:
        raise InvalidInput(f"version must be a whole number from 1, not {raw[:40]!r}",
                           field="version")
    return int(raw)


_FIELD_ORDER = {k: i for i, k in enumerate(
    ("prompt", "text", "chosen", "rejected", "completion", "label", "confidence"))}


def _ordered(data: Any) -> Any:
    """A row's fields in reading order (prompt first), whatever order storage kept."""
    if not isinstance(data, dict):
        return data
    return dict(sorted(data.items(), key=lambda kv: (_FIELD_ORDER.get(kv[0], 99), kv[0])))


def _dataset_page(request: Request, name: str, dataset: str) -> Response:
    return _dataset(request, name, dataset, None)


def _dataset(request: Request, name: str, dataset: str, version: int | None) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        if len(dataset) > 100 or "\x00" in dataset:
            raise NotFound(f"no dataset {dataset[:100]!r} in project {project.name!r}")
        wanted = version if version is not None \
            else _version_param(request.query_params.get("version"))
        if wanted is not None and not 0 < wanted <= _MAX_VERSION:
            raise NotFound(f"no dataset {dataset!r} version {wanted}")
        split = request.query_params.get("split") or None
        with store.read() as conn:
            ds = get_dataset(conn, project, dataset, wanted)
            splits = list((ds.counts.get("splits") or {}).keys())
            if split is not None and split not in splits:
                raise InvalidInput(f"dataset {ds.ref} has no split {split[:40]!r}; splits: "
                                   f"{', '.join(splits)}", field="split")
            if split is not None:
                sample = list(iter_rows(conn, ds, split, limit=SAMPLE))
            else:
                sample = [r for s in splits
                          for r in iter_rows(conn, ds, s, limit=SAMPLE_PER_SPLIT)]
            sample = [{**r, "data": _ordered(r["data"])} for r in sample]
            lineage = interactions_of(conn, project,
                                      [f for r in sample for f in r["feedback_ids"]])
            versions = [d.version for d in list_datasets(conn, project) if d.name == ds.name]
            models = models_trained_on(conn, ds.id)
        return _render(request, "dataset.html", principal=principal,
                       title=f"{ds.ref} · {project.name}", project=project, ds=ds,
                       sample=sample, lineage=lineage, split=split, versions=versions,
                       models=models, charts=dataset_charts(ds), active="Datasets",
                       sample_size=SAMPLE if split else SAMPLE_PER_SPLIT)

    return _signed_in(request, build)


def _dataset_version_page(request: Request, name: str, dataset: str,
                          version: int) -> Response:
    return _dataset(request, name, dataset, version)


# -- model pages --------------------------------------------------------------------------

def _model_list(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            versions = list_versions(conn, project)
            toggles = {c: get_toggle(conn, project, c)
                       for c in dict.fromkeys(v.component for v in versions)}
        components: dict[str, dict[str, Any]] = {}
        for v in versions:
            comp = components.setdefault(v.component, {"name": v.component, "live": None,
                                                       "versions": [],
                                                       "rules": len(toggles[v.component]
                                                                    ["rules"])})
            if v.status == "live":
                comp["live"] = v.name
            comp["versions"].append({"v": v, "key": key_metric(v.metrics)})
        for comp in components.values():
            comp["versions"].reverse()  # newest first
        return _render(request, "models.html", principal=principal,
                       title=f"Models · {project.name}", project=project,
                       components=list(components.values()), active="Models")

    return _signed_in(request, build)


def _model_context(request: Request, principal: Principal, name: str, component: str,
                   version_name: str) -> dict[str, Any]:
    store = _store(request)
    project = _readable_project(store, principal, name)
    if len(component) > 50 or len(version_name) > 200 or "\x00" in component + version_name:
        raise NotFound(f"no version {version_name[:200]!r} of component "
                       f"{component[:50]!r} in this project")
    from ..improve.trainers import get_training_run

    with store.read() as conn:
        version = get_version(conn, project, component, version_name)
        siblings = list_versions(conn, project, component)
        run = None
        if version.training_run_id is not None:
            try:
                run = get_training_run(conn, project, version.training_run_id)
            except NotFound:
                run = None
        events = list_events(conn, project, component)
        toggle = get_toggle(conn, project, component)
        statuses = {v.name: v.status for v in siblings}
        shares = rule_shares(conn, project, component, toggle["rules"], toggle["default"],
                             statuses)
        restores = rollback_target(conn, project, component)
    role = principal.role_in(project.id)
    return {
        "project": project, "version": version, "siblings": siblings, "run": run,
        "history": [e for e in events if e["version"] == version.name],
        "toggle_events": [e for e in events if e["kind"] == "toggle"][-5:][::-1],
        "toggle": toggle, "rules": _readable_rules(toggle["rules"], statuses),
        "shares": shares, "restores": restores,
        "key": key_metric(version.metrics), "baselines": baselines(version.metrics),
        "flat": flat_metrics(version.metrics),
        "targets": [t for t, sources in _PROMOTIONS.items() if version.status in sources],
        "may_release": can(role, RELEASE), "servable": [v.name for v in siblings
                                                        if v.status not in NOT_SERVED],
    }


def _model_page(request: Request, name: str, component: str, version: str) -> Response:
    return _signed_in(request, lambda p: _render_model(request, p, name, component, version))


def _render_model(request: Request, principal: Principal, name: str, component: str,
                  version: str, *, errors: list[str] | None = None,
                  chosen: dict[str, str] | None = None, status: int = 200) -> Response:
    ctx = _model_context(request, principal, name, component, version)
    v: ModelVersion = ctx["version"]
    return _render(request, "model.html", status=status, principal=principal,
                   title=f"{v.component}/{v.name} · {ctx['project'].name}", active="Models",
                   errors=errors or [], chosen=chosen or {}, notice=request.query_params.get(
                       "done", "")[:40], **ctx)


def _form_text(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _checked(form: FormData, principal: Principal, request: Request, name: str,
             component: str, version: str) -> tuple[Any, Project] | Response:
    """CSRF, the project, the role; the version must exist."""
    if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
        return error_page(request, 403, "The form expired; reload the page and try again.")
    store = _store(request)
    project = _readable_project(store, principal, name)
    principal.require(project.id, RELEASE)
    if len(component) > 50 or len(version) > 200 or "\x00" in component + version:
        raise NotFound(f"no version {version[:200]!r} of component {component[:50]!r} "
                       "in this project")
    with store.read() as conn:
        get_version(conn, project, component, version)
    return store, project


def _back(project: Project, component: str, version: str, done: str) -> Response:
    return RedirectResponse(f"/projects/{_quoted(project.name)}/models/{_quoted(component)}/"
                            f"{_quoted(version)}?done={done}#status", status_code=303)


async def _promote(request: Request, name: str, component: str, version: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        checked = _checked(form, principal, request, name, component, version)
        if isinstance(checked, Response):
            return checked
        store, project = checked
        to = _form_text(form, "to", 20)
        chosen = {"to": to}
        try:
            if to not in _PROMOTIONS:
                raise InvalidInput("choose live, staged or retired", field="to")
            if _form_text(form, "confirm", 10) != "yes":
                raise InvalidInput(f"tick the box to confirm: {version} becomes {to}",
                                   field="confirm")
            promote(store, project, component, version, to=to, actor=principal.name[:100])
        except FeedbackloopError as exc:
            if exc.status >= 500 or exc.status in (401, 403):
                raise
            return _render_model(request, principal, name, component, version,
                                 errors=[exc.message], chosen=chosen, status=exc.status)
        return _back(project, component, version, "promoted")

    return await run_in_threadpool(_signed_in, request, build)


async def _rollback(request: Request, name: str, component: str, version: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        checked = _checked(form, principal, request, name, component, version)
        if isinstance(checked, Response):
            return checked
        store, project = checked
        try:
            if _form_text(form, "confirm", 10) != "yes":
                raise InvalidInput(f"tick the box to confirm the rollback of {component}",
                                   field="confirm")
            rollback(store, project, component, actor=principal.name[:100])
        except FeedbackloopError as exc:
            if exc.status >= 500 or exc.status in (401, 403):
                raise
            return _render_model(request, principal, name, component, version,
                                 errors=[exc.message], status=exc.status)
        return _back(project, component, version, "rolled_back")

    return await run_in_threadpool(_signed_in, request, build)


def parse_conditions(text: str) -> list[dict[str, Any]]:
    """One condition a line: ``key=value``, ``key!=value``, ``key in a, b``,
    ``key not in a, b``."""
    out: list[dict[str, Any]] = []
    for k, line in enumerate(text.replace("\r", "").split("\n")):
        if not line.strip():
            continue
        m = _CONDITION.match(line)
        if m is None or not m.group(1).strip() or not m.group(3):
            raise InvalidInput(f"condition line {k + 1} ({line.strip()[:60]!r}): write "
                               "KEY=VALUE, KEY!=VALUE, KEY in A, B or KEY not in A, B",
                               field="conditions")
        key, op, value = m.group(1).strip(), m.group(2), m.group(3)
        if op in ("in", "not in"):
            values = [v.strip() for v in value.split(",") if v.strip()]
            if not values:
                raise InvalidInput(f"condition line {k + 1}: list the values after {op!r}",
                                   field="conditions")
            out.append({"attribute": key, "op": op.replace(" ", "_"), "value": values})
        else:
            out.append({"attribute": key, "op": "eq" if op == "=" else "ne",
                        "value": value})
    if len(out) > 20:
        raise InvalidInput("at most 20 conditions", field="conditions")
    return out


def _percent(raw: str) -> float:
    try:
        value = float(raw.strip().rstrip("%").strip())
    except ValueError:
        raise InvalidInput(f"the percentage must be a number from 0 to 100, not "
                           f"{raw[:20]!r}", field="percent") from None
    if not 0 < value <= 100:
        raise InvalidInput(f"the percentage must be above 0 and at most 100, not {value:g}",
                           field="percent")
    return value


async def _toggle(request: Request, name: str, component: str, version: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        checked = _checked(form, principal, request, name, component, version)
        if isinstance(checked, Response):
            return checked
        store, project = checked
        chosen = {k: _form_text(form, k, 2000) for k in
                  ("serve", "percent", "conditions", "rule_name")}
        try:
            for key, value in chosen.items():
                if "\x00" in value:
                    raise InvalidInput(f"{key} contains a NUL character", field=key)
            if _form_text(form, "clear", 10) == "yes":
                rules: list[dict[str, Any]] = []
            else:
                serve = chosen["serve"]
                if not serve:
                    raise InvalidInput("choose the version to serve", field="serve")
                rule: dict[str, Any] = {"split": {serve: _percent(chosen["percent"])},
                                        "when": parse_conditions(chosen["conditions"])}
                if chosen["rule_name"].strip():
                    rule["name"] = chosen["rule_name"].strip()[:100]
                rules = [rule]
            if _form_text(form, "confirm", 10) != "yes":
                raise InvalidInput("tick the box to confirm: the rule replaces the "
                                   "component's rules", field="confirm")
            set_toggle(store, project, component, rules, actor=principal.name[:100])
        except FeedbackloopError as exc:
            if exc.status >= 500 or exc.status in (401, 403):
                raise
            return _render_model(request, principal, name, component, version,
                                 errors=[exc.message], chosen=chosen, status=exc.status)
        return _back(project, component, version, "toggle")

    return await run_in_threadpool(_signed_in, request, build)


def install_improve_pages(app: FastAPI) -> None:
    """Mount the Improve stage's pages on ``app``."""
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/datasets", _dataset_list, methods=["GET"],
                      name="dataset_list", **html)
    app.add_api_route("/projects/{name}/datasets/{dataset}", _dataset_page, methods=["GET"],
                      name="dataset", **html)
    app.add_api_route("/projects/{name}/datasets/{dataset}/{version:int}",
                      _dataset_version_page, methods=["GET"], name="dataset_detail", **html)
    app.add_api_route("/projects/{name}/models", _model_list, methods=["GET"],
                      name="model_list", **html)
    app.add_api_route("/projects/{name}/models/{component}/{version}", _model_page,
                      methods=["GET"], name="model_version", **html)
    app.add_api_route("/projects/{name}/models/{component}/{version}/promote", _promote,
                      methods=["POST"], name="model_promote", **html)
    app.add_api_route("/projects/{name}/models/{component}/{version}/rollback", _rollback,
                      methods=["POST"], name="model_rollback", **html)
    app.add_api_route("/projects/{name}/models/{component}/{version}/toggle", _toggle,
                      methods=["POST"], name="model_toggle", **html)
