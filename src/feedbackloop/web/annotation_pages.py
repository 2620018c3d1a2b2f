"""The Annotate stage's pages: the campaigns of a project with the signed-in rater's
queues, the form that creates a campaign, a campaign's page (progress, agreement with its
interval, rater drift, gold accuracy, aggregated labels), the guidelines of a signal, and
the annotator workspace.

Reading needs the viewer role; working a queue needs ``Action.ANNOTATE`` and a place
among the campaign's raters; guidelines, campaigns and aggregation runs need
``Action.MANAGE_CAMPAIGNS``. Forms carry the session's CSRF token as the other pages'
forms do; a bad value becomes a message on the page (422), never a server error. The
workspace is a plain form (POST, then a redirect to the next item); ``static/workspace.js``
adds keyboard shortcuts and the live diff of a correction.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from ..access import Action, Principal, can
from ..annotation.aggregate import SIGNAL_TYPES, aggregate, latest_aggregation
from ..annotation.assignment import next_item, rater_progress, skip, submit
from ..annotation.campaigns import (
    Campaign,
    campaign_status,
    close_campaign,
    create_campaign,
    get_campaign,
    list_campaigns,
)
from ..annotation.guidelines import Guideline, create_guideline, get_guideline, list_guidelines
from ..annotation.markdown import render_markdown
from ..annotation.reliability import project_agreement
from ..capture.projects import Project, Signal, get_signal, list_signals
from ..errors import Conflict, FeedbackloopError, InvalidInput, NotFound, PermissionDenied
from ..store import Store
from ..store.tables import memberships, users
from .annotation_api import POLICIES, campaign_spec_from, export_response
from .annotation_charts import drift_plot
from .pages import _readable_project, _render, _signed_in, _store, error_page
from .signin import csrf_valid

__all__ = ["AGGREGATION_METHODS", "answers_from", "campaign_data", "drift_window",
           "install_annotation_pages", "rubric_from"]

_MAX_ID = 2**31 - 1
_LABELS_SHOWN = 200
# The methods offered for each signal type, the usual first.
_PREFERRED = {"binary": "dawid-skene", "categorical": "dawid-skene", "ordinal": "mean",
              "numeric": "mean", "pairwise": "bradley-terry"}
AGGREGATION_METHODS = {
    t: tuple(sorted((m for m, types in SIGNAL_TYPES.items() if t in types),
                    key=lambda m, t=t: (m != _PREFERRED.get(t), m)))  # type: ignore[misc]
    for t in ("binary", "categorical", "ordinal", "numeric", "pairwise", "text")}


def _form_text(form: FormData, name: str, limit: int = 5000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def _q(value: Any) -> str:
    return quote(str(value), safe="")


def _base(project: Project) -> str:
    return f"/projects/{_q(project.name)}"


def _expired_form(request: Request) -> Response:
    return error_page(request, 403, "The form expired; reload the page and try again.")


def _campaign_by_id(store: Store, project: Project, campaign_id: int) -> Campaign:
    if not 0 < campaign_id <= _MAX_ID:
        raise NotFound(f"no campaign {campaign_id} in this project")
    with store.read() as conn:
        return get_campaign(conn, project, campaign_id)


def _may(principal: Principal, project: Project, action: Action) -> bool:
    return can(principal.role_in(project.id), action)


def _eligible_raters(store: Store, project: Project) -> list[str]:
    """Users with a role in the project that may annotate, by name."""
    with store.read() as conn:
        rows = conn.execute(
            select(users.c.username, memberships.c.role)
            .select_from(memberships.join(users, users.c.id == memberships.c.user_id))
            .where(memberships.c.project_id == project.id)
            .order_by(users.c.username)).all()
    return [r.username for r in rows if can(r.role, Action.ANNOTATE)]


# -- the campaigns of a project ---------------------------------------------------------
def _annotate_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            campaigns = list_campaigns(conn, project)
            signals = list_signals(conn, project.id)
        may_annotate = _may(principal, project, Action.ANNOTATE)
        rows, queues = [], []
        for c in campaigns:
            status = campaign_status(store, project, c)
            rows.append({"campaign": c, "status": status})
            if may_annotate and c.status == "active" and principal.name in c.raters:
                with store.read() as conn:
                    mine = rater_progress(conn, c, principal.name)
                queues.append({"campaign": c, "progress": mine})
        return _render(request, "annotate.html", principal=principal,
                       title=f"Annotate · {project.name}", project=project, rows=rows,
                       queues=queues, signals=signals, active="Campaigns",
                       may_manage=_may(principal, project, Action.MANAGE_CAMPAIGNS))

    return _signed_in(request, build)


# -- a new campaign -------------------------------------------------------------------
_CAMPAIGN_FIELDS = ("name", "description", "kind", "budget", "overlap", "gold_rate",
                    "lease_minutes", "drift_threshold", "seed", "dis_metric", "dis_human",
                    "dis_kind",
                    "unc_metric", "unc_threshold", "strat_by", "recheck_before",
                    "model_version", "versions")


def _campaign_form(request: Request, principal: Principal, project: Project, *,
                   chosen: dict[str, Any] | None = None, errors: list[str] | None = None,
                   status: int = 200) -> Response:
    store = _store(request)
    with store.read() as conn:
        signals = list_signals(conn, project.id)
        latest: dict[str, int | None] = {}
        for s in signals:
            found = list_guidelines(conn, project, s.name)
            latest[s.name] = found[0].version if found else None
    defaults: dict[str, Any] = {"kind": "standard", "budget": "50", "overlap": "3",
                                "gold_rate": "0", "lease_minutes": "30",
                                "drift_threshold": "0.6", "seed": "0", "signals": [],
                                "raters": [], "weights": {"random": "1"}}
    return _render(request, "campaign_new.html", status=status, principal=principal,
                   title=f"New campaign · {project.name}", project=project,
                   signals=signals, latest=latest, raters=_eligible_raters(store, project),
                   policies=POLICIES, chosen={**defaults, **(chosen or {})},
                   errors=errors or [], active="Campaigns")


def _new_campaign_page(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        project = _readable_project(_store(request), principal, name)
        principal.require(project.id, Action.MANAGE_CAMPAIGNS)
        return _campaign_form(request, principal, project)

    return _signed_in(request, build)


def _number(raw: str, field: str, kind: type, label: str) -> Any:
    try:
        value = kind(raw.strip())
    except (ValueError, OverflowError):
        what = "a whole number" if kind is int else "a number"
        raise InvalidInput(f"{label} must be {what}", field=field) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{label} must be a finite number", field=field)
    return value


def campaign_data(form: FormData) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what the form chose, for showing it again; the CampaignSpec fields)."""
    chosen: dict[str, Any] = {k: _form_text(form, k, 5000) for k in _CAMPAIGN_FIELDS}
    chosen["signals"] = [s for s in form.getlist("signals") if isinstance(s, str)][:20]
    chosen["raters"] = [r for r in form.getlist("raters") if isinstance(r, str)][:1000]
    extra = [r.strip() for r in _form_text(form, "more_raters", 20000).replace(
        "\n", ",").split(",") if r.strip()]
    chosen["more_raters"] = _form_text(form, "more_raters", 20000)
    chosen["weights"] = {p: _form_text(form, f"weight_{p}", 20) for p in POLICIES}

    if not chosen["name"].strip():
        raise InvalidInput("give the campaign a name", field="name")
    if not chosen["signals"]:
        raise InvalidInput("choose at least one signal", field="signals")
    raters = list(dict.fromkeys([*chosen["raters"], *extra]))
    if not raters:
        raise InvalidInput("choose at least one rater", field="raters")
    weights: dict[str, float] = {}
    for policy, raw in chosen["weights"].items():
        if raw.strip():
            w = _number(raw, f"weight_{policy}", float, f"the weight of {policy}")
            if w < 0:
                raise InvalidInput(f"the weight of {policy} must not be negative",
                                   field=f"weight_{policy}")
            if w > 0:
                weights[policy] = w
    if not weights:
        raise InvalidInput("give at least one selection policy a weight above 0",
                           field="policy")
    options: dict[str, Any] = {}
    if "disagreement" in weights:
        if chosen["dis_metric"].strip():
            options["metric"] = chosen["dis_metric"].strip()
        if chosen["dis_human"].strip():
            options["human"] = chosen["dis_human"].strip()
        if chosen["dis_kind"].strip() not in ("", "both"):
            options["kind"] = chosen["dis_kind"].strip()
    if "uncertainty" in weights:
        if chosen["unc_metric"].strip():
            options.setdefault("metric", chosen["unc_metric"].strip())
        if chosen["unc_threshold"].strip():
            options["threshold"] = _number(chosen["unc_threshold"], "unc_threshold", float,
                                           "the uncertainty threshold")
    if "stratified" in weights and chosen["strat_by"].strip():
        options["by"] = [b.strip() for b in chosen["strat_by"].split(",") if b.strip()]
    if "recheck" in weights and chosen["recheck_before"].strip():
        options["before"] = chosen["recheck_before"].strip()
    if chosen["model_version"].strip():
        options["model_version"] = [v.strip() for v in chosen["model_version"].split(",")
                                    if v.strip()]
    if chosen["versions"].strip():
        options["versions"] = [v.strip() for v in chosen["versions"].split(",")
                               if v.strip()]
    data = {
        "name": chosen["name"].strip(), "description": chosen["description"],
        "kind": chosen["kind"] or "standard", "signals": chosen["signals"],
        "raters": raters,
        "budget": _number(chosen["budget"], "budget", int, "the budget"),
        "overlap": _number(chosen["overlap"] or "1", "overlap", int, "the overlap"),
        "gold_rate": _number(chosen["gold_rate"] or "0", "gold_rate", float,
                             "the gold rate"),
        "policy": next(iter(weights)) if len(weights) == 1 else weights,
        "options": options,
        "lease_minutes": _number(chosen["lease_minutes"] or "30", "lease_minutes", int,
                                 "the lease"),
        "drift_threshold": _number(chosen["drift_threshold"] or "0.6", "drift_threshold",
                                   float, "the drift threshold"),
        "seed": _number(chosen["seed"] or "0", "seed", int, "the seed"),
    }
    if not 0 <= data["seed"] < 2**32:
        raise InvalidInput("the seed must be between 0 and 4294967295", field="seed")
    if not 1 <= data["budget"] <= 1_000_000:
        raise InvalidInput("the budget must be between 1 and 1,000,000", field="budget")
    return chosen, data


