"""The JSON API of the Annotate stage: guidelines, campaigns, a rater's queue (next item,
submit, skip), agreement and label aggregation.

Reading needs a role that may read the project; working a queue needs ``Action.ANNOTATE``
and a token tied to a user (the rater is that user: a campaign names its raters by
username); guidelines, campaigns and aggregation runs need ``Action.MANAGE_CAMPAIGNS``.
Routes are thin: the services of :mod:`feedbackloop.annotation` do the work and raise the
errors of :mod:`feedbackloop.errors`, which the one error handler turns into JSON.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..access import Action, Principal
from ..annotation.aggregate import aggregate, get_aggregation, latest_aggregation
from ..annotation.assignment import next_item, rater_progress, skip, submit
from ..annotation.campaigns import (
    Campaign,
    CampaignSpec,
    campaign_status,
    close_campaign,
    create_campaign,
    export_campaign,
    get_campaign,
    list_campaigns,
    parse_spec,
)
from ..annotation.guidelines import create_guideline, get_guideline, list_guidelines
from ..annotation.reliability import project_agreement
from ..capture.projects import Project
from ..errors import NotFound, PermissionDenied
from ..store import Store
from .api import _BODY_ERRORS, _ERRORS
from .deps import (
    CurrentPrincipal,
    ProjectReader,
    SettingsDep,
    StoreDep,
    _bearer,
    check_text,
    project_with,
    strict_query,
)

__all__ = ["EXPORT_COLUMNS", "build_annotation_router", "campaign_spec_from", "json_safe"]

Annotator = Annotated[Project, Depends(project_with(Action.ANNOTATE))]
CampaignManager = Annotated[Project, Depends(project_with(Action.MANAGE_CAMPAIGNS))]

Text100 = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200)]
SignalName = Annotated[str, Path(max_length=200, description="Signal name.")]
CampaignRef = Annotated[str, Path(max_length=100, description="Campaign name or id.")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="Guideline version.")]
AssignmentId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Assignment id.")]
AggregationId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Aggregation id.")]
Scalar = str | int | float | bool
Method = Literal["majority", "dawid-skene", "mean", "bradley-terry"]
POLICIES = ("random", "stratified", "uncertainty", "disagreement", "recheck")

EXPORT_COLUMNS = ("campaign", "item", "interaction", "interaction_b", "rater", "signal",
                  "value", "guideline_version", "is_gold", "gold_value", "swapped", "policy",
                  "leased_at", "finished_at", "correction", "comment", "skip_reason")


# -- request bodies ---------------------------------------------------------------------
class RubricAnchorIn(BaseModel):
    """One anchor of the rubric: a value of the signal, its label, what it means, and
    examples."""

    model_config = ConfigDict(extra="forbid")

    value: Scalar = Field(description="A value of the signal (a scale point, a label, "
                          "'a'|'b'|'tie' for pairwise, 0/1 for binary).")
    label: Annotated[str, StringConstraints(max_length=200)] = ""
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    examples: list[Annotated[str, StringConstraints(max_length=5000)]] = Field(
        default_factory=list, max_length=20)


class GuidelineIn(BaseModel):
    """The next version of a signal's guideline (versions are never edited)."""

    model_config = ConfigDict(extra="forbid")

    body: Annotated[str, StringConstraints(min_length=1, max_length=200_000)] = Field(
        description="Markdown. Raw HTML is shown as text.")
    rubric: list[RubricAnchorIn] = Field(default_factory=list, max_length=100)
    note: Annotated[str, StringConstraints(max_length=5000)] = Field(
        "", description="What changed from the previous version.")


