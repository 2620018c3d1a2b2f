"""The JSON API of release governance: policies, gates, sign-offs, releases, rollback."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_release_router"]


def build_release_router() -> APIRouter:
    return APIRouter(prefix="/api/v1")
