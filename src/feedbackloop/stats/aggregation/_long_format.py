"""Checking and encoding long-format annotations once, at the edge of every aggregator.

Ids may be any hashable values; they are encoded as integer codes in sorted order when the
values are mutually comparable, in order of first appearance otherwise.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Mapping, Sized
from typing import Any

import numpy as np

__all__ = ["check_lengths", "encode", "to_list", "to_values"]


def to_list(name: str, values: Any) -> list[Any]:
    """``values`` as a list of Python objects; a string or a non-1-D array is refused."""
    if isinstance(values, str | bytes):
        raise ValueError(f"{name} must be a sequence of ids, not a single string")
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {values.shape}")
        return list(values.tolist())
    try:
        return list(values)
    except TypeError:
        raise ValueError(f"{name} must be a sequence, got {type(values).__name__}") from None


def check_lengths(columns: Mapping[str, Sized]) -> int:
    """The common length of the columns; a mismatch or an empty input names the column."""
    lengths = {name: len(col) for name, col in columns.items()}
    first_name, n = next(iter(lengths.items()))
    for name, length in lengths.items():
        if length != n:
            raise ValueError(f"{name} has {length} entries but {first_name} has {n}; "
                             "long-format columns must have one entry per annotation")
    if n == 0:
        raise ValueError(f"{', '.join(lengths)} are empty: nothing to aggregate")
    return n


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def encode(name: str, values: list[Any]) -> tuple[list[Hashable], np.ndarray]:
    """Distinct values (sorted when comparable) and each entry's integer code."""
    for i, value in enumerate(values):
        if _missing(value):
            raise ValueError(f"{name} has a missing value (None or NaN) at position {i}")
    try:
        distinct = list(dict.fromkeys(values))
    except TypeError:
        raise ValueError(f"{name} values must be hashable") from None
    # Mixed types cannot be sorted: first-appearance order is still deterministic.
    with contextlib.suppress(TypeError):
        distinct = sorted(distinct)
    index = {value: code for code, value in enumerate(distinct)}
    codes = np.fromiter((index[v] for v in values), dtype=np.intp, count=len(values))
    return distinct, codes


def to_values(name: str, values: Any) -> np.ndarray:
    """Numeric ratings as a float array; non-numbers and non-finite values are refused."""
    try:
        array = np.asarray(to_list(name, values), dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must hold numbers") from None
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} has a non-finite value at position {int(bad[0])}")
    return array
