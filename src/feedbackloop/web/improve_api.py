"""The JSON API of the Improve stage: datasets (with counts and rows with their lineage),
model versions (with their training run and status events), promote, rollback, toggles
and resolve.

Reading needs any role that may read the project; promote, rollback and setting a toggle
need :data:`.improve_pages.RELEASE` (maintainer or admin). Bad input is a 4xx naming the
field, from the services' own checks or the request models here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ..capture.projects import Project
from ..errors import InvalidInput, NotFound
from ..improve.artifacts import fetch
from ..improve.datasets import get_dataset, list_datasets
from ..improve.registry import (
    get_toggle,
    get_version,
    list_events,
    list_versions,
    promote,
    resolve,
    rollback,
    set_toggle,
)
from ..improve.trainers import get_training_run
from ..store.tables import dataset_rows
from .api import _BODY_ERRORS, _ERRORS
from .deps import CurrentPrincipal, ProjectReader, StoreDep, check_text, project_with, strict_query
from .improve_pages import RELEASE, interactions_of, key_metric, models_trained_on

__all__ = ["build_improve_router"]

Releaser = Annotated[Project, Depends(project_with(RELEASE))]
DatasetName = Annotated[str, Path(min_length=1, max_length=100, description="Dataset name.")]
Component = Annotated[str, Path(min_length=1, max_length=50,
                                description="Component, e.g. reward, ranking.")]
VersionName = Annotated[str, Path(min_length=1, max_length=200,
                                  description="Version name, e.g. rm-2.")]
DatasetVersion = Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                             description="Dataset version (default: "
                                                         "the newest).")]
_MAX_ROWS = 500
_ATTR = "attr."


class PromoteIn(BaseModel):
    """Where the version goes; going live retires the component's live version."""

    model_config = ConfigDict(extra="forbid")

    to: Literal["live", "staged", "retired"] = "live"


