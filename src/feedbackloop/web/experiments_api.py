"""The JSON API of the Test stage: experiments (design, start, stop, analysis, decisions)
and the SDK's assignment endpoint.

Reading needs ``read``; creating, revising, starting, stopping and deciding need
``manage_experiments`` (maintainer, admin); assigning a unit (which logs its exposure)
needs ``write_interactions``, so a product's backend can call it with its ingest token.
Reading the analysis first copies new exposures and feedback from the logs (bookkeeping
any reader may trigger) and records the look when the sample grew. Bad input is a 4xx
naming the field, from the services' own checks or the request models here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ..access import Action
from ..capture.projects import Project
from ..experiments import (
    analyze,
    assign,
    create_experiment,
    decide,
    get_decision,
    get_experiment,
    list_experiments,
    refresh,
    start_experiment,
    stop_experiment,
    update_design,
)
from .api import _BODY_ERRORS, _ERRORS
from .deps import (
    CurrentPrincipal,
    InteractionWriter,
    ProjectReader,
    SettingsDep,
    StoreDep,
    check_text,
    project_with,
    strict_query,
)
from .improve_api import _texts

__all__ = ["build_experiments_router"]

StatusName = Literal["draft", "running", "stopped", "decided", "superseded"]
ExperimentManager = Annotated[Project, Depends(project_with(Action.MANAGE_EXPERIMENTS))]
ExperimentName = Annotated[str, Path(min_length=1, max_length=100,
                                     description="Experiment name.")]


class ExperimentIn(BaseModel):
    """A new (draft) experiment: its name, its design (see docs/experiments.md: arms,
    primary metric, guardrails, mde, alpha, power…), hypothesis and the model component
    whose versions the arms name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    design: dict[str, Any]
    hypothesis: str = Field(default="", max_length=10_000)
    component: str | None = Field(default=None, min_length=1, max_length=50)


class DesignIn(BaseModel):
    """A revised design. A draft changes in place; a started experiment needs
    ``new_name``: a new experiment that supersedes it."""

    model_config = ConfigDict(extra="forbid")

    design: dict[str, Any]
    new_name: str | None = Field(default=None, min_length=1, max_length=100)
    hypothesis: str | None = Field(default=None, max_length=10_000)


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=10_000)


