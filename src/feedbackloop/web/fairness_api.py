"""The JSON API of fairness reports: the stratified report over a cohort attribute and the
cohort regressions between two versions. Reading needs any role that may read the
project; nothing is written."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ..evaluation.fairness import DEFAULT_MIN_COHORT, cohort_regressions, fairness_report
from .api import _ERRORS
from .deps import ProjectReader, StoreDep, check_text, strict_query

__all__ = ["build_fairness_router"]

Attribute = Annotated[str, Query(min_length=1, max_length=100,
                                 description="The cohort attribute (attributes[ATTR]).")]
SignalName = Annotated[str, Query(min_length=1, max_length=100,
                                  description="The human signal (binary, ordinal, numeric).")]
Version = Annotated[str | None, Query(max_length=200, description="A model version.")]


def _texts(*values: tuple[str | None, str]) -> None:
    for value, field in values:
        check_text(value, field)


def build_fairness_router() -> APIRouter:
    """The fairness routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["fairness"])

    @router.get("/projects/{project}/fairness")
    def get_fairness(
        project: ProjectReader, store: StoreDep, attribute: Attribute, signal: SignalName,
        version: Version = None,
        metric: Annotated[str | None, Query(
            max_length=100, description="An automated binary signal judged as a classifier "
                                        "of the human signal.")] = None,
        min_ratio: Annotated[float, Query(gt=0, le=1, description="Impact-ratio threshold "
                                          "(four-fifths rule: 0.8).")] = 0.8,
        min_cohort_size: Annotated[int, Query(ge=1, le=1_000_000, description="Smaller "
                                              "cohorts are shown, not judged.")]
        = DEFAULT_MIN_COHORT,
        seed: Annotated[int, Query(ge=0, lt=2**32, description="Bootstrap seed.")] = 0,
    ) -> dict[str, Any]:
        """Per-cohort estimates with CIs, impact ratios (four-fifths rule), satisfaction
        gaps (Holm), classifier criteria with ``metric``, representation, and the check."""
        _texts((attribute, "attribute"), (signal, "signal"), (version, "version"),
               (metric, "metric"))
        return fairness_report(store, project, attribute=attribute, signal=signal,
                               version=version, prediction=metric, min_ratio=min_ratio,
                               min_cohort_size=min_cohort_size, seed=seed)

    @router.get("/projects/{project}/fairness/regressions")
    def get_regressions(
        project: ProjectReader, store: StoreDep, attribute: Attribute, signal: SignalName,
        baseline: Annotated[str, Query(min_length=1, max_length=200,
                                       description="The baseline version.")],
        candidate: Annotated[str, Query(min_length=1, max_length=200,
                                        description="The candidate version.")],
        tolerance: Annotated[float, Query(ge=0, le=1e9, description="The drop a cohort "
                                          "may take, in the signal's units.")] = 0.0,
        alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05,
        higher_is_better: Annotated[bool, Query(description="Direction of the signal.")]
        = True,
    ) -> dict[str, Any]:
        """Per cohort, candidate - baseline with its CI and a Holm-adjusted one-sided test
        of a regression beyond ``tolerance``."""
        _texts((attribute, "attribute"), (signal, "signal"), (baseline, "baseline"),
               (candidate, "candidate"))
        return cohort_regressions(store, project, attribute=attribute, signal=signal,
                                  baseline_version=baseline, candidate_version=candidate,
                                  tolerance=tolerance, alpha=alpha,
                                  higher_is_better=higher_is_better)

    return router
