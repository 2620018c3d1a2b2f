"""The value every statistic returns: a number, its interval, and how it was made.

An :class:`Estimate` is either *available* (``value`` is a finite float) or *unavailable*
(``value`` is ``None`` and ``reason`` says why: too few pairs, a constant array, one class
only). Non-finite numbers never leave this module: they are turned into an unavailable
estimate or a missing interval, so nothing downstream prints ``nan`` as if it were a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Estimate", "NotEstimable", "unavailable"]


class NotEstimable(ValueError):
    """The data cannot support the requested statistic (too few labels, one class only).

    Raised only where a function cannot return an :class:`Estimate` (model fitting); the
    message says what was missing.
    """


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval, sample size and method.

    ``ci`` is the two-sided interval at the confidence the caller asked for (0.95 unless
    told otherwise); it may be ``None`` while ``value`` is available, when the interval
    cannot be computed (for example a bootstrap whose resamples are all equal).
    """

    value: float | None
    ci: tuple[float, float] | None
    n: int
    method: str
    reason: str | None = None

    def __post_init__(self) -> None:
        # Non-finite numbers become "unavailable" here, once, instead of in every caller.
        if self.value is not None and not math.isfinite(self.value):
            object.__setattr__(self, "value", None)
            object.__setattr__(self, "ci", None)
            if self.reason is None:
                object.__setattr__(self, "reason", "the statistic is not finite on this data")
        if self.value is not None:
            object.__setattr__(self, "value", float(self.value))
        if self.ci is not None:
            lo, hi = float(self.ci[0]), float(self.ci[1])
            if not (math.isfinite(lo) and math.isfinite(hi)) or self.value is None:
                object.__setattr__(self, "ci", None)
            else:
                object.__setattr__(self, "ci", (lo, hi))
        object.__setattr__(self, "n", int(self.n))

    @property
    def available(self) -> bool:
        """True when there is a point value."""
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"value", "ci95", "n", "method", "reason"}``, never NaN."""
        return {
            "value": self.value,
            "ci95": list(self.ci) if self.ci is not None else None,
            "n": self.n,
            "method": self.method,
            "reason": self.reason,
        }


def unavailable(n: int, method: str, reason: str) -> Estimate:
    """An estimate that could not be computed, with the reason in words."""
    return Estimate(value=None, ci=None, n=n, method=method, reason=reason)
