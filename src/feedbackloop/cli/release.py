"""``feedbackloop gate check|sign`` and ``feedbackloop release promote|rollback|list|show``:
release governance by risk tier."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
