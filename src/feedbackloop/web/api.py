"""The JSON API under /api/v1: projects, signals, batch ingest, browsing.

Routes are thin: they resolve the caller and the project (``deps``), call a capture
service, and shape the answer. Request and response models here are the published
contract (``docs/api.md``); the record schemas themselves are ``InteractionIn`` and
``FeedbackIn`` from ``capture.schema``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ..access import Action
from ..capture.browse import (
    InteractionFilter,
    decode_cursor,
    get_interaction,
    list_feedback,
    list_interactions,
    project_status,
)
from ..capture.ingest import BatchResult, Ingestor
from ..capture.projects import (
    create_project,
    get_signal,
    list_projects,
    list_signals,
)
from ..capture.projects import create_signal as create_signal_service
from ..capture.schema import SignalIn
from ..errors import InvalidInput, NotFound, PayloadTooLarge
from .deps import (
    CurrentPrincipal,
    FeedbackWriter,
    InteractionWriter,
    ProjectReader,
    SettingsDep,
    SignalManager,
    StoreDep,
    check_text,
    strict_query,
)

__all__ = ["build_api_router"]

Source = Literal["end_user", "annotator", "expert", "automated"]
_MAX_PK = 2**63 - 1  # a cursor naming a larger row id is forged, not merely stale


# -- response and request models -------------------------------------------------------
class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable name, e.g. invalid_input.")
    message: str = Field(description="What went wrong, for people.")
    details: dict[str, Any] = Field(description="`field` names the offending field.")


class ErrorOut(BaseModel):
    """Every error: 4xx for the caller's mistakes, 500 for ours."""

    error: ErrorBody


class HealthOut(BaseModel):
    status: Literal["ok"]


class ProjectOut(BaseModel):
    id: int
    name: str
    description: str
    risk_tier: str
    redaction_policy: str
    created_at: datetime


class ProjectList(BaseModel):
    items: list[ProjectOut]


