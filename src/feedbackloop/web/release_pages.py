"""Pages: gates with their evidence and sign-offs, releases and their case studies."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_release_pages"]


def install_release_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
