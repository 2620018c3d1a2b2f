"""The JSON API of fairness reports."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_fairness_router"]


def build_fairness_router() -> APIRouter:
    return APIRouter(prefix="/api/v1")
