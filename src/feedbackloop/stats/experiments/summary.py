"""Sufficient statistics of one experiment arm for one metric.

Every analysis in :mod:`feedbackloop.stats.experiments` works on these summaries (count,
mean, sample standard deviation, and for CUPED the covariate's mean, standard deviation and
its covariance with the metric), so the same code serves unit-level values in memory and
SQL aggregates (count, sum, sum of squares) over millions of rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ArmSummary"]


def _finite(value: float, what: str, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"arm {name!r}: {what} is not a finite number")
    return value


@dataclass(frozen=True)
class ArmSummary:
    """One arm's metric summary: ``n`` units with this ``mean`` and sample ``sd`` (ddof=1;
    0 when ``n < 2``). ``x_mean``, ``x_sd`` and ``cov_xy`` describe a pre-period covariate
    for CUPED; all three or none."""

    name: str
    n: int
    mean: float
    sd: float
    x_mean: float | None = None
    x_sd: float | None = None
    cov_xy: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("an arm needs a non-empty name")
        if int(self.n) != self.n or self.n < 0:
            raise ValueError(f"arm {self.name!r}: n must be a whole number >= 0, "
                             f"got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "mean", _finite(self.mean, "the mean", self.name))
        sd = _finite(self.sd, "the sd", self.name)
        if sd < 0:
            raise ValueError(f"arm {self.name!r}: the sd must be >= 0, got {sd}")
        object.__setattr__(self, "sd", sd if self.n >= 2 else 0.0)
        cov = (self.x_mean, self.x_sd, self.cov_xy)
        if any(v is None for v in cov) and not all(v is None for v in cov):
            raise ValueError(f"arm {self.name!r}: give the covariate's mean, sd and "
                             "covariance together")
        if self.x_mean is not None:
            object.__setattr__(self, "x_mean", _finite(self.x_mean, "the covariate mean",
                                                       self.name))
            x_sd = _finite(self.x_sd, "the covariate sd", self.name)  # type: ignore[arg-type]
            if x_sd < 0:
                raise ValueError(f"arm {self.name!r}: the covariate sd must be >= 0")
            object.__setattr__(self, "x_sd", x_sd)
            object.__setattr__(self, "cov_xy", _finite(
                self.cov_xy, "the covariance", self.name))  # type: ignore[arg-type]

    @property
    def variance(self) -> float:
        """The sample variance (ddof=1)."""
        return self.sd * self.sd

    @property
    def has_covariate(self) -> bool:
        return self.x_mean is not None

    @classmethod
    def from_values(cls, name: str, values: Sequence[float] | np.ndarray,
                    covariate: Sequence[float] | np.ndarray | None = None) -> ArmSummary:
        """Summarise unit-level ``values`` (and a paired pre-period ``covariate``)."""
        y = np.asarray(values, dtype=float).ravel()
        if not np.all(np.isfinite(y)):
            raise ValueError(f"arm {name!r}: the values must be finite numbers")
        n = int(y.size)
        mean = float(y.mean()) if n else 0.0
        sd = float(y.std(ddof=1)) if n >= 2 else 0.0
        if covariate is None:
            return cls(name, n, mean, sd)
        x = np.asarray(covariate, dtype=float).ravel()
        if x.size != n:
            raise ValueError(f"arm {name!r}: {n} values but {x.size} covariate values")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"arm {name!r}: the covariate values must be finite numbers")
        x_mean = float(x.mean()) if n else 0.0
        if n >= 2:
            x_sd = float(x.std(ddof=1))
            cov = float(np.dot(y - mean, x - x_mean) / (n - 1))
        else:
            x_sd, cov = 0.0, 0.0
        return cls(name, n, mean, sd, x_mean, x_sd, cov)

    @classmethod
    def from_sums(cls, name: str, n: int, total: float, total_sq: float, *,
                  x_total: float | None = None, x_total_sq: float | None = None,
                  xy_total: float | None = None, shift: float = 0.0,
                  x_shift: float = 0.0) -> ArmSummary:
        """From SQL-style aggregates: ``n``, Σy, Σy² (and Σx, Σx², Σxy for CUPED).

        The sums may be of shifted values ``y - shift`` (and ``x - x_shift``): shifting by
        a value near the mean (the control mean, a previous day's mean) avoids the
        catastrophic cancellation of Σy² - (Σy)²/n on large, far-from-zero metrics. The
        variance is clamped at 0 against rounding.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"arm {name!r}: n must be >= 0, got {n}")
        if n == 0:
            return cls(name, 0, 0.0, 0.0)
        m = float(total) / n
        sd = math.sqrt(max(0.0, (float(total_sq) - n * m * m) / (n - 1))) if n >= 2 else 0.0
        if x_total is None and x_total_sq is None and xy_total is None:
            return cls(name, n, m + shift, sd)
        if x_total is None or x_total_sq is None or xy_total is None:
            raise ValueError(f"arm {name!r}: give the covariate's sum, sum of squares and "
                             "the sum of products together")
        mx = float(x_total) / n
        if n >= 2:
            x_sd = math.sqrt(max(0.0, (float(x_total_sq) - n * mx * mx) / (n - 1)))
            cov = (float(xy_total) - n * m * mx) / (n - 1)
        else:
            x_sd, cov = 0.0, 0.0
        return cls(name, n, m + shift, sd, mx + x_shift, x_sd, cov)

    def to_dict(self) -> dict[str, Any]:
        """``{"arm", "n", "mean", "sd"}`` (the CLI's and the analysis' per-arm keys)."""
        return {"arm": self.name, "n": self.n, "mean": self.mean, "sd": self.sd}
