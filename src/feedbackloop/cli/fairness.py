"""``feedbackloop fairness``: stratified evaluation over a cohort attribute, with
fairness criteria and representation."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the command tree."""
