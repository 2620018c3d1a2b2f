"""Scoring: the Scorer protocol, the plug-in registry and the built-in scorers."""

from .base import NEEDS, OUTPUT_TYPES, ScoreError, ScoreItem, Scorer, ScorerInfo

__all__ = ["NEEDS", "OUTPUT_TYPES", "ScoreError", "ScoreItem", "Scorer", "ScorerInfo"]
