"""Fairness across cohorts: per-cohort rates and means with their intervals, selection-rate
(impact) ratios and the four-fifths rule, demographic parity and equalised odds for a
classifier-like signal, satisfaction gaps between cohorts, cohort regressions between two
versions, and who gives feedback against who uses the product.

Methods and sources:

* Rates: Wilson's score interval (:func:`.intervals.wilson_interval`). Means: Student's t
  interval, mean ± t_{n-1} · s/√n.
* Difference of two proportions: Newcombe's hybrid score interval (Newcombe 1998, Stat Med
  17:873, method 10), built from the two Wilson intervals. Its p-value for a null
  difference δ0 is found by inverting the interval: the confidence level at which an end
  of the interval lies on δ0. Difference of two means: Welch's t (Welch 1947).
* Impact ratio of a cohort: its selection rate over the highest cohort's rate; the
  four-fifths rule flags a ratio below 0.8 (Uniform Guidelines on Employee Selection
  Procedures, 29 CFR 1607.4D, and the agencies' Questions and Answers, 1979, Q&A 12).
  Interval: Katz's log method for a ratio of two independent proportions (Katz et al. 1978,
  Biometrics 34:469), with 0.5 added to each cell (selected and not) when a count is zero.
* Demographic parity difference/ratio and equalised odds difference/ratio as fairlearn
  defines them (``between_groups``, worst case): max - min (or min / max) of the per-cohort
  selection rates, and the larger difference (smaller ratio) of the per-cohort true- and
  false-positive rates. Intervals by a row bootstrap (percentile, as fairlearn's
  ``MetricFrame(n_boot=...)``); these worst-case statistics are biased away from their
  best value when cohorts are close, and the estimate then says when it lies outside.
* Multiplicity: Holm (1979) step-down adjusted p-values.
* Representation: each cohort's share among feedback givers against its share among users,
  with a chi-square test of independence between cohort and giving feedback.

Pure: numpy and scipy only, randomness passed in as a ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.optimize import brentq
from scipy.stats import chi2_contingency
from scipy.stats import t as t_dist

from .estimate import Estimate, unavailable
from .experiments.frequentist import adjust_p_values
from .intervals import normal_quantile, wilson_interval

__all__ = [
    "FOUR_FIFTHS",
    "ClassifierFairness",
    "CohortComparison",
    "ImpactRatio",
    "RepresentationRow",
    "classifier_fairness",
    "cohort_regressions",
    "difference_in_means",
    "difference_in_proportions",
    "impact_ratios",
    "mean_interval",
    "representation",
    "satisfaction_gaps",
    "stratified",
]

FOUR_FIFTHS = 0.8
"""The Uniform Guidelines' rule of thumb: a selection rate below four-fifths of the highest
cohort's rate is evidence of adverse impact (29 CFR 1607.4D)."""

_EPS = 1e-9  # ratios are compared with this slack: 0.48 / 0.60 is 0.7999999999999999

