"""Calling a scorer safely: batch first, item by item on failure, every result checked.

This is the part of scoring that runs in worker processes (or inline): it touches no
database. :func:`score_items` turns whatever a scorer does (returns values, returns
:class:`ScoreError`, returns NaN or a value of the wrong type, raises) into one
:class:`Outcome` per item, so that one bad item never stops a batch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigurationError
from .base import ScoreError, ScoreItem, Scorer, ScorerInfo

__all__ = ["Outcome", "check_value", "install", "score_in_worker", "score_items"]

_MAX_MESSAGE = 1_000


class Outcome(NamedTuple):
    """What became of one item: a checked value (and the judge's rationale), or an error
    message. Plain tuples, so results cross process boundaries cheaply."""

    value: Any = None
    comment: str | None = None
    error: str | None = None


def _short(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    return f"{_short(repr(value), 80)} ({type(value).__name__})"


def _slack(lo: float | None, hi: float | None) -> float:
    """How far past a bound a numeric value may fall by rounding alone: a billionth of the
    scale's width (or of the bound's size, for a half-open scale)."""
    if lo is not None and hi is not None:
        size = abs(hi - lo)
    else:
        size = abs(lo if lo is not None else hi or 0.0)
    return 1e-9 * max(1.0, size)


def check_value(info: ScorerInfo, value: Any) -> Outcome:
    """``value`` converted to the plain Python type of ``info.output_type``, or the reason it
    does not fit: bool for binary; a whole number on the scale for ordinal; a finite number
    (not a bool) on the scale, if any, for numeric (a value past a bound by rounding noise
    becomes the bound); one of the labels for categorical; non-empty text for text. NumPy
    scalars are accepted and converted."""
    if isinstance(value, ScoreError):
        return Outcome(error=_short(str(value.message)) or "ScoreError without a message")
    t = info.output_type
    is_bool = isinstance(value, bool | np.bool_)
    if t == "binary":
        if is_bool:
            return Outcome(bool(value))
        return Outcome(error=f"returned {_shown(value)}: a binary scorer returns true or false")
    if t in ("ordinal", "numeric"):
        if t == "ordinal" and (is_bool or not isinstance(value, numbers.Integral)):
            return Outcome(error=f"returned {_shown(value)}: an ordinal scorer returns a whole "
                                 "number (int)")
        if t == "numeric" and (is_bool or not isinstance(value, numbers.Real)):
            return Outcome(error=f"returned {_shown(value)}: a numeric scorer returns a number")
        x = float(value)
        if not math.isfinite(x):
            return Outcome(error=f"returned {value!r}: not a finite number")
        lo, hi = info.scale_min, info.scale_max
        # Floating-point noise at a bound (sacrebleu's BLEU of identical texts is
        # 100.00000000000004) is the bound, not an error.
        if lo is not None and x < lo and t == "numeric" and lo - x <= _slack(lo, hi):
            x = float(lo)
        if hi is not None and x > hi and t == "numeric" and x - hi <= _slack(lo, hi):
            x = float(hi)
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            return Outcome(error=f"returned {value!r}, outside the scale "
                                 f"[{'' if lo is None else f'{lo:g}'}, "
                                 f"{'' if hi is None else f'{hi:g}'}]")
        return Outcome(int(value) if t == "ordinal" else x)
    if t == "categorical":
        if not isinstance(value, str):
            return Outcome(error=f"returned {_shown(value)}: a categorical scorer returns "
                                 "one of its labels")
        if info.labels is not None and value not in info.labels:
            return Outcome(error=f"returned {_short(repr(value), 80)}, not one of the labels "
                                 f"{', '.join(info.labels)}")
        return Outcome(value)
    if t == "text":
        if not isinstance(value, str) or not value.strip():
            return Outcome(error=f"returned {_shown(value)}: a text scorer returns "
                                 "non-empty text")
        return Outcome(value)
    return Outcome(error=f"unknown output type {t!r}")


def _check_entry(info: ScorerInfo, entry: Any, with_rationale: bool) -> Outcome:
    if not with_rationale or isinstance(entry, ScoreError):
        return check_value(info, entry)
    if not isinstance(entry, tuple) or len(entry) != 2:
        return Outcome(error=f"score_with_rationale returned {_shown(entry)}: expected a "
                             "(value, rationale) pair")
    value, rationale = entry
    if rationale is not None and not isinstance(rationale, str):
        return Outcome(error=f"rationale {_shown(rationale)} is not text")
    checked = check_value(info, value)
    if checked.error is None and rationale and rationale.strip():
        return Outcome(checked.value, rationale)
    return checked


def _call(scorer: Scorer, items: Sequence[ScoreItem], with_rationale: bool) -> list[Any]:
    fn = scorer.score_with_rationale if with_rationale else scorer.score  # type: ignore[attr-defined]
    results = list(fn(items))
    if len(results) != len(items):
        raise ValueError(f"returned {len(results)} results for {len(items)} items")
    return results


def _raised(exc: Exception) -> Outcome:
    return Outcome(error=_short(f"raised {type(exc).__name__}: {exc}"))


def score_items(scorer: Scorer, items: Sequence[ScoreItem]) -> list[Outcome]:
    """One checked :class:`Outcome` per item. A scorer that raises for the batch (or returns
    the wrong number of results) is called again item by item, so only the items that
    fail themselves become errors. A scorer with ``score_with_rationale`` (an LLM judge) is
    called through it and its rationale kept."""
    if not items:
        return []
    info = scorer.info
    with_rationale = callable(getattr(scorer, "score_with_rationale", None))
    try:
        raw = _call(scorer, items, with_rationale)
    except ConfigurationError:
        raise
    except Exception as exc:
        if len(items) == 1:
            return [_raised(exc)]
        out = []
        for item in items:
            try:
                (one,) = _call(scorer, [item], with_rationale)
            except ConfigurationError:
                raise
            except Exception as item_exc:
                out.append(_raised(item_exc))
            else:
                out.append(_check_entry(info, one, with_rationale))
        return out
    return [_check_entry(info, entry, with_rationale) for entry in raw]


# -- the worker-process side ---------------------------------------------------------------
_state: dict[str, Any] = {}


def install(scorer: Scorer) -> None:
    """Process-pool initializer: the scorer this worker serves (inherited through fork, or
    unpickled where processes are spawned)."""
    _state["scorer"] = scorer


def score_in_worker(items: list[ScoreItem]) -> list[Outcome]:
    return score_items(_state["scorer"], items)
