"""The JSON API of the Test stage: experiments (design, start, exposures, analysis,
decisions) and the SDK's assignment endpoint."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_experiments_router"]


def build_experiments_router() -> APIRouter:
    return APIRouter(prefix="/api/v1")
