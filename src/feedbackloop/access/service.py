"""Creating users and tokens, and turning a credential into a :class:`Principal`.

API tokens are random 256-bit strings; only their SHA-256 is stored (a token with that much
entropy needs no slow hash). Passwords are hashed with Argon2id (argon2-cffi).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from ..capture.prepare import unstorable
from ..errors import AuthenticationFailed, Conflict, InvalidInput, NotFound
from ..governance import audit
from ..store import Store, as_utc, utcnow
from ..store.tables import api_tokens, memberships, projects, users
from .roles import ROLES, Principal, capped

__all__ = ["authenticate_token", "create_token", "create_user", "grant", "member_id",
           "revoke_token", "sign_in"]

TOKEN_PREFIX = "fl_"
_hasher = PasswordHasher()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_user(store: Store, username: str, password: str, *,
                superuser: bool = False, actor: str = "system") -> int:
    if not username or len(username) > 100 or not username.isprintable():
        raise InvalidInput("username must be 1-100 printable characters", field="username")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters", field="password")
    try:
        with store.transaction() as conn:
            res = conn.execute(users.insert().values(
                username=username, password_hash=_hasher.hash(password),
                is_superuser=superuser, created_at=utcnow()))
            uid = int(res.inserted_primary_key[0])  # type: ignore[index]
            audit.record(conn, actor=actor, action="user.create", entity_kind="user",
                         entity_id=username, after={"superuser": superuser})
            return uid
    except IntegrityError:
        raise Conflict(f"user {username!r} exists already", field="username") from None


def grant(store: Store, username: str, project_id: int, role: str, *,
          actor: str = "system") -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    with store.transaction() as conn:
        uid = conn.execute(select(users.c.id).where(users.c.username == username)).scalar()
        if uid is None:
            raise NotFound(f"no user {username!r}", field="username")
        before = conn.execute(select(memberships.c.role).where(
            memberships.c.user_id == uid, memberships.c.project_id == project_id)).scalar()
        conn.execute(memberships.delete().where(memberships.c.user_id == uid,
                                                memberships.c.project_id == project_id))
        conn.execute(memberships.insert().values(user_id=uid, project_id=project_id,
                                                 role=role))
        audit.record(conn, actor=actor, action="user.grant", entity_kind="user",
                     entity_id=username, project_id=project_id,
                     before=None if before is None else {"role": before},
                     after={"role": role})


def member_id(conn: Connection, username: str, project_id: int) -> int:
    """The id of a user who is a member of the project, or an error naming the user."""
    row = conn.execute(select(users.c.id).where(users.c.username == username)).first()
    if row is None:
        raise NotFound(f"no user named {username!r}", field="user")
    if conn.execute(select(memberships.c.role).where(
            memberships.c.user_id == row.id, memberships.c.project_id == project_id)
    ).first() is None:
        raise InvalidInput(f"user {username!r} is not a member of this project: grant a role "
                           "first (feedbackloop users grant)", field="user")
    return int(row.id)


def create_token(store: Store, *, project_id: int | None, role: str, name: str = "",
                 user_id: int | None = None, kind: str = "api",
                 expires_at: datetime | None = None, actor: str = "system") -> str:
    """A new token; the plain value is returned once and never stored."""
    if kind == "api":
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        if project_id is None and role != "admin":
            raise InvalidInput("a token without a project must be an instance admin token",
                               field="project")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with store.transaction() as conn:
        if project_id is not None and conn.execute(
                select(projects.c.id).where(projects.c.id == project_id)).first() is None:
            raise NotFound(f"no project with id {project_id}", field="project")
        conn.execute(api_tokens.insert().values(
            token_hash=_hash_token(token), prefix=token[:10], kind=kind,
            project_id=project_id, role=role, user_id=user_id, name=name[:100],
            created_at=utcnow(), expires_at=expires_at))
        if kind == "api":  # web sign-in sessions are not audited: one per sign-in
            audit.record(conn, actor=actor, action="token.create", entity_kind="token",
                         entity_id=token[:10], project_id=project_id,
                         after={"role": role, "name": name[:100],
                                "expires_at": expires_at})
    return token


def revoke_token(store: Store, token: str, *, actor: str = "system") -> None:
    with store.transaction() as conn:
        row = conn.execute(select(api_tokens.c.kind, api_tokens.c.prefix,
                                  api_tokens.c.project_id, api_tokens.c.revoked_at)
                           .where(api_tokens.c.token_hash == _hash_token(token))).first()
        conn.execute(update(api_tokens).where(api_tokens.c.token_hash == _hash_token(token))
                     .values(revoked_at=utcnow()))
        if row is not None and row.kind == "api" and row.revoked_at is None:
            audit.record(conn, actor=actor, action="token.revoke", entity_kind="token",
                         entity_id=row.prefix, project_id=row.project_id,
                         before={"revoked": False}, after={"revoked": True})


def authenticate_token(store: Store, token: str, *, kind: str = "api") -> Principal:
    """The principal behind a bearer token (or a web session token)."""
    if not token or len(token) > 200:
        raise AuthenticationFailed("missing or malformed credentials")
    with store.read() as conn:
        row = conn.execute(select(api_tokens).where(
            api_tokens.c.token_hash == _hash_token(token), api_tokens.c.kind == kind)).first()
        if row is None or row.revoked_at is not None:
            raise AuthenticationFailed("unknown or revoked token")
        expires = as_utc(row.expires_at)
        if expires is not None and expires <= utcnow():
            raise AuthenticationFailed("token expired")
        if row.user_id is not None and kind == "session":
            return _user_principal(conn, row.user_id)
        if row.user_id is not None and row.project_id is not None:
            # A token made for a user acts as that user (a campaign rater, say), but only
            # with the token's one project and role, not the user's other memberships, and
            # never with more than the user's own role there now (a token cannot lift a
            # member to expert or outlive their membership).
            user = conn.execute(select(users.c.username, users.c.is_superuser)
                                .where(users.c.id == row.user_id)).first()
            if user is None:
                raise AuthenticationFailed("unknown user")
            member = "admin" if user.is_superuser else conn.execute(
                select(memberships.c.role).where(memberships.c.user_id == row.user_id,
                                                 memberships.c.project_id == row.project_id)
            ).scalar()
            role = capped(row.role, member)
            return Principal(name=user.username,
                             roles={row.project_id: role} if role is not None else {},
                             user_id=row.user_id)
        if row.project_id is None:
            return Principal(name=f"token {row.prefix}…", superuser=True)
        return Principal(name=f"token {row.prefix}…", roles={row.project_id: row.role})


def _user_principal(conn: object, user_id: int) -> Principal:
    c = conn  # a Connection; typed loosely to keep this helper small
    user = c.execute(select(users).where(users.c.id == user_id)).first()  # type: ignore[attr-defined]
    if user is None:
        raise AuthenticationFailed("unknown user")
    roles = {pid: role for pid, role in c.execute(  # type: ignore[attr-defined]
        select(memberships.c.project_id, memberships.c.role)
        .where(memberships.c.user_id == user_id))}
    return Principal(name=user.username, roles=roles, superuser=bool(user.is_superuser),
                     user_id=user.id)


def sign_in(store: Store, username: str, password: str, *, hours: int = 12) -> str:
    """Check a password and open a web session; returns the session token."""
    if unstorable(username) or len(username) > 100:
        raise AuthenticationFailed("wrong username or password")
    with store.read() as conn:
        user = conn.execute(select(users).where(users.c.username == username)).first()
    if user is None:
        _hasher.hash(password)  # same cost whether or not the user exists
        raise AuthenticationFailed("wrong username or password")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise AuthenticationFailed("wrong username or password") from None
    return create_token(store, project_id=None, role="session", user_id=user.id,
                        kind="session", expires_at=utcnow() + timedelta(hours=hours))