Kind = Literal["rate", "mean"]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def mean_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> Estimate:
    """The mean with Student's t interval, mean ± t_{n-1, 1-alpha/2} · s / √n (n ≥ 2)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return unavailable(0, "t", "no observations")
    mean = float(x.mean())
    if n < 2:
        return Estimate(mean, None, n, "t", "one observation: no interval")
    se = float(x.std(ddof=1)) / math.sqrt(n)
    half = float(t_dist.ppf(1 - (1 - confidence) / 2, n - 1)) * se
    return Estimate(mean, (mean - half, mean + half), n, "t")


def _cohort_order(groups: np.ndarray) -> list[str]:
    return sorted({str(g) for g in groups})


def stratified(values: Sequence[float] | np.ndarray, groups: Sequence[Any] | np.ndarray,
               kind: Kind, confidence: float = 0.95) -> list[tuple[str, Estimate]]:
    """Per-cohort estimates, cohorts sorted by name: the rate of ``values`` (0/1) with its
    Wilson interval, or the mean with its t interval."""
    x = np.asarray(values, dtype=float)
    g = np.asarray(groups).astype(str)
    if x.shape != g.shape:
        raise ValueError("values and groups must have the same length")
    if kind == "rate" and not np.all((x == 0) | (x == 1)):
        raise ValueError("a rate needs values of 0 and 1")
    out = []
    for cohort in _cohort_order(g):
        sel = x[g == cohort]
        if kind == "rate":
            out.append((cohort, wilson_interval(int(sel.sum()), int(sel.size), confidence)))
        else:
            out.append((cohort, mean_interval(sel, confidence)))
    return out


def _newcombe(x1: int, n1: int, x2: int, n2: int, confidence: float) -> tuple[float, float]:
    p1, p2 = x1 / n1, x2 / n2
    w1, w2 = wilson_interval(x1, n1, confidence), wilson_interval(x2, n2, confidence)
    assert w1.ci is not None and w2.ci is not None
    (l1, u1), (l2, u2) = w1.ci, w2.ci
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def _inverted_p(bounds: Any, estimate: float, null: float,
                alternative: Literal["two-sided", "less", "greater"]) -> float:
    """The p-value of ``null`` from a family of two-sided intervals ``bounds(confidence)``
    whose ends move outward as the confidence grows: the level c at which an end lies on
    the null gives a two-sided p of 1 - c (one-sided (1 - c) / 2 on the side of the
    estimate)."""
    lo_c, hi_c = 1e-12, 1 - 1e-15
    if estimate == null:
        two_sided = 1.0
    else:
        side = 1 if estimate > null else 0  # which end approaches the null: lower / upper

        def gap(c: float) -> float:
            return bounds(c)[1 - side] - null

        g_lo, g_hi = gap(lo_c), gap(hi_c)
        if (g_lo > 0) == (g_hi > 0):
            # the null stays outside even the widest interval (or inside the narrowest)
            two_sided = 0.0 if (g_hi > 0) == (side == 1) else 1.0
        else:
            two_sided = 1.0 - float(brentq(gap, lo_c, hi_c, xtol=1e-14))
    if alternative == "two-sided":
        return min(1.0, max(0.0, two_sided))
    one = two_sided / 2.0
    toward = (alternative == "less") == (estimate < null)
    return min(1.0, max(0.0, one if toward else 1.0 - one))


def difference_in_proportions(x1: int, n1: int, x2: int, n2: int, *,
                              confidence: float = 0.95, null: float = 0.0,
                              alternative: Literal["two-sided", "less", "greater"]
                              = "two-sided") -> tuple[Estimate, float | None]:
    """p1 - p2 with Newcombe's hybrid score interval (method 10), and the p-value of
    ``null`` against ``alternative`` from the inverted interval (None when either
    sample is empty)."""
    for x, n in ((x1, n1), (x2, n2)):
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"need 0 <= successes <= n, got successes={x}, n={n}")
    method = "newcombe-hybrid-score"
    if n1 == 0 or n2 == 0:
        return unavailable(n1 + n2, method, "a cohort has no observations"), None
    d = x1 / n1 - x2 / n2
    est = Estimate(d, _newcombe(x1, n1, x2, n2, confidence), n1 + n2, method)
    p = _inverted_p(lambda c: _newcombe(x1, n1, x2, n2, c), d, null, alternative)
    return est, p


def difference_in_means(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                        confidence: float = 0.95, null: float = 0.0,
                        alternative: Literal["two-sided", "less", "greater"] = "two-sided"
                        ) -> tuple[Estimate, float | None]:
    """mean(a) - mean(b) with Welch's t interval and the p-value of ``null``."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    method = "welch-t"
    n1, n2 = int(x.size), int(y.size)
    if n1 < 2 or n2 < 2:
        return unavailable(n1 + n2, method, "a cohort has fewer than 2 observations"), None
    d = float(x.mean() - y.mean())
    v1, v2 = float(x.var(ddof=1)) / n1, float(y.var(ddof=1)) / n2
    se = math.sqrt(v1 + v2)
    if se == 0:
        return Estimate(d, None, n1 + n2, method,
                        "no variation in either cohort: no interval"), None
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    half = float(t_dist.ppf(1 - (1 - confidence) / 2, df)) * se
    tstat = (d - null) / se
    if alternative == "two-sided":
        p = 2 * float(t_dist.sf(abs(tstat), df))
    elif alternative == "less":
        p = float(t_dist.cdf(tstat, df))
    else:
        p = float(t_dist.sf(tstat, df))
    return Estimate(d, (d - half, d + half), n1 + n2, method), min(1.0, p)


