"""Off-policy evaluation: the value of a *target* policy estimated from logs of another
(the *logging* policy), with bootstrap intervals and the effective sample size.

Each logged row i has the action taken a_i, its reward r_i, the logging propensity
μ_i = μ(a_i | x_i) > 0, the target policy's probabilities π(· | x_i) over the K actions,
and optionally a reward model's predictions q̂(x_i, ·). With importance weights
w_i = π(a_i | x_i) / μ_i:

- **IPS** (inverse propensity scoring; Horvitz & Thompson 1952): V = (1/n) Σ w_i r_i.
  Unbiased when every action the target can take had μ > 0.
- **SNIPS** (self-normalised IPS; Swaminathan & Joachims 2015, NeurIPS): Σ w_i r_i / Σ w_i.
  Biased by O(1/n) but consistent, and usually of much smaller variance.
- **DM** (direct method): (1/n) Σ_i Σ_a π(a | x_i) q̂(x_i, a). Biased as much as the reward
  model is wrong.
- **DR** (doubly robust; Dudík, Langford & Li 2011, ICML): DM + (1/n) Σ w_i (r_i - q̂(x_i,
  a_i)). Unbiased when the propensities are right, whatever the reward model; of lower
  variance than IPS when the model is good.
- **Effective sample size** (Kish 1965): (Σ w_i)² / Σ w_i². Near n when the target is close
  to the logging policy; small when a few heavy weights carry the estimate.

Intervals: the nonparametric percentile bootstrap over rows (Efron & Tibshirani 1993,
ch. 13), every estimator from the same resamples. Pure numpy; randomness comes in as a
Generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OffPolicyInputError",
    "OffPolicyLog",
    "effective_sample_size",
    "evaluate",
]

SUM_TOLERANCE = 1e-6
_CHUNK_CELLS = 4_000_000  # resample indices drawn per chunk (bounds memory)


class OffPolicyInputError(ValueError):
    """A malformed log. ``row`` (0-based) and ``field`` say where; ``row`` is None when the
    problem is not one row's (unequal lengths)."""

    def __init__(self, message: str, *, row: int | None = None, field: str | None = None):
        super().__init__(message)
        self.row = row
        self.field = field


