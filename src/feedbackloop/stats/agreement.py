"""Agreement between raters: Krippendorff's alpha, Fleiss', Cohen's weighted kappa, Gwet's
AC1/AC2 and intraclass correlations.

Every multi-rater statistic takes a reliability matrix ``ratings`` of shape (raters, units),
float, ``np.nan`` where a rater did not rate a unit (the ``krippendorff`` package's
convention); :func:`reliability_matrix` builds one from long format.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from typing import Any, Literal

import numpy as np
from scipy import sparse

from .estimate import Estimate, unavailable

__all__ = [
    "cohen_kappa_weighted",
    "fleiss_kappa",
    "gwet_ac1",
    "gwet_ac2",
    "icc",
    "krippendorff_alpha",
    "reliability_matrix",
]

Level = Literal["nominal", "ordinal", "interval", "ratio"]
_LEVELS = ("nominal", "ordinal", "interval", "ratio")
IccKind = Literal["ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)"]
_ICC_KINDS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")
# Distinct values per block when the ratio metric's expected disagreement is summed.
_RATIO_BLOCK = 2048


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


def _as_matrix(ratings: Any) -> np.ndarray:
    matrix = np.asarray(ratings, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"ratings must be 2-D (raters, units), got shape {matrix.shape}")
    if np.isinf(matrix).any():
        raise ValueError("ratings contain infinite values; use np.nan for missing")
    return matrix


# --------------------------------------------------------------------------- Krippendorff


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
    percentile bootstrap over pairable units. Unavailable with fewer than 2 pairable units
    or when all ratings are identical (D_e = 0).
    """
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
    matrix = _as_matrix(ratings)
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
        ci = _unit_bootstrap(parts, n_units, rng, n_resamples, confidence)
        method += ", unit bootstrap"
    return Estimate(value=value, ci=ci, n=n_units, method=method)