class CampaignIn(BaseModel):
    """A campaign: what to annotate, by whom, how many items and how they are chosen.
    The fields are those of ``annotation.campaigns.CampaignSpec``."""

    model_config = ConfigDict(extra="forbid")

    name: Text100
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    kind: Literal["standard", "calibration"] = "standard"
    signals: list[Text200] = Field(min_length=1, max_length=20)
    guideline_versions: dict[Text200, Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        default_factory=dict, max_length=20,
        description="Guideline version per signal; default the latest.")
    raters: list[Text100] = Field(min_length=1, max_length=1000, description="Usernames.")
    budget: int = Field(ge=1, le=1_000_000, description="Items to select (gold excluded).")
    overlap: int = Field(1, ge=1, le=100, description="Distinct raters per item.")
    gold_rate: float = Field(0.0, ge=0.0, le=0.5,
                             description="Share of served items that are hidden gold.")
    policy: dict[Literal["random", "stratified", "uncertainty", "disagreement", "recheck"],
                 Annotated[float, Field(ge=0.0, le=1000.0)]] | Literal[
        "random", "stratified", "uncertainty", "disagreement", "recheck"] = Field(
        "random", description="One policy, or a mix of weights.")
    options: dict[Annotated[str, StringConstraints(max_length=100)], Any] = Field(
        default_factory=dict, max_length=50,
        description="Policy options and filters (metric, human, threshold, by, before, "
        "model_version, since, until, attributes, versions).")
    lease_minutes: int = Field(30, ge=1, le=7 * 24 * 60)
    drift_threshold: float = Field(0.6, ge=-1.0, le=1.0)
    seed: int = Field(0, ge=0, lt=2**32)


class SubmitIn(BaseModel):
    """A rater's answers for one assignment: a value per signal of the campaign. Pairwise
    answers are 'a' | 'b' | 'tie', or 'left' | 'right' as shown."""

    model_config = ConfigDict(extra="forbid")

    answers: dict[Text200, Scalar] = Field(min_length=1, max_length=20)
    correction: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    comment: Annotated[str, StringConstraints(max_length=20_000)] | None = None


class SkipIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(min_length=1, max_length=5000)]


class AggregationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: Text200
    method: Method
    campaign: Text100 | None = None
    seed: int = Field(0, ge=0, lt=2**32)


# -- helpers ----------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """Datetimes to ISO text and NaN/inf to null, recursively, so a body never carries a
    NaN printed as a number."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and (value != value or value in (float("inf"),
                                                                  float("-inf"))):
        return None
    return value


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(json_safe(content)), status_code=status,
                    media_type="application/json")


def _texts(values: Any, field: str) -> None:
    """NUL and lone surrogates anywhere in a nested body: a clear 422, never a 500."""
    if isinstance(values, str):
        check_text(values, field)
    elif isinstance(values, dict):
        for k, v in values.items():
            _texts(k, field)
            _texts(v, field)
    elif isinstance(values, list | tuple):
        for v in values:
            _texts(v, field)


def campaign_spec_from(data: dict[str, Any]) -> CampaignSpec:
    """``data`` as a :class:`CampaignSpec`; a rule the spec adds becomes InvalidInput."""
    for field in ("name", "description", "signals", "guideline_versions", "raters",
                  "options"):
        _texts(data.get(field), field)
    return parse_spec(data)


def _campaign(store: Store, project: Project, ref: str) -> Campaign:
    check_text(ref, "campaign")
    with store.read() as conn:
        return get_campaign(conn, project, ref)


def rater_of(store: Store, principal: Principal,
             credentials: HTTPAuthorizationCredentials | None) -> str:
    """The rater behind a request: the signed-in user, or the user an API token was made
    for (``feedbackloop tokens create --user NAME``). A token made for no user cannot work
    a queue: raters are users."""
    if principal.user_id is not None:
        return principal.name
    raise PermissionDenied("this token is not tied to a user; a campaign's queue is worked "
                           "by its raters, who use a token made for them (feedbackloop "
                           "tokens create --user NAME)", field="rater")


def _csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in EXPORT_COLUMNS})
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return orjson.dumps(json_safe(value)).decode()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # no formula injection when the file is opened in a spreadsheet
    return value


def _jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for row in rows:
        yield orjson.dumps(json_safe(row)) + b"\n"


def export_response(store: Store, project: Project, campaign: Campaign,
                    fmt: str) -> StreamingResponse:
    """The campaign's annotations as a download (JSONL or CSV)."""
    rows = list(export_campaign(store, project, campaign))  # read inside the request
    filename = f"campaign-{campaign.id}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "csv":
        return StreamingResponse(_csv(iter(rows)), media_type="text/csv; charset=utf-8",
                                 headers=headers)
    return StreamingResponse(_jsonl(iter(rows)), media_type="application/x-ndjson",
                             headers=headers)


