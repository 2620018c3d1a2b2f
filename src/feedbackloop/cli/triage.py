"""``feedbackloop triage`` and ``feedbackloop findings``: route feedback, work the human
triage queue, theme comments, and manage the prioritised backlog of findings."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