class DecisionIn(BaseModel):
    """ship (naming the arm), iterate or abandon, with the rationale."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["ship", "iterate", "abandon"]
    rationale: str = Field(min_length=1, max_length=10_000)
    arm: str | None = Field(default=None, min_length=1, max_length=100)


class AssignIn(BaseModel):
    """The unit to assign (a user, session or interaction id; user and session ids are
    pseudonymised like captured ones) and its pre-period covariate for CUPED."""

    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(min_length=1, max_length=200)
    covariate: float | None = Field(default=None, allow_inf_nan=False)
    log: bool = True


def _check_design(design: dict[str, Any]) -> None:
    _texts(design, "design")


def build_experiments_router() -> APIRouter:
    """The experiment routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["experiments"])

    @router.get("/experiments")
    def get_experiments(project: ProjectReader, store: StoreDep,
                        status: Annotated[StatusName | None,
                                          Query(description="Only this status.")] = None,
                        kind: Annotated[Literal["ab", "bandit"] | None,
                                        Query(description="ab or bandit.")] = None
                        ) -> dict[str, Any]:
        """The project's experiments and bandits, oldest first."""
        with store.read() as conn:
            found = list_experiments(conn, project, kind=kind, status=status)
        return {"items": [e.to_dict() for e in found]}

    @router.post("/experiments", status_code=201, responses=_BODY_ERRORS)
    def post_experiment(body: ExperimentIn, project: ExperimentManager,
                        principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Plan a draft experiment: the design is checked (errors name the field) and
        the sample size and expected duration computed from recent traffic."""
        check_text(body.name, "name")
        check_text(body.hypothesis, "hypothesis")
        check_text(body.component, "component")
        _check_design(body.design)
        return create_experiment(store, project, body.name, design=body.design,
                                 hypothesis=body.hypothesis, component=body.component,
                                 created_by=principal.name[:100]).to_dict()

    @router.get("/experiments/{name}")
    def get_one(name: ExperimentName, project: ProjectReader,
                store: StoreDep) -> dict[str, Any]:
        """One experiment: status, hypothesis, design (with the plan) and its decision."""
        check_text(name, "name")
        with store.read() as conn:
            exp = get_experiment(conn, project, name)
            decision = get_decision(conn, exp.id)
        return {**exp.to_dict(), "decision": decision}

    @router.post("/experiments/{name}/design", responses=_BODY_ERRORS)
    def post_design(name: ExperimentName, body: DesignIn, project: ExperimentManager,
                    principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Revise the design: a draft in place; a started experiment only with
        ``new_name`` (409 otherwise, naming the changed field), which opens a new
        experiment that supersedes it (returned)."""
        check_text(name, "name")
        check_text(body.new_name, "new_name")
        check_text(body.hypothesis, "hypothesis")
        _check_design(body.design)
        return update_design(store, project, name, body.design, new_name=body.new_name,
                             hypothesis=body.hypothesis,
                             created_by=principal.name[:100]).to_dict()

    @router.post("/experiments/{name}/start", responses=_BODY_ERRORS)
    def post_start(name: ExperimentName, project: ExperimentManager,
                   principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Start a draft: assignment opens and the design freezes."""
        check_text(name, "name")
        return start_experiment(store, project, name, actor=principal.name).to_dict()

    @router.post("/experiments/{name}/stop", responses=_BODY_ERRORS)
    def post_stop(name: ExperimentName, project: ExperimentManager, store: StoreDep,
                  principal: CurrentPrincipal, body: StopIn | None = None) -> dict[str, Any]:
        """Stop a running experiment; the data stays for the analysis and decision."""
        check_text(name, "name")
        reason = body.reason if body is not None else ""
        check_text(reason, "reason")
        return stop_experiment(store, project, name, reason,
                               actor=principal.name).to_dict()

    @router.get("/experiments/{name}/analysis")
    def get_analysis(name: ExperimentName, project: ProjectReader, principal: CurrentPrincipal,
                     store: StoreDep,
                     fresh: Annotated[bool, Query(
                         alias="refresh",
                         description="Copy new exposures and feedback first.")] = True
                     ) -> dict[str, Any]:
        """The analysis: per-arm table, comparisons with fixed-horizon and sequential
        intervals, SRM, guardrails, Bayesian view, the sequential path over the looks,
        group-sequential boundaries, stopping rules, decision and notes."""
        check_text(name, "name")
        if fresh:
            with store.read() as conn:
                kind = get_experiment(conn, project, name).kind
            if kind == "ab":
                refresh(store, project, name)
        return analyze(store, project, name, record_look=True,
                       looked_by=principal.name[:100])

    @router.post("/experiments/{name}/decision", status_code=201, responses=_BODY_ERRORS)
    def post_decision(name: ExperimentName, body: DecisionIn, project: ExperimentManager,
                      principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Record the decision with its rationale and the analysis it was made on (a
        running experiment stops)."""
        check_text(name, "name")
        check_text(body.rationale, "rationale")
        check_text(body.arm, "arm")
        return decide(store, project, name, body.decision, body.rationale, arm=body.arm,
                      decided_by=principal.name[:100])

    @router.post("/experiments/{name}/assign", responses=_BODY_ERRORS)
    def post_assign(name: ExperimentName, body: AssignIn, project: InteractionWriter,
                    store: StoreDep, settings: SettingsDep) -> dict[str, Any]:
        """The arm serving a unit (deterministic), logging its first exposure:
        ``{"experiment", "arm", "version", "propensity", "unit"}``."""
        check_text(name, "name")
        check_text(body.unit_id, "unit_id")
        return assign(store, project, name, body.unit_id, covariate=body.covariate,
                      log=body.log, pseudonym_key=settings.pseudonym_key_bytes())

    return router
