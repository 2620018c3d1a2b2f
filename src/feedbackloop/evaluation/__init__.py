"""Two-channel evaluation: how far automated metrics track human judgement, where they
disagree, and why (tags and the knowledge base)."""

from .pairs import EvaluationFilters
from .service import (
    EvaluationReport,
    check_comparable,
    evaluate,
    get_evaluation,
    list_evaluations,
)
from .tags import CAUSES, knowledge_base, tag_discrepancy, tags_for

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