async def _create_campaign(request: Request, name: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return _expired_form(request)
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, Action.MANAGE_CAMPAIGNS)
        chosen: dict[str, Any] = {}
        try:
            chosen, data = campaign_data(form)
            spec = campaign_spec_from(data)
            made = create_campaign(store, project, spec, created_by=principal.name)
        except (InvalidInput, NotFound, Conflict) as exc:
            if not chosen:
                chosen = {k: _form_text(form, k) for k in _CAMPAIGN_FIELDS}
            return _campaign_form(request, principal, project, chosen=chosen,
                                  errors=[exc.message], status=422)
        return RedirectResponse(f"{_base(project)}/campaigns/{made.id}", status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


# -- a campaign's page ------------------------------------------------------------------
def drift_window(most: int) -> tuple[int, int]:
    """(window, min_items) for the drift plot of a campaign whose busiest rater has
    ``most`` annotations: blocks of 50 (at least 20 compared to flag drift) once raters
    have 200 or more, else about a quarter of the busiest rater's work (at least 5), so a
    small campaign still shows a line."""
    if most >= 200:
        return 50, 20
    window = max(5, math.ceil(most / 4))
    return window, min(20, window)


def _agreement(store: Store, project: Project, campaign: Campaign,
               signal: dict[str, Any], most: int) -> dict[str, Any]:
    window, min_items = drift_window(most)
    try:
        result = project_agreement(store, project, signal["signal"], campaign=campaign,
                                   window=window, min_items=min_items)
    except InvalidInput as exc:
        return {"available": False, "reason": exc.message}
    plot = drift_plot(result.get("raters") or [],
                      threshold=result.get("drift_threshold", campaign.drift_threshold),
                      title=f"Agreement with the other raters over time: {signal['signal']}")
    return {"available": True, "result": result, "plot": plot}


def _campaign_page(request: Request, name: str, campaign_id: int, *,
                   errors: list[str] | None = None, status: int = 200,
                   principal: Principal | None = None) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        campaign = _campaign_by_id(store, project, campaign_id)
        progress = campaign_status(store, project, campaign)
        most = max((r.get("done", 0) + r.get("gold_seen", 0)
                    for r in progress.get("raters") or []), default=0)
        sections = []
        for s in campaign.signals:
            with store.read() as conn:
                latest = latest_aggregation(conn, project, s["signal"], campaign=campaign)
            labels = (latest or {}).get("labels") or []
            sections.append({
                "signal": s, "agreement": _agreement(store, project, campaign, s, most),
                "aggregation": latest, "labels": labels[:_LABELS_SHOWN],
                "more_labels": max(len(labels) - _LABELS_SHOWN, 0),
                "methods": AGGREGATION_METHODS.get(s.get("type", ""), ()),
            })
        may_annotate = (_may(principal, project, Action.ANNOTATE)
                        and principal.name in campaign.raters and campaign.status == "active")
        return _render(request, "campaign.html", status=status, principal=principal,
                       title=f"{campaign.name} · {project.name}", project=project,
                       campaign=campaign, progress=progress, sections=sections,
                       may_manage=_may(principal, project, Action.MANAGE_CAMPAIGNS),
                       may_annotate=may_annotate, errors=errors or [],
                       active="Campaigns")

    if principal is not None:
        try:
            return build(principal)
        except FeedbackloopError as exc:
            return error_page(request, exc.status, exc.message)
    return _signed_in(request, build)


async def _run_aggregation(request: Request, name: str, campaign_id: int) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return _expired_form(request)
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, Action.MANAGE_CAMPAIGNS)
        campaign = _campaign_by_id(store, project, campaign_id)
        signal = _form_text(form, "signal", 200)
        method = _form_text(form, "method", 50)
        try:
            if signal not in [s["signal"] for s in campaign.signals]:
                raise InvalidInput("choose a signal of this campaign", field="signal")
            aggregate(store, project, signal, method, campaign=campaign,
                      created_by=principal.name)
        except InvalidInput as exc:
            return _campaign_page(request, name, campaign_id, errors=[exc.message],
                                  status=422, principal=principal)
        return RedirectResponse(f"{_base(project)}/campaigns/{campaign.id}#labels-"
                                f"{_q(signal)}", status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


async def _close(request: Request, name: str, campaign_id: int) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return _expired_form(request)
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, Action.MANAGE_CAMPAIGNS)
        campaign = _campaign_by_id(store, project, campaign_id)
        close_campaign(store, project, campaign, actor=principal.name)
        return RedirectResponse(f"{_base(project)}/campaigns/{campaign.id}", status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


def _export(request: Request, name: str, campaign_id: int) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, Action.MANAGE_CAMPAIGNS)
        campaign = _campaign_by_id(store, project, campaign_id)
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise InvalidInput("format is jsonl or csv", field="format")
        return export_response(store, project, campaign, fmt)

    return _signed_in(request, build)