@dataclass(frozen=True)
class ImpactRatio:
    """One cohort's selection rate against the highest cohort's (the reference)."""

    cohort: str
    selected: int
    n: int
    rate: Estimate
    ratio: Estimate
    reference: str
    below_threshold: bool | None  # None: not estimable

    def to_dict(self) -> dict[str, Any]:
        return {"cohort": self.cohort, "selected": self.selected, "n": self.n,
                "rate": self.rate.to_dict(), "ratio": self.ratio.to_dict(),
                "reference": self.reference, "below_threshold": self.below_threshold}


def _katz(x1: int, n1: int, x2: int, n2: int, confidence: float) -> tuple[float, float] | None:
    """Katz's log interval for (x1/n1) / (x2/n2)."""
    if 0 in (x1, x2):
        x1, x2, n1, n2 = x1 + 0.5, x2 + 0.5, n1 + 1, n2 + 1  # type: ignore[assignment]
    r = (x1 / n1) / (x2 / n2)
    se = math.sqrt(max(0.0, 1 / x1 - 1 / n1 + 1 / x2 - 1 / n2))
    z = normal_quantile(confidence)
    return r * math.exp(-z * se), r * math.exp(z * se)


def impact_ratios(counts: Mapping[str, tuple[int, int]], *, min_ratio: float = FOUR_FIFTHS,
                  confidence: float = 0.95) -> list[ImpactRatio]:
    """Each cohort's selection rate ``selected / n`` divided by the highest cohort's rate.

    ``counts`` maps cohort → (selected, n). A cohort is ``below_threshold`` when its ratio
    is below ``min_ratio`` (the four-fifths rule at 0.8: "less than four-fifths", so
    exactly 0.8 passes). Cohorts with no observations are not estimable; when the highest
    rate is 0 no ratio exists.
    """
    if not 0 < min_ratio <= 1:
        raise ValueError(f"min_ratio must be in (0, 1], got {min_ratio!r}")
    rates = {}
    for cohort, (x, n) in counts.items():
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"cohort {cohort!r}: need 0 <= selected <= n, got {x}, {n}")
        rates[cohort] = x / n if n else None
    known = {c: r for c, r in rates.items() if r is not None}
    reference = max(sorted(known), key=lambda c: known[c]) if known else ""
    out = []
    for cohort in sorted(counts):
        x, n = counts[cohort]
        rate = wilson_interval(x, n, confidence)
        method = "impact-ratio (katz-log)"
        if n == 0:
            ratio, below = unavailable(n, method, "no observations in this cohort"), None
        elif not known or known[reference] == 0:
            ratio, below = unavailable(n, method, "no cohort has any selection"), None
        elif cohort == reference:
            ratio = Estimate(1.0, None, n, method, "the reference cohort (highest rate)")
            below = False
        else:
            xr, nr = counts[reference]
            value = (x / n) / (xr / nr)
            ratio = Estimate(value, _katz(x, n, xr, nr, confidence), n + nr, method)
            below = value < min_ratio - _EPS
        out.append(ImpactRatio(cohort, int(x), int(n), rate, ratio, reference, below))
    return out


@dataclass(frozen=True)
class CohortComparison:
    """One cohort's difference (``b`` - ``a`` for a regression, cohort - rest for a gap)."""

    cohort: str
    a: Estimate
    b: Estimate
    difference: Estimate
    p_value: float | None
    adjusted_p_value: float | None = None
    flagged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"cohort": self.cohort, "a": self.a.to_dict(), "b": self.b.to_dict(),
                "difference": self.difference.to_dict(), "p_value": self.p_value,
                "adjusted_p_value": self.adjusted_p_value, "flagged": self.flagged}


def _summary(values: np.ndarray, kind: Kind, confidence: float) -> Estimate:
    if kind == "rate":
        return wilson_interval(int(values.sum()), int(values.size), confidence)
    return mean_interval(values, confidence)


def _difference(b: np.ndarray, a: np.ndarray, kind: Kind, confidence: float, null: float,
                alternative: Literal["two-sided", "less", "greater"]
                ) -> tuple[Estimate, float | None]:
    if kind == "rate":
        return difference_in_proportions(int(b.sum()), int(b.size), int(a.sum()), int(a.size),
                                         confidence=confidence, null=null,
                                         alternative=alternative)
    return difference_in_means(b, a, confidence=confidence, null=null,
                               alternative=alternative)


