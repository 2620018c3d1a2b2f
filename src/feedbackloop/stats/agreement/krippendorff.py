"""Krippendorff's alpha at the nominal, ordinal, interval and ratio levels, computed
without a values-by-values coincidence matrix (Krippendorff 2011)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy import sparse

from ..estimate import Estimate, unavailable
from .matrix import DENSE_CELLS, as_matrix, weighted_bootstrap, weighted_sums

__all__ = ["Level", "krippendorff_alpha"]

Level = Literal["nominal", "ordinal", "interval", "ratio"]
_LEVELS = ("nominal", "ordinal", "interval", "ratio")
# Distinct values per block when the ratio metric's expected disagreement is summed.
_RATIO_BLOCK = 2048
# Cells of the (resamples, values) and (units, resamples) arrays of one block of resamples
# in ``_AlphaParts.alphas`` (ordinal and ratio levels).
_BLOCK_CELLS = 2**21


def krippendorff_alpha(
    ratings: Any,
    level: Level = "nominal",
    *,
    rng: np.random.Generator | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> Estimate:
    """Krippendorff's alpha, 1 - D_o / D_e, for any number of raters and missing ratings.

    Follows Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability" (Annenberg
    School, U. Pennsylvania): only pairable units (at least 2 ratings) count; with m_u the
    ratings in unit u and n = Σ m_u,

        alpha = 1 - (n - 1) · Σ_u Σ_{i≠j in u} δ(x_i, x_j) / (m_u - 1)
                            / Σ_{i≠j over all n values} δ(x_i, x_j)

    which is the coincidence-matrix formula written over pairs of values. No values-by-values
    matrix is built: for nominal δ the sums come from per-unit category counts; for
    interval δ = (a - b)² they come from sums of moments, Σ_{i≠j} (x_i - x_j)² =
    2(m Σx² - (Σx)²); ordinal δ is the interval δ on the values' mid-ranks within the
    pairable values (Krippendorff's (Σ_{g=c}^{k} n_g - (n_c + n_k)/2)²); ratio δ =
    ((a - b)/(a + b))² uses per-unit pairs of raters for D_o and blocks of distinct values
    for D_e (O(V²) time, O(V) memory in the number V of distinct values).

    ``n`` is the number of pairable units. The interval, when ``rng`` is given, is the
    percentile bootstrap over pairable units, each resample's alpha computed from the
    per-unit sums weighted by the units' multiplicities, many resamples at a time.
    Unavailable with fewer than 2 pairable units
    or when all ratings are identical (D_e = 0).
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
    matrix = as_matrix(ratings)
    if level == "ratio" and (matrix[~np.isnan(matrix)] < 0).any():
        raise ValueError("the ratio level needs non-negative ratings")
    method = f"krippendorff alpha ({level})"
    pairable = matrix[:, np.count_nonzero(~np.isnan(matrix), axis=0) >= 2]
    n_units = pairable.shape[1]
    if n_units < 2:
        return unavailable(n_units, method, f"needs at least 2 pairable units, got {n_units}")
    parts = _AlphaParts(pairable, level)
    value = parts.alpha(np.ones(n_units))
    if value is None:
        return unavailable(n_units, method, "all ratings are identical")
    ci = None
    if rng is not None:
        ci = weighted_bootstrap(parts.alphas, n_units, rng, n_resamples, confidence)
        method += ", unit bootstrap"
    return Estimate(value=value, ci=ci, n=n_units, method=method)


class _AlphaParts:
    """Per-unit sums from which alpha follows for any multiplicities ``w`` of the units.

    Built once; ``alpha(w)`` costs O(units + distinct values) (ratio: O(V²)), so a
    bootstrap resample never re-reads the ratings; ``alphas(W)`` is the same for the rows
    of a (resamples, units) weight matrix at once. No values-by-values matrix is built
    except the ratio δ table when V ≤ _RATIO_BLOCK.
    """

    def __init__(self, pairable: np.ndarray, level: str) -> None:
        present = ~np.isnan(pairable)
        self.level = level
        self.m = np.count_nonzero(present, axis=0).astype(float)
        cells = pairable.T[present.T]  # unit by unit
        self.constant = bool(cells.min() == cells.max())
        self._terms: tuple[Any, Any] | None = None
        if level == "interval":
            # Centred so the moment identity keeps its precision on large offsets.
            centred = np.where(present, pairable - cells.mean(), 0.0)
            self.s1 = centred.sum(axis=0)
            self.s2 = (centred * centred).sum(axis=0)
            self.within = 2.0 * (self.m * self.s2 - self.s1 * self.s1) / (self.m - 1.0)
            return
        self.categories, codes = np.unique(cells, return_inverse=True)
        unit_of = np.repeat(np.arange(self.m.size), self.m.astype(int))
        self.counts = sparse.csr_matrix(
            (np.ones(cells.size), (unit_of, codes.ravel())),
            shape=(self.m.size, self.categories.size),
        )
        self.counts.sum_duplicates()
        if level == "nominal":
            # Ordered pairs that match in unit u: Σ_c n_uc (n_uc - 1) = Σ_c n_uc² - m_u.
            squares = np.asarray(self.counts.multiply(self.counts).sum(axis=1)).ravel()
            self.within = (self.m * (self.m - 1.0) - (squares - self.m)) / (self.m - 1.0)
        elif level == "ratio":
            self.within = _ratio_within(pairable, present) / (self.m - 1.0)
            self.delta = None
            if self.categories.size <= _RATIO_BLOCK:
                self.delta = _ratio_delta(self.categories[:, None], self.categories[None, :])

    def alpha(self, w: np.ndarray) -> float | None:
        """Alpha with unit u counted w[u] times; ``None`` when D_e is 0."""
        if self.constant:
            return None
        n = float(w @ self.m)
        if self.level == "interval":
            t1, t2 = float(w @ self.s1), float(w @ self.s2)
            observed = float(w @ self.within)
            expected = 2.0 * (n * t2 - t1 * t1)
            scale = 2.0 * n * t2
        else:
            n_c = self.counts.T @ w
            if self.level == "nominal":
                observed = float(w @ self.within)
                expected = n * n - float(n_c @ n_c)
                scale = n * n
            elif self.level == "ordinal":
                # Krippendorff's ordinal δ is the interval δ on mid-ranks within the data.
                t = np.cumsum(n_c) - n_c / 2.0
                t = t - float(n_c @ t) / n
                a, b = self.counts @ t, self.counts @ (t * t)
                observed = float(w @ (2.0 * (self.m * b - a * a) / (self.m - 1.0)))
                t1, t2 = float(n_c @ t), float(n_c @ (t * t))
                expected = 2.0 * (n * t2 - t1 * t1)
                scale = 2.0 * n * t2
            else:
                observed = float(w @ self.within)
                expected = self._ratio_expected(n_c)
                scale = expected
        if expected <= 1e-12 * scale or expected <= 0.0:
            return None
        return 1.0 - (n - 1.0) * observed / expected

    def alphas(self, w: np.ndarray) -> np.ndarray:
        """``alpha`` of each row of ``w`` (resamples, units); ``np.nan`` where D_e is 0.

        The same formulas with the sums over units taken as one product of ``w`` with the
        per-unit terms (:meth:`_batch_terms`). At the ordinal and ratio levels, whose
        per-value terms depend on the resample, rows go in blocks of at most
        ``_BLOCK_CELLS`` (resamples x max(units, values)) cells.
        """
        if self.constant:
            return np.full(w.shape[0], np.nan)
        if self.level in ("ordinal", "ratio"):
            step = max(1, _BLOCK_CELLS // max(self.m.size, self.categories.size))
            if w.shape[0] > step:
                return np.concatenate(
                    [self.alphas(w[start : start + step]) for start in range(0, w.shape[0], step)]
                )
        terms, root = self._batch_terms()
        sums = weighted_sums(w, terms)
        n = sums[:, 0]
        if self.level == "interval":
            t1, t2, observed = sums[:, 1], sums[:, 2], sums[:, 3]
            expected = 2.0 * (n * t2 - t1 * t1)
            scale = 2.0 * n * t2
        elif self.level == "ordinal":
            v = self.categories.size
            n_c, scaled = sums[:, 1 : v + 1], sums[:, v + 1 :]
            t = np.cumsum(n_c, axis=1) - n_c / 2.0
            t = t - (np.sum(n_c * t, axis=1) / n)[:, None]
            # Σ_u w_u 2 (m_u b_u - a_u²) / (m_u - 1) with a_u = Σ_c n_uc t_c, b_u =
            # Σ_c n_uc t_c²: the b part is Σ_c t_c² Σ_u w_u n_uc 2 m_u / (m_u - 1), the a part
            # Σ_u w_u (Σ_c n_uc t_c √(2 / (m_u - 1)))².
            a = weighted_sums(t, root.T)  # (resamples, units)
            observed = np.sum(scaled * t * t, axis=1) - np.einsum("ru,ru->r", w, a * a)
            t1, t2 = np.sum(n_c * t, axis=1), np.sum(n_c * t * t, axis=1)
            expected = 2.0 * (n * t2 - t1 * t1)
            scale = 2.0 * n * t2
        else:
            observed, n_c = sums[:, 1], sums[:, 2:]
            if self.level == "nominal":
                expected = n * n - np.sum(n_c * n_c, axis=1)
                scale = n * n
            else:
                expected = self._ratio_expected_rows(n_c)
                scale = expected
        undefined = (expected <= 1e-12 * scale) | (expected <= 0.0)
        return np.where(undefined, np.nan, 1.0 - (n - 1.0) * observed / expected)

    def _batch_terms(self) -> tuple[Any, Any]:
        """Per-unit terms, (units, columns), whose weighted sums ``alphas`` needs: [m_u,
        Σ x, Σ x², within] (interval), [m_u, within, n_uc] (nominal, ratio), [m_u, n_uc,
        n_uc 2 m_u / (m_u - 1)] and n_uc √(2 / (m_u - 1)) (ordinal); dense unless large."""
        if self._terms is not None:
            return self._terms
        m = sparse.csr_matrix(self.m[:, None])
        root = None
        if self.level == "interval":
            terms: Any = np.column_stack([self.m, self.s1, self.s2, self.within])
        elif self.level == "ordinal":
            scaled = sparse.diags(2.0 * self.m / (self.m - 1.0)) @ self.counts
            root = sparse.diags(np.sqrt(2.0 / (self.m - 1.0))) @ self.counts
            terms = sparse.hstack([m, self.counts, scaled], format="csr")
        else:
            terms = sparse.hstack([m, sparse.csr_matrix(self.within[:, None]), self.counts])
        if sparse.issparse(terms) and terms.shape[0] * terms.shape[1] <= DENSE_CELLS:
            terms = terms.toarray()
            root = root.toarray() if root is not None else None
        elif sparse.issparse(terms):
            terms = sparse.csc_matrix(terms)
            root = sparse.csr_matrix(root) if root is not None else None
        self._terms = (terms, root)
        return self._terms

    def _ratio_expected_rows(self, n_c: np.ndarray) -> np.ndarray:
        if self.delta is not None:
            return np.sum((n_c @ self.delta) * n_c, axis=1)
        total = np.zeros(n_c.shape[0])
        values = self.categories
        for start in range(0, values.size, _RATIO_BLOCK):
            block = values[start : start + _RATIO_BLOCK]
            delta = _ratio_delta(block[:, None], values[None, :])
            total += np.sum((n_c[:, start : start + _RATIO_BLOCK] @ delta) * n_c, axis=1)
        return total

    def _ratio_expected(self, n_c: np.ndarray) -> float:
        if self.delta is not None:
            return float(n_c @ self.delta @ n_c)
        keep = n_c > 0
        values, weights = self.categories[keep], n_c[keep]
        total = 0.0
        for start in range(0, values.size, _RATIO_BLOCK):
            block = values[start : start + _RATIO_BLOCK]
            delta = _ratio_delta(block[:, None], values[None, :])
            total += float(weights[start : start + _RATIO_BLOCK] @ delta @ weights)
        return total


def _ratio_delta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    total = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((a - b) / total) ** 2
    return np.where(total == 0, 0.0, out)


def _ratio_within(pairable: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Σ over ordered pairs of ratings within each unit of the ratio δ, rater pair by pair."""
    n_raters = pairable.shape[0]
    within = np.zeros(pairable.shape[1])
    for r in range(n_raters):
        for s in range(r + 1, n_raters):
            both = present[r] & present[s]
            within[both] += 2.0 * _ratio_delta(pairable[r, both], pairable[s, both])
    return within
