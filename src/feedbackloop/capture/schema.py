"""The wire contract: field names of interactions and feedback in JSON bodies, JSONL lines,
CSV columns (``attr.NAME`` for attributes) and Parquet columns. Documented in
``docs/capture.md``; changing a name here is a breaking change."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = [
    "FEEDBACK_FIELDS",
    "INTERACTION_FIELDS",
    "SIGNAL_TYPES",
    "SOURCES",
    "FeedbackIn",
    "InteractionIn",
    "SignalIn",
]

SOURCES = ("end_user", "annotator", "expert", "automated")
SIGNAL_TYPES = ("binary", "ordinal", "numeric", "categorical", "pairwise", "text")

Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(max_length=200)]
Scalar = str | int | float | bool


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 lies before year 1 in UTC
        raise ValueError("timestamp out of range") from None


class InteractionIn(BaseModel):
    """One thing the model did. ``id``, ``input`` and ``output`` are required."""

    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Client id: the idempotency key, unique in the project.")
    timestamp: datetime | None = Field(
        None, description="ISO 8601; a value without zone is UTC; default: now.")
    model_version: ShortText | None = Field(None, description="Version that produced output.")
    input: str = Field(description="What the model was given (prompt, query, item).")
    output: str = Field(description="What the model returned.")
    context: str | dict[str, Any] | list[Any] | None = Field(
        None, description="Optional context (retrieved passages, conversation).")
    reference: str | None = Field(None, description="Optional reference (ideal) output.")
    attributes: dict[ShortText, Scalar | None] | None = Field(
        None, description="Cohort attributes, e.g. locale, platform, segment.",
        max_length=100)
    user_id: ShortText | None = Field(None, description="End user id; stored pseudonymised.")
    session_id: ShortText | None = Field(None, description="Session id; stored pseudonymised.")
    latency_ms: float | None = Field(None, ge=0, description="Latency in milliseconds.")
    error: str | None = Field(None, description="Error text if the call failed.")
    experiment: ShortText | None = Field(None, description="Experiment id, if in one.")
    arm: ShortText | None = Field(None, description="Experiment arm served.")
    propensity: float | None = Field(
        None, gt=0, le=1, description="Probability with which the served arm was chosen.")
    consent: bool = Field(False, description="The user consented to use for training.")
    metadata: dict[str, Any] | None = Field(None, description="Free JSON metadata.")

    @field_validator("latency_ms", "propensity")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @field_validator("timestamp")
    @classmethod
    def _tz(cls, v: datetime | None) -> datetime | None:
        return _utc(v)


class FeedbackIn(BaseModel):
    """One judgement of an interaction (or of two, for ``pairwise`` signals)."""

    model_config = ConfigDict(extra="forbid")

    id: Id = Field(description="Client id: the idempotency key, unique in the project.")
    interaction_id: Id = Field(description="Client id of the judged interaction.")
    interaction_id_b: Id | None = Field(
        None, description="Second interaction of a pairwise judgement (output B).")
    signal: Id = Field(description="Name of a signal defined in the project.")
    value: Scalar = Field(description="The judgement; its type is set by the signal.")
    source: Literal["end_user", "annotator", "expert", "automated"] = Field(
        "end_user", description="Who judged.")
    rater_id: ShortText | None = Field(
        None, description="Rater id; pseudonymised when the source is end_user.")
    correction: str | None = Field(None, description="A corrected output.")
    comment: str | None = Field(None, description="Free-text comment.")
    guideline_version: ShortText | None = Field(None, description="Guideline version used.")
    timestamp: datetime | None = Field(None, description="ISO 8601; default: now.")

    @field_validator("timestamp")
    @classmethod
    def _tz(cls, v: datetime | None) -> datetime | None:
        return _utc(v)

    @field_validator("value")
    @classmethod
    def _finite_value(cls, v: Scalar) -> Scalar:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class SignalIn(BaseModel):
    """A named thing that is judged."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=100,
                                           pattern=r"^[A-Za-z0-9_.:-]+$")]
    type: Literal["binary", "ordinal", "numeric", "categorical", "pairwise", "text"]
    scale_min: float | None = Field(None, description="Lowest value (ordinal, numeric).")
    scale_max: float | None = Field(None, description="Highest value (ordinal, numeric).")
    labels: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        None, description="Allowed labels (categorical).", max_length=1000)
    description: Annotated[str, StringConstraints(max_length=5000)] = ""


INTERACTION_FIELDS = tuple(InteractionIn.model_fields)
FEEDBACK_FIELDS = tuple(FeedbackIn.model_fields)