# -- guidelines -------------------------------------------------------------------------
def _rubric_rows(signal: Signal, latest: Guideline | None) -> list[dict[str, Any]]:
    """The rows of the rubric form: one per value of the signal where the values are few
    and known, else free rows; pre-filled from the latest version."""
    old = {str(a.get("value")): a for a in (latest.rubric if latest else [])}
    if signal.type == "ordinal" and signal.scale_min is not None \
            and signal.scale_max is not None and signal.scale_max - signal.scale_min <= 20:
        values: list[str] | None = [f"{v:g}" for v in range(int(signal.scale_min),
                                                             int(signal.scale_max) + 1)]
    elif signal.type == "categorical" and signal.labels:
        values = list(signal.labels)
    elif signal.type == "binary":
        values = ["1", "0"]
    elif signal.type == "pairwise":
        values = ["a", "b", "tie"]
    else:
        values = None
    if values is not None:
        rows = []
        for v in values:
            a = old.get(v) or old.get({"1": "True", "0": "False"}.get(v, v)) or {}
            rows.append({"value": v, "fixed": True, "label": a.get("label", ""),
                         "description": a.get("description", ""),
                         "examples": "\n".join(a.get("examples") or [])})
        return rows
    rows = [{"value": str(a.get("value")), "fixed": False, "label": a.get("label", ""),
             "description": a.get("description", ""),
             "examples": "\n".join(a.get("examples") or [])} for a in old.values()]
    rows += [{"value": "", "fixed": False, "label": "", "description": "", "examples": ""}
             for _ in range(max(3, 6 - len(rows)))]
    return rows


