"""Group-sequential boundaries for planned looks, by Lan-DeMets alpha spending.

Lan & DeMets (1983), "Discrete sequential boundaries for clinical trials", Biometrika
70:659: the type I error spent by information fraction t is

* O'Brien-Fleming type: A(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))
* Pocock type:          A(t) = alpha ln(1 + (e - 1) t)

and the boundary c_k at look k is the z for which the chance of first crossing at look k,
having stayed inside every earlier boundary, is A(t_k) - A(t_{k-1}). Those crossing
chances come from the recursive numerical integration of Armitage, McPherson & Rowe
(1969), JRSS A 132:235, on the score process S_k = Z_k sqrt(t_k), whose increments are
independent N(0, t_k - t_{k-1}) under the null (Jennison & Turnbull 2000, *Group
Sequential Methods with Applications to Clinical Trials*, ch. 19). Two-sided bounds are
symmetric (+-c_k), each side spending A(t) at level alpha/2 (as ldbounds and gsDesign's
symmetric designs do); one-sided bounds reject for Z_k >= c_k.
For 5 equally spaced looks, two-sided alpha = 0.05 and OBF-type spending this gives
4.8769, 3.3569, 2.6803, 2.2898, 2.0310, as R ``ldbounds::ldBounds(5)`` (Reboussin, DeMets,
Kim & Lan 2000, Controlled Clinical Trials 21:190).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import optimize
from scipy.special import ndtr, ndtri

__all__ = ["group_sequential_bounds", "spent_alpha"]

Spending = Literal["obrien-fleming", "pocock"]
_GRID = 801  # points per unit of score scale; bounds agree with ldbounds to 1e-4
_TAIL = 9.0  # the one-sided lower end of the grid, in standard deviations


def spent_alpha(t: float, alpha: float, spending: Spending = "obrien-fleming") -> float:
    """Cumulative type I error the (one-sided) spending function at level ``alpha``
    allows by information fraction t."""
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    if spending == "obrien-fleming":
        return float(2.0 - 2.0 * ndtr(ndtri(1.0 - alpha / 2.0) / math.sqrt(t)))
    if spending == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    raise ValueError(f"unknown spending function {spending!r}; use obrien-fleming or pocock")


def _simpson_weights(m: int, h: float) -> np.ndarray:
    w = np.ones(m)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return w * h / 3.0


def _grid(lo: float, hi: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    m = max(101, math.ceil((hi - lo) / sd * _GRID / 8.0))
    m += 1 - m % 2  # Simpson's rule needs an odd number of points
    x = np.linspace(lo, hi, m)
    return x, _simpson_weights(m, (hi - lo) / (m - 1))


def group_sequential_bounds(fractions: Sequence[float], alpha: float = 0.05, sides: int = 2,
                            spending: Spending = "obrien-fleming") -> list[float]:
    """The z boundary at each look (information fractions increasing in (0, 1]); reject
    at look k when |Z_k| >= c_k (two-sided) or Z_k >= c_k (one-sided)."""
    t = [float(f) for f in fractions]
    if not t:
        raise ValueError("give at least one look")
    if any(not 0.0 < f <= 1.0 for f in t) or any(
            b <= a for a, b in itertools.pairwise(t)):
        raise ValueError("look fractions must increase within (0, 1]")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides!r}")
    spent_alpha(0.5, alpha, spending)  # validates the name

    bounds: list[float] = []
    prev_spent = 0.0
    # Sub-density of S_{k-1} on the continuation region, on a grid with Simpson weights.
    x: np.ndarray | None = None
    dens: np.ndarray | None = None
    weights: np.ndarray | None = None
    t_prev = 0.0
    for tk in t:
        spent = sides * spent_alpha(tk, alpha / sides, spending)
        inc = max(spent - prev_spent, 0.0)
        prev_spent = spent
        sq = math.sqrt(tk)
        if x is None:
            tail = inc / sides
            c = float(ndtri(1.0 - tail)) if tail > 0 else math.inf
        else:
            assert dens is not None and weights is not None
            sd = math.sqrt(tk - t_prev)
            mass = dens * weights

            def cross(c: float, x: np.ndarray = x, mass: np.ndarray = mass,
                      sd: float = sd, sq: float = sq) -> float:
                up = ndtr((x - c * sq) / sd)  # P(S_k >= c sqrt(t_k) | S_{k-1} = x)
                if sides == 2:
                    up = up + ndtr((-c * sq - x) / sd)
                return float(np.dot(mass, up))

            if inc <= 0:
                c = math.inf
            else:
                hi = 2.0
                while cross(hi) > inc:
                    hi *= 2.0
                c = float(optimize.brentq(lambda z, inc=inc: cross(z) - inc, 0.0, hi,
                                          xtol=1e-10))
        bounds.append(c)
        # The continuation region at this look and its sub-density.
        top = c * sq if math.isfinite(c) else (_TAIL + 4.0) * sq
        bottom = -top if sides == 2 else -_TAIL * sq
        new_x, new_w = _grid(bottom, top, math.sqrt(tk - t_prev))
        if x is None:
            new_dens = np.exp(-new_x ** 2 / (2.0 * tk)) / math.sqrt(2.0 * math.pi * tk)
        else:
            assert dens is not None and weights is not None
            sd = math.sqrt(tk - t_prev)
            kernel = np.exp(-((new_x[:, None] - x[None, :]) ** 2) / (2.0 * sd * sd)) / (
                math.sqrt(2.0 * math.pi) * sd)
            new_dens = kernel @ (dens * weights)
        x, dens, weights, t_prev = new_x, new_dens, new_w, tk
    return bounds
