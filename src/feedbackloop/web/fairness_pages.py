"""Pages: the fairness report over a cohort attribute."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_fairness_pages"]


def install_fairness_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