@dataclass(frozen=True)
class OffPolicyLog:
    """Validated arrays of a log (see :meth:`of`)."""

    actions: np.ndarray      # (n,) int
    rewards: np.ndarray      # (n,) float
    propensities: np.ndarray  # (n,) float in (0, 1]
    target: np.ndarray       # (n, K) rows summing to 1
    predicted: np.ndarray | None  # (n, K) or None

    @classmethod
    def of(cls, actions: Sequence[int] | np.ndarray, rewards: Sequence[float] | np.ndarray,
           propensities: Sequence[float] | np.ndarray,
           target: Sequence[Sequence[float]] | np.ndarray,
           predicted: Sequence[Sequence[float]] | np.ndarray | None = None) -> OffPolicyLog:
        """Check the log; the first bad row raises :class:`OffPolicyInputError` naming it:
        lengths unequal, an action not an integer in [0, K), a reward not finite, a
        propensity not in (0, 1], target probabilities negative or not summing to 1, or
        predictions not finite."""
        a = np.asarray(actions)
        r = np.asarray(rewards, dtype=np.float64)
        p = np.asarray(propensities, dtype=np.float64)
        t = np.asarray(target, dtype=np.float64)
        n = a.shape[0] if a.ndim == 1 else -1
        if a.ndim != 1 or r.ndim != 1 or p.ndim != 1:
            raise OffPolicyInputError("actions, rewards and propensities must be 1-D")
        if t.ndim != 2:
            raise OffPolicyInputError("target must be one list of action probabilities per "
                                      "row, all of the same length", field="target")
        lengths = {"actions": n, "rewards": r.shape[0], "propensities": p.shape[0],
                   "target": t.shape[0]}
        q = None
        if predicted is not None:
            q = np.asarray(predicted, dtype=np.float64)
            if q.ndim != 2:
                raise OffPolicyInputError("predicted must be one list of predictions per "
                                          "row, all of the same length", field="predicted")
            lengths["predicted"] = q.shape[0]
        if len(set(lengths.values())) != 1:
            raise OffPolicyInputError(
                "unequal lengths: " + ", ".join(f"{k} {v}" for k, v in lengths.items()))
        if n == 0:
            raise OffPolicyInputError("the log has no rows")
        k = t.shape[1]
        if k < 1:
            raise OffPolicyInputError("target has no actions", row=0, field="target")
        if q is not None and q.shape[1] != k:
            raise OffPolicyInputError(f"predicted has {q.shape[1]} values per row but target "
                                      f"has {k}", row=0, field="predicted")
        if a.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))
            _first(bad, "action", "action must be an integer")
        elif a.dtype.kind not in "iu":
            raise OffPolicyInputError("actions must be integers", field="action")
        ai = a.astype(np.int64)
        _first(np.flatnonzero((ai < 0) | (ai >= k)), "action",
               f"action out of range: the target lists {k} actions (0 to {k - 1})",
               values=ai)
        _first(np.flatnonzero(~np.isfinite(r)), "reward", "reward must be a finite number")
        _first(np.flatnonzero(~np.isfinite(p) | (p <= 0) | (p > 1)), "propensity",
               "propensity must be in (0, 1]", values=p)
        _first(np.flatnonzero(~np.all(np.isfinite(t), axis=1) | np.any(t < 0, axis=1)),
               "target", "target probabilities must be finite and >= 0")
        sums = t.sum(axis=1)
        _first(np.flatnonzero(np.abs(sums - 1.0) > SUM_TOLERANCE), "target",
               "target probabilities must sum to 1", values=sums)
        if q is not None:
            _first(np.flatnonzero(~np.all(np.isfinite(q), axis=1)), "predicted",
                   "predicted rewards must be finite numbers")
        return cls(ai, r, p, t, q)

    @property
    def n(self) -> int:
        return int(self.actions.size)

    @property
    def weights(self) -> np.ndarray:
        """w_i = π(a_i | x_i) / μ_i."""
        return self.target[np.arange(self.n), self.actions] / self.propensities


def _first(rows: np.ndarray, field: str, message: str, values: Any = None) -> None:
    if rows.size:
        i = int(rows[0])
        got = f", got {float(values[i]):.6g}" if values is not None else ""
        raise OffPolicyInputError(f"row {i}: {message}{got}", row=i, field=field)


