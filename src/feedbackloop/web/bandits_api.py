"""The JSON API of bandits: create, choose (an arm, logged with its propensity), reward,
status; and off-policy evaluation of a candidate policy from logged decisions."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_bandits_router"]


def build_bandits_router() -> APIRouter:
    return APIRouter(prefix="/api/v1")
