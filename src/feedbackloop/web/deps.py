"""Route dependencies, as ``Annotated`` types so a route's signature says what it needs.

``SettingsDep`` and ``StoreDep`` come from the app; ``CurrentPrincipal`` from the bearer
token; ``project_with(action)`` resolves the ``{project}`` path parameter and checks the
caller's role in it. The database work runs in the threadpool (plain ``def``).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..access import Action, Principal, authenticate_token
from ..capture.projects import Project, get_project
from ..errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from ..settings import Settings
from ..store import Store

__all__ = [
    "CurrentPrincipal",
    "Evaluator",
    "FeedbackWriter",
    "InteractionWriter",
    "ProjectReader",
    "SettingsDep",
    "SignalManager",
    "StoreDep",
    "check_text",
    "project_with",
    "strict_query",
]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> Store:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]

# auto_error=False: a missing or non-bearer header becomes our 401, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer fl_…`")


def _principal(store: StoreDep, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if credentials is None:
        raise AuthenticationFailed("send an API token as 'Authorization: Bearer <token>'")
    return authenticate_token(store, credentials.credentials)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def check_text(value: str | None, field: str) -> str | None:
    """Reject text no database can compare: NUL, or an unpaired surrogate. PostgreSQL
    refuses both with an error, which would otherwise surface as a 500."""
    if value is None:
        return None
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid Unicode text", field=field) from None
    return value


def _takes_many(annotation: Any) -> bool:
    if get_origin(annotation) in (list, tuple, set):
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_takes_many(a) for a in get_args(annotation))
    return False


def strict_query(request: Request) -> None:
    """Reject query parameters the route does not declare, and repeats of single ones.

    A mistyped filter (``modelversion=v2``) would otherwise be ignored and the caller
    would take the unfiltered list for the filtered one.
    """
    dependant = getattr(request.scope.get("route"), "dependant", None)
    if dependant is None:
        return
    declared = {p.alias: _takes_many(p.field_info.annotation)
                for p in dependant.query_params}
    seen: set[str] = set()
    for key, _ in request.query_params.multi_items():
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise InvalidInput(f"unknown query parameter {key!r} (this endpoint takes: "
                               f"{known})", field=key)
        if key in seen and not declared[key]:
            raise InvalidInput(f"query parameter {key!r} given more than once", field=key)
        seen.add(key)


ProjectName = Annotated[str, Path(description="Project name.", max_length=100)]


def project_with(action: Action) -> Callable[..., Project]:
    """A dependency that resolves ``{project}`` and requires ``action`` there.

    A caller without access hears "no access" whether or not the project exists, so
    project names do not leak across tenants; instance administrators, who may see every
    project, get a plain 404 for a missing one.
    """

    def dependency(project: ProjectName, principal: CurrentPrincipal,
                   store: StoreDep) -> Project:
        check_text(project, "project")
        no_access = PermissionDenied(
            f"this credential has no access to project {project!r}", field="project")
        with store.read() as conn:
            try:
                found = get_project(conn, project)
            except NotFound:
                if principal.superuser:
                    raise
                raise no_access from None
        if principal.role_in(found.id) is None:
            raise no_access
        principal.require(found.id, action)
        return found

    dependency.__name__ = f"project_for_{action.value}"
    return dependency


ProjectReader = Annotated[Project, Depends(project_with(Action.READ))]
InteractionWriter = Annotated[Project, Depends(project_with(Action.WRITE_INTERACTIONS))]
FeedbackWriter = Annotated[Project, Depends(project_with(Action.WRITE_END_USER_FEEDBACK))]
SignalManager = Annotated[Project, Depends(project_with(Action.MANAGE_SIGNALS))]
Evaluator = Annotated[Project, Depends(project_with(Action.EVALUATE))]
