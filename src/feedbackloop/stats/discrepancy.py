"""Where the human and the metric disagree most, item by item.

Both channels are put on a common scale (mid-ranks scaled to [0, 1]), so a 1-5 rating can
be compared with a 0-1 metric score, and the discrepancy of an item is the distance between
its two scaled ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

__all__ = ["discrepancy_scores", "scaled_ranks", "top_discrepancies"]


def scaled_ranks(values: Any) -> np.ndarray:
    """Mid-ranks mapped to [0, 1]: (rank - 1) / (n - 1); ties share their mean rank.

    A single item (or a constant channel) sits at 0.5, the middle of the scale.
    """
    v = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(v).all():
        raise ValueError("values contain missing or infinite entries; drop those items first")
    if v.size < 2:
        return np.full(v.size, 0.5)
    return np.asarray((scipy_stats.rankdata(v) - 1.0) / (v.size - 1.0))


def discrepancy_scores(human: Any, metric: Any) -> np.ndarray:
    """Per-item disagreement ``|r_h - r_m|`` in [0, 1] between the scaled ranks of the two
    channels (see :func:`scaled_ranks`). 0 means the item sits at the same place in both
    orderings; 1 means top in one channel and bottom in the other.
    """
    h = np.asarray(human, dtype=float).ravel()
    m = np.asarray(metric, dtype=float).ravel()
    if h.shape != m.shape:
        raise ValueError(f"human and metric differ in length: {h.size} and {m.size}")
    return np.asarray(np.abs(scaled_ranks(h) - scaled_ranks(m)))


def top_discrepancies(
    ids: Sequence[Any], human: Any, metric: Any, k: int
) -> list[tuple[Any, float, float, float]]:
    """The ``k`` items with the largest discrepancy, as ``(id, score, human, metric)``,
    largest first; equal scores are ordered by id so the list is deterministic.
    """
    ids = list(ids)
    h = np.asarray(human, dtype=float).ravel()
    m = np.asarray(metric, dtype=float).ravel()
    if len(ids) != h.size:
        raise ValueError(f"ids and values differ in length: {len(ids)} and {h.size}")
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    scores = discrepancy_scores(h, m)
    # Rounding keeps float noise from breaking ties that are exact on paper.
    order = sorted(range(len(ids)), key=lambda i: (-round(float(scores[i]), 12), ids[i]))
    return [(ids[i], float(scores[i]), float(h[i]), float(m[i])) for i in order[:k]]
