"""Commands about who may do what: ``tokens`` and ``users``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..access import create_token, create_user, grant, member_id
from ..capture.projects import get_project
from .common import Db, Json, ProjectName, RoleName, echo_json, err, open_store, out

__all__ = ["register"]

Role = Annotated[RoleName, typer.Option("--role", "-r",
                                   help="What the holder may do in the project.")]


def tokens_create(
    project: Annotated[str | None, typer.Option(
        "--project", "-p", metavar="NAME", show_default=False,
        help="Project the token is for.")] = None,
    role: Annotated[RoleName | None, typer.Option(
        "--role", "-r", show_default=False,
        help="What the holder may do in the project.")] = None,
    name: Annotated[str, typer.Option("--name", help="A label to recognise it by.")] = "",
    admin: Annotated[bool, typer.Option(
        "--admin", help="An instance administrator token, for every project.")] = False,
    user: Annotated[str | None, typer.Option(
        "--user", "-u", metavar="NAME", show_default=False,
        help="Make the token act as this user (e.g. a rater working a campaign queue "
             "through the API); the user must be a member of the project.")] = None,
    db: Db = None, json: Json = False,
) -> None:
    """Create an API token. It is printed once and only its hash is stored."""
    if user is not None and admin:
        raise typer.BadParameter("an --admin token acts for no user", param_hint="--user")
    if admin:
        if project is not None or role not in (None, "admin"):
            raise typer.BadParameter("an --admin token is for every project: leave out "
                                     "--project and --role", param_hint="--admin")
        role = "admin"
    elif project is None or role is None:
        raise typer.BadParameter("give --project and --role (or --admin)",
                                 param_hint="--project")
    with open_store(db) as (_settings, store):
        project_id = user_id = None
        if project is not None:
            with store.read() as conn:
                project_id = get_project(conn, project).id
                user_id = None if user is None else member_id(conn, user, project_id)
        token = create_token(store, project_id=project_id, role=role, name=name,
                             user_id=user_id, actor="cli")
    if json:
        echo_json({"token": token, "project": project, "role": role, "name": name,
                   "user": user})
        return
    sys.stdout.write(token + "\n")
    err().print("Store this token now: it is not shown again.")


def users_create(
    name: Annotated[str, typer.Argument(help="User name for signing in.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin.")] = False,
    password: Annotated[str | None, typer.Option(
        "--password", show_default=False,
        help="The password (visible in the process list: prefer --password-stdin).")
    ] = None,
    superuser: Annotated[bool, typer.Option(
        "--superuser", help="An instance administrator (every project).")] = False,
    db: Db = None, json: Json = False,
) -> None:
    """Create a user who signs in to the web pages."""
    if password_stdin == (password is not None):
        raise typer.BadParameter("give exactly one of --password-stdin and --password",
                                 param_hint="--password")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    assert password is not None
    with open_store(db) as (_settings, store):
        user_id = create_user(store, name, password, superuser=superuser, actor="cli")
    if json:
        echo_json({"id": user_id, "name": name, "superuser": superuser})
        return
    out().print(f"Created user [bold]{name}[/]{' (superuser)' if superuser else ''}.")


def users_grant(
    name: Annotated[str, typer.Argument(help="User name.")],
    project: ProjectName,
    role: Role,
    db: Db = None, json: Json = False,
) -> None:
    """Give a user a role in a project (replacing the role they had there)."""
    with open_store(db) as (_settings, store):
        with store.read() as conn:
            proj = get_project(conn, project)
        grant(store, name, proj.id, role, actor="cli")
    if json:
        echo_json({"name": name, "project": proj.name, "role": role})
        return
    out().print(f"{name} is now {role} in {proj.name}.")


def register(app: typer.Typer) -> None:
    tokens = typer.Typer(help="Create API tokens.", no_args_is_help=True)
    tokens.command("create")(tokens_create)
    app.add_typer(tokens, name="tokens")
    users = typer.Typer(help="Create users and grant them roles.", no_args_is_help=True)
    users.command("create")(users_create)
    users.command("grant")(users_grant)
    app.add_typer(users, name="users")
