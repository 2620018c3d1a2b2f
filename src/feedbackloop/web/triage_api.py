"""The JSON API of triage: rules, routed items and the human queue, themes, findings."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_triage_router"]


def build_triage_router() -> APIRouter:
    return APIRouter(prefix="/api/v1")
