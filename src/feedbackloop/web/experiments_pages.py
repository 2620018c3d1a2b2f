"""The Test stage's pages: the experiment list, an experiment's page (per-arm table, lift
with its interval, the confidence sequence over time, SRM, guardrails, decision)."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_experiment_pages"]


def install_experiment_pages(app: FastAPI) -> None:
    """Mount the Test stage's pages on ``app``."""