def _holm(rows: list[CohortComparison], alpha: float) -> list[CohortComparison]:
    tested = [k for k, r in enumerate(rows) if r.p_value is not None]
    p_values = [float(rows[k].p_value) for k in tested]  # type: ignore[arg-type]
    adjusted = adjust_p_values(p_values, "holm").tolist() if tested else []
    out = list(rows)
    for k, adj in zip(tested, adjusted, strict=True):
        r = rows[k]
        out[k] = CohortComparison(r.cohort, r.a, r.b, r.difference, r.p_value, float(adj),
                                  bool(adj < alpha))
    return out


def _check_kind(values: np.ndarray, kind: Kind) -> None:
    if kind not in ("rate", "mean"):
        raise ValueError(f"kind must be 'rate' or 'mean', got {kind!r}")
    if kind == "rate" and not np.all((values == 0) | (values == 1)):
        raise ValueError("a rate needs values of 0 and 1")


def satisfaction_gaps(values: Sequence[float] | np.ndarray, groups: Sequence[Any] | np.ndarray,
                      kind: Kind, *, alpha: float = 0.05, confidence: float = 0.95
                      ) -> list[CohortComparison]:
    """Each cohort against all the others together: ``b`` is the cohort, ``a`` the rest,
    the difference cohort - rest with its interval, a two-sided p-value, and Holm-adjusted
    p-values across the cohorts; ``flagged`` when the adjusted p is below ``alpha``."""
    x = np.asarray(values, dtype=float)
    g = np.asarray(groups).astype(str)
    if x.shape != g.shape:
        raise ValueError("values and groups must have the same length")
    _check_kind(x, kind)
    rows = []
    for cohort in _cohort_order(g):
        inside, rest = x[g == cohort], x[g != cohort]
        diff, p = _difference(inside, rest, kind, confidence, 0.0, "two-sided")
        rows.append(CohortComparison(cohort, _summary(rest, kind, confidence),
                                     _summary(inside, kind, confidence), diff, p))
    return _holm(rows, alpha)


def cohort_regressions(baseline: Sequence[float] | np.ndarray,
                       baseline_groups: Sequence[Any] | np.ndarray,
                       candidate: Sequence[float] | np.ndarray,
                       candidate_groups: Sequence[Any] | np.ndarray, kind: Kind, *,
                       tolerance: float, alpha: float = 0.05, higher_is_better: bool = True,
                       confidence: float = 0.95) -> list[CohortComparison]:
    """Per cohort, candidate - baseline with its interval, and a one-sided test of a
    regression beyond ``tolerance``: H0 "the candidate is at most ``tolerance`` worse" (d ≥
    -tolerance when higher is better) against H1 "worse by more than that". Holm-adjusted
    across the cohorts that can be tested; ``flagged`` (regressed) when the adjusted p is
    below ``alpha``. ``a`` is the baseline, ``b`` the candidate."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    xa, xb = np.asarray(baseline, dtype=float), np.asarray(candidate, dtype=float)
    ga, gb = np.asarray(baseline_groups).astype(str), np.asarray(candidate_groups).astype(str)
    if xa.shape != ga.shape or xb.shape != gb.shape:
        raise ValueError("values and groups must have the same length")
    _check_kind(xa, kind)
    _check_kind(xb, kind)
    null = -tolerance if higher_is_better else tolerance
    alternative: Literal["less", "greater"] = "less" if higher_is_better else "greater"
    rows = []
    for cohort in sorted(set(ga.tolist()) | set(gb.tolist())):
        a, b = xa[ga == cohort], xb[gb == cohort]
        diff, p = _difference(b, a, kind, confidence, null, alternative)
        rows.append(CohortComparison(cohort, _summary(a, kind, confidence),
                                     _summary(b, kind, confidence), diff, p))
    return _holm(rows, alpha)


@dataclass(frozen=True)
class ClassifierFairness:
    """Per-cohort selection rate, true- and false-positive rates of a classifier-like
    signal, and fairlearn's four summary criteria with bootstrap intervals."""

    cohorts: list[dict[str, Any]]
    demographic_parity_difference: Estimate
    demographic_parity_ratio: Estimate
    equalized_odds_difference: Estimate
    equalized_odds_ratio: Estimate
    n: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"cohorts": self.cohorts, "n": self.n, "notes": list(self.notes),
                "demographic_parity_difference": self.demographic_parity_difference.to_dict(),
                "demographic_parity_ratio": self.demographic_parity_ratio.to_dict(),
                "equalized_odds_difference": self.equalized_odds_difference.to_dict(),
                "equalized_odds_ratio": self.equalized_odds_ratio.to_dict()}


