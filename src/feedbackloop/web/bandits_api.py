"""The JSON API of bandits: create, choose (an arm, logged with its propensity), reward,
status; and off-policy evaluation of a candidate policy from logged decisions.

Creating a bandit needs ``manage_experiments`` (maintainer, admin); choosing and rewarding
need ``write_interactions`` (the ``ingest`` role has it, so a product's backend can run a
bandit with its ingest token); reading a bandit and off-policy estimates need ``read``.
Bad input is a 4xx naming the field, from the services' own checks or the request models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from ..access import Action
from ..capture.projects import Project
from ..errors import InvalidInput
from ..experiments.bandits import bandit_status, choose, create_bandit, reward
from ..experiments.offpolicy import MAX_BOOTSTRAP, estimate_stored
from ..stats.offpolicy import OffPolicyInputError, OffPolicyLog, evaluate
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

__all__ = ["MAX_OFFPOLICY_ROWS", "build_bandits_router"]

MAX_OFFPOLICY_ROWS = 100_000
ExperimentManager = Annotated[Project, Depends(project_with(Action.MANAGE_EXPERIMENTS))]
BanditName = Annotated[str, Path(min_length=1, max_length=100, description="Bandit name.")]


class ArmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    version: str | None = Field(default=None, max_length=200)


class BanditIn(BaseModel):
    """A bandit over at least two arms. ``floor`` defaults by the project's risk tier
    (low 0.01, medium 0.05, high 0.10) and may be raised to 1/K, never lowered."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    arms: list[ArmIn] = Field(min_length=2, max_length=100)
    policy: Literal["thompson", "ucb"] = "thompson"
    reward_kind: Literal["binary", "mean"] = "binary"
    reward_signal: str | None = Field(default=None, max_length=100)
    floor: float | None = Field(default=None, ge=0.0, le=0.5)
    hypothesis: str = Field(default="", max_length=10_000)
    component: str | None = Field(default=None, max_length=50)


class ChooseIn(BaseModel):
    """The unit (stored pseudonymised) and a context object stored with the decision."""

    model_config = ConfigDict(extra="forbid")

    unit_id: str | None = Field(default=None, min_length=1, max_length=200)
    context: dict[str, Any] | None = None


class RewardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: int = Field(ge=1, le=2**63 - 1)
    reward: float = Field(allow_inf_nan=False)


class LogRowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: int = Field(ge=0, le=10_000)
    reward: float = Field(allow_inf_nan=False)
    propensity: float = Field(gt=0.0, le=1.0)
    target: list[float] = Field(min_length=1, max_length=10_000)
    predicted: list[float] | None = Field(default=None, min_length=1, max_length=10_000)


class OffPolicyIn(BaseModel):
    """Either ``rows`` (a log, as the lines of ``feedbackloop offpolicy FILE``) or
    ``experiment`` with ``target`` ({arm: probability}) to evaluate a stored log."""

    model_config = ConfigDict(extra="forbid")

    rows: list[LogRowIn] | None = Field(default=None, min_length=1,
                                        max_length=MAX_OFFPOLICY_ROWS)
    experiment: str | None = Field(default=None, min_length=1, max_length=100)
    target: dict[str, float] | None = Field(default=None, max_length=100)
    metric: str | None = Field(default=None, max_length=100)
    bootstrap: int = Field(default=1000, ge=0, le=MAX_BOOTSTRAP)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)


def _log_from_rows(rows: list[LogRowIn]) -> OffPolicyLog:
    k = len(rows[0].target)
    with_pred = rows[0].predicted is not None
    for i, row in enumerate(rows):
        if len(row.target) != k:
            raise InvalidInput(f"rows[{i}].target has {len(row.target)} probabilities, "
                               f"rows[0] has {k}", field=f"rows[{i}].target")
        if (row.predicted is not None) != with_pred:
            raise InvalidInput(f"rows[{i}].predicted: give it on every row or on none",
                               field=f"rows[{i}].predicted")
        if row.predicted is not None and len(row.predicted) != k:
            raise InvalidInput(f"rows[{i}].predicted has {len(row.predicted)} values, target "
                               f"has {k}", field=f"rows[{i}].predicted")
    try:
        return OffPolicyLog.of(
            [r.action for r in rows], [r.reward for r in rows],
            [r.propensity for r in rows], [r.target for r in rows],
            [r.predicted for r in rows] if with_pred else None)  # type: ignore[misc]
    except OffPolicyInputError as exc:
        where = f"rows[{exc.row}].{exc.field}" if exc.row is not None else "rows"
        raise InvalidInput(str(exc).replace(f"row {exc.row}:", f"{where}:"),
                           field=where) from None


