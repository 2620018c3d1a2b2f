"""Pages: the triage queue, themes, the ranked backlog and a finding."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_triage_pages"]


def install_triage_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