class ToggleIn(BaseModel):
    """The component's rules, replacing the current ones (an empty list clears them):
    ``{"name", "when": [{"attribute", "op", "value"}], "split": {version: percent},
    "salt"}``, checked rule by rule (errors name the rule)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[dict[str, Any]] = Field(max_length=1000)


def _texts(value: Any, field: str, depth: int = 0) -> None:
    """NUL and unpaired surrogates anywhere in a JSON value: refused, naming the field."""
    if depth > 10:
        raise InvalidInput(f"{field} is nested too deeply", field=field)
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            check_text(str(k), field)
            _texts(v, field, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _texts(v, field, depth + 1)


def _version_out(version: Any) -> dict[str, Any]:
    return {**version.to_dict(), "key_metric": key_metric(version.metrics)}


def build_improve_router() -> APIRouter:
    """The Improve routes under /api/v1 (built per app)."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       dependencies=[Depends(strict_query)], tags=["improve"])

    # datasets
    @router.get("/datasets")
    def get_datasets(project: ProjectReader, store: StoreDep) -> dict[str, Any]:
        """Every version of every dataset, by name then version."""
        with store.read() as conn:
            return {"items": [d.to_dict() for d in list_datasets(conn, project)]}

    @router.get("/datasets/{name}")
    def get_one_dataset(name: DatasetName, project: ProjectReader, store: StoreDep,
                        version: DatasetVersion = None) -> dict[str, Any]:
        """One dataset version with its counts and card, and the model versions trained
        on it."""
        check_text(name, "name")
        with store.read() as conn:
            ds = get_dataset(conn, project, name, version)
            models = models_trained_on(conn, ds.id)
        return {**ds.to_dict(), "models": [
            {**m, "created_at": m["created_at"].isoformat()} for m in models]}

    @router.get("/datasets/{name}/rows")
    def get_rows(name: DatasetName, project: ProjectReader, store: StoreDep,
                 version: DatasetVersion = None,
                 split: Annotated[str | None, Query(max_length=20,
                                                    description="Only this split.")] = None,
                 start: Annotated[int, Query(ge=0, le=2**31 - 1, description=(
                     "First position (from next_start of the previous page)."))] = 0,
                 limit: Annotated[int, Query(ge=1, le=_MAX_ROWS)] = 100) -> dict[str, Any]:
        """A page of rows in stored order, each with its lineage: the feedback ids behind
        it and the interactions they judged."""
        check_text(name, "name")
        check_text(split, "split")
        from sqlalchemy import select

        with store.read() as conn:
            ds = get_dataset(conn, project, name, version)
            splits = list((ds.counts.get("splits") or {}).keys())
            if split is not None and split not in splits:
                raise InvalidInput(f"dataset {ds.ref} has no split {split!r}; splits: "
                                   f"{', '.join(splits)}", field="split")
            r = dataset_rows
            q = (select(r.c.position, r.c.split, r.c.data, r.c.feedback_ids)
                 .where(r.c.dataset_id == ds.id, r.c.position >= start)
                 .order_by(r.c.position).limit(limit + 1))
            if split is not None:
                q = q.where(r.c.split == split)
            rows = conn.execute(q).all()
            page = rows[:limit]
            lineage = interactions_of(conn, project,
                                      [f for row in page for f in row.feedback_ids])
        items = [{"position": row.position, "split": row.split, "data": row.data,
                  "feedback_ids": row.feedback_ids,
                  "lineage": [{"feedback": f, "interaction": lineage.get(f, (None, None))[0],
                               "interaction_b": lineage.get(f, (None, None))[1]}
                              for f in row.feedback_ids]} for row in page]
        return {"dataset": ds.ref, "items": items,
                "next_start": rows[limit].position if len(rows) > limit else None}

    # models
    @router.get("/models")
    def get_models(project: ProjectReader, store: StoreDep,
                   component: Annotated[str | None, Query(max_length=50)] = None
                   ) -> dict[str, Any]:
        """Every version (of one component), by component then registration, each with
        its key metric."""
        check_text(component, "component")
        with store.read() as conn:
            return {"items": [_version_out(v) for v in list_versions(conn, project,
                                                                     component)]}

    @router.get("/models/{component}")
    def get_component(component: Component, project: ProjectReader,
                      store: StoreDep) -> dict[str, Any]:
        """A component: its live version, its versions and its toggle."""
        check_text(component, "component")
        with store.read() as conn:
            versions = list_versions(conn, project, component)
            if not versions:
                raise NotFound(f"component {component!r} has no versions", field="component")
            toggle = get_toggle(conn, project, component)
        return {"component": component, "live": toggle["default"],
                "versions": [_version_out(v) for v in versions], "toggle": toggle}

    @router.get("/models/{component}/versions/{name}")
    def get_model_version(component: Component, name: VersionName, project: ProjectReader,
                          store: StoreDep) -> dict[str, Any]:
        """One version with its training run (seed, parameters, library versions, dataset
        hash) and its status events."""
        check_text(component, "component")
        check_text(name, "name")
        with store.read() as conn:
            version = get_version(conn, project, component, name)
            run = None
            if version.training_run_id is not None:
                try:
                    run = get_training_run(conn, project, version.training_run_id).to_dict()
                except NotFound:
                    run = None
            events = [e for e in list_events(conn, project, component)
                      if e["version"] == name]
        return {**_version_out(version), "training_run": run, "events": events}

    @router.get("/models/{component}/versions/{name}/artifact",
                response_class=Response,
                responses={200: {"content": {"application/octet-stream": {}},
                                 "description": "The artifact's bytes."}})
    def get_model_artifact(component: Component, name: VersionName, project: ProjectReader,
                           store: StoreDep) -> Response:
        """The version's artifact, checked against its hash before it is sent (the SDK's
        ``predict`` loads it and checks the hash again). Its SHA-256 is in the
        ``X-Artifact-SHA256`` header."""
        check_text(component, "component")
        check_text(name, "name")
        with store.read() as conn:
            version = get_version(conn, project, component, name)
        if version.artifact_uri is None or version.artifact_hash is None:
            raise NotFound(f"version {name!r} of {component!r} has no artifact",
                           field="name")
        data = fetch(version.artifact_uri, version.artifact_hash,
                     version=f"{component}/{name}")
        return Response(data, media_type="application/octet-stream",
                        headers={"X-Artifact-SHA256": version.artifact_hash})

    @router.get("/models/{component}/events")
    def get_events(component: Component, project: ProjectReader,
                   store: StoreDep) -> dict[str, Any]:
        """The component's status and toggle changes, oldest first."""
        check_text(component, "component")
        with store.read() as conn:
            return {"items": list_events(conn, project, component)}

    @router.post("/models/{component}/versions/{name}/promote", responses=_BODY_ERRORS)
    def post_promote(component: Component, name: VersionName, project: Releaser,
                     principal: CurrentPrincipal, store: StoreDep,
                     body: PromoteIn | None = None) -> dict[str, Any]:
        """Move the version to live (the default), staged or retired; recorded as an
        event."""
        check_text(component, "component")
        check_text(name, "name")
        to = body.to if body is not None else "live"
        return _version_out(promote(store, project, component, name, to=to,
                                    actor=principal.name[:100]))

    @router.post("/models/{component}/rollback", responses=_BODY_ERRORS)
    def post_rollback(component: Component, project: Releaser, principal: CurrentPrincipal,
                      store: StoreDep) -> dict[str, Any]:
        """The live version becomes rolled_back; the version live before it is live again
        (answered). 409 when there is nothing to roll back to."""
        check_text(component, "component")
        return {"live": _version_out(rollback(store, project, component,
                                              actor=principal.name[:100]))}

    @router.get("/models/{component}/toggle")
    def get_component_toggle(component: Component, project: ProjectReader,
                             store: StoreDep) -> dict[str, Any]:
        """The component's rules, who set them when, and the default (live) version."""
        check_text(component, "component")
        with store.read() as conn:
            return get_toggle(conn, project, component)

    @router.put("/models/{component}/toggle", responses=_BODY_ERRORS)
    def put_toggle(component: Component, body: ToggleIn, project: Releaser,
                   principal: CurrentPrincipal, store: StoreDep) -> dict[str, Any]:
        """Replace the component's rules; recorded as an event."""
        check_text(component, "component")
        _texts(body.rules, "rules")
        return set_toggle(store, project, component, body.rules, actor=principal.name[:100])

    return router


