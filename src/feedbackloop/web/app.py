"""The FastAPI app factory: JSON API under /api/v1 and server-rendered pages."""

from __future__ import annotations

from fastapi import FastAPI

from ..settings import Settings, load_settings
from ..store import Store

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app. Nothing is created at import time; the store is migrated if behind."""
    settings = settings or load_settings()
    store = store or Store.from_url(settings.resolved_database_url)
    store.ensure_schema()
    app = FastAPI(title="feedbackloop", version="0.1.0",
                  openapi_url="/api/v1/openapi.json", docs_url="/api/v1/docs",
                  redoc_url=None)
    app.state.settings = settings
    app.state.store = store
    from .pages import install_pages

    install_pages(app)
    return app
