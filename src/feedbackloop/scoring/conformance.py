"""``check_scorer``: what a plug-in author runs in their own tests before publishing.

It checks what the engine and the store rely on: a well-formed :class:`ScorerInfo` (the
name and version fit the cache key's columns), one result per item of a small built-in
batch (empty text, several scripts and emoji, a long text, JSON, with a reference and a
context when the scorer needs them), each of the declared output type, the same results on
a second call, and the same result for an item scored alone as in the batch (the engine
re-scores items one by one to isolate a failure). Every problem is reported at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from .base import NEEDS, OUTPUT_TYPES, ScoreError, ScoreItem, ScorerInfo

__all__ = ["NAME_PATTERN", "ScorerConformanceError", "check_scorer", "conformance_items"]

NAME_PATTERN = r"^[a-z0-9_.:-]+$"
_NAME = re.compile(NAME_PATTERN)
# Widths of score_cache.scorer and score_cache.version (store/tables.py).
MAX_NAME, MAX_VERSION = 100, 50


class ScorerConformanceError(AssertionError):
    """A scorer breaks the protocol; ``problems`` lists every finding."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"scorer {name!r} does not conform ({len(problems)} "
                         f"problem{'s' if len(problems) != 1 else ''}):\n{lines}")


_LONG = " ".join(["The quick brown fox jumps over the lazy dog, twice."] * 100)  # 1,000 words


def conformance_items(needs: frozenset[str] | set[str] = frozenset()) -> list[ScoreItem]:
    """The batch check_scorer uses: every item has a reference when the scorer needs one
    (otherwise every second item has none) and a context when it needs one."""
    texts = [
        ("", ""),
        ("What is the capital of France?", "The capital of France is Paris."),
        ("¿Qué tal? 你好, 世界 🙂", "Ça va très bien — merci ! Привет, мир. ∑ x² ≥ 0 👍🏽"),
        ("Summarise the text.", _LONG),
        ("Return JSON.", '{"answer": 42, "items": [1, 2.5, null, true], "note": "é"}'),
        ("Say something rude.", "I'm sorry, but I can't help with that."),
        ("Contact?", "Write to jane.doe@example.com or call +44 20 7946 0958."),
        ("Tabs and lines", "  line one\n\tline two\r\n  "),
    ]
    items = []
    for i, (question, answer) in enumerate(texts):
        if "reference" in needs or i % 2 == 0:
            reference: str | None = answer if i % 3 == 0 else "The capital of France is Paris."
        else:
            reference = None
        context: Any = None
        if "context" in needs:
            context = (["Paris is the capital of France.", "Lyon is in France."] if i % 2
                       else "Paris is the capital and largest city of France.")
        items.append(ScoreItem(input=question, output=answer, reference=reference,
                               context=context))
    return items


