"""The JSON API of release governance: policies, gates, sign-offs, releases, rollback.

Reading needs ``read``. Creating and checking gates, releasing and rolling back need
``release`` (maintainer, admin); setting a policy needs ``manage_project``. Signing needs
only access to the project: the service decides which capacities the caller's role may sign
in, so a sign-off the role may not give is refused *and recorded* (403) like every other
refused sign-off. Bad input is a 4xx naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ..access import Action
from ..capture.projects import Project
from ..errors import PermissionDenied
from ..governance.gates import check_gate, create_gate, get_gate, list_gates, sign_gate
from ..governance.policy import list_policies, policy_for, set_policy
from ..governance.releases import get_release, list_releases, promote, rollback
from .api import _BODY_ERRORS, _ERRORS
from .deps import CurrentPrincipal, ProjectReader, StoreDep, check_text, project_with, strict_query
from .improve_api import _texts

__all__ = ["build_release_router"]

Releaser = Annotated[Project, Depends(project_with(Action.RELEASE))]
ProjectManager = Annotated[Project, Depends(project_with(Action.MANAGE_PROJECT))]
GateId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The gate's id.")]
ReleaseId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The release's id.")]
ComponentQuery = Annotated[str | None, Query(min_length=1, max_length=50,
                                             description="Only this component.")]
Name = Field(min_length=1, max_length=200)


class PolicyIn(BaseModel):
    """The tier and/or overrides of the project (``component`` null) or of a component;
    ``overrides`` replaces the stored ones (``{}`` clears them, null keeps them)."""

    model_config = ConfigDict(extra="forbid")

    component: str | None = Field(default=None, min_length=1, max_length=50)
    risk_tier: Literal["low", "medium", "high"] | None = None
    overrides: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=10_000)


class GateIn(BaseModel):
    """A gate for ``version`` of ``component``; its criteria are fixed from these fields
    (see docs/release.md)."""

    model_config = ConfigDict(extra="forbid")

    component: str = Field(min_length=1, max_length=50)
    version: str = Name
    experiment: str | None = Field(default=None, min_length=1, max_length=100)
    cohort_attribute: str | None = Field(default=None, min_length=1, max_length=200)
    cohort_signal: str | None = Field(default=None, min_length=1, max_length=200)
    cohort_tolerance: float = Field(default=0.05, ge=0, allow_inf_nan=False)
    baseline_version: str | None = Field(default=None, min_length=1, max_length=200)
    fairness_attribute: str | None = Field(default=None, min_length=1, max_length=200)
    fairness_signal: str | None = Field(default=None, min_length=1, max_length=200)
    fairness_min_ratio: float = Field(default=0.8, ge=0, le=1, allow_inf_nan=False)
    fairness_prediction: str | None = Field(default=None, min_length=1, max_length=200)


class SignIn(BaseModel):
    """Sign the gate as the caller, in a capacity the caller's role allows."""

    model_config = ConfigDict(extra="forbid")

    capacity: Literal["maintainer", "expert", "safety", "admin"]
    decision: Literal["approve", "reject"] = "approve"
    comment: str = Field(default="", max_length=10_000)


class ReleaseIn(BaseModel):
    """Release ``version`` on its passed gate, to everyone or to a cohort
    (``{"when": [{"attribute", "op", "value"}], "percent": 1-100}``)."""

    model_config = ConfigDict(extra="forbid")

    component: str = Field(min_length=1, max_length=50)
    version: str = Name
    gate_id: int = Field(ge=1, le=2**31 - 1)
    cohort: dict[str, Any] | None = None
    reason: str | None = Field(default=None, max_length=10_000)


class RollbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    component: str = Field(min_length=1, max_length=50)
    reason: str = Field(default="", max_length=10_000)