def _guideline_page(request: Request, name: str, signal: str, *,
                    principal: Principal | None = None, errors: list[str] | None = None,
                    draft: dict[str, Any] | None = None, status: int = 200) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        if len(signal) > 200 or "\x00" in signal:
            raise NotFound(f"no signal {signal!r} in this project")
        raw_version = request.query_params.get("version", "")
        with store.read() as conn:
            sig = get_signal(conn, project.id, signal)
            versions = list_guidelines(conn, project, signal)
            shown = versions[0] if versions else None
            if raw_version:
                if not raw_version.isdigit() or not 0 < int(raw_version) <= _MAX_ID:
                    raise NotFound(f"no version {raw_version!r} of this guideline")
                shown = get_guideline(conn, project, signal, int(raw_version))
        rows = _rubric_rows(sig, versions[0] if versions else None)
        return _render(request, "guidelines.html", status=status, principal=principal,
                       title=f"Guideline for {sig.name} · {project.name}", project=project,
                       signal=sig, versions=versions, shown=shown,
                       body=render_markdown(shown.body) if shown else None,
                       rubric=[{**a, "examples_html": [render_markdown(e) for e in
                                                       a.get("examples") or []],
                                "description_html": render_markdown(
                                    a.get("description") or "")}
                               for a in (shown.rubric if shown else [])],
                       rows=(draft or {}).get("rows", rows),
                       draft_body=(draft or {}).get("body", versions[0].body if versions
                                                    else ""),
                       draft_note=(draft or {}).get("note", ""),
                       may_manage=_may(principal, project, Action.MANAGE_CAMPAIGNS),
                       errors=errors or [], active="Campaigns")

    if principal is not None:
        try:
            return build(principal)
        except FeedbackloopError as exc:
            return error_page(request, exc.status, exc.message)
    return _signed_in(request, build)


