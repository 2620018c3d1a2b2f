"""Per-rater reliability: agreement with the consensus of the other raters and accuracy on
gold items, over the rater's own time line, with a drift flag.

Input is long format, one entry per annotation: ``units`` and ``raters`` (hashable ids),
``values`` (floats; nominal labels as numeric codes), ``order`` (when the annotation was
made: any sortable numbers, e.g. POSIX seconds) and optionally ``gold`` (the known true
value where the unit is a gold item, ``np.nan`` elsewhere). Each (unit, rater) pair occurs
at most once (:func:`~feedbackloop.stats.agreement.reliability_matrix` names duplicates).

Leave-one-out consensus score of one annotation (rater r, unit u, value v), defined when
at least one *other* rater rated u:

* nominal: the others' majority. Score 1 when v is the others' single most frequent
  label, 1/k when v is one of k labels tied for most frequent, 0 otherwise. A rater's
  agreement is the mean score: the share of their labels equal to the others' majority,
  ties counted fractionally.
* ordinal, interval, ratio: 1 - |v - m| / R, with m the mean of the others' values on u and
  R the width of the scale (the given ``scale``, else the range of all values), clipped to
  [0, 1]. 1 means the rater sits on the others' mean; a rater answering uniformly at
  random on a scale averages about 2/3 against a consensus in the middle, so thresholds
  for scales sit higher than for labels.

Gold score of an annotation on a gold item: nominal and ordinal 1 when v equals the gold
value, else 0 (accuracy); interval and ratio 1 - |v - gold| / R.

Windows: the rater's annotations in ``order`` (ties by input position) are cut into
consecutive blocks of ``window`` annotations from the first (the last block may be
shorter); each block reports its mean consensus score, its gold accuracy and the
cumulative agreement up to its end. ``latest`` is the trailing block of the rater's last
``window`` annotations. The rater *drifts* when the latest block has at least
``min_items`` scored annotations and its consensus agreement is below ``threshold``, or
at least ``min_items`` gold annotations and its gold accuracy is below ``threshold``.

Every rate comes with a 95 % Wilson score interval on its mean score (``*_ci95``): exact
for 0/1 scores, conservative for fractional ones (ties, scales), since a variable in [0, 1]
with mean p has variance at most p (1 - p).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..intervals import wilson_interval

__all__ = [
    "RaterReliability",
    "RaterWindow",
    "consensus_scores",
    "gold_scores",
    "rater_reliability",
]

_LEVELS = ("nominal", "ordinal", "interval", "ratio")


@dataclass(frozen=True)
class RaterWindow:
    """One block of a rater's consecutive annotations. ``start``/``end`` are the ``order``
    values of its first and last annotation; rates are ``None`` with nothing to score."""

    start: Any
    end: Any
    n: int
    n_compared: int
    consensus_agreement: float | None
    gold_n: int
    gold_accuracy: float | None
    cumulative_agreement: float | None
    consensus_ci95: tuple[float, float] | None = None
    gold_ci95: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "n": self.n,
                "n_compared": self.n_compared,
                "consensus_agreement": self.consensus_agreement,
                "consensus_ci95": _ci_list(self.consensus_ci95), "gold_n": self.gold_n,
                "gold_accuracy": self.gold_accuracy, "gold_ci95": _ci_list(self.gold_ci95),
                "cumulative_agreement": self.cumulative_agreement}


@dataclass(frozen=True)
class RaterReliability:
    """A rater's overall and windowed agreement, and whether they drift (``drift_reasons``
    says why)."""

    rater: Hashable
    n: int
    n_compared: int
    consensus_agreement: float | None
    gold_n: int
    gold_accuracy: float | None
    windows: list[RaterWindow]
    latest: RaterWindow
    drift: bool
    drift_reasons: list[str] = field(default_factory=list)
    consensus_ci95: tuple[float, float] | None = None
    gold_ci95: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rater": self.rater, "n": self.n, "n_compared": self.n_compared,
                "consensus_agreement": self.consensus_agreement,
                "consensus_ci95": _ci_list(self.consensus_ci95), "gold_n": self.gold_n,
                "gold_accuracy": self.gold_accuracy, "gold_ci95": _ci_list(self.gold_ci95),
                "windows": [w.to_dict() for w in self.windows],
                "latest": self.latest.to_dict(), "drift": self.drift,
                "drift_reasons": list(self.drift_reasons)}


def _codes(ids: Sequence[Hashable]) -> tuple[list[Hashable], np.ndarray]:
    index: dict[Hashable, int] = {}
    codes = np.fromiter((index.setdefault(x, len(index)) for x in ids), dtype=np.intp,
                        count=len(ids))
    return list(index), codes


def _width(values: np.ndarray, scale: tuple[float, float] | None) -> float:
    if scale is not None:
        lo, hi = float(scale[0]), float(scale[1])
        if not hi > lo:
            raise ValueError(f"scale must run from a lower to a higher value, got {scale}")
        return hi - lo
    if values.size == 0:
        return 1.0
    width = float(values.max() - values.min())
    return width if width > 0 else 1.0


def consensus_scores(units: Sequence[Hashable], values: Any, level: str = "nominal", *,
                     scale: tuple[float, float] | None = None) -> np.ndarray:
    """The leave-one-out consensus score of every annotation (see the module docstring),
    ``np.nan`` where no other rater rated the unit. O(annotations log annotations)."""
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size != len(units):
        raise ValueError(f"values must be 1-D with one entry per unit id: {v.shape} "
                         f"for {len(units)} units")
    if np.isnan(v).any() or np.isinf(v).any():
        raise ValueError("values must be finite: drop missing ratings first")
    _, u = _codes(units)
    n_units = int(u.max()) + 1 if u.size else 0
    m = np.bincount(u, minlength=n_units).astype(float)  # ratings per unit
    others = m[u] - 1.0
    out = np.full(v.size, np.nan)
    has = others > 0
    if level != "nominal":
        total = np.bincount(u, weights=v, minlength=n_units)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_others = (total[u] - v) / others
        width = _width(v, scale)
        out[has] = np.clip(1.0 - np.abs(v[has] - mean_others[has]) / width, 0.0, 1.0)
        return out
    _, c = np.unique(v, return_inverse=True)
    c = c.ravel()
    n_cat = int(c.max()) + 1 if c.size else 0
    # Counts of each (unit, category) pair present, and each annotation's own pair count.
    pair = u.astype(np.int64) * n_cat + c
    pairs, pair_of, pair_count = np.unique(pair, return_inverse=True, return_counts=True)
    pair_of = pair_of.ravel()
    pair_unit = pairs // n_cat
    # Highest and second-highest pair count per unit (a unit's single category: second 0).
    order = np.lexsort((-pair_count, pair_unit))
    su, sc = pair_unit[order], pair_count[order]
    first = np.ones(su.size, dtype=bool)
    first[1:] = su[1:] != su[:-1]
    top1 = np.zeros(n_units)
    top1[su[first]] = sc[first]
    second_pos = np.flatnonzero(first) + 1
    ok = second_pos < su.size
    second_pos = second_pos[ok]
    ok2 = su[second_pos] == su[second_pos - 1]
    top2 = np.zeros(n_units)
    top2[su[second_pos[ok2]]] = sc[second_pos[ok2]]
    # Multiplicity of each count value within a unit: how many categories share it.
    max_count = int(pair_count.max()) + 2
    key = pair_unit * max_count + pair_count
    keys, key_n = np.unique(key, return_counts=True)

    def n_with(unit: np.ndarray, count: np.ndarray) -> np.ndarray:
        k = unit * max_count + count
        pos = np.clip(np.searchsorted(keys, k), 0, keys.size - 1)
        return np.where(keys[pos] == k, key_n[pos], 0)

    own = pair_count[pair_of].astype(float)  # raters (incl. this one) giving v on u
    own_others = own - 1.0
    top = top1[u]
    # The others' highest count over the other categories: top1 unless v holds it alone.
    holds_top = own == top
    alone = holds_top & (n_with(u, own.astype(np.int64)) == 1)
    best_other_cat = np.where(alone, top2[u], top)
    omax = np.maximum(best_other_cat, own_others)
    # Categories tied at omax among the others' counts.
    tied_other = n_with(u, omax.astype(np.int64)) - (own == omax).astype(int)
    v_in_mode = (own_others == omax) & (omax > 0)
    k = tied_other + v_in_mode.astype(int)
    score = np.where(v_in_mode, 1.0 / np.maximum(k, 1), 0.0)
    out[has] = score[has]
    return out


def gold_scores(values: Any, gold: Any, level: str = "nominal", *,
                scale: tuple[float, float] | None = None,
                all_values: Any = None) -> np.ndarray:
    """Each annotation's gold score (see the module docstring), ``np.nan`` off gold items.
    ``all_values`` sets the width of an unscaled interval/ratio scale (default ``values``)."""
    v = np.asarray(values, dtype=float)
    g = np.asarray(gold, dtype=float)
    if g.shape != v.shape:
        raise ValueError(f"gold must have one entry per value: {g.shape} vs {v.shape}")
    out = np.full(v.size, np.nan)
    on = ~np.isnan(g)
    if level in ("nominal", "ordinal"):
        out[on] = (v[on] == g[on]).astype(float)
    else:
        ref = np.asarray(all_values if all_values is not None else v, dtype=float)
        width = _width(np.concatenate([ref, g[on]]), scale)
        out[on] = np.clip(1.0 - np.abs(v[on] - g[on]) / width, 0.0, 1.0)
    return out


def _mean(x: np.ndarray) -> tuple[int, float | None]:
    x = x[~np.isnan(x)]
    return int(x.size), (float(x.mean()) if x.size else None)


def _wilson(x: np.ndarray) -> tuple[float, float] | None:
    x = x[~np.isnan(x)]
    if not x.size:
        return None
    total = min(float(x.sum()), float(x.size))
    return wilson_interval(total, int(x.size)).ci  # type: ignore[arg-type]


def _ci_list(ci: tuple[float, float] | None) -> list[float] | None:
    return list(ci) if ci is not None else None


def rater_reliability(
    units: Sequence[Hashable],
    raters: Sequence[Hashable],
    values: Any,
    order: Any = None,
    *,
    level: str = "nominal",
    gold: Any = None,
    scale: tuple[float, float] | None = None,
    window: int = 50,
    min_items: int = 20,
    threshold: float = 0.6,
) -> list[RaterReliability]:
    """Per-rater consensus agreement and gold accuracy, overall and per window, with drift
    (see the module docstring). ``order`` defaults to input order. Raters are returned in
    order of first appearance."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if min_items < 1:
        raise ValueError(f"min_items must be at least 1, got {min_items}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    units, raters = list(units), list(raters)
    v = np.asarray(values, dtype=float)
    if not len(units) == len(raters) == v.size:
        raise ValueError(f"units, raters and values differ in length: {len(units)}, "
                         f"{len(raters)}, {v.size}")
    when = np.arange(v.size) if order is None else np.asarray(order)
    if when.shape != v.shape:
        raise ValueError(f"order must have one entry per annotation: {when.shape}")
    score = consensus_scores(units, v, level, scale=scale)
    gscore = (np.full(v.size, np.nan) if gold is None
              else gold_scores(v, gold, level, scale=scale))
    names, r = _codes(raters)
    sequence = np.lexsort((np.arange(v.size), when, r))  # by rater, then time, then input
    bounds = np.searchsorted(r[sequence], np.arange(len(names) + 1))
    result = []
    for j, name in enumerate(names):
        idx = sequence[bounds[j]:bounds[j + 1]]
        s, gs, t = score[idx], gscore[idx], when[idx]
        windows = []
        for start in range(0, idx.size, window):
            stop = min(start + window, idx.size)
            windows.append(_window(s, gs, t, start, stop))
        latest = _window(s, gs, t, max(0, idx.size - window), idx.size)
        n_cmp, agreement = _mean(s)
        gold_n, gold_acc = _mean(gs)
        reasons = []
        if latest.n_compared >= min_items and latest.consensus_agreement is not None \
                and latest.consensus_agreement < threshold:
            reasons.append(f"consensus agreement {latest.consensus_agreement:.3f} over the "
                           f"last {latest.n} annotations is below {threshold:g}")
        if latest.gold_n >= min_items and latest.gold_accuracy is not None \
                and latest.gold_accuracy < threshold:
            reasons.append(f"gold accuracy {latest.gold_accuracy:.3f} over the last "
                           f"{latest.gold_n} gold items is below {threshold:g}")
        result.append(RaterReliability(name, int(idx.size), n_cmp, agreement, gold_n,
                                       gold_acc, windows, latest, bool(reasons), reasons,
                                       _wilson(s), _wilson(gs)))
    return result


def _window(s: np.ndarray, gs: np.ndarray, t: np.ndarray, start: int,
            stop: int) -> RaterWindow:
    n_cmp, agreement = _mean(s[start:stop])
    gold_n, gold_acc = _mean(gs[start:stop])
    _, cumulative = _mean(s[:stop])
    return RaterWindow(_plain(t[start]), _plain(t[stop - 1]), stop - start, n_cmp, agreement,
                       gold_n, gold_acc, cumulative, _wilson(s[start:stop]),
                       _wilson(gs[start:stop]))


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x
