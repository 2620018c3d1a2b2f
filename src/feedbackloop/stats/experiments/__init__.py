"""Statistics of online experiments: sample size, fixed-horizon and always-valid
comparisons, sample-ratio checks, multiplicity corrections, group-sequential boundaries, a
Bayesian view and stopping rules. Pure numpy/scipy; see each module for the method and its
source."""

from .bayes import prob_best
from .frequentist import SRM, Comparison, adjust_p_values, compare, not_estimable, srm_test
from .power import (
    SampleSize,
    power_means,
    power_proportions,
    sample_size_means,
    sample_size_proportions,
)
from .sequential import (
    DEFAULT_TUNING_N,
    SequentialConfig,
    asymptotic_cs_halfwidth,
    asymptotic_cs_p_value,
    msprt_halfwidth,
    msprt_p_value,
    sequential_rho,
)
from .summary import ArmSummary

__all__ = [
    "DEFAULT_TUNING_N",
    "SRM",
    "ArmSummary",
    "Comparison",
    "SampleSize",
    "SequentialConfig",
    "adjust_p_values",
    "asymptotic_cs_halfwidth",
    "asymptotic_cs_p_value",
    "compare",
    "msprt_halfwidth",
    "msprt_p_value",
    "not_estimable",
    "power_means",
    "power_proportions",
    "prob_best",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_rho",
    "srm_test",
]
