"""The JSON API of the Understand stage: run and read evaluations, tag discrepancies, read
the knowledge base. Running and tagging need a maintainer (or admin) token; reading, any
role that may read the project."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..evaluation import (
    EvaluationFilters,
    evaluate,
    get_evaluation,
    knowledge_base,
    list_evaluations,
    tag_discrepancy,
)
from .api import _BODY_ERRORS, _ERRORS
from .deps import (
    CurrentPrincipal,
    Evaluator,
    ProjectReader,
    StoreDep,
    check_text,
    strict_query,
)

__all__ = ["build_evaluation_router"]

Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Cause = Annotated[str, Field(description="metric_error, guideline_gap, rater_error, "
                             "data_gap, prompt_issue, model_error or other.")]
EvaluationId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Evaluation id.")]


class FiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_version: Annotated[str, StringConstraints(max_length=200)] | None = None
    attributes: dict[Annotated[str, StringConstraints(max_length=200)],
                     Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=dict, max_length=20, description="Cohort attributes, all to match.")
    since: datetime | None = Field(None, description="Interactions at or after (UTC if no "
                                   "zone).")
    until: datetime | None = Field(None, description="Interactions before.")


class EvaluationIn(BaseModel):
    """What to evaluate: a human signal against one or more metric signals."""

    model_config = ConfigDict(extra="forbid")

    human: Name = Field(description="The human signal.")
    metrics: list[Name] = Field(min_length=1, max_length=20,
                                description="The automated signals.")
    filters: FiltersIn = Field(default_factory=FiltersIn)
    human_threshold: float | None = Field(
        None, description="Approval starts here (default: the middle of the scale).")
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of the bootstrap and folds.")


class TagIn(BaseModel):
    """A root cause for the discrepancy on one or more interactions."""

    model_config = ConfigDict(extra="forbid")

    interactions: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = \
        Field(min_length=1, max_length=1000, description="Interaction ids.")
    human: Name
    metric: Name
    cause: Cause
    note: Annotated[str, StringConstraints(max_length=5000)] = ""
    evaluation_id: int | None = Field(None, ge=1, le=2**31 - 1)


class TagsOut(BaseModel):
    ids: list[int]
    cause: str


def _texts(values: list[str | None], field: str) -> None:
    for value in values:
        check_text(value, field)


def build_evaluation_router() -> APIRouter:
    """The evaluation routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["evaluation"])

    @router.post("/projects/{project}/evaluations", status_code=201,
                 responses=_BODY_ERRORS)
    def post_evaluation(body: EvaluationIn, project: Evaluator,
                        principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Run an evaluation and save it; answers the full report."""
        _texts([body.human, *body.metrics], "human")
        f = body.filters
        _texts([f.model_version, *f.attributes, *f.attributes.values()], "filters")
        filters = EvaluationFilters(model_version=f.model_version,
                                    attributes=dict(f.attributes), since=f.since,
                                    until=f.until)
        report = evaluate(store, project, body.human, list(body.metrics), filters=filters,
                          human_threshold=body.human_threshold, seed=body.seed,
                          created_by=principal.name[:100])
        return report.to_dict()

    @router.get("/projects/{project}/evaluations")
    def get_evaluations(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """The newest 100 evaluations, as summaries."""
        with store.read() as conn:
            rows = list_evaluations(conn, project)
        return {"items": [{**r, "created_at": r["created_at"].isoformat()} for r in rows]}

    @router.get("/projects/{project}/evaluations/{evaluation_id}")
    def get_one(evaluation_id: EvaluationId, project: ProjectReader,
                store: StoreDep) -> dict[str, Any]:
        """One saved evaluation with its full report."""
        with store.read() as conn:
            return get_evaluation(conn, project, evaluation_id).to_dict()

    @router.post("/projects/{project}/discrepancy-tags", status_code=201,
                 response_model=TagsOut, responses=_BODY_ERRORS)
    def post_tags(body: TagIn, project: Evaluator, principal: CurrentPrincipal,
                  store: StoreDep) -> dict[str, Any]:
        """Tag the discrepancy on the interactions with a root cause and a note."""
        _texts(list(body.interactions), "interactions")
        ids = tag_discrepancy(store, project, list(body.interactions), body.human,
                              body.metric, body.cause, note=body.note,
                              created_by=principal.name[:100],
                              evaluation_id=body.evaluation_id)
        return {"ids": ids, "cause": body.cause}

    @router.get("/projects/{project}/knowledge-base")
    def get_knowledge_base(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """Tags by cause (with the newest notes) and by ISO week."""
        return knowledge_base(store, project)

    return router
