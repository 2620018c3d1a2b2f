"""Statistics of online experiments: sample size, fixed-horizon and always-valid
comparisons, sample-ratio checks, multiplicity corrections, group-sequential boundaries, a
Bayesian view and stopping rules. Pure numpy/scipy; see each module for the method and its
source."""

from .bayes import prob_best
from .frequentist import SRM, Comparison, adjust_p_values, compare, not_estimable, srm_test
from .group_sequential import group_sequential_bounds, spent_alpha
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
    always_valid_p_values,
    asymptotic_cs_halfwidth,
    asymptotic_cs_p_value,
    msprt_halfwidth,
    msprt_p_value,
    sequential_rho,
)
from .simulation import peeking_simulation, power_simulation
from .stopping import group_sequential_looks, guardrail_status, stopping_status
from .summary import ArmSummary

__all__ = [
    "DEFAULT_TUNING_N",
    "SRM",
    "ArmSummary",
    "Comparison",
    "SampleSize",
    "SequentialConfig",
    "adjust_p_values",
    "always_valid_p_values",
    "asymptotic_cs_halfwidth",
    "asymptotic_cs_p_value",
    "compare",
    "group_sequential_bounds",
    "group_sequential_looks",
    "guardrail_status",
    "msprt_halfwidth",
    "msprt_p_value",
    "not_estimable",
    "peeking_simulation",
    "power_means",
    "power_proportions",
    "power_simulation",
    "prob_best",
    "sample_size_means",
    "sample_size_proportions",
    "sequential_rho",
    "spent_alpha",
    "srm_test",
    "stopping_status",
]
