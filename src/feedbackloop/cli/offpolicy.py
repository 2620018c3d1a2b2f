"""``feedbackloop offpolicy`` and ``feedbackloop experiment bandit …``."""

from __future__ import annotations

import typer

__all__ = ["register", "register_bandit"]


def register(app: typer.Typer) -> None:
    """Add ``offpolicy`` to the top-level command tree."""


def register_bandit(experiment: typer.Typer) -> None:
    """Add the bandit commands to the ``experiment`` group."""
