"""Pure statistics on arrays: no I/O, no database, nothing else of feedbackloop imported.

Randomness comes in as a ``numpy.random.Generator``. Every estimate is an
:class:`Estimate` with its interval, sample size and method, or unavailable with a reason.
See docs/statistics.md for each method's formula and source.
"""

from .aggregation import BradleyTerry, DawidSkene, MajorityVote, RaterBiasCorrectedMean
from .agreement import (
    cohen_kappa_weighted,
    fleiss_kappa,
    gwet_ac1,
    gwet_ac2,
    icc,
    krippendorff_alpha,
    reliability_matrix,
)
from .calibration import (
    IsotonicMap,
    ReliabilityBin,
    expected_calibration_error,
    fit_isotonic,
    reliability,
)
from .classification import auroc, best_threshold, cohen_kappa, rates_at_threshold
from .correlation import kendall, spearman
from .discrepancy import discrepancy_scores, top_discrepancies
from .estimate import Estimate, NotEstimable
from .intervals import bootstrap_interval, wilson_interval
from .ppi import classical_mean, naive_metric_mean, ppi_mean
from .stacking import StackingModel, fit_stacking

__all__ = [
    "BradleyTerry",
    "DawidSkene",
    "Estimate",
    "IsotonicMap",
    "MajorityVote",
    "NotEstimable",
    "RaterBiasCorrectedMean",
    "ReliabilityBin",
    "StackingModel",
    "auroc",
    "best_threshold",
    "bootstrap_interval",
    "classical_mean",
    "cohen_kappa",
    "cohen_kappa_weighted",
    "discrepancy_scores",
    "expected_calibration_error",
    "fit_isotonic",
    "fit_stacking",
    "fleiss_kappa",
    "gwet_ac1",
    "gwet_ac2",
    "icc",
    "kendall",
    "krippendorff_alpha",
    "naive_metric_mean",
    "ppi_mean",
    "rates_at_threshold",
    "reliability",
    "reliability_matrix",
    "spearman",
    "top_discrepancies",
    "wilson_interval",
]
