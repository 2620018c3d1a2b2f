"""The JSON API of triage: rules, routed items and the human queue, escalations, themes,
findings and the ranked backlog.

Reading needs ``read``; running triage, routing, rules, themes and findings need
``manage_findings`` (maintainer, admin). An escalated item is resolved only by a person
holding the role it was escalated to (or an admin), whatever their other rights. Bad input
is a 4xx naming the field, from the services' own checks or the request models here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, Strict

from ..access import Action
from ..capture.projects import Project
from ..errors import InvalidInput
from ..triage import findings as fnd
from ..triage import service as tri
from ..triage import themes as thm
from .api import _BODY_ERRORS, _ERRORS
from .deps import CurrentPrincipal, ProjectReader, StoreDep, check_text, project_with, strict_query
from .improve_api import _texts

__all__ = ["build_triage_router"]

RouteName = Literal["ranking", "generation_quality", "factuality", "content_policy",
                    "safety", "privacy", "latency", "ux", "other"]
ItemStatus = Literal["routed", "queued", "escalated", "resolved"]
FindingStatus = Literal["new", "triaged", "in_progress", "fixed", "verified", "closed"]
FindingsManager = Annotated[Project, Depends(project_with(Action.MANAGE_FINDINGS))]
_ID = {"ge": 1, "le": 2_147_483_647}
ItemId = Annotated[int, Path(description="Triage item id.", **_ID)]
FindingId = Annotated[int, Path(description="Finding id.", **_ID)]
Id = Annotated[int, Strict(), Field(**_ID)]
SInt = Annotated[int, Strict()]
SFloat = Annotated[float, Strict()]
SBool = Annotated[bool, Strict()]


class RunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: SInt = Field(default=20_000, ge=1, le=1_000_000)


class RouteIn(BaseModel):
    """A person's route for an item (safety and privacy escalate)."""

    model_config = ConfigDict(extra="forbid")

    route: RouteName
    reason: str = Field(default="", max_length=10_000)


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=10_000)


class RuleIn(BaseModel):
    """A routing rule: conditions (see docs/triage.md), the route, whether it escalates."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    route: RouteName
    conditions: dict[str, Any]
    escalate: SBool = False
    position: SInt | None = Field(default=None, ge=0, le=1_000_000)


class ThresholdIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: SFloat = Field(ge=0, le=1, allow_inf_nan=False)


class ThemesIn(BaseModel):
    """Cluster the comments and corrections (k chosen by silhouette unless given)."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "embeddings", "tfidf"] = "auto"
    k: SInt | None = Field(default=None, ge=1, le=100)
    k_max: SInt = Field(default=12, ge=2, le=50)
    since: str | None = Field(default=None, max_length=40,
                              description="ISO 8601 date or time (UTC when no zone).")


class Inputs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(default=None, max_length=100)
    route: RouteName | None = None
    component: str | None = Field(default=None, max_length=50)
    severity: SInt | None = Field(default=None, ge=1, le=5)
    effort: SFloat | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)
    risk: SInt | None = Field(default=None, ge=1, le=5)
    confidence: SFloat | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)


class FindingIn(Inputs):
    """A finding from a theme or hand-picked feedback ids (or both)."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    theme: Id | None = None
    feedback: list[Id] = Field(default_factory=list, max_length=50_000)


class FindingPatch(Inputs):
    """Fields to change; those left out stay as they are."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    reason: str = Field(default="", max_length=10_000)


class StatusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: FindingStatus
    reason: str = Field(default="", max_length=10_000)


