"""The one error hierarchy of feedbackloop.

    FeedbackloopError                 500  something we did not expect
     ├── ConfigurationError           500  a setting is missing or wrong (CLI exit 2)
     ├── InvalidInput                 422  a request or record is malformed; names the field
     │    └── PayloadTooLarge         413  a batch or field over the configured limit
     ├── NotFound                     404  a project, signal, interaction... does not exist
     ├── Conflict                     409  the same id with different content, a name taken
     ├── AuthenticationFailed         401  no credentials, or credentials we do not know
     └── PermissionDenied             403  credentials valid, but not for this project or role

Domain code raises these; the web layer maps them to ``{"error": {"code", "message",
"details"}}`` and the CLI to exit codes. Domain code never raises HTTP exceptions.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationFailed",
    "ConfigurationError",
    "Conflict",
    "FeedbackloopError",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
]


class FeedbackloopError(Exception):
    """Base class. ``code`` is a stable machine-readable name, ``status`` the HTTP status."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {k: v for k, v in details.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class ConfigurationError(FeedbackloopError):
    code = "configuration_error"
    status = 500


class InvalidInput(FeedbackloopError):
    code = "invalid_input"
    status = 422

    def __init__(self, message: str, *, field: str | None = None, **details: Any) -> None:
        super().__init__(message, field=field, **details)
        self.field = field


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    status = 413


class NotFound(FeedbackloopError):
    code = "not_found"
    status = 404


class Conflict(FeedbackloopError):
    code = "conflict"
    status = 409


class AuthenticationFailed(FeedbackloopError):
    code = "authentication_failed"
    status = 401


class PermissionDenied(FeedbackloopError):
    code = "permission_denied"
    status = 403
