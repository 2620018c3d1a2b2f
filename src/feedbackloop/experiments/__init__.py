"""Test: experiment design, hashed assignment and exposures, analysis, bandits and off-policy
evaluation, on top of the pure numerics in :mod:`feedbackloop.stats.experiments`.

Stored A/B experiments: :func:`create_experiment` (design checked and planned),
:func:`update_design`, :func:`start_experiment`, :func:`stop_experiment`, :func:`assign`
(deterministic, logs the first exposure), :func:`refresh` (incremental copy of exposures
and metric observations from logged interactions and feedback), :func:`analyze` (the
analysis dict) and :func:`decide` (the decision with its analysis snapshot)."""

from .analysis import analyze
from .assignment import arm_index, assign, clear_assignment_cache, unit_fraction
from .design import changed_fields, design_hash, metric_kind, normalise_design, plan
from .refresh import refresh
from .service import (
    DECISIONS,
    STATUSES,
    Experiment,
    create_experiment,
    decide,
    get_decision,
    get_experiment,
    list_experiments,
    start_experiment,
    stop_experiment,
    update_design,
)

__all__ = [
    "DECISIONS",
    "STATUSES",
    "Experiment",
    "analyze",
    "arm_index",
    "assign",
    "changed_fields",
    "clear_assignment_cache",
    "create_experiment",
    "decide",
    "design_hash",
    "get_decision",
    "get_experiment",
    "list_experiments",
    "metric_kind",
    "normalise_design",
    "plan",
    "refresh",
    "start_experiment",
    "stop_experiment",
    "unit_fraction",
    "update_design",
]