def build_bandits_router() -> APIRouter:
    """The bandit and off-policy routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["bandits"])

    @router.post("/bandits", status_code=201, responses=_BODY_ERRORS)
    def post_bandit(body: BanditIn, project: ExperimentManager, principal: CurrentPrincipal,
                    store: StoreDep) -> dict[str, Any]:
        """Create a running bandit (409 when the name is taken)."""
        for text, field in ((body.name, "name"), (body.hypothesis, "hypothesis"),
                            (body.reward_signal, "reward_signal"),
                            (body.component, "component")):
            check_text(text, field)
        bandit = create_bandit(
            store, project, body.name, arms=[a.model_dump() for a in body.arms],
            policy=body.policy, reward_kind=body.reward_kind,
            reward_signal=body.reward_signal, floor=body.floor, hypothesis=body.hypothesis,
            component=body.component, created_by=principal.name[:100])
        return bandit.to_dict()

    @router.get("/bandits/{name}")
    def get_bandit_status(name: BanditName, project: ProjectReader,
                          store: StoreDep) -> dict[str, Any]:
        """The bandit with, per arm, decisions, mean reward with its 95 % interval and the
        current probability of being played."""
        check_text(name, "name")
        return bandit_status(store, project, name)

    @router.post("/bandits/{name}/choose", responses=_BODY_ERRORS)
    def post_choose(name: BanditName, project: InteractionWriter, store: StoreDep,
                    settings: SettingsDep, body: ChooseIn | None = None) -> dict[str, Any]:
        """Choose an arm and log the decision: ``{"decision_id", "arm", "version",
        "propensity", "probabilities"}``; ``propensity`` is the probability the arm was
        drawn with. 409 when the bandit is not running."""
        check_text(name, "name")
        body = body or ChooseIn()
        check_text(body.unit_id, "unit_id")
        key = settings.pseudonym_key_bytes() if body.unit_id is not None else None
        return choose(store, project, name, unit_id=body.unit_id, context=body.context,
                      pseudonym_key=key)

    @router.post("/bandits/{name}/reward", responses=_BODY_ERRORS)
    def post_reward(name: BanditName, body: RewardIn, project: InteractionWriter,
                    store: StoreDep) -> dict[str, Any]:
        """Record a decision's reward (the same reward again is a no-op; a different one
        409)."""
        check_text(name, "name")
        return reward(store, project, name, body.decision_id, body.reward)

    @router.post("/offpolicy", responses=_BODY_ERRORS)
    def post_offpolicy(body: OffPolicyIn, project: ProjectReader,
                       store: StoreDep) -> dict[str, Any]:
        """Estimate a candidate policy: IPS, SNIPS, DM and DR with percentile-bootstrap
        95 % intervals and the effective sample size, on the ``rows`` sent or on the
        stored log of ``experiment`` (a bandit or an A/B experiment) for ``target``."""
        if (body.rows is None) == (body.experiment is None):
            raise InvalidInput("send either rows or experiment (with target)", field="rows")
        if body.rows is not None:
            if body.target is not None or body.metric is not None:
                raise InvalidInput("target and metric go with experiment; rows carry their "
                                   "own target", field="target")
            log = _log_from_rows(body.rows)
            return evaluate(log, rng=np.random.default_rng(body.seed),
                            bootstrap=body.bootstrap)
        assert body.experiment is not None
        check_text(body.experiment, "experiment")
        check_text(body.metric, "metric")
        if not body.target:
            raise InvalidInput("target ({arm: probability}) is needed with experiment",
                               field="target")
        for arm in body.target:
            check_text(arm, "target")
        return estimate_stored(store, project, body.experiment, body.target,
                               metric=body.metric, bootstrap=body.bootstrap, seed=body.seed)

    return router