def _info_problems(info: Any) -> list[str]:
    if not isinstance(info, ScorerInfo):
        return [f"info must be a ScorerInfo, not {type(info).__name__}"]
    problems = []
    if not isinstance(info.name, str) or not _NAME.match(info.name):
        problems.append(f"info.name {info.name!r} must match {NAME_PATTERN}")
    elif len(info.name) > MAX_NAME:
        problems.append(f"info.name is longer than {MAX_NAME} characters")
    if not isinstance(info.version, str) or not info.version.strip():
        problems.append("info.version must be a non-empty string")
    elif len(info.version) > MAX_VERSION:
        problems.append(f"info.version is longer than {MAX_VERSION} characters")
    if info.output_type not in OUTPUT_TYPES:
        problems.append(f"info.output_type {info.output_type!r} must be one of "
                        f"{', '.join(OUTPUT_TYPES)}")
    needs = info.needs
    if not isinstance(needs, frozenset | set) or not needs:
        problems.append("info.needs must be a non-empty set of " + ", ".join(NEEDS))
    elif not needs <= set(NEEDS):
        problems.append(f"info.needs has {sorted(set(needs) - set(NEEDS))}; allowed: "
                        + ", ".join(NEEDS))
    lo, hi = info.scale_min, info.scale_max
    for label, bound in (("scale_min", lo), ("scale_max", hi)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)
                                  or not math.isfinite(bound)):
            problems.append(f"info.{label} must be a finite number")
    if info.output_type == "ordinal" and (
            not isinstance(lo, int) or not isinstance(hi, int) or isinstance(lo, bool)):
        problems.append("an ordinal scorer needs integer scale_min and scale_max")
    if isinstance(lo, int | float) and isinstance(hi, int | float) and not lo < hi:
        problems.append(f"info.scale_min ({lo}) must be below scale_max ({hi})")
    if info.output_type == "categorical":
        labels = info.labels
        if (not labels or not all(isinstance(x, str) and x for x in labels)
                or len(set(labels)) != len(labels)):
            problems.append("a categorical scorer needs labels: distinct non-empty strings")
    try:
        json.dumps(info.options, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problems.append(f"info.options must be JSON-serialisable: {exc}")
    return problems


def _value_problem(info: ScorerInfo, value: Any) -> str | None:
    """Why ``value`` is not a result of ``info.output_type``, or None when it is one."""
    if isinstance(value, ScoreError):
        return None if isinstance(value.message, str) and value.message else \
            "a ScoreError needs a message"
    kind = info.output_type
    lo, hi = info.scale_min, info.scale_max
    if kind == "binary":
        return None if type(value) is bool else f"binary result {value!r} is not a bool"
    if kind == "ordinal":
        if type(value) is not int:
            return f"ordinal result {value!r} is not an int"
        if lo is not None and hi is not None and not lo <= value <= hi:
            return f"ordinal result {value} is outside [{lo}, {hi}]"
        return None
    if kind == "numeric":
        if type(value) not in (int, float) or not math.isfinite(value):
            return f"numeric result {value!r} is not a finite int or float"
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"numeric result {value} is outside [{lo}, {hi}]"
        return None
    if kind == "categorical":
        labels = info.labels or ()
        return None if value in labels and type(value) is str else \
            f"categorical result {value!r} is not one of the labels"
    if kind == "text":
        return None if type(value) is str else f"text result {value!r} is not a str"
    return None


def _call(scorer: Any, items: Sequence[ScoreItem], what: str,
          problems: list[str]) -> list[Any] | None:
    try:
        result = scorer.score(items)
    except Exception as exc:
        problems.append(f"score() raised on {what}: {type(exc).__name__}: {exc}")
        return None
    if not isinstance(result, list):
        problems.append(f"score() returned {type(result).__name__} on {what}, not a list")
        return None
    if len(result) != len(items):
        problems.append(f"score() returned {len(result)} results for {len(items)} items "
                        f"on {what}")
        return None
    return result


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def check_scorer(scorer: Any, items: Sequence[ScoreItem] | None = None) -> None:
    """Raise :class:`ScorerConformanceError` listing every way ``scorer`` breaks the Scorer
    protocol; return None when it conforms. ``items`` replaces the built-in batch."""
    info = getattr(scorer, "info", None)
    problems = _info_problems(info)
    name = getattr(info, "name", repr(scorer))
    if not callable(getattr(scorer, "score", None)):
        problems.append("the scorer has no score() method")
    if problems:
        raise ScorerConformanceError(str(name), problems)
    assert isinstance(info, ScorerInfo)
    batch = list(items) if items is not None else conformance_items(info.needs)
    empty = _call(scorer, [], "an empty batch", problems)
    if empty is not None and empty != []:
        problems.append("score([]) must return []")
    first = _call(scorer, batch, "the batch", problems)
    if first is not None:
        for i, value in enumerate(first):
            why = _value_problem(info, value)
            if why:
                problems.append(f"item {i}: {why}")
        if batch and all(isinstance(v, ScoreError) for v in first):
            problems.append(f"every item failed, e.g. {first[0].message!r}")
        second = _call(scorer, batch, "the batch again", problems)
        if second is not None:
            changed = [i for i, (a, b) in enumerate(zip(first, second, strict=True))
                       if not _same(a, b)]
            if changed:
                problems.append(f"not deterministic: items {changed} changed on a second call")
        for i, item in enumerate(batch):
            alone = _call(scorer, [item], f"item {i} alone", problems)
            if alone is not None and not _same(alone[0], first[i]):
                problems.append(f"item {i} scored alone gave {alone[0]!r}, in the batch "
                                f"{first[i]!r}")
    if problems:
        raise ScorerConformanceError(info.name, problems)
