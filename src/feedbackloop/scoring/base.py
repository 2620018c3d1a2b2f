"""The Scorer protocol: what an automated metric must say about itself and how it is called.

A scorer turns interactions into values of one signal type. It declares what it reads
(``needs``), its output type (a signal type), and a ``version`` that changes whenever its
output for the same input could change: results are cached by (name, version, content
hash of what it reads), so a stale version would serve stale scores.

Scorers are called in batches (embedding models and LLM judges are much cheaper per item in
a batch). ``score`` returns one entry per item: the value, or a :class:`ScoreError` for an
item that could not be scored. A scorer may also raise; the engine then scores the batch's
items one by one to isolate the failure. Either way one bad item never stops a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["NEEDS", "OUTPUT_TYPES", "ScoreError", "ScoreItem", "Scorer", "ScorerInfo"]

NEEDS = ("input", "output", "reference", "context")
# Signal types a scorer may produce (pairwise judgements are made by people).
OUTPUT_TYPES = ("binary", "ordinal", "numeric", "categorical", "text")


@dataclass(frozen=True, slots=True)
class ScoreItem:
    """What a scorer sees of one interaction. ``context`` is text or JSON as stored."""

    input: str
    output: str
    reference: str | None = None
    context: Any = None


@dataclass(frozen=True, slots=True)
class ScoreError:
    """An item that could not be scored, with the reason (stored per item)."""

    message: str


@dataclass(frozen=True)
class ScorerInfo:
    """A scorer's self-description: the signal its results are stored under."""

    name: str
    version: str
    output_type: str
    needs: frozenset[str]
    description: str = ""
    scale_min: float | None = None
    scale_max: float | None = None
    labels: tuple[str, ...] | None = None
    cpu_bound: bool = True
    options: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """An automated metric. Register it under the entry-point group
    ``feedbackloop.scorers`` (name = the scorer's name, value = a factory that takes keyword
    options and returns the scorer)."""

    info: ScorerInfo

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        """One value (or :class:`ScoreError`) per item, in order."""
        ...