def rubric_from(form: FormData, n_rows: int = 200) -> tuple[list[dict[str, Any]],
                                                             list[dict[str, Any]]]:
    """(the rubric anchors the form fills in, the rows as typed, to show them again)."""
    anchors, rows = [], []
    for i in range(n_rows):
        if f"rubric-{i}-value" not in form:
            break
        examples_text = _form_text(form, f"rubric-{i}-examples", 50000)
        row: dict[str, Any] = {
               "value": _form_text(form, f"rubric-{i}-value", 200).strip(),
               "fixed": _form_text(form, f"rubric-{i}-fixed", 5) == "1",
               "label": _form_text(form, f"rubric-{i}-label", 200).strip(),
               "description": _form_text(form, f"rubric-{i}-description", 5000).strip(),
               "examples": examples_text}
        rows.append(row)
        examples = [e.strip() for e in examples_text.splitlines() if e.strip()][:20]
        if not (row["label"] or row["description"] or examples):
            continue
        if not row["value"]:
            raise InvalidInput(f"rubric row {i + 1}: give the value the anchor describes",
                               field=f"rubric-{i}-value")
        value: Any = row["value"]
        try:
            number = float(value)
            value = int(number) if number.is_integer() else number
        except ValueError:
            pass
        anchors.append({"value": value, "label": row["label"],
                        "description": row["description"], "examples": examples})
    return anchors, rows


