"""Pages: the audit log with its verification, and the provenance trace."""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install_audit_pages"]


def install_audit_pages(app: FastAPI) -> None:
    """Mount these pages on ``app``."""
