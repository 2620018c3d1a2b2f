"""``feedbackloop audit verify|list`` and ``feedbackloop trace``: the audit log and the
provenance graph."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
