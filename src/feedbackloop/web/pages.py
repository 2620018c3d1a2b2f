"""Server-rendered pages (placeholder until the pages engineer fills it in)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from markupsafe import escape


def install_pages(app: FastAPI) -> None:
    """Mount the page routes and static files on ``app``."""


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An HTML error page (used by the app's error handler for non-API paths)."""
    return HTMLResponse(f"<h1>{status}</h1><p>{escape(message)}</p>", status_code=status)
