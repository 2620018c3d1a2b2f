"""The one error handler of the web app, and the request body size limit.

Every failure under ``/api/`` becomes ``{"error": {"code", "message", "details"}}`` with
``details.field`` naming the offending field where there is one; every other path gets the
HTML error page. Unexpected exceptions are logged and answered with a bare 500: no
traceback or exception text reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import AuthenticationFailed, FeedbackloopError

__all__ = ["RequestSizeLimit", "error_response", "install_error_handlers"]

log = logging.getLogger("feedbackloop.web")

# Codes for errors that Starlette raises itself (unknown route, wrong method, bad body).
_HTTP_CODES = {
    400: "bad_request",
    401: "authentication_failed",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
}
_LOCATIONS = ("body", "query", "path", "header", "cookie")
_MAX_LISTED_ERRORS = 20


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def error_response(request: Request, status: int, code: str, message: str,
                   details: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    """JSON in our shape under /api/, the HTML error page elsewhere."""
    if _is_api(request.url.path):
        body = {"error": {"code": code, "message": message, "details": details or {}}}
        return JSONResponse(body, status_code=status, headers=headers)
    from .pages import error_page

    page = error_page(request, status, message)
    for key, value in (headers or {}).items():
        page.headers[key] = value
    return page


def _field_of(loc: Any) -> str:
    """``("body", "records")`` → ``records``; the whole body (or a JSON position) → ``body``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _LOCATIONS:
        head, rest = parts[0], parts[1:]
        if head == "body" and rest and isinstance(loc[1], int):
            return "body"  # a character position in malformed JSON, not a field
        return ".".join(rest) or head
    return ".".join(parts) or "body"


def _is_json_request(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return ctype == "application/json" or ctype.endswith("+json")


async def _feedbackloop_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FeedbackloopError)
    if exc.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthenticationFailed) else None
    return error_response(request, exc.status, exc.code, exc.message, exc.details, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: list[dict[str, Any]] = [dict(e) for e in exc.errors()]
    first: dict[str, Any] = errors[0] if errors else {"loc": ("body",), "msg": "invalid request",
                                      "type": "invalid"}
    field = _field_of(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        message = "request body is not valid JSON" + (f": {detail}" if detail else "")
        return error_response(request, 400, "malformed_json", message, {"field": "body"})
    if field == "body" and request.method in ("POST", "PUT", "PATCH") \
            and not _is_json_request(request):
        return error_response(request, 415, "unsupported_media_type",
                              "send the request body as application/json",
                              {"field": "body"})
    listed = [{"field": _field_of(e.get("loc", ())), "message": str(e.get("msg", ""))}
              for e in errors[:_MAX_LISTED_ERRORS]]
    message = f"{field}: {first.get('msg', 'invalid value')}"
    return error_response(request, 422, "invalid_input", message,
                          {"field": field, "errors": listed})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 404 and exc.detail in (None, "Not Found"):
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    elif status == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        return error_response(request, 400, "malformed_json",
                              "request body is not valid UTF-8", {"field": "body"})
    else:
        message = str(exc.detail)
    code = _HTTP_CODES.get(status, "http_error")
    details = {"field": "body"} if status in (400, 413, 415) else {}
    return error_response(request, status, code, message, details, headers or None)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s raised an unexpected error", request.method, request.url.path,
              exc_info=exc)
    return error_response(request, 500, "internal_error",
                          "internal error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app`` (one per kind of failure, one shape for all)."""
    app.add_exception_handler(FeedbackloopError, _feedbackloop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


class RequestSizeLimit:
    """Pure ASGI middleware: a request body over ``max_bytes`` gets 413 before any route runs.

    The declared Content-Length is checked first; the body is then read here and counted,
    since a chunked upload declares no length. The body is buffered (the routes read it
    whole anyway) and replayed to the app, so an over-long body never reaches a route half
    read.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                declared = value
                break
        if declared is not None:
            if not declared.strip().isdigit():
                await self._reject(scope, receive, send, 400, "bad_request",
                                   "Content-Length is not a whole number")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away while sending; let the app see the disconnect.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._reject(scope, receive, send, 413, "payload_too_large",
                           f"request body larger than {self.max_bytes} bytes "
                           "(setting max_request_bytes)")

    async def _reject(self, scope: Scope, receive: Receive, send: Send, status: int,
                      code: str, message: str) -> None:
        request = Request(scope)
        response = error_response(request, status, code, message, {"field": "body"},
                                  {"Connection": "close"})
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
