"""Agreement between raters: Krippendorff's alpha, Fleiss' and Cohen's (weighted) kappa,
Gwet's AC1/AC2, intraclass correlations, and per-rater agreement with the consensus of the
other raters over time (``raters``).

Every multi-rater statistic takes a reliability matrix ``ratings`` of shape (raters, units),
float, ``np.nan`` where a rater did not rate a unit (the ``krippendorff`` package's
convention); :func:`reliability_matrix` builds one from long format. Not named
``reliability``: ``stats.reliability`` is the calibration function, and a subpackage of
that name would shadow it.
"""

from .gwet import gwet_ac1, gwet_ac2
from .icc import IccKind, icc
from .kappa import cohen_kappa_weighted, fleiss_kappa
from .krippendorff import Level, krippendorff_alpha
from .matrix import reliability_matrix
from .raters import (
    RaterReliability,
    RaterWindow,
    consensus_scores,
    gold_scores,
    rater_reliability,
)

__all__ = [
    "IccKind",
    "Level",
    "RaterReliability",
    "RaterWindow",
    "cohen_kappa_weighted",
    "consensus_scores",
    "fleiss_kappa",
    "gold_scores",
    "gwet_ac1",
    "gwet_ac2",
    "icc",
    "krippendorff_alpha",
    "rater_reliability",
    "reliability_matrix",
]
