"""The reliability matrix every agreement statistic takes, and the unit bootstrap.

A reliability matrix has shape (raters, units), float, ``np.nan`` where a rater did not
rate a unit (the ``krippendorff`` package's convention).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

__all__ = [
    "DENSE_CELLS",
    "as_matrix",
    "reliability_matrix",
    "resample_weights",
    "unit_bootstrap",
    "weighted_bootstrap",
    "weighted_sums",
]

# Cells of a (resamples, units) chunk of resample weights: 2**21 float64 weights (16 MiB)
# plus as many drawn int64 indices; 104 resamples per chunk at 20,000 units.
_CHUNK_CELLS = 2**21
# Per-unit bootstrap terms with at most this many cells (32 MiB) are kept dense: a BLAS
# product with a block of weights is several times faster than a sparse one.
DENSE_CELLS = 2**22


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
    are dropped; ``None`` when more than half are, or with fewer than 2 units. For a
    statistic that is a function of sums over units, :func:`weighted_bootstrap` is the
    same interval from the same draws, many resamples at a time.
    """
    _check(n_resamples, confidence)
    if n_units < 2:
        return None
    values = np.empty(n_resamples)
    with np.errstate(all="ignore"):
        for b in range(n_resamples):
            result = statistic(rng.integers(0, n_units, n_units))
            values[b] = np.nan if result is None else result
    return _percentile_interval(values, confidence)


def resample_weights(
    n_units: int, rng: np.random.Generator, n_resamples: int
) -> Iterator[np.ndarray]:
    """Unit multiplicities of ``n_resamples`` bootstrap resamples, in (chunk, n_units) blocks.

    Row b counts how often each unit was drawn when ``n_units`` units are drawn with
    replacement, so every row sums to ``n_units``. The draws are those of
    :func:`unit_bootstrap` (``rng.integers(0, n_units, n_units)`` per resample; a
    (chunk, n_units) call yields the same stream), so both give the same resamples from the
    same ``rng`` state. A block holds at most ``_CHUNK_CELLS`` weights.
    """
    per_chunk = max(1, min(n_resamples, _CHUNK_CELLS // max(n_units, 1)))
    for start in range(0, n_resamples, per_chunk):
        size = min(per_chunk, n_resamples - start)
        index = rng.integers(0, n_units, (size, n_units))
        weights = np.empty((size, n_units))
        for row in range(size):
            weights[row] = np.bincount(index[row], minlength=n_units)
        yield weights


def weighted_bootstrap(
    statistic: Callable[[np.ndarray], np.ndarray],
    n_units: int,
    rng: np.random.Generator,
    n_resamples: int,
    confidence: float,
) -> tuple[float, float] | None:
    """:func:`unit_bootstrap` for a statistic of unit multiplicities, many at a time.

    ``statistic(weights)`` takes a (chunk, n_units) block of :func:`resample_weights`
    and returns the statistic of each row's resample (``np.nan`` where undefined), which
    for a statistic built from sums over units is a few matrix products with the per-unit
    terms instead of one recomputation on copied data per resample. Same draws, same
    dropping of undefined resamples and same percentile interval as :func:`unit_bootstrap`.
    """
    _check(n_resamples, confidence)
    if n_units < 2:
        return None
    values = np.empty(n_resamples)
    done = 0
    with np.errstate(all="ignore"), _single_threaded_blas():
        for weights in resample_weights(n_units, rng, n_resamples):
            values[done : done + weights.shape[0]] = statistic(weights)
            done += weights.shape[0]
    return _percentile_interval(values, confidence)


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit: Any = None


@contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread while any thread is in a weighted bootstrap.

    The products with a chunk of weights are thin (a few ms), so BLAS threads gain nothing,
    and their busy-waiting between products takes a core from the drawing of the next
    chunk: with 2 cores under load the bootstrap ran twice as slow with OpenBLAS's default
    threads. The limit is process-wide; the first thread in sets it and the last one out
    restores it (nested ``threadpool_limits`` from several threads would restore in the
    wrong order).
    """
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _blas_limit = threadpool_limits(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()
                _blas_limit = None


def weighted_sums(w: np.ndarray, terms: Any) -> np.ndarray:
    """``w @ terms``, (resamples, columns), for (units, columns) ``terms`` dense or sparse."""
    if sparse.issparse(terms):
        return np.asarray(terms.T @ w.T).T
    return np.asarray(w @ terms)


def _check(n_resamples: int, confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def _percentile_interval(values: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """Percentile interval of the finite ``values``; ``None`` when fewer than half are."""
    finite = values[np.isfinite(values)]
    if finite.size < values.size / 2:
        return None
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, (tail, 1.0 - tail))
    return float(lo), float(hi)
