"""The JSON API of the audit log (entries, verify) and provenance (trace)."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["build_audit_router"]


def build_audit_router() -> APIRouter:
    return APIRouter(prefix="/api/v1")