async def _add_guideline(request: Request, name: str, signal: str) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return _expired_form(request)
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, Action.MANAGE_CAMPAIGNS)
        body = _form_text(form, "body", 200_000)
        note = _form_text(form, "note", 5000)
        rows: list[dict[str, Any]] = []
        try:
            anchors, rows = rubric_from(form)
            for text in (body, note, signal):
                if "\x00" in text:
                    raise InvalidInput("text must not contain NUL characters", field="body")
            if not body.strip():
                raise InvalidInput("write the guideline text", field="body")
            create_guideline(store, project, signal, body, anchors, note=note,
                             created_by=principal.name)
        except InvalidInput as exc:
            return _guideline_page(request, name, signal, principal=principal,
                                   errors=[exc.message], status=422,
                                   draft={"body": body, "note": note, "rows": rows}
                                   if rows else {"body": body, "note": note})
        return RedirectResponse(f"{_base(project)}/signals/{_q(signal)}/guidelines",
                                status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


# -- the workspace ----------------------------------------------------------------------
def _guidelines_for(store: Store, project: Project,
                    signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    with store.read() as conn:
        for s in signals:
            version = s.get("guideline_version")
            try:
                g = get_guideline(conn, project, _signal_name(s), version)
            except NotFound:
                continue
            out.append({"signal": _signal_name(s), "version": g.version,
                        "body": render_markdown(g.body),
                        "rubric": [{**a, "description_html": render_markdown(
                            a.get("description") or ""),
                            "examples_html": [render_markdown(e)
                                              for e in a.get("examples") or []]}
                            for a in g.rubric]})
    return out


def _options(signal: dict[str, Any]) -> list[dict[str, str]]:
    """The choices of a scale or label signal with their keyboard shortcut."""
    t = signal.get("type")
    if t == "binary":
        return [{"value": "1", "label": "yes", "key": "1"},
                {"value": "0", "label": "no", "key": "0"}]
    if t == "ordinal":
        lo, hi = signal.get("scale_min"), signal.get("scale_max")
        if lo is None or hi is None or hi - lo > 50:
            return []
        values = list(range(int(lo), int(hi) + 1))
        direct = all(0 <= v <= 9 for v in values)
        return [{"value": str(v), "label": str(v),
                 "key": str(v) if direct else (str((k + 1) % 10) if k < 10 else "")}
                for k, v in enumerate(values)]
    if t == "categorical":
        return [{"value": label, "label": label, "key": str((k + 1) % 10) if k < 10 else ""}
                for k, label in enumerate(signal.get("labels") or [])]
    return []


def _side(interaction: dict[str, Any] | None) -> dict[str, Any]:
    return interaction or {}


def _signal_name(signal: dict[str, Any]) -> str:
    return str(signal.get("name") or signal.get("signal") or "")


def _workspace(request: Request, principal: Principal, name: str, campaign_id: int, *,
               errors: list[str] | None = None, kept: dict[str, Any] | None = None,
               status: int = 200) -> Response:
    store = _store(request)
    project = _readable_project(store, principal, name)
    principal.require(project.id, Action.ANNOTATE)
    campaign = _campaign_by_id(store, project, campaign_id)
    if principal.name not in campaign.raters:
        raise PermissionDenied(f"{principal.name!r} is not a rater of campaign "
                               f"{campaign.name!r}", field="rater")
    item = None
    if campaign.status == "active":
        item = next_item(store, project, campaign, principal.name)
    else:
        errors = [*(errors or []), "This campaign is closed."]
    with store.read() as conn:
        progress = rater_progress(conn, campaign, principal.name)
    view: dict[str, Any] | None = None
    if item is not None:
        # The form names answers by the signal's place in the campaign (answer-0, ...),
        # which is how the POST reads them back.
        served = {_signal_name(s): s for s in item.signals}
        signals = []
        for k, c in enumerate(campaign.signals):
            s = {**c, **served.get(c["signal"], {}), "signal": c["signal"], "index": k}
            signals.append({**s, "options": _options(s)})
        pairwise = item.interaction_b is not None
        left, right = ((item.interaction_b, item.interaction) if item.swapped
                       else (item.interaction, item.interaction_b))
        view = {"item": item, "signals": signals, "pairwise": pairwise,
                "left": _side(left), "right": _side(right),
                "guidelines": _guidelines_for(store, project, signals)}
    notice = {"saved": "Saved. Here is the next item.",
              "skipped": "Skipped. Here is the next item."}.get(
        request.query_params.get("done", ""))
    return _render(request, "workspace.html", status=status, principal=principal,
                   title=f"Work · {campaign.name} · {project.name}", project=project,
                   campaign=campaign, progress=progress, view=view, errors=errors or [],
                   kept=kept or {}, notice=notice if not errors else None,
                   active="Campaigns")


def _workspace_page(request: Request, name: str, campaign_id: int) -> Response:
    return _signed_in(request, lambda p: _workspace(request, p, name, campaign_id))


def answers_from(form: FormData, signals: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer to each signal of the campaign from the workspace form, as typed; a
    scale or label signal left unanswered is an error naming it."""
    answers: dict[str, Any] = {}
    for k, s in enumerate(signals):
        raw = _form_text(form, f"answer-{k}", 100_000)
        name, kind = s["signal"], s.get("type")
        if not raw.strip():
            if kind == "text":
                continue
            raise InvalidInput(f"choose a value for {name}", field=f"answer-{k}")
        if kind == "pairwise" and raw not in ("left", "right", "tie"):
            raise InvalidInput(f"{name}: choose left, right or tie", field=f"answer-{k}")
        if "\x00" in raw:
            raise InvalidInput(f"{name} must not contain NUL characters", field=name)
        answers[name] = raw.strip() if kind != "text" else raw
    if not answers:
        raise InvalidInput("give at least one answer", field="answer-0")
    return answers


async def _work_submit(request: Request, name: str, campaign_id: int) -> Response:
    form = await request.form()

    def build(principal: Principal) -> Response:
        if not csrf_valid(request, _form_text(form, "csrf", 200), signed_in=True):
            return _expired_form(request)
        store = _store(request)
        project = _readable_project(store, principal, name)
        principal.require(project.id, Action.ANNOTATE)
        campaign = _campaign_by_id(store, project, campaign_id)
        raw_id = _form_text(form, "assignment", 30)
        if not raw_id.isdigit() or not 0 < int(raw_id) < 2**63:
            return _workspace(request, principal, name, campaign_id, status=422,
                              errors=["the form names no assignment; reload the page"])
        assignment = int(raw_id)
        action = _form_text(form, "action", 20) or "submit"
        correction = _form_text(form, "correction", 100_000)
        comment = _form_text(form, "comment", 20_000)
        kept = {"correction": correction, "comment": comment,
                "answers": {k: _form_text(form, k, 1000) for k in form
                            if isinstance(k, str) and k.startswith("answer-")}}
        try:
            for text, field in ((correction, "correction"), (comment, "comment")):
                if "\x00" in text:
                    raise InvalidInput(f"{field} must not contain NUL characters",
                                       field=field)
            if action == "skip":
                reason = _form_text(form, "reason", 5000).strip()
                if not reason:
                    raise InvalidInput("say why you skip this item", field="reason")
                if "\x00" in reason:
                    raise InvalidInput("reason must not contain NUL characters",
                                       field="reason")
                skip(store, project, campaign, principal.name, assignment, reason)
                done = "skipped"
            else:
                answers = answers_from(form, campaign.signals)
                submit(store, project, campaign, principal.name, assignment, answers,
                       correction=correction if correction.strip() else None,
                       comment=comment if comment.strip() else None,
                       settings=request.app.state.settings)
                done = "saved"
        except (InvalidInput, Conflict, NotFound) as exc:
            return _workspace(request, principal, name, campaign_id, status=exc.status
                              if exc.status < 500 else 422, errors=[exc.message],
                              kept=kept)
        return RedirectResponse(f"{_base(project)}/campaigns/{campaign.id}/work?done={done}",
                                status_code=303)

    return await run_in_threadpool(_signed_in, request, build)


def install_annotation_pages(app: FastAPI) -> None:
    """Mount the Annotate stage's pages on ``app``."""
    # Comments are Markdown, rendered safely (raw HTML shown as text, safe links only).
    app.state.page_templates.filters["markdown"] = render_markdown
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/projects/{name}/annotate", _annotate_page, methods=["GET"],
                      name="annotate", **html)
    app.add_api_route("/projects/{name}/campaigns/new", _new_campaign_page, methods=["GET"],
                      name="campaign_new", **html)
    app.add_api_route("/projects/{name}/campaigns/new", _create_campaign, methods=["POST"],
                      name="campaign_create", **html)
    app.add_api_route("/projects/{name}/campaigns/{campaign_id:int}", _campaign_page,
                      methods=["GET"], name="campaign", **html)
    app.add_api_route("/projects/{name}/campaigns/{campaign_id:int}/aggregate",
                      _run_aggregation, methods=["POST"], name="campaign_aggregate", **html)
    app.add_api_route("/projects/{name}/campaigns/{campaign_id:int}/close", _close,
                      methods=["POST"], name="campaign_close", **html)
    app.add_api_route("/projects/{name}/campaigns/{campaign_id:int}/export", _export,
                      methods=["GET"], name="campaign_export", **html)
    app.add_api_route("/projects/{name}/campaigns/{campaign_id:int}/work", _workspace_page,
                      methods=["GET"], name="workspace", **html)
    app.add_api_route("/projects/{name}/campaigns/{campaign_id:int}/work", _work_submit,
                      methods=["POST"], name="workspace_submit", **html)
    # ``path``: a signal name may hold '/'.
    app.add_api_route("/projects/{name}/signals/{signal:path}/guidelines", _guideline_page,
                      methods=["GET"], name="guidelines", **html)
    app.add_api_route("/projects/{name}/signals/{signal:path}/guidelines", _add_guideline,
                      methods=["POST"], name="guideline_add", **html)
