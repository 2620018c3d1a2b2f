"""``serve``: the web pages and the JSON API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import Db, open_store

__all__ = ["register"]


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    db: Db = None,
) -> None:
    """Serve the web pages and the API (under /api/v1)."""
    import uvicorn

    from ..web.app import create_app

    with open_store(db) as (settings, store):
        uvicorn.run(create_app(settings, store), host=host, port=port, log_level="info")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