def build_release_router() -> APIRouter:
    """The release-governance routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["release"])

    @router.get("/policy")
    def get_policy(project: ProjectReader, store: StoreDep,
                   component: ComponentQuery = None) -> dict[str, Any]:
        """The policy in force (for a component when given) and the stored rows."""
        check_text(component, "component")
        with store.read() as conn:
            return {"policy": policy_for(conn, project, component),
                    "stored": list_policies(conn, project)}

    @router.put("/policy", responses=_BODY_ERRORS)
    def put_policy(body: PolicyIn, project: ProjectManager, principal: CurrentPrincipal,
                   store: StoreDep) -> dict[str, Any]:
        """Set the tier and overrides (audited as ``policy.set``); returns the policy."""
        check_text(body.component, "component")
        check_text(body.reason, "reason")
        _texts(body.overrides, "overrides")
        return set_policy(store, project, component=body.component,
                          risk_tier=body.risk_tier, overrides=body.overrides,
                          actor=principal.name[:100], reason=body.reason)

    @router.get("/gates")
    def get_gates(project: ProjectReader, store: StoreDep,
                  component: ComponentQuery = None) -> dict[str, Any]:
        """The project's gates, newest first."""
        check_text(component, "component")
        with store.read() as conn:
            return {"items": list_gates(conn, project, component=component)}

    @router.post("/gates", status_code=201, responses=_BODY_ERRORS)
    def post_gate(body: GateIn, project: Releaser, principal: CurrentPrincipal,
                  store: StoreDep) -> dict[str, Any]:
        """Create a pending gate with its criteria fixed now."""
        for field, value in body.model_dump().items():
            if isinstance(value, str):
                check_text(value, field)
        return create_gate(store, project, body.component, body.version,
                           actor=principal.name[:100], experiment=body.experiment,
                           cohort_attribute=body.cohort_attribute,
                           cohort_signal=body.cohort_signal,
                           cohort_tolerance=body.cohort_tolerance,
                           baseline_version=body.baseline_version,
                           fairness_attribute=body.fairness_attribute,
                           fairness_signal=body.fairness_signal,
                           fairness_min_ratio=body.fairness_min_ratio,
                           fairness_prediction=body.fairness_prediction)

    @router.get("/gates/{gate_id}")
    def get_one_gate(gate_id: GateId, project: ProjectReader,
                     store: StoreDep) -> dict[str, Any]:
        """The gate: criteria, last result with evidence, sign-offs and what is missing."""
        with store.read() as conn:
            return get_gate(conn, project, gate_id)

    @router.post("/gates/{gate_id}/check", responses=_BODY_ERRORS)
    def post_check(gate_id: GateId, project: Releaser, principal: CurrentPrincipal,
                   store: StoreDep) -> dict[str, Any]:
        """Evaluate every criterion and store the result (``passed`` or ``failed``)."""
        return check_gate(store, project, gate_id, actor=principal.name[:100])

    @router.post("/gates/{gate_id}/signoffs", status_code=201, responses=_BODY_ERRORS)
    def post_signoff(gate_id: GateId, body: SignIn, project: ProjectReader,
                     principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Approve or reject the gate in a capacity; refusals are recorded (403/409)."""
        check_text(body.comment, "comment")
        role = principal.role_in(project.id)
        if role is None:  # pragma: no cover - ProjectReader lets only members through
            raise PermissionDenied("no role in this project", field="project")
        return sign_gate(store, project, gate_id, actor=principal.name[:100], role=role,
                         capacity=body.capacity, decision=body.decision,
                         comment=body.comment)

    @router.get("/releases")
    def get_releases(project: ProjectReader, store: StoreDep,
                     component: ComponentQuery = None) -> dict[str, Any]:
        """The project's releases, newest first (without case studies)."""
        check_text(component, "component")
        with store.read() as conn:
            return {"items": list_releases(conn, project, component=component)}

    @router.post("/releases", status_code=201, responses=_BODY_ERRORS)
    def post_release(body: ReleaseIn, project: Releaser, principal: CurrentPrincipal,
                     store: StoreDep) -> dict[str, Any]:
        """Release the version: refused (409, recorded) until its gate passed with the
        tier's sign-offs; returns the release with its rollback target and case study."""
        check_text(body.component, "component")
        check_text(body.version, "version")
        check_text(body.reason, "reason")
        _texts(body.cohort, "cohort")
        return promote(store, project, body.component, body.version, gate_id=body.gate_id,
                       actor=principal.name[:100], cohort=body.cohort, reason=body.reason)

    @router.get("/releases/{release_id}")
    def get_one_release(release_id: ReleaseId, project: ProjectReader,
                        store: StoreDep) -> dict[str, Any]:
        """One release with its case study."""
        with store.read() as conn:
            return get_release(conn, project, release_id)

    @router.post("/rollback", responses=_BODY_ERRORS)
    def post_rollback(body: RollbackIn, project: Releaser, principal: CurrentPrincipal,
                      store: StoreDep) -> dict[str, Any]:
        """Undo the component's newest release in one step."""
        check_text(body.component, "component")
        check_text(body.reason, "reason")
        return rollback(store, project, body.component, actor=principal.name[:100],
                        reason=body.reason)

    return router
