"""Scoring: the Scorer protocol, the plug-in registry and the built-in scorers.

Built-in scorer classes live in :mod:`.text`, :mod:`.safety`, :mod:`.format` and
:mod:`.reference`; get them by name through :func:`get_scorer`, as plug-ins are.
"""

from .base import NEEDS, OUTPUT_TYPES, ScoreError, ScoreItem, Scorer, ScorerInfo
from .conformance import ScorerConformanceError, check_scorer
from .registry import available_scorers, clear_scorer_cache, get_scorer, scorer_info

__all__ = [
    "NEEDS",
    "OUTPUT_TYPES",
    "ScoreError",
    "ScoreItem",
    "Scorer",
    "ScorerConformanceError",
    "ScorerInfo",
    "available_scorers",
    "check_scorer",
    "clear_scorer_cache",
    "get_scorer",
    "scorer_info",
]