# -- routes -----------------------------------------------------------------------------
def build_annotation_router() -> APIRouter:
    """The annotation routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["annotation"])

    # guidelines
    @router.get("/signals/{signal}/guidelines")
    def get_guidelines(signal: SignalName, project: ProjectReader,
                       store: StoreDep) -> Response:
        """Every version of the signal's guideline, newest first."""
        check_text(signal, "signal")
        with store.read() as conn:
            found = list_guidelines(conn, project, signal)
        return _json({"items": [g.to_dict() for g in found]})

    @router.get("/signals/{signal}/guidelines/{version}")
    def get_one_guideline(signal: SignalName, version: Version, project: ProjectReader,
                          store: StoreDep) -> Response:
        """One version of the signal's guideline."""
        check_text(signal, "signal")
        with store.read() as conn:
            return _json(get_guideline(conn, project, signal, version).to_dict())

    @router.post("/signals/{signal}/guidelines", status_code=201, responses=_BODY_ERRORS)
    def post_guideline(signal: SignalName, body: GuidelineIn, project: CampaignManager,
                       principal: CurrentPrincipal, store: StoreDep) -> Response:
        """Add the next version of the signal's guideline (maintainers)."""
        check_text(signal, "signal")
        rubric = [a.model_dump() for a in body.rubric]
        _texts([body.body, body.note], "body")
        _texts(rubric, "rubric")
        made = create_guideline(store, project, signal, body.body, rubric, note=body.note,
                                created_by=principal.name[:100])
        return _json(made.to_dict(), 201)

    # campaigns
    @router.get("/campaigns")
    def get_campaigns(project: ProjectReader, store: StoreDep) -> Response:
        """The project's campaigns."""
        with store.read() as conn:
            found = list_campaigns(conn, project)
        return _json({"items": [c.to_dict() for c in found]})

    @router.post("/campaigns", status_code=201, responses=_BODY_ERRORS)
    def post_campaign(body: CampaignIn, project: CampaignManager,
                      principal: CurrentPrincipal, store: StoreDep) -> Response:
        """Create a campaign: selects its items and makes it ready for the raters."""
        spec = campaign_spec_from(body.model_dump())
        made = create_campaign(store, project, spec, created_by=principal.name[:100])
        return _json(made.to_dict(), 201)

    @router.get("/campaigns/{campaign}")
    def get_one_campaign(campaign: CampaignRef, project: ProjectReader,
                         store: StoreDep) -> Response:
        """One campaign's definition."""
        return _json(_campaign(store, project, campaign).to_dict())

    @router.get("/campaigns/{campaign}/status")
    def get_campaign_status(campaign: CampaignRef, project: ProjectReader,
                            store: StoreDep) -> Response:
        """Progress: items, assignments by status, per rater, by policy."""
        found = _campaign(store, project, campaign)
        return _json(campaign_status(store, project, found))

    @router.get("/campaigns/{campaign}/export",
                responses={200: {"content": {"application/x-ndjson": {}, "text/csv": {}},
                                 "description": "One row per annotation or skip."}})
    def get_export(campaign: CampaignRef, project: CampaignManager, store: StoreDep,
                   format: Annotated[Literal["jsonl", "csv"], Query(
                       description="jsonl (default) or csv.")] = "jsonl") -> Response:
        """The campaign's annotations, with gold answers: maintainers only."""
        found = _campaign(store, project, campaign)
        return export_response(store, project, found, format)

    @router.post("/campaigns/{campaign}/close")
    def post_close(campaign: CampaignRef, project: CampaignManager,
                   principal: CurrentPrincipal, store: StoreDep) -> Response:
        """Close the campaign: no more items are served."""
        found = _campaign(store, project, campaign)
        return _json(close_campaign(store, project, found, actor=principal.name).to_dict())

    # the caller's queue
    @router.get("/campaigns/{campaign}/next")
    def get_next(campaign: CampaignRef, project: Annotator, principal: CurrentPrincipal,
                 store: StoreDep, credentials: Annotated[
                     HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Response:
        """The caller's next item (an open lease is resumed), or null when the queue is
        done; with the caller's progress."""
        rater = rater_of(store, principal, credentials)
        found = _campaign(store, project, campaign)
        item = next_item(store, project, found, rater)
        with store.read() as conn:
            progress = rater_progress(conn, found, rater)
        return _json({"item": item.to_dict() if item is not None else None,
                      "progress": progress})

    @router.post("/campaigns/{campaign}/assignments/{assignment}/submit",
                 responses=_BODY_ERRORS)
    def post_submit(campaign: CampaignRef, assignment: AssignmentId, body: SubmitIn,
                    project: Annotator, principal: CurrentPrincipal, store: StoreDep,
                    settings: SettingsDep,
                    credentials: Annotated[HTTPAuthorizationCredentials | None,
                                           Depends(_bearer)]) -> Response:
        """Submit the answers for one of the caller's assignments."""
        rater = rater_of(store, principal, credentials)
        _texts(dict(body.answers), "answers")
        check_text(body.correction, "correction")
        check_text(body.comment, "comment")
        found = _campaign(store, project, campaign)
        result = submit(store, project, found, rater, assignment, dict(body.answers),
                        correction=body.correction, comment=body.comment,
                        settings=settings)
        return _json(result)

    @router.post("/campaigns/{campaign}/assignments/{assignment}/skip",
                 responses=_BODY_ERRORS)
    def post_skip(campaign: CampaignRef, assignment: AssignmentId, body: SkipIn,
                  project: Annotator, principal: CurrentPrincipal, store: StoreDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None,
                                         Depends(_bearer)]) -> Response:
        """Skip one of the caller's assignments, with a reason."""
        rater = rater_of(store, principal, credentials)
        check_text(body.reason, "reason")
        found = _campaign(store, project, campaign)
        skip(store, project, found, rater, assignment, body.reason)
        return _json({"assignment": assignment, "skipped": True})

    # agreement and aggregation
    @router.get("/agreement")
    def get_agreement(project: ProjectReader, store: StoreDep,
                      signal: Annotated[str, Query(min_length=1, max_length=200)],
                      campaign: Annotated[str | None, Query(max_length=100)] = None,
                      seed: Annotated[int, Query(ge=0, lt=2**32)] = 0) -> Response:
        """Inter-rater agreement on a signal (alpha with its 95 % interval, kappa, AC1/AC2,
        per-rater consensus agreement, gold accuracy and drift)."""
        check_text(signal, "signal")
        found = _campaign(store, project, campaign) if campaign else None
        return _json(project_agreement(store, project, signal, campaign=found, seed=seed))

    @router.post("/aggregations", status_code=201, responses=_BODY_ERRORS)
    def post_aggregation(body: AggregationIn, project: CampaignManager,
                         principal: CurrentPrincipal, store: StoreDep) -> Response:
        """Aggregate the signal's ratings into one label per item, and save the run."""
        check_text(body.signal, "signal")
        found = _campaign(store, project, body.campaign) if body.campaign else None
        result = aggregate(store, project, body.signal, body.method, campaign=found,
                           created_by=principal.name[:100], seed=body.seed)
        return _json(result, 201)

    @router.get("/aggregations/latest")
    def get_latest_aggregation(project: ProjectReader, store: StoreDep,
                               signal: Annotated[str, Query(min_length=1, max_length=200)],
                               campaign: Annotated[str | None, Query(max_length=100)] = None
                               ) -> Response:
        """The newest saved aggregation of the signal (in the campaign, if named)."""
        check_text(signal, "signal")
        found = _campaign(store, project, campaign) if campaign else None
        with store.read() as conn:
            result = latest_aggregation(conn, project, signal, campaign=found)
        if result is None:
            raise NotFound(f"no aggregation of {signal!r} yet", field="signal")
        return _json(result)

    @router.get("/aggregations/{aggregation}")
    def get_one_aggregation(aggregation: AggregationId, project: ProjectReader,
                            store: StoreDep) -> Response:
        """One saved aggregation with its labels."""
        with store.read() as conn:
            return _json(get_aggregation(conn, project, aggregation))

    return router
