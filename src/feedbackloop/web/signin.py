"""Web sign-in: the session cookie, the CSRF token of page forms, and safe ``next`` links.

The session cookie holds the session token from :func:`feedbackloop.access.sign_in`; the
server keeps only its hash, so signing out revokes it for good. Forms carry a CSRF token:
before sign-in it is the random value of a pre-session cookie (double submit, against
sign-in CSRF); after sign-in it is an HMAC of the session token, which a cross-site page
cannot compute because it cannot read the HttpOnly cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.responses import Response

from ..access import Principal, authenticate_token
from ..errors import AuthenticationFailed
from ..settings import Settings
from ..store import Store

__all__ = [
    "CSRF_COOKIE",
    "SESSION_COOKIE",
    "clear_session_cookie",
    "csrf_token",
    "csrf_valid",
    "ensure_csrf_cookie",
    "principal_from_cookie",
    "safe_next",
    "set_session_cookie",
    "sign_in_location",
]

SESSION_COOKIE = "fl_session"
CSRF_COOKIE = "fl_csrf"
_MAX_NEXT = 2000


def principal_from_cookie(request: Request) -> Principal | None:
    """The signed-in user, or None when the cookie is missing, unknown, revoked or expired."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    store: Store = request.app.state.store
    try:
        return authenticate_token(store, token, kind="session")
    except AuthenticationFailed:
        return None


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site, else ``/``: a crafted link must not send a
    user who just signed in to another host (``//evil``, ``/\\evil``, ``https://evil``)."""
    if not value or len(value) > _MAX_NEXT or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value or any(ord(ch) < 32 for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def sign_in_location(request: Request) -> str:
    """Where a signed-out visitor is sent: the sign-in page, coming back here afterwards."""
    here = request.url.path
    if request.url.query:
        here += "?" + request.url.query
    if here == "/":
        return "/sign-in"
    return "/sign-in?next=" + quote(safe_next(here), safe="")


def _cookie_flags(settings: Settings) -> dict[str, object]:
    return {"httponly": True, "samesite": "lax", "secure": settings.secure_cookies,
            "path": "/"}


def set_session_cookie(response: Response, settings: Settings, token: str) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.session_max_age_hours * 3600,
                        **_cookie_flags(settings))  # type: ignore[arg-type]
    response.delete_cookie(CSRF_COOKIE, **_cookie_flags(settings))  # type: ignore[arg-type]


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(SESSION_COOKIE, **_cookie_flags(settings))  # type: ignore[arg-type]


def _session_csrf(session_token: str) -> str:
    return hmac.new(session_token.encode(), b"feedbackloop-csrf", hashlib.sha256).hexdigest()


def csrf_token(request: Request, principal: Principal | None) -> str:
    """The token to put in this page's forms (see the module docstring)."""
    session = request.cookies.get(SESSION_COOKIE)
    if principal is not None and session:
        return _session_csrf(session)
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 43 and existing.replace("-", "").replace("_", "").isalnum():
        return existing
    fresh = getattr(request.state, "new_csrf", None)
    if fresh is None:
        fresh = secrets.token_urlsafe(32)
        request.state.new_csrf = fresh
    return str(fresh)


def ensure_csrf_cookie(request: Request, response: Response, settings: Settings) -> None:
    """Send the pre-session CSRF cookie if this request minted a new one."""
    fresh = getattr(request.state, "new_csrf", None)
    if fresh:
        response.set_cookie(CSRF_COOKIE, fresh, max_age=3600 * 24,
                            **_cookie_flags(settings))  # type: ignore[arg-type]


def csrf_valid(request: Request, submitted: str, *, signed_in: bool) -> bool:
    """Whether a form's token matches: the session HMAC when signed in, else the cookie."""
    if not submitted:
        return False
    if signed_in:
        session = request.cookies.get(SESSION_COOKIE)
        expected = _session_csrf(session) if session else ""
    else:
        expected = request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), submitted.encode())
