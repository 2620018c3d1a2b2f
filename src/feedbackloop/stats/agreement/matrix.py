"""The reliability matrix every agreement statistic takes, and the unit bootstrap.

A reliability matrix has shape (raters, units), float, ``np.nan`` where a rater did not
rate a unit (the ``krippendorff`` package's convention).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

import numpy as np

__all__ = ["as_matrix", "reliability_matrix", "unit_bootstrap"]


def reliability_matrix(
    units: Iterable[Hashable], raters: Iterable[Hashable], values: Iterable[float]
) -> tuple[np.ndarray, list[Hashable], list[Hashable]]:
    """The (raters, units) matrix from long format, ``np.nan`` where a pair is absent.

    Unit and rater ids keep the order of their first appearance. Raises ``ValueError``
    naming the duplicated (unit, rater) pairs, or when the three columns differ in length.
    """
    unit_list, rater_list, value_list = list(units), list(raters), list(values)
    if not len(unit_list) == len(rater_list) == len(value_list):
        raise ValueError(
            "units, raters and values differ in length: "
            f"{len(unit_list)}, {len(rater_list)}, {len(value_list)}"
        )
    unit_index: dict[Hashable, int] = {}
    rater_index: dict[Hashable, int] = {}
    for u in unit_list:
        unit_index.setdefault(u, len(unit_index))
    for r in rater_list:
        rater_index.setdefault(r, len(rater_index))
    matrix = np.full((len(rater_index), len(unit_index)), np.nan)
    seen: set[tuple[Hashable, Hashable]] = set()
    duplicates: list[tuple[Hashable, Hashable]] = []
    for u, r, v in zip(unit_list, rater_list, value_list, strict=True):
        if (u, r) in seen:
            duplicates.append((u, r))
            continue
        seen.add((u, r))
        matrix[rater_index[r], unit_index[u]] = float(v)
    if duplicates:
        shown = ", ".join(f"(unit={u!r}, rater={r!r})" for u, r in duplicates[:10])
        more = f" and {len(duplicates) - 10} more" if len(duplicates) > 10 else ""
        raise ValueError(f"duplicate (unit, rater) pairs: {shown}{more}")
    return matrix, list(unit_index), list(rater_index)


def as_matrix(ratings: Any) -> np.ndarray:
    """``ratings`` as a 2-D float array; infinite values are an error (NaN is missing)."""
    matrix = np.asarray(ratings, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"ratings must be 2-D (raters, units), got shape {matrix.shape}")
    if np.isinf(matrix).any():
        raise ValueError("ratings contain infinite values; use np.nan for missing")
    return matrix


def unit_bootstrap(
    statistic: Callable[[np.ndarray], float | None],
    n_units: int,
    rng: np.random.Generator,
    n_resamples: int,
    confidence: float,
) -> tuple[float, float] | None:
    """Percentile interval of ``statistic(index)`` over resamples of units (or items).

    ``index`` holds ``n_units`` unit positions drawn with replacement, one resample at a
    time (``bootstrap_interval`` draws all (n_resamples, units) indices at once: 800 MB for
    100,000 units). Resamples on which the statistic is undefined (``None`` or not finite)
    are dropped; ``None`` when more than half are, or with fewer than 2 units.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if n_units < 2:
        return None
    values = np.empty(n_resamples)
    with np.errstate(all="ignore"):
        for b in range(n_resamples):
            result = statistic(rng.integers(0, n_units, n_units))
            values[b] = np.nan if result is None else result
    finite = values[np.isfinite(values)]
    if finite.size < n_resamples / 2:
        return None
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, (tail, 1.0 - tail))
    return float(lo), float(hi)
