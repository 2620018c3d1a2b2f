"""The FastAPI app factory: JSON API under /api/v1 and server-rendered pages."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from ..capture.schema import FeedbackIn, InteractionIn
from ..settings import Settings, load_settings
from ..store import Store
from .annotation_api import build_annotation_router
from .api import build_api_router
from .audit_api import build_audit_router
from .bandits_api import build_bandits_router
from .errors import RequestSizeLimit, install_error_handlers
from .evaluation_api import build_evaluation_router
from .experiments_api import build_experiments_router
from .fairness_api import build_fairness_router
from .improve_api import build_improve_router, build_resolve_router
from .release_api import build_release_router
from .triage_api import build_triage_router

__all__ = ["create_app"]

API_TITLE = "feedbackloop"
API_VERSION = "0.1.0"


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    """Build the app. Nothing is created at import time; the store is migrated if behind."""
    settings = settings or load_settings()
    store = store or Store.from_url(settings.resolved_database_url)
    store.ensure_schema()
    # No Swagger UI: it loads its scripts from a CDN. The schema is at openapi_url.
    app = FastAPI(title=API_TITLE, version=API_VERSION,
                  openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = store
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    install_error_handlers(app)
    app.include_router(build_api_router())
    app.include_router(build_evaluation_router())
    app.include_router(build_annotation_router())
    app.include_router(build_improve_router())
    app.include_router(build_resolve_router())
    app.include_router(build_experiments_router())
    app.include_router(build_bandits_router())
    app.include_router(build_triage_router())
    app.include_router(build_fairness_router())
    app.include_router(build_release_router())
    app.include_router(build_audit_router())
    app.openapi = lambda: _api_schema(app)  # type: ignore[method-assign]
    from .pages import install_pages

    install_pages(app)
    return app


def _api_schema(app: FastAPI) -> dict[str, Any]:
    """OpenAPI for the /api routes only, with the record schemas the batch bodies cite."""
    if app.openapi_schema is None:
        schema = get_openapi(title=API_TITLE, version=API_VERSION, routes=app.routes,
                             description="The feedbackloop JSON API. See docs/api.md.")
        schema["paths"] = {path: item for path, item in schema.get("paths", {}).items()
                           if path.startswith("/api/")}
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (InteractionIn, FeedbackIn):
            components[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}")
        app.openapi_schema = schema
    return app.openapi_schema
