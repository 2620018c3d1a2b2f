"""Users, tokens and roles on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from feedbackloop.access import (
    ROLES,
    Action,
    authenticate_token,
    can,
    create_token,
    create_user,
    grant,
    revoke_token,
    sign_in,
)
from feedbackloop.capture.projects import create_project
from feedbackloop.errors import (
    AuthenticationFailed,
    ConfigurationError,
    Conflict,
    InvalidInput,
    PermissionDenied,
)
from feedbackloop.settings import load_settings
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import api_tokens, memberships, users


def test_role_table() -> None:
    assert set(ROLES) == {"admin", "maintainer", "expert", "annotator", "viewer", "ingest"}
    assert can("expert", Action.SIGN_OFF) and not can("expert", Action.RELEASE)
    assert not can("annotator", Action.SIGN_OFF) and can("maintainer", Action.RELEASE)
    assert can("maintainer", Action.MANAGE_EXPERIMENTS) and not can("viewer",
                                                                     Action.MANAGE_EXPERIMENTS)
    assert can("ingest", Action.WRITE_INTERACTIONS)
    assert can("ingest", Action.WRITE_END_USER_FEEDBACK)
    assert not can("ingest", Action.READ)
    assert not can("ingest", Action.WRITE_FEEDBACK)
    assert not can("viewer", Action.WRITE_INTERACTIONS)
    assert can("annotator", Action.WRITE_FEEDBACK) and not can("annotator",
                                                                Action.WRITE_INTERACTIONS)
    assert can("maintainer", Action.MANAGE_SIGNALS) and not can("maintainer",
                                                                 Action.MANAGE_PROJECT)
    assert not can("admin", Action.CREATE_PROJECT)  # instance administrators only
    assert can("maintainer", Action.EVALUATE) and can("admin", Action.EVALUATE)
    assert not can("annotator", Action.EVALUATE) and not can("viewer", Action.EVALUATE)
    assert not can(None, Action.READ)


def test_tokens_are_stored_hashed_and_confined_to_their_project(store: Store) -> None:
    a = create_project(store, "a")
    b = create_project(store, "b")
    token = create_token(store, project_id=a.id, role="ingest", name="web shop")
    assert token.startswith("fl_") and len(token) > 40
    with store.read() as conn:
        stored = conn.execute(select(api_tokens.c.token_hash, api_tokens.c.prefix)).one()
    assert token not in stored.token_hash and stored.token_hash != token
    who = authenticate_token(store, token)
    assert who.role_in(a.id) == "ingest" and who.role_in(b.id) is None
    assert who.require(a.id, Action.WRITE_INTERACTIONS) == "ingest"
    with pytest.raises(PermissionDenied, match="no access"):
        who.require(b.id, Action.WRITE_INTERACTIONS)
    with pytest.raises(PermissionDenied, match="may not read"):
        who.require(a.id, Action.READ)
    assert who.allowed_feedback_sources(a.id) == ("end_user",)
    with pytest.raises(PermissionDenied):
        who.require(a.id, Action.CREATE_PROJECT)


def test_admin_tokens_revocation_and_expiry(store: Store) -> None:
    p = create_project(store, "p")
    admin = create_token(store, project_id=None, role="admin")
    who = authenticate_token(store, admin)
    assert who.superuser and who.project_ids() is None
    assert who.require(p.id, Action.CREATE_PROJECT) == "admin"
    with pytest.raises(InvalidInput) as info:
        create_token(store, project_id=None, role="viewer")
    assert info.value.field == "project"
    with pytest.raises(InvalidInput) as info:
        create_token(store, project_id=p.id, role="owner")
    assert info.value.field == "role"
    revoke_token(store, admin)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        authenticate_token(store, admin)
    old = create_token(store, project_id=p.id, role="viewer",
                       expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed, match="expired"):
        authenticate_token(store, old)
    for bad in ["", "fl_nope", "x" * 5000]:
        with pytest.raises(AuthenticationFailed):
            authenticate_token(store, bad)


def test_users_sign_in_with_argon2_hashed_passwords(store: Store) -> None:
    p = create_project(store, "p")
    q = create_project(store, "q")
    create_user(store, "ann", "s3cret-pass")
    grant(store, "ann", p.id, "annotator")
    with store.read() as conn:
        hashed = conn.execute(select(users.c.password_hash)).scalar_one()
    assert hashed.startswith("$argon2id$") and "s3cret" not in hashed
    session = sign_in(store, "ann", "s3cret-pass")
    who = authenticate_token(store, session, kind="session")
    assert who.name == "ann" and who.roles == {p.id: "annotator"}
    assert who.role_in(q.id) is None
    with pytest.raises(AuthenticationFailed):
        authenticate_token(store, session)  # a session is not an API token
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        sign_in(store, "ann", "wrong-pass")
    with pytest.raises(AuthenticationFailed, match="wrong username or password"):
        sign_in(store, "nobody", "whatever1")
    with pytest.raises(Conflict):
        create_user(store, "ann", "another-pass")
    with pytest.raises(InvalidInput) as info:
        create_user(store, "bob", "short")
    assert info.value.field == "password"


def test_bad_settings_fail_naming_the_setting(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FEEDBACKLOOP_MAX_FIELD_BYTES", "lots")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "max_field_bytes" in info.value.message
    assert "FEEDBACKLOOP_MAX_FIELD_BYTES" in info.value.message
    monkeypatch.delenv("FEEDBACKLOOP_MAX_FIELD_BYTES")
    with pytest.raises(ConfigurationError, match="database_url"):
        load_settings(database_url="mysql://x")
    pg = load_settings(database_url="postgresql://u@h/db", data_dir=str(tmp_path))
    assert pg.resolved_database_url == "postgresql+psycopg://u@h/db"
    with pytest.raises(ConfigurationError, match="FEEDBACKLOOP_PSEUDONYM_KEY"):
        pg.pseudonym_key_bytes()


def test_embedded_key_is_generated_once_outside_the_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = load_settings(data_dir=str(tmp_path / "d"))
    key = s.pseudonym_key_bytes()
    assert len(key) == 64 and s.pseudonym_key_bytes() == key
    path = tmp_path / "d" / "pseudonym.key"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_user_token_never_gives_more_than_the_users_role(store: Store) -> None:
    # Found by the governance abuse review: an admin-made expert token for a maintainer let
    # one person sign a high-tier gate both as expert and as maintainer.
    shop = create_project(store, "shop")
    uid = create_user(store, "max", "pw-123456789")
    grant(store, "max", shop.id, "maintainer")
    expert = create_token(store, project_id=shop.id, role="expert", user_id=uid)
    rater = create_token(store, project_id=shop.id, role="annotator", user_id=uid)
    p = authenticate_token(store, expert)
    assert p.name == "max" and p.role_in(shop.id) == "maintainer"  # capped at the member
    assert authenticate_token(store, rater).role_in(shop.id) == "annotator"  # narrower: kept
    grant(store, "max", shop.id, "viewer")
    assert authenticate_token(store, rater).role_in(shop.id) == "viewer"
    with store.transaction() as conn:
        conn.execute(memberships.delete().where(memberships.c.user_id == uid))
    gone = authenticate_token(store, rater)
    assert gone.role_in(shop.id) is None
    with pytest.raises(PermissionDenied):
        gone.require(shop.id, Action.READ)
