"""Server-rendered pages: sign-in, the project list, and each project's Capture stage
(status overview, interaction browser, interaction detail, feedback list).

Every page needs a signed-in user (see :mod:`.signin`); a visitor without a session is
sent to ``/sign-in`` and back. A user sees only the projects where they have a role, and a
project they cannot see answers exactly as one that does not exist. Templates are
rendered with autoescaping on, so user text never becomes markup.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..access import Action, Principal, can, revoke_token, sign_in
from ..capture.browse import get_interaction, list_feedback, list_interactions, project_status
from ..capture.projects import Project, get_project, list_projects, list_signals
from ..capture.schema import SOURCES
from ..errors import AuthenticationFailed, FeedbackloopError, InvalidInput, NotFound
from ..settings import Settings
from ..store import Store
from . import filter_form, formatting
from .charts import daily_bar_chart
from .overview import interactions_per_day, project_counts
from .signin import (
    clear_session_cookie,
    csrf_token,
    csrf_valid,
    ensure_csrf_cookie,
    principal_from_cookie,
    safe_next,
    set_session_cookie,
    sign_in_location,
)

__all__ = ["STAGES", "error_page", "install_pages"]

HERE = Path(__file__).parent

# The loop's stages as the project navigation shows them. A page is (label, path below
# /projects/{name}); stages without pages yet are listed greyed out, so the navigation
# keeps its final shape while the stages are being built.
STAGES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Capture", (("Status", ""), ("Interactions", "/interactions"),
                 ("Feedback", "/feedback"))),
    ("Measure", ()),
    ("Annotate", (("Campaigns", "/annotate"),)),
    ("Understand", (("Evaluations", "/evaluations"), ("Knowledge base", "/knowledge-base"),
                    ("Triage", "/triage"), ("Backlog", "/findings"), ("Fairness", "/fairness"))),
    ("Improve", (("Datasets", "/datasets"), ("Models", "/models"))),
    ("Test", (("Experiments", "/experiments"),)),
    ("Release", (("Releases", "/releases"), ("Audit log", "/audit"))),
    ("Watch", ()),
)

_PAGE_SIZE = 50
_FEEDBACK_ON_INTERACTION = 1000
# Pages show private data: no caching, no framing, and scripts only from this site (a
# second line of defence behind autoescaping).
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
}


class _NoSuchProject(NotFound):
    """Raised for a project the user cannot see, whether or not it exists."""


def _templates(request: Request) -> Environment:
    return request.app.state.page_templates


def _store(request: Request) -> Store:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _render(request: Request, template: str, *, status: int = 200,
            principal: Principal | None = None, **context: Any) -> HTMLResponse:
    env = _templates(request)
    html = env.get_template(template).render(
        request=request, viewer=principal, csrf=csrf_token(request, principal),
        stages=STAGES, **context)
    response = HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)
    ensure_csrf_cookie(request, response, _settings(request))
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """The layout with ``message``: for the app's error handler and the pages' own errors."""
    try:
        principal = principal_from_cookie(request)
    except Exception:  # the error may be the database itself; the page must still render
        principal = None
    titles = {401: "Sign-in needed", 403: "Not allowed", 404: "Not found",
              405: "Not allowed", 413: "Too large", 422: "Invalid request"}
    try:
        return _render(request, "error.html", status=status, principal=principal,
                       title=titles.get(status, "Error" if status < 500 else "Server error"),
                       status_code=status, message=message)
    except Exception:  # templates not installed (an app without pages): plain text
        from markupsafe import escape

        return HTMLResponse(f"<h1>{status}</h1><p>{escape(message)}</p>", status_code=status)


def _signed_in(request: Request,
               build: Callable[[Principal], Response]) -> Response:
    """Run a page for the signed-in user; send others to sign in; render domain errors."""
    principal = principal_from_cookie(request)
    if principal is None:
        response: Response = RedirectResponse(sign_in_location(request), status_code=303)
        if request.cookies.get("fl_session"):
            clear_session_cookie(response, _settings(request))
        return response
    try:
        return build(principal)
    except FeedbackloopError as exc:
        return error_page(request, exc.status, exc.message)


def _readable_project(store: Store, principal: Principal, name: str) -> Project:
    """The project, if this user may read it. A project without the user's role answers
    like a missing one, so names do not leak; a role without read access gets 403."""
    hidden = _NoSuchProject(f"no project {name!r} among the projects you can see")
    if len(name) > 100 or "\x00" in name:
        raise hidden
    with store.read() as conn:
        try:
            project = get_project(conn, name)
        except NotFound:
            raise hidden from None
    if principal.role_in(project.id) is None:
        raise hidden
    principal.require(project.id, Action.READ)
    return project


# -- sign-in ---------------------------------------------------------------------------
def _sign_in_form(request: Request) -> Response:
    next_url = safe_next(request.query_params.get("next"))
    if principal_from_cookie(request) is not None:
        return RedirectResponse(next_url, status_code=303)
    return _render(request, "sign_in.html", title="Sign in", next_url=next_url,
                   username="", error=None)


async def _sign_in_submit(request: Request) -> Response:
    form = await request.form()

    def text(name: str, limit: int) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    username, password = text("username", 100), text("password", 1000)
    next_url = safe_next(text("next", 2000))
    if not csrf_valid(request, text("csrf", 200), signed_in=False):
        return _render(request, "sign_in.html", status=403, title="Sign in",
                       next_url=next_url, username=username,
                       error="The form expired. Please sign in again.")
    settings = _settings(request)
    try:
        if "\x00" in username:  # PostgreSQL refuses NUL in text: an error, not a miss
            raise AuthenticationFailed("wrong username or password")
        token = await run_in_threadpool(sign_in, _store(request), username, password,
                                        hours=settings.session_max_age_hours)
    except (AuthenticationFailed, InvalidInput):
        return _render(request, "sign_in.html", status=401, title="Sign in",
                       next_url=next_url, username=username,
                       error="Wrong username or password.")
    response = RedirectResponse(next_url, status_code=303)
    set_session_cookie(response, settings, token)
    return response


async def _sign_out(request: Request) -> Response:
    form = await request.form()
    submitted = form.get("csrf")
    token = request.cookies.get("fl_session")
    if token and not csrf_valid(request, submitted if isinstance(submitted, str) else "",
                                signed_in=True):
        return error_page(request, 403, "The sign-out form expired; reload the page and "
                          "try again.")
    if token:
        await run_in_threadpool(revoke_token, _store(request), token)
    response = RedirectResponse("/sign-in", status_code=303)
    clear_session_cookie(response, _settings(request))
    return response


# -- projects ----------------------------------------------------------------------------
def _project_list(request: Request) -> Response:
    def build(principal: Principal) -> Response:
        with _store(request).read() as conn:
            # A role that may not read (ingest) would only lead to a "not allowed" page.
            visible = [p for p in list_projects(conn, principal.project_ids())
                       if can(principal.role_in(p.id), Action.READ)]
            counts = project_counts(conn, [p.id for p in visible])
        rows = [{"project": p, "role": principal.role_in(p.id),
                 "interactions": counts[p.id][0], "feedback": counts[p.id][1]}
                for p in visible]
        return _render(request, "projects.html", principal=principal, title="Projects",
                       rows=rows)

    return _signed_in(request, build)


def _project_overview(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            status = project_status(conn, project.id)
            days = interactions_per_day(conn, project.id, days=30)
        chart = daily_bar_chart(days, title="Interactions per day, last 30 days (UTC)")
        return _render(request, "project.html", principal=principal, title=project.name,
                       project=project, role=principal.role_in(project.id), counts=status,
                       chart=chart, last_30=sum(d.count for d in days), active="Status")

    return _signed_in(request, build)


def _interaction_browser(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            signals = list_signals(conn, project.id)
            versions = [v for v in project_status(conn, project.id)["by_model_version"]
                        if v != "(none)"]
            chosen = filter_form.interaction_filters(request.query_params, signals, versions)
            page = None
            if not chosen.errors:
                try:
                    page = list_interactions(conn, project.id, limit=chosen.limit,
                                             cursor=chosen.cursor, where=chosen.where)
                except InvalidInput as exc:
                    chosen.errors.append(exc.message)
        return _render(request, "interactions.html", principal=principal,
                       title=f"Interactions · {project.name}", project=project,
                       signals=signals, versions=versions, sources=SOURCES, chosen=chosen,
                       page=page, active="Interactions")

    return _signed_in(request, build)


def _interaction_detail(request: Request, name: str, interaction_id: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        if len(interaction_id) > 200 or "\x00" in interaction_id:
            raise NotFound(f"no interaction {interaction_id!r} in this project")
        with store.read() as conn:
            record = get_interaction(conn, project.id, interaction_id)
            judged = list_feedback(conn, project.id, interaction_id=record.id,
                                   limit=_FEEDBACK_ON_INTERACTION)
        return _render(request, "interaction.html", principal=principal,
                       title=f"Interaction {record.id} · {project.name}", project=project,
                       record=record, feedback=judged.items,
                       more_feedback=judged.next_cursor is not None, active="Interactions")

    return _signed_in(request, build)


def _feedback_list(request: Request, name: str) -> Response:
    def build(principal: Principal) -> Response:
        store = _store(request)
        project = _readable_project(store, principal, name)
        with store.read() as conn:
            signals = list_signals(conn, project.id)
            chosen = filter_form.feedback_filters(request.query_params, signals)
            page = None
            if not chosen.errors:
                try:
                    page = list_feedback(conn, project.id, limit=chosen.limit,
                                         cursor=chosen.cursor, **chosen.where)
                except InvalidInput as exc:
                    chosen.errors.append(exc.message)
        return _render(request, "feedback.html", principal=principal,
                       title=f"Feedback · {project.name}", project=project, signals=signals,
                       sources=SOURCES, chosen=chosen, page=page, active="Feedback")

    return _signed_in(request, build)


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    formatting.register(env)
    return env


def install_pages(app: FastAPI) -> None:
    """Mount the page routes and the static files on ``app``."""
    app.state.page_templates = _environment()
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    html: dict[str, Any] = {"response_class": HTMLResponse, "include_in_schema": False}
    app.add_api_route("/sign-in", _sign_in_form, methods=["GET"], name="sign_in", **html)
    app.add_api_route("/sign-in", _sign_in_submit, methods=["POST"], name="sign_in_submit",
                      **html)
    app.add_api_route("/sign-out", _sign_out, methods=["POST"], name="sign_out", **html)
    app.add_api_route("/", _project_list, methods=["GET"], name="projects", **html)
    app.add_api_route("/projects/{name}", _project_overview, methods=["GET"],
                      name="project_overview", **html)
    app.add_api_route("/projects/{name}/interactions", _interaction_browser, methods=["GET"],
                      name="interaction_browser", **html)
    # ``path``: an interaction id may contain '/', which arrives decoded in the URL path.
    app.add_api_route("/projects/{name}/interactions/{interaction_id:path}",
                      _interaction_detail, methods=["GET"], name="interaction_detail",
                      **html)
    app.add_api_route("/projects/{name}/feedback", _feedback_list, methods=["GET"],
                      name="feedback_list", **html)
    from .evaluation_pages import install_evaluation_pages

    install_evaluation_pages(app)
    from .annotation_pages import install_annotation_pages

    install_annotation_pages(app)
    from .improve_pages import install_improve_pages

    install_improve_pages(app)
    from .experiments_pages import install_experiment_pages

    install_experiment_pages(app)
    from .triage_pages import install_triage_pages

    install_triage_pages(app)
    from .fairness_pages import install_fairness_pages

    install_fairness_pages(app)
    from .release_pages import install_release_pages

    install_release_pages(app)
    from .audit_pages import install_audit_pages

    install_audit_pages(app)
