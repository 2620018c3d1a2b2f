"""Annotate: versioned guidelines, campaigns that choose items by selection policies,
assignment with overlap, leases and hidden gold items (see docs/annotation.md).

Submodules are imported on use; this package imports nothing heavy at import time.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Campaign",
    "CampaignSpec",
    "Guideline",
    "WorkItem",
    "campaign_status",
    "close_campaign",
    "create_campaign",
    "create_guideline",
    "export_campaign",
    "get_campaign",
    "get_guideline",
    "list_campaigns",
    "list_guidelines",
    "next_item",
    "parse_spec",
    "rater_progress",
    "render_markdown",
    "skip",
    "submit",
]

_WHERE = {
    "Guideline": "guidelines", "create_guideline": "guidelines",
    "get_guideline": "guidelines", "list_guidelines": "guidelines",
    "Campaign": "campaigns", "CampaignSpec": "campaigns", "campaign_status": "campaigns",
    "close_campaign": "campaigns", "create_campaign": "campaigns",
    "export_campaign": "campaigns", "get_campaign": "campaigns",
    "list_campaigns": "campaigns", "parse_spec": "campaigns",
    "WorkItem": "assignment", "next_item": "assignment", "rater_progress": "assignment",
    "skip": "assignment", "submit": "assignment",
    "render_markdown": "markdown",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