class LinkIn(BaseModel):
    """A dataset (name, optional version, or id) that addresses the finding, and/or more
    feedback ids."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(default=None, min_length=1, max_length=100)
    dataset_id: Id | None = None
    version: SInt | None = Field(default=None, ge=1, le=2_147_483_647)
    feedback: list[Id] = Field(default_factory=list, max_length=50_000)


def build_triage_router() -> APIRouter:
    """The triage and findings routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["triage"])

    @router.post("/triage/run", responses=_BODY_ERRORS)
    def post_run(project: FindingsManager, principal: CurrentPrincipal, store: StoreDep,
                 body: RunIn | None = None) -> dict[str, Any]:
        """Route the feedback not triaged yet: rules, then the classifier; low confidence
        waits for a person; safety and privacy escalate to the role on duty."""
        return tri.run_triage(store, project, actor=principal.name[:100],
                              limit=(body or RunIn()).limit)

    @router.get("/triage/items")
    def get_items(project: ProjectReader, store: StoreDep,
                  status: Annotated[ItemStatus | None, Query(
                      description="Only this status.")] = None,
                  route: Annotated[RouteName | None, Query(
                      description="Only this route.")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                  offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> dict[str, Any]:
        """Triaged items, oldest first; ``status=queued`` is the human queue."""
        with store.read() as conn:
            items = tri.list_items(conn, project, status=status, route=route, limit=limit,
                                   offset=offset)
            counts = tri.status_counts(conn, project)
        return {"items": [i.to_dict() for i in items], "counts": counts}

    @router.post("/triage/items/{item}/route", responses=_BODY_ERRORS)
    def post_route(item: ItemId, body: RouteIn, project: FindingsManager,
                   principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Route an item by hand (it then trains the classifier)."""
        check_text(body.reason, "reason")
        return tri.route_item(store, project, item, body.route, actor=principal.name[:100],
                              reason=body.reason).to_dict()

    @router.post("/triage/items/{item}/resolve", responses=_BODY_ERRORS)
    def post_resolve(item: ItemId, body: ResolveIn, project: ProjectReader,
                     principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Resolve an escalated item: only the role it was escalated to, or an admin."""
        check_text(body.note, "note")
        return tri.resolve_item(store, project, item, actor=principal.name[:100],
                                actor_role=principal.role_in(project.id),
                                note=body.note).to_dict()

    @router.get("/triage/escalations")
    def get_escalations(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """What escalates in this project and to whom, and the items waiting."""
        with store.read() as conn:
            crit = tri.escalation_criteria(conn, project)
            items = tri.list_items(conn, project, status="escalated")
        return {**crit, "items": [i.to_dict() for i in items]}

    @router.get("/triage/rules")
    def get_rules(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """The rules in the order they are tried, and the confidence threshold."""
        with store.read() as conn:
            return {"threshold": tri.get_threshold(conn, project),
                    "rules": [r.to_dict() for r in tri.list_rules(conn, project)]}

    @router.post("/triage/rules", status_code=201, responses=_BODY_ERRORS)
    def post_rule(body: RuleIn, project: FindingsManager, principal: CurrentPrincipal,
                  store: StoreDep) -> dict[str, Any]:
        """Add a rule (tried after the others unless ``position`` says otherwise)."""
        check_text(body.name, "name")
        _texts(body.conditions, "conditions")
        return tri.add_rule(store, project, body.name, body.route, body.conditions,
                            escalate=body.escalate, position=body.position,
                            actor=principal.name[:100]).to_dict()

    @router.delete("/triage/rules/{rule}", status_code=204, responses=_BODY_ERRORS)
    def delete_rule(rule: Annotated[str, Path(min_length=1, max_length=100)],
                    project: FindingsManager, principal: CurrentPrincipal,
                    store: StoreDep) -> None:
        """Remove a rule; the items it routed keep their route."""
        check_text(rule, "rule")
        tri.delete_rule(store, project, rule, actor=principal.name[:100])

    @router.put("/triage/threshold", responses=_BODY_ERRORS)
    def put_threshold(body: ThresholdIn, project: FindingsManager,
                      principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """The classifier confidence below which an item waits for a person."""
        return {"threshold": tri.set_threshold(store, project, body.threshold,
                                               actor=principal.name[:100])}

    @router.get("/themes")
    def get_themes(project: ProjectReader, store: StoreDep,
                   run: Annotated[int | None, Query(description="A theme run (latest).",
                                                    **_ID)] = None) -> dict[str, Any]:
        """A theme run (the latest by default) with its themes; ``{"run": null}`` before
        the first."""
        with store.read() as conn:
            found = (thm.latest_run(conn, project) if run is None
                     else thm.get_run(conn, project, run))
        return {"run": found}

    @router.post("/themes", status_code=201, responses=_BODY_ERRORS)
    def post_themes(project: FindingsManager, principal: CurrentPrincipal, store: StoreDep,
                    body: ThemesIn | None = None) -> dict[str, Any]:
        """Cluster the comments and corrections into themes and store the run."""
        b = body or ThemesIn()
        since = None
        if b.since is not None:
            try:
                since = datetime.fromisoformat(b.since)
            except ValueError:
                raise InvalidInput(f"since {b.since!r} is not an ISO 8601 date or time",
                                   field="since") from None
        return thm.run_themes(store, project, method=b.method, k=b.k, k_max=b.k_max,
                              since=since, actor=principal.name[:100])

    @router.get("/findings")
    def get_findings(project: ProjectReader, store: StoreDep,
                     status: Annotated[FindingStatus | None, Query(
                         description="Only this status.")] = None) -> dict[str, Any]:
        """Findings, highest priority first (unscored last)."""
        with store.read() as conn:
            return {"items": [f.to_dict() for f in fnd.list_findings(conn, project,
                                                                     status=status)]}

    @router.get("/findings/backlog")
    def get_backlog(project: ProjectReader, store: StoreDep,
                    closed: Annotated[bool, Query(
                        description="Include closed findings.")] = False) -> dict[str, Any]:
        """The ranked backlog: the formula, and each open finding's rank and expected
        benefit with its interval."""
        with store.read() as conn:
            return fnd.ranked_backlog(conn, project, include_closed=closed)

    @router.post("/findings", status_code=201, responses=_BODY_ERRORS)
    def post_finding(body: FindingIn, project: FindingsManager, principal: CurrentPrincipal,
                     store: StoreDep) -> dict[str, Any]:
        """A finding from a theme or hand-picked feedback; reach is counted from the
        data and priority computed when its inputs are given."""
        for field in ("title", "description", "owner", "component"):
            check_text(getattr(body, field), field)
        return fnd.create_finding(
            store, project, title=body.title, description=body.description,
            feedback_ids=list(body.feedback), theme_id=body.theme, owner=body.owner,
            route=body.route, component=body.component, severity=body.severity,
            effort=body.effort, risk=body.risk, confidence=body.confidence,
            actor=principal.name[:100]).to_dict()

    @router.get("/findings/{finding}")
    def get_finding(finding: FindingId, project: ProjectReader,
                    store: StoreDep) -> dict[str, Any]:
        """One finding with its linked feedback, datasets and expected benefit."""
        with store.read() as conn:
            return fnd.finding_detail(conn, project, finding)

    @router.patch("/findings/{finding}", responses=_BODY_ERRORS)
    def patch_finding(finding: FindingId, body: FindingPatch, project: FindingsManager,
                      principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Change the title, owner, route or priority inputs; priority is recomputed."""
        changes = body.model_dump(exclude_unset=True)
        reason = changes.pop("reason", "")
        for key, value in changes.items():
            if isinstance(value, str):
                check_text(value, key)
        check_text(reason, "reason")
        if not changes:
            raise InvalidInput("nothing to change", field="body")
        return fnd.update_finding(store, project, finding, actor=principal.name[:100],
                                  reason=reason, **changes).to_dict()

    @router.post("/findings/{finding}/status", responses=_BODY_ERRORS)
    def post_status(finding: FindingId, body: StatusIn, project: FindingsManager,
                    principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Move the finding along new → triaged → in_progress → fixed → verified →
        closed; an illegal move is a 409 naming both statuses."""
        check_text(body.reason, "reason")
        return fnd.set_status(store, project, finding, body.status,
                              actor=principal.name[:100], reason=body.reason).to_dict()

    @router.post("/findings/{finding}/links", responses=_BODY_ERRORS)
    def post_links(finding: FindingId, body: LinkIn, project: FindingsManager,
                   principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Link a dataset that addresses the finding (provenance) and/or more feedback."""
        check_text(body.dataset, "dataset")
        dataset: str | int | None = body.dataset if body.dataset else body.dataset_id
        if dataset is None and not body.feedback:
            raise InvalidInput("give a dataset, a dataset_id or feedback ids",
                               field="dataset")
        out: dict[str, Any] = {}
        if body.feedback:
            out["finding"] = fnd.link_feedback(store, project, finding, list(body.feedback),
                                               actor=principal.name[:100]).to_dict()
        if dataset is not None:
            out["dataset_link"] = fnd.link_dataset(store, project, finding, dataset,
                                                   version=body.version,
                                                   actor=principal.name[:100])
        return out

    return router