def _unit_bootstrap(
    parts: _AlphaParts,
    n_units: int,
    rng: np.random.Generator,
    n_resamples: int,
    confidence: float,
) -> tuple[float, float] | None:
    """Percentile interval over resamples of units, drawn one resample at a time.

    Not ``bootstrap_interval``: that draws all (n_resamples, units) indices at once, which
    is 800 MB for 100,000 units; here a resample is a vector of unit multiplicities.
    Resamples on which alpha is undefined are dropped; ``None`` when over half are.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    values = np.empty(n_resamples)
    for b in range(n_resamples):
        weights = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
        result = parts.alpha(weights.astype(float))
        values[b] = math.nan if result is None else result
    finite = values[np.isfinite(values)]
    if finite.size < n_resamples / 2:
        return None
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(finite, (tail, 1.0 - tail))
    return float(lo), float(hi)


class _AlphaParts:
    """Per-unit sums from which alpha follows for any multiplicities ``w`` of the units.

    Built once; ``alpha(w)`` costs O(units + distinct values) (ratio: O(V²)), so a
    bootstrap resample never re-reads the ratings. No values-by-values matrix is built
    except the ratio δ table when V ≤ _RATIO_BLOCK.
    """

    def __init__(self, pairable: np.ndarray, level: str) -> None:
        present = ~np.isnan(pairable)
        self.level = level
        self.m = np.count_nonzero(present, axis=0).astype(float)
        cells = pairable.T[present.T]  # unit by unit
        self.constant = bool(cells.min() == cells.max())
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


# --------------------------------------------------------------------------- kappas


def fleiss_kappa(ratings: Any) -> Estimate:
    """Fleiss' (1971) kappa for nominal ratings by a fixed number of raters per unit::

        P_i = (Σ_j n_ij² - r) / (r (r - 1)),   p_j = Σ_i n_ij / (N r),
        kappa = (mean P_i - Σ_j p_j²) / (1 - Σ_j p_j²)

    (Fleiss 1971, Psychol. Bull. 76:378), with n_ij the raters putting unit i in category j.
    Unavailable unless every unit is rated by every rater ("Fleiss' kappa needs complete
    data"), with fewer than 2 raters or units, or when all ratings are identical.
    """
    matrix = _as_matrix(ratings)
    method = "fleiss kappa"
    n_raters, n_units = matrix.shape
    if np.isnan(matrix).any():
        return unavailable(n_units, method, "Fleiss' kappa needs complete data")
    if n_raters < 2 or n_units < 2:
        return unavailable(n_units, method, "needs at least 2 raters and 2 units")
    _, codes = np.unique(matrix, return_inverse=True)
    codes = codes.reshape(matrix.shape)
    k = int(codes.max()) + 1
    counts = np.zeros((n_units, k))
    np.add.at(counts, (np.tile(np.arange(n_units), n_raters), codes.ravel()), 1.0)
    r = float(n_raters)
    p_i = (np.sum(counts * counts, axis=1) - r) / (r * (r - 1.0))
    p_j = counts.sum(axis=0) / (n_units * r)
    p_e = float(np.sum(p_j * p_j))
    if p_e >= 1.0:
        return unavailable(n_units, method, "all ratings are identical")
    return Estimate(
        value=(float(p_i.mean()) - p_e) / (1.0 - p_e), ci=None, n=n_units, method=method
    )


def cohen_kappa_weighted(
    a: Any,
    b: Any,
    weights: Literal["linear", "quadratic"] | None = None,
    labels: Any = None,
) -> Estimate:
    """Cohen's kappa for two raters, optionally weighted (Cohen 1968, Psychol. Bull. 70:213)::

        kappa = 1 - Σ w_ij O_ij / Σ w_ij E_ij,   E = row totals ⊗ column totals / N

    with w_ij = [i ≠ j], |i - j| (linear) or (i - j)² (quadratic) over the positions of
    the sorted ``labels`` (default: the union of both raters' labels). Equals
    ``sklearn.metrics.cohen_kappa_score``. Items with a label outside ``labels`` are
    dropped, as are float items where either rating is NaN. Unavailable with fewer than
    2 items or when agreement expected by chance is perfect.
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"weights must be None, 'linear' or 'quadratic', got {weights!r}")
    ra, rb = np.asarray(a).ravel(), np.asarray(b).ravel()
    if ra.shape != rb.shape:
        raise ValueError(f"a and b differ in length: {ra.size} and {rb.size}")
    method = "cohen kappa" if weights is None else f"cohen kappa ({weights} weights)"
    if ra.dtype.kind == "f" or rb.dtype.kind == "f":
        keep = ~(np.isnan(ra.astype(float)) | np.isnan(rb.astype(float)))
        ra, rb = ra[keep], rb[keep]
    label_set = np.unique(np.concatenate([ra, rb])) if labels is None else np.asarray(labels)
    k = label_set.size
    ia, ib = _positions(ra, label_set), _positions(rb, label_set)
    keep = (ia >= 0) & (ib >= 0)
    ia, ib = ia[keep], ib[keep]
    n = int(ia.size)
    if n < 2:
        return unavailable(n, method, f"needs at least 2 items, got {n}")
    observed = np.zeros((k, k))
    np.add.at(observed, (ia, ib), 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    grid = np.subtract.outer(np.arange(k), np.arange(k)).astype(float)
    if weights is None:
        w = (grid != 0).astype(float)
    elif weights == "linear":
        w = np.abs(grid)
    else:
        w = grid * grid
    denominator = float(np.sum(w * expected))
    if denominator <= 0.0:
        return unavailable(n, method, "agreement expected by chance is perfect")
    return Estimate(
        value=1.0 - float(np.sum(w * observed)) / denominator, ci=None, n=n, method=method
    )


def _positions(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Index of each value in ``labels``, -1 when absent."""
    lookup = {label: i for i, label in enumerate(labels.tolist())}
    return np.array([lookup.get(v, -1) for v in values.tolist()], dtype=int)


# --------------------------------------------------------------------------- Gwet


def gwet_ac1(ratings: Any, categories: Any = None) -> Estimate:
    """Gwet's AC1 for nominal ratings, any number of raters, missing ratings allowed.

    Gwet (2008), Br. J. Math. Stat. Psychol. 61:29; Handbook of Inter-Rater Reliability,
    4th ed. (2014), ch. 4: with r_ik the raters putting unit i in category k, r_i = Σ_k r_ik,
    n' the units with r_i ≥ 2 and n those with r_i ≥ 1, over q categories::

        p_a = (1/n') Σ_{r_i≥2} Σ_k r_ik (r_ik - 1) / (r_i (r_i - 1))
        π_k = (1/n) Σ_{r_i≥1} r_ik / r_i,   p_e = Σ_k π_k (1 - π_k) / (q - 1)
        AC1 = (p_a - p_e) / (1 - p_e)

    ``categories`` fixes q (default: the categories observed). Unavailable with fewer
    than 2 units rated twice or fewer than 2 categories.
    """
    return _gwet(ratings, None, categories, "gwet ac1")


def gwet_ac2(
    ratings: Any,
    weights: Literal["linear", "quadratic"] = "quadratic",
    categories: Any = None,
) -> Estimate:
    """Gwet's AC2: AC1 with agreement weights for ordered categories (Gwet 2014, ch. 4)::

        r*_ik = Σ_l w_kl r_il,   p_a = (1/n') Σ_{r_i≥2} Σ_k r_ik (r*_ik - 1) / (r_i (r_i - 1))
        p_e = T_w / (q (q - 1)) · Σ_k π_k (1 - π_k),   T_w = Σ_kl w_kl

    with w_kl = 1 - |x_k - x_l| / (x_max - x_min) (linear) or 1 - (x_k - x_l)² /
    (x_max - x_min)² (quadratic) on the category values. ``categories`` gives the full
    ordered scale (default: the values observed), which matters for q and the weights.
    """
    if weights not in ("linear", "quadratic"):
        raise ValueError(f"weights must be 'linear' or 'quadratic', got {weights!r}")
    return _gwet(ratings, weights, categories, f"gwet ac2 ({weights} weights)")


def _gwet(ratings: Any, weights: str | None, categories: Any, method: str) -> Estimate:
    matrix = _as_matrix(ratings)
    present = ~np.isnan(matrix)
    observed_values = np.unique(matrix[present])
    if categories is None:
        scale = observed_values
    else:
        scale = np.unique(np.asarray(categories, dtype=float))
        outside = np.setdiff1d(observed_values, scale)
        if outside.size:
            raise ValueError(f"ratings outside categories: {outside.tolist()}")
    q = scale.size
    r_i_all = np.count_nonzero(present, axis=0)
    n_pairable = int(np.count_nonzero(r_i_all >= 2))
    if n_pairable < 2:
        return unavailable(n_pairable, method, "needs at least 2 units rated twice")
    if q < 2:
        return unavailable(n_pairable, method, "needs at least 2 categories")
    rated = matrix[:, r_i_all >= 1]
    r_i = r_i_all[r_i_all >= 1].astype(float)
    counts = np.stack([np.sum(rated == c, axis=0) for c in scale], axis=1).astype(float)
    if weights is None:
        w = np.eye(q)
    else:
        span = scale[-1] - scale[0]
        d = np.abs(np.subtract.outer(scale, scale)) / span
        w = 1.0 - d if weights == "linear" else 1.0 - d * d
    weighted = counts @ w.T
    two = r_i >= 2
    p_a = float(
        np.mean(np.sum(counts[two] * (weighted[two] - 1.0), axis=1) / (r_i[two] * (r_i[two] - 1.0)))
    )
    pi = np.mean(counts / r_i[:, None], axis=0)
    p_e = float(np.sum(w) / (q * (q - 1.0)) * np.sum(pi * (1.0 - pi)))
    if p_e >= 1.0:
        return unavailable(n_pairable, method, "agreement expected by chance is perfect")
    return Estimate(value=(p_a - p_e) / (1.0 - p_e), ci=None, n=n_pairable, method=method)


# --------------------------------------------------------------------------- ICC


def icc(ratings: Any, kind: IccKind = "ICC(2,1)") -> Estimate:
    """Intraclass correlation (Shrout & Fleiss 1979, Psychol. Bull. 86:420, Table 1).

    From the two-way ANOVA of n targets by k judges (complete data) with mean squares BMS
    (targets), JMS (judges), EMS (residual) and WMS (within targets)::

        ICC(1,1) = (BMS - WMS) / (BMS + (k-1) WMS)
        ICC(2,1) = (BMS - EMS) / (BMS + (k-1) EMS + k (JMS - EMS) / n)
        ICC(3,1) = (BMS - EMS) / (BMS + (k-1) EMS)
        ICC(1,k) = (BMS - WMS) / BMS
        ICC(2,k) = (BMS - EMS) / (BMS + (JMS - EMS) / n)
        ICC(3,k) = (BMS - EMS) / BMS

    ``ratings`` is (judges, targets) like every reliability matrix here. Unavailable with
    missing ratings, fewer than 2 judges or targets, or when the denominator is 0.
    """
    if kind not in _ICC_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_ICC_KINDS)}; got {kind!r}")
    matrix = _as_matrix(ratings)
    method = kind
    k, n = matrix.shape
    if np.isnan(matrix).any():
        return unavailable(n, method, "the ICC needs complete data")
    if k < 2 or n < 2:
        return unavailable(n, method, "needs at least 2 judges and 2 targets")
    grand = matrix.mean()
    target_means = matrix.mean(axis=0)
    judge_means = matrix.mean(axis=1)
    ss_total = float(np.sum((matrix - grand) ** 2))
    ss_targets = k * float(np.sum((target_means - grand) ** 2))
    ss_judges = n * float(np.sum((judge_means - grand) ** 2))
    ss_error = ss_total - ss_targets - ss_judges
    bms = ss_targets / (n - 1)
    wms = (ss_total - ss_targets) / (n * (k - 1))
    jms = ss_judges / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    formulas = {
        "ICC(1,1)": (bms - wms, bms + (k - 1) * wms),
        "ICC(2,1)": (bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        "ICC(3,1)": (bms - ems, bms + (k - 1) * ems),
        "ICC(1,k)": (bms - wms, bms),
        "ICC(2,k)": (bms - ems, bms + (jms - ems) / n),
        "ICC(3,k)": (bms - ems, bms),
    }
    numerator, denominator = formulas[kind]
    if denominator == 0.0:
        return unavailable(n, method, "all ratings are identical")
    return Estimate(value=numerator / denominator, ci=None, n=n, method=method)
