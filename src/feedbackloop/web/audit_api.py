"""The JSON API of the audit log (entries, verify) and provenance (trace, case studies).

* GET ``/api/v1/projects/{p}/audit``: the project's entries, newest first (``read``).
* PATCH or DELETE ``/api/v1/projects/{p}/audit/{id}``: always refused (409): entries are
  append-only; the attempt itself is recorded.
* GET ``/api/v1/audit/verify``: the whole chain's verification (instance administrators:
  the chain spans every project).
* GET ``/api/v1/projects/{p}/trace?kind=…&id=…``: the provenance graph around one node.
* GET ``/api/v1/projects/{p}/releases/{id}/case-study``: a release's case study, built now.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from ..capture.projects import Project
from ..errors import PermissionDenied
from ..governance import audit
from ..governance.case_study import build_case_study
from ..governance.provenance import trace
from .api import _ERRORS, ErrorOut
from .deps import CurrentPrincipal, ProjectReader, StoreDep, check_text, strict_query

__all__ = ["build_audit_router"]

Kind = Literal["feedback", "finding", "dataset", "model_version", "experiment", "release"]
EntryId = Annotated[int, Path(ge=1, le=2**62, description="Audit entry id.")]


def _entries(store: Any, project: Project, entity_kind: str | None, entity_id: str | None,
             before_id: int | None, limit: int) -> dict[str, Any]:
    if entity_kind is not None:
        check_text(entity_kind, "entity_kind")
    if entity_id is not None:
        check_text(entity_id, "entity_id")
    with store.read() as conn:
        found = audit.entries(conn, project_id=project.id, entity_kind=entity_kind,
                              entity_id=entity_id, before_id=before_id, limit=limit)
    items = [e.to_dict() for e in found]
    return {"items": items,
            "next_before_id": items[-1]["id"] if len(items) == limit else None}


def build_audit_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["audit"])

    @router.get("/projects/{project}/audit")
    def get_entries(
        project: ProjectReader, store: StoreDep,
        entity_kind: Annotated[str | None, Query(
            min_length=1, max_length=30, description="Only entries about this kind.")] = None,
        entity_id: Annotated[str | None, Query(
            min_length=1, max_length=200, description="Only this entity.")] = None,
        before_id: Annotated[int | None, Query(
            ge=1, le=2**62, description="Only entries older than this id.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The project's audit entries, newest first: who did what to which entity, when
        and why, with the state before and after."""
        return _entries(store, project, entity_kind, entity_id, before_id, limit)

    def refuse(change: str) -> Any:
        def handler(entry_id: EntryId, project: ProjectReader, principal: CurrentPrincipal,
                    store: StoreDep) -> dict[str, Any]:
            audit.refuse_change(store, entry_id, actor=principal.name, change=change,
                                project_id=project.id)
            return {}  # pragma: no cover - refuse_change always raises

        handler.__name__ = f"{change}_entry"
        handler.__doc__ = (f"Always refused (409): audit entries are append-only. The "
                           f"attempt to {change} one is itself recorded.")
        return handler

    refused: dict[int | str, dict[str, Any]] = {
        409: {"model": ErrorOut, "description": "Always: entries are append-only."}}
    router.add_api_route("/projects/{project}/audit/{entry_id}", refuse("edit"),
                         methods=["PATCH"], responses=refused)
    router.add_api_route("/projects/{project}/audit/{entry_id}", refuse("delete"),
                         methods=["DELETE"], responses=refused)

    @router.get("/audit/verify")
    def get_verify(principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Walk the whole hash chain: ``ok``, ``entries``, ``first_bad`` and the reason.
        Instance administrators only."""
        if not principal.superuser:
            raise PermissionDenied("verifying the whole audit log needs an instance "
                                   "administrator", field="principal")
        return audit.verify(store).to_dict()

    @router.get("/projects/{project}/trace")
    def get_trace(
        project: ProjectReader, store: StoreDep,
        kind: Annotated[Kind, Query(description="The kind of the starting node.")],
        id: Annotated[str, Query(min_length=1, max_length=300,
                                 description="Its id (a model version: COMPONENT:NAME or "
                                             "its id; feedback: id or client id).")],
        limit: Annotated[int, Query(ge=1, le=1000,
                                    description="Neighbours of one kind per node.")] = 25,
    ) -> dict[str, Any]:
        """The provenance graph around one node, upstream and downstream."""
        check_text(id, "id")
        return trace(store, project, kind, id, limit=limit)

    @router.get("/projects/{project}/releases/{release_id}/case-study")
    def get_case_study(
        project: ProjectReader, store: StoreDep,
        release_id: Annotated[int, Path(ge=1, le=2**62, description="Release id.")],
    ) -> dict[str, Any]:
        """The release's case study as it stands now (what changed, why, the evidence, what
        happened after)."""
        with store.read() as conn:
            return build_case_study(conn, project.id, release_id)

    return router