def _criteria(y: np.ndarray, p: np.ndarray, codes: np.ndarray, k: int) -> np.ndarray:
    """The four criteria for each row of (m, n) arrays: shape (m, 4), NaN when undefined
    (DP diff, DP ratio, EO diff, EO ratio)."""
    m = y.shape[0]
    offs = (np.arange(m)[:, None] * k + codes).ravel()

    def per_group(weights: np.ndarray) -> np.ndarray:
        return np.bincount(offs, weights=weights.ravel(), minlength=m * k).reshape(m, k)

    ones = np.ones_like(y, dtype=float)
    n_g = per_group(ones)
    sel_g = per_group(p)
    pos_g = per_group(y)
    tp_g = per_group(y * p)
    neg_g = n_g - pos_g
    fp_g = sel_g - tp_g
    with np.errstate(all="ignore"):
        sel = sel_g / n_g
        tpr = tp_g / pos_g
        fpr = fp_g / neg_g
        dp_diff = np.max(sel, axis=1) - np.min(sel, axis=1)
        dp_ratio = np.min(sel, axis=1) / np.max(sel, axis=1)
        eo_diff = np.maximum(np.max(tpr, axis=1) - np.min(tpr, axis=1),
                             np.max(fpr, axis=1) - np.min(fpr, axis=1))
        eo_ratio = np.minimum(np.min(tpr, axis=1) / np.max(tpr, axis=1),
                              np.min(fpr, axis=1) / np.max(fpr, axis=1))
    return np.column_stack([dp_diff, dp_ratio, eo_diff, eo_ratio])


def classifier_fairness(y_true: Sequence[Any] | np.ndarray, y_pred: Sequence[Any] | np.ndarray,
                        groups: Sequence[Any] | np.ndarray, *, rng: np.random.Generator,
                        n_resamples: int = 1000, confidence: float = 0.95
                        ) -> ClassifierFairness:
    """Demographic parity and equalised odds of predictions ``y_pred`` (0/1) against the
    human label ``y_true`` (0/1) across ``groups``, as fairlearn computes them
    (``between_groups``, worst case), with percentile intervals from a row bootstrap
    (resamples where a criterion is undefined, e.g. a cohort without positives, are
    dropped; fewer than half left and the interval is missing)."""
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    g = np.asarray(groups).astype(str)
    if not (y.shape == p.shape == g.shape):
        raise ValueError("labels, predictions and groups must have the same length")
    for arr, name in ((y, "labels"), (p, "predictions")):
        if not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} must be 0 or 1")
    names = _cohort_order(g)
    n = int(y.size)
    notes: list[str] = []
    cohorts = []
    for c in names:
        sel = g == c
        yc, pc = y[sel], p[sel]
        pos, neg = int(yc.sum()), int(yc.size - yc.sum())
        cohorts.append({
            "cohort": c, "n": int(sel.sum()), "positives": pos, "negatives": neg,
            "selection_rate": wilson_interval(int(pc.sum()), int(pc.size),
                                              confidence).to_dict(),
            "true_positive_rate": wilson_interval(int((yc * pc).sum()), pos,
                                                  confidence).to_dict(),
            "false_positive_rate": wilson_interval(int(((1 - yc) * pc).sum()), neg,
                                                   confidence).to_dict()})
        if pos == 0 or neg == 0:
            notes.append(f"cohort {c!r} has no {'positive' if pos == 0 else 'negative'} "
                         "labels: its true/false-positive rate is undefined, so equalised "
                         "odds is not estimable")
    methods = ("demographic-parity-difference", "demographic-parity-ratio",
               "equalized-odds-difference", "equalized-odds-ratio")
    if len(names) < 2:
        reason = "fewer than two cohorts"
        dp_d, dp_r, eo_d, eo_r = (unavailable(n, m, reason) for m in methods)
        return ClassifierFairness(cohorts, dp_d, dp_r, eo_d, eo_r, n=n, notes=notes)
    codes = np.searchsorted(np.array(names), g)
    k = len(names)
    point = _criteria(y[None, :], p[None, :], codes[None, :], k)[0]
    boot = np.empty((0, 4))
    if n >= 2 and n_resamples > 0:
        idx = rng.integers(0, n, (n_resamples, n))
        boot = _criteria(y[idx], p[idx], codes[idx], k)
    alpha = (1 - confidence) / 2
    estimates = []
    for j, method in enumerate(methods):
        value = float(point[j])
        if not math.isfinite(value):
            estimates.append(unavailable(n, method, "undefined on this data (a cohort "
                                         "without positives, negatives or selections)"))
            continue
        col = boot[:, j][np.isfinite(boot[:, j])] if boot.size else np.empty(0)
        ci = None
        if col.size >= max(1, n_resamples / 2):
            lo, hi = np.quantile(col, (alpha, 1 - alpha))
            ci = (float(lo), float(hi))
        note = None if ci else "too few usable bootstrap resamples"
        if ci is not None and not ci[0] <= value <= ci[1]:
            # max - min over cohorts is biased away from 0 when the cohorts are close, so
            # the resampled values can all lie beyond the estimate; say so, do not hide it
            note = ("the estimate lies outside its bootstrap interval: a worst-case "
                    "(max - min) criterion is biased when cohorts are close")
        estimates.append(Estimate(value, ci, n, method + " (bootstrap percentile)", note))
    dp_d, dp_r, eo_d, eo_r = estimates
    return ClassifierFairness(cohorts, dp_d, dp_r, eo_d, eo_r, n=n, notes=notes)


