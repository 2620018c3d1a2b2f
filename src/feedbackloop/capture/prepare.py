"""Turning raw records into rows: validation, limits, redaction, pseudonymisation, hashing.

Everything here is pure (no database), so file imports can run it in worker processes
beside the writer. A record either becomes a :class:`Prepared` row or a :class:`Reject`
that names the record, the field and the reason.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from ..errors import InvalidInput
from .redact import PIIFound, Redactor, load_name_detector
from .schema import FeedbackIn, InteractionIn

__all__ = [
    "FeedbackPreparer",
    "InteractionPreparer",
    "Prepared",
    "Reject",
    "SignalSpec",
    "checked_text",
    "pseudonymise",
    "unstorable",
]

_SURROGATE = re.compile("[\ud800-\udfff]").search


def unstorable(value: str) -> bool:
    """NUL or an unpaired surrogate: PostgreSQL cannot store either. ``isascii`` is O(1)
    in CPython, so ASCII text pays one memchr."""
    return "\x00" in value or (not value.isascii() and _SURROGATE(value) is not None)

_INTERACTION_TEXT = ("input", "output", "reference", "error")
_FEEDBACK_TEXT = ("correction", "comment")


def checked_text(value: Any, field: str, limit: int, *, required: bool = False,
                 none_as_empty: bool = True) -> str:
    """Free text from a caller, checked before it is stored: a string (None reads as
    empty unless ``none_as_empty`` is off), not blank when required, at most ``limit``
    characters, storable. Errors name the field."""
    if value is None and none_as_empty:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    if required and not value.strip():
        raise InvalidInput(f"{field} is required", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit:,} characters", field=field)
    if unstorable(value):
        raise InvalidInput(f"{field} contains a NUL character or an unpaired surrogate",
                           field=field)
    return value


@dataclass(slots=True)
class Reject:
    """A record that was not stored. ``index`` is its position (batch index or file line)."""

    index: int
    id: str | None
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "id": self.id, "field": self.field,
                "message": self.message}


@dataclass(slots=True)
class Prepared:
    """A valid record: ``row`` holds the table's columns (bar project and links)."""

    index: int
    id: str
    row: dict[str, Any]
    content_hash: str
    extra: dict[str, Any] = field(default_factory=dict)