class ProjectIn(BaseModel):
    """A new project. Names are 1-100 letters, digits, ``_``, ``.`` or ``-``."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100,
                                           pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: Annotated[str, StringConstraints(max_length=5000)] = ""
    risk_tier: Literal["low", "medium", "high"] = Field(
        "medium", description="Sets which roles must sign off a release.")
    redaction_policy: Literal["redact", "hash", "drop"] = Field(
        "redact", description="What happens to PII found in text: replaced by a "
        "placeholder, by a keyed hash, or the record is rejected.")


class SignalOut(BaseModel):
    name: str
    type: str
    scale_min: float | None
    scale_max: float | None
    labels: list[str] | None
    description: str


class SignalList(BaseModel):
    items: list[SignalOut]


class StatusOut(BaseModel):
    interactions: int
    feedback: int
    by_signal: dict[str, int]
    by_source: dict[str, int]
    by_model_version: dict[str, int]


def _records_schema(kind: str) -> dict[str, Any]:
    return {"items": {"$ref": f"#/components/schemas/{kind}"}}


class InteractionBatchIn(BaseModel):
    """Up to ``max_batch_records`` interactions; each is checked on its own."""

    model_config = ConfigDict(extra="forbid")

    records: list[Any] = Field(
        description="Interaction records (schema InteractionIn). A bad record is reported "
        "in the results and does not stop the others.",
        json_schema_extra=_records_schema("InteractionIn"))


class FeedbackBatchIn(BaseModel):
    """Up to ``max_batch_records`` feedback items; each is checked on its own."""

    model_config = ConfigDict(extra="forbid")

    records: list[Any] = Field(
        description="Feedback records (schema FeedbackIn). A bad record is reported in the "
        "results and does not stop the others.",
        json_schema_extra=_records_schema("FeedbackIn"))


class RecordResultOut(BaseModel):
    index: int = Field(description="Position of the record in `records`, from 0.")
    id: str | None = Field(description="The record's client id, when it had one.")
    status: Literal["accepted", "duplicate", "rejected"]
    field: str | None = Field(None, description="For a rejected record: the bad field.")
    message: str | None = Field(None, description="For a rejected record: why.")


class BatchOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[RecordResultOut]


Scalar = str | int | float | bool


class InteractionOut(BaseModel):
    id: str
    timestamp: datetime
    model_version: str | None
    input: str
    output: str
    context: Any
    reference: str | None
    attributes: dict[str, Scalar | None] | None
    user_id: str | None = Field(description="Pseudonymised.")
    session_id: str | None = Field(description="Pseudonymised.")
    latency_ms: float | None
    error: str | None
    experiment: str | None
    arm: str | None
    propensity: float | None
    consent: bool
    metadata: dict[str, Any] | None


class FeedbackOut(BaseModel):
    id: str
    interaction_id: str
    interaction_id_b: str | None
    signal: str
    value: Scalar | None
    source: str
    rater_id: str | None
    correction: str | None
    comment: str | None
    guideline_version: str | None
    timestamp: datetime


class InteractionDetailOut(InteractionOut):
    feedback: list[FeedbackOut] = Field(description="Every feedback item on it, newest first.")


class InteractionPage(BaseModel):
    items: list[InteractionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at "
                                    "the end.")


class FeedbackPage(BaseModel):
    items: list[FeedbackOut]
    next_cursor: str | None


# -- helpers ---------------------------------------------------------------------------
def _json(content: Any, status: int = 200) -> Response:
    """orjson straight to bytes: pages of 1000 records skip a second validation pass."""
    return Response(orjson.dumps(content), status_code=status,
                    media_type="application/json")


def _batch_response(result: BatchResult) -> Response:
    body = {**result.summary(), "results": [r.to_dict() for r in result.results]}
    return _json(body, 207 if result.rejected else 200)


def _check_batch_size(records: list[Any], limit: int) -> None:
    if len(records) > limit:
        raise PayloadTooLarge(
            f"{len(records)} records in one batch; at most {limit} (setting "
            "max_batch_records): split the batch", field="records", limit=limit)


def _check_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    _, pk = decode_cursor(cursor)
    if not 0 <= pk <= _MAX_PK:
        raise InvalidInput("malformed cursor; pass the next_cursor of a previous page",
                           field="cursor")
    return cursor


def _utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field} is out of range", field=field) from None


def _signal_id(conn: Any, project_id: int, name: str | None) -> int | None:
    if name is None:
        return None
    check_text(name, "signal")
    try:
        return get_signal(conn, project_id, name).id
    except NotFound:
        raise InvalidInput(f"no signal {name!r} in this project", field="signal") from None


def _attributes(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    out: dict[str, str] = {}
    for pair in pairs:
        check_text(pair, "attribute")
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise InvalidInput(f"attribute filter {pair!r} must look like KEY:VALUE",
                               field="attribute")
        out[key] = value
    return out


# pydantic alone would also take "0" or "1714560000" as a time; the API promises ISO 8601.
_ISO_8601 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?")


def _iso_8601(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_8601.fullmatch(value):
        raise ValueError("must be an ISO 8601 date and time, e.g. 2024-05-01T12:00:00Z")
    return value


IsoTime = Annotated[datetime, BeforeValidator(_iso_8601)]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=500,
                                     description="`next_cursor` of the previous page.")]
Since = Annotated[IsoTime | None, Query(description="Only from this time on (inclusive).")]
Until = Annotated[IsoTime | None, Query(description="Only before this time (exclusive).")]
Filter = Annotated[str | None, Query(max_length=200)]

# The errors any authenticated route may answer, so the schema documents them.
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token, or an unknown one."},
    403: {"model": ErrorOut, "description": "No access to this project, or role too low."},
    404: {"model": ErrorOut, "description": "Not found."},
    422: {"model": ErrorOut, "description": "Invalid input; `details.field` names it."},
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed JSON or invalid UTF-8."},
    409: {"model": ErrorOut, "description": "The name is taken."},
    413: {"model": ErrorOut, "description": "Request body or batch too large."},
    415: {"model": ErrorOut, "description": "Body not sent as application/json."},
}
_BATCH: dict[int | str, dict[str, Any]] = {
    200: {"description": "Every record was accepted or a duplicate."},
    207: {"model": BatchOut, "description": "Some records were rejected; the others were "
          "stored. See `results`."},
}


# -- routes ----------------------------------------------------------------------------
def build_api_router() -> APIRouter:
    """The /api/v1 routes (built per app, so nothing is created at import time)."""
    router = APIRouter(prefix="/api/v1")
    authed = APIRouter(responses=_ERRORS, dependencies=[Depends(strict_query)])

    @router.get("/health", response_model=HealthOut, tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness: answers without a token."""
        return {"status": "ok"}

    @authed.get("/projects", response_model=ProjectList, tags=["projects"])
    def get_projects(principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """The projects this token may see."""
        with store.read() as conn:
            found = list_projects(conn, principal.project_ids())
        return {"items": [p.to_dict() for p in found]}

    @authed.post("/projects", response_model=ProjectOut, status_code=201, tags=["projects"],
                 responses=_BODY_ERRORS)
    def post_project(body: ProjectIn, principal: CurrentPrincipal,
                     store: StoreDep) -> dict[str, Any]:
        """Create a project (instance admin tokens only)."""
        principal.require(0, Action.CREATE_PROJECT)
        check_text(body.description, "description")
        return create_project(store, body.name, description=body.description,
                              risk_tier=body.risk_tier,
                              redaction_policy=body.redaction_policy,
                              actor=principal.name).to_dict()

    @authed.get("/projects/{project}", response_model=ProjectOut, tags=["projects"])
    def get_one_project(project: ProjectReader) -> dict[str, Any]:
        """One project."""
        return project.to_dict()

    @authed.get("/projects/{project}/status", response_model=StatusOut, tags=["projects"])
    def get_status(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """Counts of interactions and feedback, by signal, source and model version."""
        with store.read() as conn:
            return project_status(conn, project.id)

    @authed.get("/projects/{project}/signals", response_model=SignalList, tags=["signals"])
    def get_signals(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """The signals defined in the project."""
        with store.read() as conn:
            return {"items": [s.to_dict() for s in list_signals(conn, project.id)]}

    @authed.post("/projects/{project}/signals", response_model=SignalOut, status_code=201,
                 tags=["signals"], responses=_BODY_ERRORS)
    def post_signal(project: SignalManager, body: SignalIn, principal: CurrentPrincipal,
                    store: StoreDep) -> dict[str, Any]:
        """Define a signal (needs the maintainer or admin role)."""
        check_text(body.description, "description")
        for label in body.labels or ():
            check_text(label, "labels")
        return create_signal_service(store, project, body, actor=principal.name).to_dict()

    @authed.post("/projects/{project}/interactions/batch", response_model=BatchOut,
                 tags=["capture"], responses={**_BODY_ERRORS, **_BATCH})
    def post_interactions(project: InteractionWriter, body: InteractionBatchIn,
                          store: StoreDep, settings: SettingsDep) -> Response:
        """Store a batch of interactions; one result per record, in order."""
        _check_batch_size(body.records, settings.max_batch_records)
        result = Ingestor(store, settings, project).interactions(body.records)
        return _batch_response(result)

    @authed.post("/projects/{project}/feedback/batch", response_model=BatchOut,
                 tags=["capture"], responses={**_BODY_ERRORS, **_BATCH})
    def post_feedback(project: FeedbackWriter, body: FeedbackBatchIn,
                      principal: CurrentPrincipal, store: StoreDep,
                      settings: SettingsDep) -> Response:
        """Store a batch of feedback; the ingest role may send end-user feedback only."""
        _check_batch_size(body.records, settings.max_batch_records)
        ingestor = Ingestor(store, settings, project,
                            allowed_sources=principal.allowed_feedback_sources(project.id))
        return _batch_response(ingestor.feedback(body.records))

    @authed.get("/projects/{project}/interactions", response_model=InteractionPage,
                tags=["browse"])
    def get_interactions(
            project: ProjectReader, store: StoreDep, limit: Limit = 100,
            cursor: Cursor = None, model_version: Filter = None,
            attribute: Annotated[list[str] | None, Query(
                description="KEY:VALUE; repeat to require several.")] = None,
            signal: Annotated[str | None, Query(
                max_length=200, description="Only interactions with feedback on it.")] = None,
            source: Annotated[Source | None, Query(
                description="Only interactions with feedback from this source.")] = None,
            since: Since = None, until: Until = None,
            experiment: Filter = None) -> Response:
        """Interactions, newest first, one page at a time."""
        where = InteractionFilter(
            model_version=check_text(model_version, "model_version"),
            attributes=_attributes(attribute), source=source,
            since=_utc(since, "since"), until=_utc(until, "until"),
            experiment=check_text(experiment, "experiment"))
        with store.read() as conn:
            where.signal_id = _signal_id(conn, project.id, signal)
            page = list_interactions(conn, project.id, limit=limit,
                                     cursor=_check_cursor(check_text(cursor, "cursor")),
                                     where=where)
        return _json({"items": [i.to_wire() for i in page.items],
                      "next_cursor": page.next_cursor})

    @authed.get("/projects/{project}/interactions/{interaction_id:path}",
                response_model=InteractionDetailOut, tags=["browse"])
    def get_one_interaction(
            project: ProjectReader, store: StoreDep,
            interaction_id: Annotated[str, PathParam(max_length=200)]) -> Response:
        """One interaction with all its feedback."""
        check_text(interaction_id, "interaction_id")
        with store.read() as conn:
            found = get_interaction(conn, project.id, interaction_id)
            items: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = list_feedback(conn, project.id, limit=1000, cursor=cursor,
                                     interaction_id=interaction_id)
                items.extend(f.to_wire() for f in page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return _json({**found.to_wire(), "feedback": items})

    @authed.get("/projects/{project}/feedback", response_model=FeedbackPage,
                tags=["browse"])
    def get_feedback(
            project: ProjectReader, store: StoreDep, limit: Limit = 100,
            cursor: Cursor = None, interaction_id: Filter = None,
            signal: Annotated[str | None, Query(max_length=200)] = None,
            source: Annotated[Source | None, Query()] = None,
            since: Since = None, until: Until = None) -> Response:
        """Feedback, newest first, one page at a time."""
        with store.read() as conn:
            page = list_feedback(
                conn, project.id, limit=limit,
                cursor=_check_cursor(check_text(cursor, "cursor")),
                interaction_id=check_text(interaction_id, "interaction_id"),
                signal_id=_signal_id(conn, project.id, signal), source=source,
                since=_utc(since, "since"), until=_utc(until, "until"))
        return _json({"items": [f.to_wire() for f in page.items],
                      "next_cursor": page.next_cursor})

    router.include_router(authed)
    return router
