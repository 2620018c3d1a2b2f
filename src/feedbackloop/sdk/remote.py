"""The remote transport: the HTTP batch API over httpx.

Records are checked against the wire contract (``InteractionIn`` / ``FeedbackIn``) before
they are queued, so a malformed record fails in the caller's hands; the server still
checks everything (signals, redaction, conflicts) and its per-record verdicts come back
in the flush result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic import ValidationError

from .. import errors
from ..capture.browse import FeedbackRecord, InteractionRecord
from ..capture.schema import FeedbackIn, InteractionIn
from ..errors import FeedbackloopError, InvalidInput
from .batching import Outcome, Refused, Retryable

__all__ = ["RemoteTransport", "check_record", "feedback_from_wire", "interaction_from_wire"]

_ERRORS: dict[str, type[FeedbackloopError]] = {
    cls.code: cls for cls in (errors.ConfigurationError, errors.InvalidInput,
                              errors.PayloadTooLarge, errors.NotFound, errors.Conflict,
                              errors.AuthenticationFailed, errors.PermissionDenied)
}
_BY_STATUS: dict[int, type[FeedbackloopError]] = {
    400: errors.InvalidInput, 401: errors.AuthenticationFailed,
    403: errors.PermissionDenied, 404: errors.NotFound, 409: errors.Conflict,
    413: errors.PayloadTooLarge, 422: errors.InvalidInput,
}
_INTERACTION_FIELDS = tuple(f.name for f in dataclasses.fields(InteractionRecord))
_FEEDBACK_FIELDS = tuple(f.name for f in dataclasses.fields(FeedbackRecord))


def check_record(kind: str, record: dict[str, Any]) -> None:
    """Raise :class:`InvalidInput` naming the record and the field when ``record`` breaks
    the wire contract."""
    model = InteractionIn if kind == "interaction" else FeedbackIn
    try:
        model.model_validate(record)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "(record)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        raise InvalidInput(f"{kind} {record.get('id')!r}: field {field!r}: {msg}",
                           field=field, id=record.get("id"), kind=kind) from None


def _when(value: Any) -> datetime:
    ts = datetime.fromisoformat(value) if isinstance(value, str) else value
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def interaction_from_wire(data: dict[str, Any]) -> InteractionRecord:
    """An :class:`InteractionRecord` from its JSON form (extra keys such as ``feedback``
    are ignored, so the API may grow without breaking old clients)."""
    values: dict[str, Any] = {name: data.get(name) for name in _INTERACTION_FIELDS}
    values["timestamp"] = _when(data["timestamp"])
    values["consent"] = bool(data.get("consent", False))
    return InteractionRecord(**values)


def feedback_from_wire(data: dict[str, Any]) -> FeedbackRecord:
    values: dict[str, Any] = {name: data.get(name) for name in _FEEDBACK_FIELDS}
    values["timestamp"] = _when(data["timestamp"])
    return FeedbackRecord(**values)


def error_from_response(response: httpx.Response) -> FeedbackloopError:
    """The exception the server meant, from its ``{"error": {...}}`` body."""
    try:
        body = response.json()["error"]
        code, message = body.get("code"), str(body.get("message"))
        details = dict(body.get("details") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message, details = None, response.text[:500] or response.reason_phrase, {}
    cls = _ERRORS.get(code or "") or _BY_STATUS.get(response.status_code, FeedbackloopError)
    details.setdefault("status", response.status_code)
    try:
        return cls(message, **details)
    except TypeError:  # details that clash with the constructor's own parameters
        return cls(message)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class RemoteTransport:
    """Talks to one project of a feedbackloop server."""

    def __init__(self, url: str, token: str, project: str, *, timeout: float,
                 max_retries: int, backoff: float) -> None:
        if not url.startswith(("http://", "https://")):
            raise FeedbackloopError(f"server URL must start with http:// or https://: {url!r}",
                                    field="url")
        if not token:
            raise FeedbackloopError("an API token is required", field="token")
        self.project = project
        self.max_retries = max_retries
        self.backoff = backoff
        self._base = f"/api/v1/projects/{quote(project, safe='')}"
        self._models: dict[tuple[Any, Any], Any] = {}
        self._http_options: dict[str, Any] = {
            "base_url": url.rstrip("/"), "timeout": timeout,
            "headers": {"Authorization": f"Bearer {token}", "User-Agent": "feedbackloop-sdk"}}
        self._http = httpx.Client(**self._http_options)
        self.describe = f"{url.rstrip('/')} project {project!r}"

    # -- writes ------------------------------------------------------------------------
    def check(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        check_record(kind, record)
        return record

    def send(self, kind: str, payloads: list[Any]) -> Sequence[Outcome]:
        path = f"{self._base}/{'interactions' if kind == 'interaction' else 'feedback'}/batch"
        body = orjson.dumps({"records": payloads})
        try:
            response = self._http.post(path, content=body,
                                       headers={"Content-Type": "application/json"})
        except httpx.TransportError as exc:  # connect, read, write errors and timeouts
            raise Retryable(f"{type(exc).__name__}: {exc}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise Retryable(f"HTTP {status}", _retry_after(response))
        if status not in (200, 207):
            err = error_from_response(response)
            raise Refused(f"HTTP {status} {err.code}: {err.message}", err.details.get("field"),
                          too_large=status == 413)
        try:
            results = response.json()["results"]
            by_index = {int(r["index"]): r for r in results}
        except (ValueError, KeyError, TypeError) as exc:
            # A garbled reply (a proxy's?) tells nothing about what was stored; sending
            # again is safe, ids make it idempotent.
            raise Retryable(f"unreadable reply to a batch: {exc!r}") from None
        outcomes: list[Outcome] = []
        for i in range(len(payloads)):
            r = by_index.get(i)
            if r is None:
                outcomes.append(("undelivered", None, "the server's reply omitted this record"))
            else:
                outcomes.append((r["status"], r.get("field"), r.get("message")))
        return outcomes

    # -- reads -------------------------------------------------------------------------
    def _get(self, path: str, params: Any = None) -> Any:
        return self._call("GET", path, params=params)

    def _call(self, method: str, path: str, *, raw: bool = False, **kwargs: Any) -> Any:
        """One API call; GETs are retried like batches (they change nothing). ``raw``: the
        body's bytes rather than its JSON."""
        attempt = 0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if method != "GET" or attempt >= self.max_retries:
                    raise FeedbackloopError(f"cannot reach the feedbackloop server: {exc}",
                                            url=str(self._http.base_url)) from None
                wait = None
            else:
                if response.status_code < 400:
                    return response.content if raw else response.json()
                retryable = response.status_code == 429 or response.status_code >= 500
                if method != "GET" or not retryable or attempt >= self.max_retries:
                    raise error_from_response(response)
                wait = _retry_after(response)
            attempt += 1
            step = min(self.backoff * 2 ** (attempt - 1), 30.0)
            time.sleep(wait if wait is not None else step / 2 + random.uniform(0, step / 2))

    def page_interactions(self, filters: dict[str, Any], limit: int,
                          cursor: str | None) -> tuple[list[InteractionRecord], str | None]:
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if cursor:
            params.append(("cursor", cursor))
        for key in ("model_version", "signal", "source", "experiment"):
            if filters.get(key) is not None:
                params.append((key, str(filters[key])))
        for key in ("since", "until"):
            if filters.get(key) is not None:
                params.append((key, _when(filters[key]).isoformat()))
        for key, value in (filters.get("attributes") or {}).items():
            params.append(("attribute", f"{key}:{value}"))
        body = self._get(f"{self._base}/interactions", params)
        return [interaction_from_wire(d) for d in body["items"]], body.get("next_cursor")

    def page_feedback(self, filters: dict[str, Any], limit: int,
                      cursor: str | None) -> tuple[list[FeedbackRecord], str | None]:
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if cursor:
            params.append(("cursor", cursor))
        for key in ("interaction_id", "signal", "source"):
            if filters.get(key) is not None:
                params.append((key, str(filters[key])))
        for key in ("since", "until"):
            if filters.get(key) is not None:
                params.append((key, _when(filters[key]).isoformat()))
        body = self._get(f"{self._base}/feedback", params)
        return [feedback_from_wire(d) for d in body["items"]], body.get("next_cursor")

    def get_interaction(self, interaction_id: str) -> InteractionRecord:
        body = self._get(f"{self._base}/interactions/{quote(interaction_id, safe='')}")
        return interaction_from_wire(body)

    def project_info(self) -> dict[str, Any]:
        return dict(self._get(self._base))

    # -- the model registry ----------------------------------------------------------------
    def resolve(self, component: str, unit_id: str,
                attributes: dict[str, Any] | None) -> dict[str, Any]:
        params = [("unit_id", unit_id)]
        params += [(f"attr.{k}", _attr_text(v)) for k, v in (attributes or {}).items()]
        return dict(self._get(f"{self._base}/models/{quote(component, safe='')}/resolve",
                              params))

    def load_model(self, component: str, name: str) -> Any:
        """The predictor of a version, from its artifact fetched over HTTP and checked
        against the registry's hash before it is loaded."""
        base = (f"{self._base}/models/{quote(component, safe='')}/versions/"
                f"{quote(name, safe='')}")
        info = self._get(base)
        key = (info.get("artifact_hash"), info.get("trainer"))
        cached = self._models.get(key)
        if cached is not None:
            return cached
        if not info.get("artifact_hash") or not info.get("trainer"):
            raise InvalidInput(f"version {name!r} of {component!r} has no artifact a trainer "
                               "can load", field="name")
        data = self._call("GET", f"{base}/artifact", raw=True)
        digest = hashlib.sha256(data).hexdigest()
        if digest != info["artifact_hash"]:
            raise errors.Conflict(f"the artifact of model version {component}/{name} does "
                                  f"not match its hash {info['artifact_hash']} (got "
                                  f"{digest}): refusing to load it", field="name")
        from ..improve.trainers.registry import get_trainer

        predictor = get_trainer(info["trainer"]).load(data)
        self._models[key] = predictor
        return predictor

    # -- experiments and bandits -----------------------------------------------------------
    def assign(self, experiment: str, unit_id: str,
               covariate: float | None) -> dict[str, Any]:
        body: dict[str, Any] = {"unit_id": unit_id}
        if covariate is not None:
            body["covariate"] = covariate
        return dict(self._call("POST", f"{self._base}/experiments/"
                                       f"{quote(experiment, safe='')}/assign", json=body))

    def choose(self, bandit: str, unit_id: str | None,
               context: dict[str, Any] | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if unit_id is not None:
            body["unit_id"] = unit_id
        if context is not None:
            body["context"] = context
        return dict(self._call("POST", f"{self._base}/bandits/{quote(bandit, safe='')}"
                                       "/choose", json=body))

    def reward(self, bandit: str, decision_id: int, reward: float) -> dict[str, Any]:
        return dict(self._call("POST", f"{self._base}/bandits/{quote(bandit, safe='')}"
                                       "/reward",
                               json={"decision_id": decision_id, "reward": reward}))

    def signals(self) -> list[dict[str, Any]]:
        body = self._get(f"{self._base}/signals")
        return list(body["items"] if isinstance(body, dict) else body)

    def create_signal(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("POST", f"{self._base}/signals", json=spec))

    def after_fork_in_child(self) -> None:
        # The pooled sockets are shared with the parent; the child gets its own pool and
        # leaves the inherited one alone (closing it would not disturb the parent, but
        # using it would interleave two processes' requests on one socket).
        self._http = httpx.Client(**self._http_options)

    def close(self) -> None:
        self._http.close()


def _attr_text(value: Any) -> str:
    # Toggle conditions compare JSON scalars as text: true/false, integers without ".0".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