def effective_sample_size(weights: Sequence[float] | np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw² (0 when every weight is 0)."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.dot(w, w))
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def _columns(log: OffPolicyLog) -> tuple[np.ndarray, list[str]]:
    """Per-row terms whose column means give every estimator: w·r, w, dm, dr, r."""
    w = log.weights
    cols = [w * log.rewards, w]
    names = ["wr", "w"]
    if log.predicted is not None:
        dm = np.einsum("ij,ij->i", log.target, log.predicted)
        q_taken = log.predicted[np.arange(log.n), log.actions]
        cols += [dm, dm + w * (log.rewards - q_taken)]
        names += ["dm", "dr"]
    cols.append(log.rewards)
    names.append("logged")
    return np.column_stack(cols), names


def _point(means: np.ndarray, names: list[str]) -> dict[str, float | None]:
    """Estimator values from column means (shape (..., C)); SNIPS None where Σw = 0."""
    col = {name: means[..., i] for i, name in enumerate(names)}
    out: dict[str, Any] = {"ips": col["wr"], "logged": col["logged"]}
    with np.errstate(divide="ignore", invalid="ignore"):
        out["snips"] = np.where(col["w"] > 0, col["wr"] / np.where(col["w"] > 0, col["w"],
                                                                    1.0), np.nan)
    if "dm" in col:
        out["dm"] = col["dm"]
        out["dr"] = col["dr"]
    return out


def _bootstrap_means(terms: np.ndarray, rng: np.random.Generator,
                     resamples: int) -> np.ndarray:
    """Column means of ``resamples`` row resamples: shape (resamples, C)."""
    n = terms.shape[0]
    chunk = max(1, _CHUNK_CELLS // n)
    out = np.empty((resamples, terms.shape[1]))
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        # counts of each row per resample, then one matrix product: cheaper than gathering
        # the (b, n, C) array when C is small
        idx += (np.arange(b) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[done:done + b] = counts @ terms / n
        done += b
    return out


_METHODS = {
    "ips": "inverse propensity scoring (Horvitz-Thompson)",
    "snips": "self-normalised IPS (Swaminathan & Joachims 2015)",
    "dm": "direct method (reward model)",
    "dr": "doubly robust (Dudik, Langford & Li 2011)",
    "logged": "mean logged reward (the logging policy's value)",
}


def evaluate(log: OffPolicyLog, *, rng: np.random.Generator, bootstrap: int = 1000,
             confidence: float = 0.95) -> dict[str, Any]:
    """Every estimator with its percentile-bootstrap interval, and the effective sample
    size::

        {"n", "ips": {"estimate", "ci95", "se", "method"}, "snips": {...},
         "dm": {...}, "dr": {...}, "logged": {...}, "effective_sample_size",
         "max_weight", "bootstrap": {"resamples", "method"}, "notes": [...]}

    ``ci95`` is the interval at ``confidence`` (0.95 by default); ``se`` the bootstrap
    standard deviation. Without predictions DM and DR are ``{"estimable": false, "reason"}``;
    SNIPS too when the target gives probability 0 to every logged action. ``bootstrap=0``
    skips the intervals (``ci95`` and ``se`` None). Nothing is NaN."""
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0, got {bootstrap}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    terms, names = _columns(log)
    point = _point(terms.mean(axis=0), names)
    boot = None
    if bootstrap > 0 and log.n >= 2:
        boot = _point(_bootstrap_means(terms, rng, bootstrap), names)
    lo_q, hi_q = (1.0 - confidence) / 2.0, 1.0 - (1.0 - confidence) / 2.0
    notes: list[str] = []
    result: dict[str, Any] = {"n": log.n}
    for key in ("ips", "snips", "dm", "dr", "logged"):
        if key not in point:
            result[key] = {"estimable": False, "reason": (
                "no reward-model predictions ('predicted') in the log: the direct method "
                "and doubly robust estimators need them")}
            continue
        value = float(point[key])  # type: ignore[arg-type]
        if not math.isfinite(value):
            result[key] = {"estimable": False, "reason": (
                "the target policy gives probability 0 to every logged action, so the "
                "importance weights sum to 0")}
            continue
        ci = se = None
        if boot is not None:
            b = np.asarray(boot[key])
            b = b[np.isfinite(b)]
            if b.size >= bootstrap / 2:
                lo, hi = np.quantile(b, (lo_q, hi_q))
                ci, se = [float(lo), float(hi)], float(b.std(ddof=1)) if b.size > 1 else 0.0
        result[key] = {"estimable": True, "estimate": value, "ci95": ci, "se": se,
                       "method": _METHODS[key]}
    w = log.weights
    ess = effective_sample_size(w)
    result["effective_sample_size"] = ess
    result["max_weight"] = float(w.max())
    result["bootstrap"] = {"resamples": bootstrap if boot is not None else 0,
                           "confidence": confidence,
                           "method": "percentile bootstrap over rows"}
    if "dm" not in point:
        notes.append("DM and DR skipped: the rows carry no 'predicted' rewards.")
    if boot is None:
        notes.append("no intervals: " + ("bootstrap=0" if bootstrap == 0
                                         else "fewer than 2 rows"))
    if ess < 0.1 * log.n:
        notes.append(f"effective sample size {ess:.1f} is under a tenth of the {log.n} "
                     "rows: a few heavy weights carry IPS; prefer SNIPS or DR and read the "
                     "intervals with care.")
    result["notes"] = notes
    return result