class _Invalid(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def sqlite_timestamp(value: datetime) -> str:
    """A UTC timestamp in the text form SQLAlchemy stores in SQLite (naive, microseconds),
    so that stored values compare and parse alike whoever wrote them."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def pseudonymise(key: bytes, value: str) -> str:
    """Keyed hash of an identifier: stable within a deployment, not reversible without the
    key, which lives in settings and never in the database. Keyed BLAKE2b is a MAC in its
    own right (RFC 7693) and four times cheaper than HMAC-SHA256 here."""
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), key=key[:64],
                             digest_size=16, person=b"fl-pseudonym").hexdigest()
    return "p_" + digest


def _content_hash(key: bytes, model: Any) -> str:
    # Defaults (None, and consent's False) are left out so that a record sent from CSV
    # (every column present) and from JSON (only some keys) hash alike when they say the
    # same thing. Keys are sorted so that the order of an object's keys does not matter.
    data = {k: v for k, v in model.__dict__.items() if v is not None and v is not False}
    blob = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.blake2b(blob, key=key[:64], digest_size=16).hexdigest()


def _raw_id(raw: Any) -> str | None:
    if isinstance(raw, Mapping):
        value = raw.get("id")
        if isinstance(value, str):
            return value[:200]
    return None


def _pydantic_reject(index: int, raw: Any, exc: ValidationError) -> Reject:
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(record)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return Reject(index, _raw_id(raw), loc, msg)


@dataclass
class _Base:
    policy: str = "redact"
    key: bytes = b""
    max_field_bytes: int = 100_000
    detect_names: bool = False
    # SQLite keeps timestamps as text: format them here, in the worker, not in the writer.
    sqlite_timestamps: bool = False
    _redactor: Redactor | None = field(default=None, init=False, repr=False)

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            names = load_name_detector() if self.detect_names else None
            self._redactor = Redactor(self.policy, self.key, names=names)
        return self._redactor

    def _timestamp(self, value: datetime | None) -> datetime | str | None:
        if value is None or not self.sqlite_timestamps:
            return value
        return sqlite_timestamp(value)

    def _pseudonym(self, value: str | None) -> str | None:
        # End users come back again and again: remember their pseudonyms.
        if value is None:
            return None
        cache: dict[str, str] = self.__dict__.setdefault("_pseudonyms", {})
        found = cache.get(value)
        if found is None:
            if len(cache) > 100_000:
                cache.clear()
            found = cache[value] = pseudonymise(self.key, value)
        return found

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_redactor"] = None
        state.pop("_pseudonyms", None)
        return state

    def _check_text(self, name: str, value: str) -> str:
        limit = self.max_field_bytes
        n = len(value)
        if n > limit or (n * 4 > limit and len(value.encode("utf-8", "surrogatepass")) > limit):
            raise _Invalid(name, f"text longer than the limit of {limit} bytes")
        if unstorable(value):
            raise _Invalid(name, "contains a NUL character or an unpaired surrogate")
        try:
            return self.redactor.redact(value)
        except PIIFound as found:
            raise _Invalid(name, f"contains PII ({found.kind}); the project's redaction "
                                 "policy is drop") from None

    def _check_json(self, name: str, value: Any, redact: bool = True) -> str:
        """The value (redacted) as JSON text, ready for a JSON column."""
        if redact:
            try:
                value = self.redactor.redact_json(value)
            except PIIFound as found:
                raise _Invalid(name, f"contains PII ({found.kind}); the project's redaction "
                                     "policy is drop") from None
        try:
            blob = orjson.dumps(value)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise _Invalid(name, f"not serialisable as JSON: {exc}") from None
        if len(blob) > self.max_field_bytes:
            raise _Invalid(name, f"JSON longer than the limit of {self.max_field_bytes} bytes")
        if b"\\u0000" in blob:
            raise _Invalid(name, "contains a NUL character")
        return blob.decode()


@dataclass
class InteractionPreparer(_Base):
    """Validates and transforms interaction records for one project."""

    def prepare(self, index: int, raw: Any) -> Prepared | Reject:
        if not isinstance(raw, Mapping):
            return Reject(index, None, "(record)", "must be a JSON object")
        try:
            rec = InteractionIn.model_validate(raw)
        except ValidationError as exc:
            return _pydantic_reject(index, raw, exc)
        try:
            row = self._row(rec)
        except _Invalid as bad:
            return Reject(index, rec.id, bad.field, bad.message)
        return Prepared(index, rec.id, row, _content_hash(self.key, rec))

    def _row(self, rec: InteractionIn) -> dict[str, Any]:
        if unstorable(rec.id):
            raise _Invalid("id", "contains a NUL character or an unpaired surrogate")
        texts = {name: getattr(rec, name) for name in _INTERACTION_TEXT}
        for name, value in texts.items():
            if value is not None:
                texts[name] = self._check_text(name, value)
        # JSON columns leave here as JSON text: the worker process pays for serialising,
        # not the writer.
        context: str | None = None
        if isinstance(rec.context, str):
            context = orjson.dumps(self._check_text("context", rec.context)).decode()
        elif rec.context is not None:
            context = self._check_json("context", rec.context)
        meta = self._check_json("metadata", rec.metadata) if rec.metadata is not None else None
        attrs: str | None = None
        if rec.attributes is not None:
            for k, v in rec.attributes.items():
                if isinstance(v, float) and not math.isfinite(v):
                    raise _Invalid(f"attributes.{k}", "must be a finite number")
            attrs = self._check_json("attributes", rec.attributes, redact=False)
        for name in ("model_version", "experiment", "arm"):
            value = getattr(rec, name)
            if value is not None and unstorable(value):
                raise _Invalid(name, "contains a NUL character or an unpaired surrogate")
        return {
            "client_id": rec.id,
            "timestamp": self._timestamp(rec.timestamp),
            "model_version": rec.model_version,
            "input": texts["input"],
            "output": texts["output"],
            "context": context,
            "reference": texts["reference"],
            "attributes": attrs,
            "user_id": self._pseudonym(rec.user_id),
            "session_id": self._pseudonym(rec.session_id),
            "latency_ms": rec.latency_ms,
            "error": texts["error"],
            "experiment": rec.experiment,
            "arm": rec.arm,
            "propensity": rec.propensity,
            "consent": rec.consent,
            "meta": meta,
        }


@dataclass(frozen=True, slots=True)
class SignalSpec:
    """What a feedback value must look like for one signal."""

    id: int
    name: str
    type: str
    scale_min: float | None = None
    scale_max: float | None = None
    labels: tuple[str, ...] | None = None


_TRUE = {"true", "1", "yes", "y", "up", "thumbs_up", "+1", "positive"}
_FALSE = {"false", "0", "no", "n", "down", "thumbs_down", "-1", "negative"}


def coerce_value(spec: SignalSpec, value: Any) -> tuple[Any, float | None, str | None]:
    """(typed value, numeric projection, text projection) for ``value`` under ``spec``;
    raises ``ValueError`` with the reason when the value does not fit."""
    t = spec.type
    if t == "binary":
        if isinstance(value, bool):
            b = value
        elif isinstance(value, int | float) and value in (0, 1):
            b = bool(value)
        elif isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            b = value.strip().lower() in _TRUE
        else:
            raise ValueError(f"signal {spec.name!r} is binary: give true or false")
        return b, 1.0 if b else 0.0, None
    if t in ("ordinal", "numeric"):
        if isinstance(value, bool):
            raise ValueError(f"signal {spec.name!r} is {t}: give a number, not a boolean")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError(f"signal {spec.name!r} is {t}: {value!r} is not a number") \
                    from None
        x = float(value)
        if not math.isfinite(x):
            raise ValueError("must be a finite number")
        if t == "ordinal" and not x.is_integer():
            raise ValueError(f"signal {spec.name!r} is ordinal: give a whole number")
        lo, hi = spec.scale_min, spec.scale_max
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            raise ValueError(f"{x:g} is outside the scale of signal {spec.name!r} "
                             f"[{lo:g}, {hi:g}]" if lo is not None and hi is not None else
                             f"{x:g} is outside the scale of signal {spec.name!r}")
        typed: Any = int(x) if t == "ordinal" else x
        return typed, x, None
    if t == "categorical":
        s = str(value) if not isinstance(value, bool) else str(value).lower()
        if spec.labels is not None and s not in spec.labels:
            raise ValueError(f"{s!r} is not a label of signal {spec.name!r}; "
                             f"labels: {', '.join(spec.labels)}")
        return s, None, s
    if t == "pairwise":
        choice = value.strip().lower() if isinstance(value, str) else ""
        mapping = {"a": 1.0, "b": 0.0, "tie": 0.5}
        if choice not in mapping:
            raise ValueError(f"signal {spec.name!r} is pairwise: give 'a', 'b' or 'tie'")
        return choice, mapping[choice], choice
    if t == "text":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"signal {spec.name!r} is text: give a non-empty string")
        return value, None, value
    raise ValueError(f"signal {spec.name!r} has unknown type {t!r}")


@dataclass
class FeedbackPreparer(_Base):
    """Validates and transforms feedback records for one project, given its signals."""

    signals: dict[str, SignalSpec] = field(default_factory=dict)
    allowed_sources: tuple[str, ...] | None = None

    def prepare(self, index: int, raw: Any) -> Prepared | Reject:
        if not isinstance(raw, Mapping):
            return Reject(index, None, "(record)", "must be a JSON object")
        try:
            rec = FeedbackIn.model_validate(raw)
        except ValidationError as exc:
            return _pydantic_reject(index, raw, exc)
        try:
            row = self._row(rec)
        except _Invalid as bad:
            return Reject(index, rec.id, bad.field, bad.message)
        return Prepared(index, rec.id, row, _content_hash(self.key, rec),
                        extra={"interaction_id": rec.interaction_id,
                               "interaction_id_b": rec.interaction_id_b})

    def _row(self, rec: FeedbackIn) -> dict[str, Any]:
        for name in ("id", "interaction_id", "interaction_id_b", "signal", "rater_id",
                     "guideline_version"):
            value = getattr(rec, name)
            if value is not None and unstorable(value):
                raise _Invalid(name, "contains a NUL character or an unpaired surrogate")
        if self.allowed_sources is not None and rec.source not in self.allowed_sources:
            raise _Invalid("source", f"this token may only send feedback with source "
                                     f"{' or '.join(self.allowed_sources)}")
        spec = self.signals.get(rec.signal)
        if spec is None:
            known = ", ".join(sorted(self.signals)) or "none defined"
            raise _Invalid("signal", f"unknown signal {rec.signal!r} (known: {known})")
        if spec.type == "pairwise" and rec.interaction_id_b is None:
            raise _Invalid("interaction_id_b", "required for a pairwise signal")
        if spec.type != "pairwise" and rec.interaction_id_b is not None:
            raise _Invalid("interaction_id_b", "only pairwise signals judge two interactions")
        if rec.interaction_id_b is not None and rec.interaction_id_b == rec.interaction_id:
            raise _Invalid("interaction_id_b", "must differ from interaction_id")
        try:
            value, num, text = coerce_value(spec, rec.value)
        except ValueError as exc:
            raise _Invalid("value", str(exc)) from None
        if spec.type == "text":
            value = text = self._check_text("value", value)
        elif text is not None and unstorable(text):
            raise _Invalid("value", "contains a NUL character or an unpaired surrogate")
        correction = self._check_text("correction", rec.correction) if rec.correction else \
            rec.correction
        comment = self._check_text("comment", rec.comment) if rec.comment else rec.comment
        rater = rec.rater_id
        if rec.source == "end_user":
            rater = self._pseudonym(rater)
        return {
            "client_id": rec.id,
            "signal_id": spec.id,
            "value": orjson.dumps(value).decode(),
            "value_num": num,
            "value_text": text,
            "source": rec.source,
            "rater_id": rater,
            "correction": correction,
            "comment": comment,
            "guideline_version": rec.guideline_version,
            "timestamp": self._timestamp(rec.timestamp),
        }


def now_or(ts: datetime | None, now: datetime) -> datetime:
    return ts if ts is not None else now
