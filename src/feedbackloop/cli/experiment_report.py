"""``feedbackloop experiment report``: an experiment's HTML or Markdown report."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(experiment: typer.Typer) -> None:
    """Add this module's commands to the ``experiment`` group."""