@dataclass(frozen=True)
class RepresentationRow:
    """One cohort's share among users and among feedback givers."""

    cohort: str
    users: int
    givers: int
    share_of_users: float | None
    share_of_givers: Estimate
    ratio: Estimate  # share of givers / share of users
    giving_rate: Estimate  # givers / users in the cohort

    def to_dict(self) -> dict[str, Any]:
        return {"cohort": self.cohort, "users": self.users, "givers": self.givers,
                "share_of_users": self.share_of_users,
                "share_of_givers": self.share_of_givers.to_dict(),
                "ratio": self.ratio.to_dict(), "giving_rate": self.giving_rate.to_dict()}


def representation(users: Mapping[str, int], givers: Mapping[str, int], *,
                   confidence: float = 0.95) -> dict[str, Any]:
    """Who gives feedback against who uses the product, per cohort.

    The share of users is a census (every user is counted), so it is taken as known; the
    share among givers gets a Wilson interval and the representation ratio (givers' share
    / users' share: 1 is proportional, below 1 under-represented) the same interval divided
    by the users' share. The chi-square test of independence on the cohorts x (gave, did not
    give) table asks whether giving feedback depends on the cohort.
    """
    cohorts = sorted(set(users) | set(givers))
    for c in cohorts:
        u, gv = users.get(c, 0), givers.get(c, 0)
        if u < 0 or gv < 0 or gv > u:
            raise ValueError(f"cohort {c!r}: need 0 <= givers <= users, got {gv}, {u}")
    total_u = sum(users.get(c, 0) for c in cohorts)
    total_g = sum(givers.get(c, 0) for c in cohorts)
    rows = []
    for c in cohorts:
        u, gv = users.get(c, 0), givers.get(c, 0)
        share_u = u / total_u if total_u else None
        share_g = wilson_interval(gv, total_g, confidence)
        method = "share of givers / share of users (wilson)"
        if share_u is None or share_u == 0 or not share_g.available:
            ratio = unavailable(total_g, method, "no users or no givers")
        else:
            assert share_g.value is not None
            ci = share_g.ci
            ratio = Estimate(share_g.value / share_u,
                             (ci[0] / share_u, ci[1] / share_u) if ci else None,
                             total_g, method)
        rows.append(RepresentationRow(c, u, gv, share_u, share_g, ratio,
                                      wilson_interval(gv, u, confidence)))
    test: dict[str, Any] = {"method": "chi-square test of independence (cohort x gave "
                                      "feedback)", "statistic": None, "df": None,
                            "p_value": None, "reason": None}
    table = np.array([[givers.get(c, 0), users.get(c, 0) - givers.get(c, 0)]
                      for c in cohorts if users.get(c, 0) > 0], dtype=float)
    if table.shape[0] < 2 or total_g == 0 or total_g == total_u:
        test["reason"] = "needs two cohorts with users, and both givers and non-givers"
    else:
        stat, pval, df, expected = chi2_contingency(table, correction=False)
        test.update(statistic=_finite(float(stat)), df=int(df), p_value=_finite(float(pval)))
        if float(np.min(expected)) < 5:
            test["reason"] = "some expected counts are below 5: the chi-square " \
                             "approximation is rough"
    return {"cohorts": [r.to_dict() for r in rows], "users": total_u, "givers": total_g,
            "test": test}
