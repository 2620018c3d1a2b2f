"""Two-channel evaluation: how far automated metrics track human judgement, where they
disagree, and why (tags and the knowledge base).

Names load on first use: the statistics pull in scikit-learn (about a second), which every
CLI command would otherwise pay at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pairs import EvaluationFilters
    from .service import (
        EvaluationReport,
        check_comparable,
        evaluate,
        get_evaluation,
        list_evaluations,
    )
    from .tags import CAUSES, knowledge_base, tag_discrepancy, tags_for

_WHERE = {
    "EvaluationFilters": "pairs",
    "EvaluationReport": "service",
    "check_comparable": "service",
    "evaluate": "service",
    "get_evaluation": "service",
    "list_evaluations": "service",
    "CAUSES": "tags",
    "knowledge_base": "tags",
    "tag_discrepancy": "tags",
    "tags_for": "tags",
}

__all__ = [
    "CAUSES",
    "EvaluationFilters",
    "EvaluationReport",
    "check_comparable",
    "evaluate",
    "get_evaluation",
    "knowledge_base",
    "list_evaluations",
    "tag_discrepancy",
    "tags_for",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