def build_resolve_router() -> APIRouter:
    """``resolve`` takes cohort attributes as ``attr.KEY=VALUE`` query parameters, which no
    fixed parameter list declares, so it checks its query itself instead of
    :func:`strict_query`."""
    router = APIRouter(prefix="/api/v1/projects/{project}", responses=_ERRORS,
                       tags=["improve"])

    @router.get("/models/{component}/resolve")
    def get_resolve(component: Component, request: Request, project: ProjectReader,
                    store: StoreDep,
                    unit_id: Annotated[str, Query(min_length=1, max_length=200, description=(
                        "The unit (user, session…) the rollout hashes. Cohort attributes "
                        "go in further parameters attr.KEY=VALUE."))]) -> dict[str, Any]:
        """Which version serves this unit: ``{"component", "version", "rule", "status",
        "bucket"}`` (``rule`` null: the default, the live version)."""
        check_text(component, "component")
        check_text(unit_id, "unit_id")
        attributes: dict[str, str] = {}
        seen: set[str] = set()
        for key, value in request.query_params.multi_items():
            if key in seen:
                raise InvalidInput(f"query parameter {key!r} given more than once", field=key)
            seen.add(key)
            if key == "unit_id":
                continue
            if not key.startswith(_ATTR) or len(key) == len(_ATTR):
                raise InvalidInput(f"unknown query parameter {key!r} (this endpoint takes "
                                   "unit_id and attr.KEY=VALUE)", field=key)
            if len(key) > 200 or len(value) > 200:
                raise InvalidInput(f"attribute {key[:40]!r} longer than 200 characters",
                                   field=key[:200])
            check_text(key, key)
            check_text(value, key)
            attributes[key[len(_ATTR):]] = value
        if len(attributes) > 50:
            raise InvalidInput("at most 50 attributes", field="attr")
        return resolve(store, project, component, unit_id, attributes)

    return router
