"""The JSON API on both databases: auth, batch semantics, limits, errors, browsing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from sqlalchemy import func, select, text

from feedbackloop.access import create_token
from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, interactions
from feedbackloop.web.app import create_app

BASE = "/api/v1/projects/shop"


class PortalTransport(httpx.BaseTransport):
    """A synchronous httpx transport into the ASGI app, through an anyio portal.

    starlette's TestClient warns that its httpx backend is deprecated (an error under our
    warning filter), so the tests drive httpx's own ASGITransport instead."""

    def __init__(self, app: FastAPI, portal: BlockingPortal) -> None:
        # raise_app_exceptions=False: an unexpected error must come back as our 500 page.
        self.asgi = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        clone = httpx.Request(request.method, request.url, headers=request.headers,
                              content=body)

        async def run() -> tuple[int, httpx.Headers, bytes]:
            response = await self.asgi.handle_async_request(clone)
            return response.status_code, response.headers, await response.aread()

        status, headers, content = self.portal.call(run)
        return httpx.Response(status, headers=headers, content=content, request=request)


def _count(store: Store, table: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _client(app: FastAPI, portal: BlockingPortal, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(transport=PortalTransport(app, portal), base_url="http://testserver",
                        headers=headers)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def project(store: Store) -> Project:
    p = create_project(store, "shop")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    create_signal(store, p, SignalIn(name="issue", type="categorical",
                                     labels=["wrong", "rude"]))
    return p


@pytest.fixture
def other(store: Store) -> Project:
    return create_project(store, "other-shop")


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    return create_app(settings, store)


class Clients:
    """One client per kind of caller, all on the same app."""

    def __init__(self, app: FastAPI, portal: BlockingPortal, store: Store,
                 project: Project, other: Project) -> None:
        def token(project_id: int | None, role: str) -> str:
            return create_token(store, project_id=project_id, role=role)

        self.anonymous = _client(app, portal)
        self.root = _client(app, portal, token(None, "admin"))
        self.admin = _client(app, portal, token(project.id, "admin"))
        self.maintainer = _client(app, portal, token(project.id, "maintainer"))
        self.annotator = _client(app, portal, token(project.id, "annotator"))
        self.viewer = _client(app, portal, token(project.id, "viewer"))
        self.ingest = _client(app, portal, token(project.id, "ingest"))
        self.stranger = _client(app, portal, token(other.id, "admin"))


@pytest.fixture
def api(app: FastAPI, portal: BlockingPortal, store: Store, project: Project,
        other: Project) -> Clients:
    return Clients(app, portal, store, project, other)


def _error(response: httpx.Response, status: int, code: str,
           field: str | None = None) -> dict[str, Any]:
    """Assert the one error shape and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    if field is not None:
        assert body["error"]["details"]["field"] == field
    return body["error"]


def _ix(i: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"i{i}", "input": f"question {i}", "output": f"answer {i}", **extra}


# -- meta and auth -----------------------------------------------------------------------
def test_health_needs_no_token_and_openapi_documents_the_record_schemas(
        api: Clients) -> None:
    assert api.anonymous.get("/api/v1/health").json() == {"status": "ok"}
    schema = api.anonymous.get("/api/v1/openapi.json").json()
    comps = schema["components"]["schemas"]
    assert comps["InteractionBatchIn"]["properties"]["records"]["items"] == {
        "$ref": "#/components/schemas/InteractionIn"}
    assert comps["FeedbackBatchIn"]["properties"]["records"]["items"] == {
        "$ref": "#/components/schemas/FeedbackIn"}
    assert {"id", "input", "output", "user_id"} <= set(comps["InteractionIn"]["properties"])
    assert {"interaction_id", "signal", "value"} <= set(comps["FeedbackIn"]["properties"])
    assert all(p.startswith("/api/v1/") for p in schema["paths"])


def test_missing_or_unknown_token_is_401(api: Clients) -> None:
    r = api.anonymous.get("/api/v1/projects")
    err = _error(r, 401, "authentication_failed")
    assert "Bearer" in err["message"] and r.headers["www-authenticate"] == "Bearer"
    _error(api.anonymous.get(f"{BASE}/interactions",
                             headers={"Authorization": "Bearer fl_not-a-token"}),
           401, "authentication_failed")
    _error(api.anonymous.get(f"{BASE}/interactions",
                             headers={"Authorization": "Basic dXNlcjpwYXNz"}),
           401, "authentication_failed")


def test_tokens_of_other_projects_get_403_whether_or_not_the_project_exists(
        api: Clients) -> None:
    exists = _error(api.stranger.get(f"{BASE}/interactions"), 403, "permission_denied",
                    "project")
    missing = _error(api.stranger.get("/api/v1/projects/nope/interactions"), 403,
                     "permission_denied", "project")
    assert exists["message"].replace("'shop'", "X") == missing["message"].replace("'nope'", "X")
    # only an instance administrator learns that a project does not exist
    _error(api.root.get("/api/v1/projects/nope"), 404, "not_found", "project")
    assert api.root.get(BASE).json()["name"] == "shop"
    assert [p["name"] for p in api.stranger.get("/api/v1/projects").json()["items"]] == [
        "other-shop"]
    assert [p["name"] for p in api.root.get("/api/v1/projects").json()["items"]] == [
        "other-shop", "shop"]


def test_roles_too_low_get_403_naming_the_role(api: Clients, store: Store) -> None:
    err = _error(api.viewer.post(f"{BASE}/interactions/batch", json={"records": [_ix(1)]}),
                 403, "permission_denied")
    assert err["details"]["role"] == "viewer"
    _error(api.ingest.get(f"{BASE}/interactions"), 403, "permission_denied")
    _error(api.ingest.get(f"{BASE}/feedback"), 403, "permission_denied")
    _error(api.annotator.post(f"{BASE}/signals", json={"name": "x", "type": "binary"}),
           403, "permission_denied")
    _error(api.admin.post("/api/v1/projects", json={"name": "new"}), 403,
           "permission_denied")
    assert _count(store, interactions) == 0


def test_the_ingest_role_writes_interactions_and_end_user_feedback_only(
        api: Clients, store: Store) -> None:
    r = api.ingest.post(f"{BASE}/interactions/batch", json={"records": [_ix(1)]})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = api.ingest.post(f"{BASE}/feedback/batch", json={"records": [
        {"id": "f1", "interaction_id": "i1", "signal": "thumbs", "value": True},
        {"id": "f2", "interaction_id": "i1", "signal": "rating", "value": 3,
         "source": "annotator"},
    ]})
    assert r.status_code == 207
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["accepted", "rejected"]
    assert res[1]["field"] == "source"
    assert _count(store, feedback) == 1


# -- projects and signals ----------------------------------------------------------------
def test_projects_are_created_by_instance_admins_with_named_errors(api: Clients) -> None:
    r = api.root.post("/api/v1/projects", json={"name": "support", "risk_tier": "high",
                                                "description": "<b>bot</b>"})
    assert r.status_code == 201
    body = r.json()
    assert (body["name"], body["risk_tier"], body["redaction_policy"], body["description"]) \
        == ("support", "high", "redact", "<b>bot</b>")
    assert api.root.get("/api/v1/projects/support").json()["id"] == body["id"]
    _error(api.root.post("/api/v1/projects", json={"name": "support"}), 409, "conflict",
           "name")
    _error(api.root.post("/api/v1/projects", json={"name": "no spaces"}), 422,
           "invalid_input", "name")
    _error(api.root.post("/api/v1/projects", json={"name": "x", "risk_tier": "extreme"}),
           422, "invalid_input", "risk_tier")
    _error(api.root.post("/api/v1/projects", json={"name": "x", "colour": "red"}),
           422, "invalid_input", "colour")


def test_signals_are_listed_and_defined_by_maintainers(api: Clients) -> None:
    names = [s["name"] for s in api.viewer.get(f"{BASE}/signals").json()["items"]]
    assert names == ["issue", "rating", "thumbs"]
    r = api.maintainer.post(f"{BASE}/signals", json={
        "name": "helpful", "type": "numeric", "scale_min": 0, "scale_max": 1})
    assert r.status_code == 201
    assert r.json() == {"name": "helpful", "type": "numeric", "scale_min": 0.0,
                        "scale_max": 1.0, "labels": None, "description": ""}
    _error(api.maintainer.post(f"{BASE}/signals", json={"name": "helpful", "type": "text"}),
           409, "conflict", "name")
    _error(api.maintainer.post(f"{BASE}/signals", json={"name": "stars", "type": "ordinal"}),
           422, "invalid_input", "scale_min")
    _error(api.maintainer.post(f"{BASE}/signals", json={"name": "x", "type": "emoji"}),
           422, "invalid_input", "type")


# -- batch ingest ------------------------------------------------------------------------
def test_a_mixed_batch_reports_every_record_and_stores_the_valid_ones_once(
        api: Clients, store: Store) -> None:
    api.admin.post(f"{BASE}/interactions/batch", json={"records": [_ix(9)]})
    batch = [
        _ix(1),
        {"id": "i2", "input": "no output"},
        _ix(3, latency_ms="fast"),
        _ix(1),                                   # same again in this batch: duplicate
        {**_ix(1), "output": "other"},            # same id, other content: conflict
        {**_ix(9), "output": "changed"},          # conflicts with the stored i9
        "not an object",
        _ix(4, colour="red"),
        _ix(5),
    ]
    r = api.admin.post(f"{BASE}/interactions/batch", json={"records": batch})
    assert r.status_code == 207
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 6)
    res = body["results"]
    assert [x["index"] for x in res] == list(range(len(batch)))
    assert [(x["status"], x.get("field")) for x in res] == [
        ("accepted", None), ("rejected", "output"), ("rejected", "latency_ms"),
        ("duplicate", None), ("rejected", "id"), ("rejected", "id"),
        ("rejected", "(record)"), ("rejected", "colour"), ("accepted", None)]
    assert [x["id"] for x in res][:3] == ["i1", "i2", "i3"]
    assert "different content" in res[5]["message"]
    assert _count(store, interactions) == 3

    again = api.admin.post(f"{BASE}/interactions/batch", json={"records": [_ix(1), _ix(5)]})
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 2, "rejected": 0, "results": [
        {"index": 0, "id": "i1", "status": "duplicate"},
        {"index": 1, "id": "i5", "status": "duplicate"}]}
    assert _count(store, interactions) == 3


def test_feedback_is_checked_against_its_signal(api: Clients, store: Store) -> None:
    api.admin.post(f"{BASE}/interactions/batch", json={"records": [_ix(1)]})
    r = api.annotator.post(f"{BASE}/feedback/batch", json={"records": [
        {"id": "f1", "interaction_id": "i1", "signal": "rating", "value": 4,
         "source": "annotator"},
        {"id": "f2", "interaction_id": "i1", "signal": "rating", "value": 6},
        {"id": "f3", "interaction_id": "i1", "signal": "mood", "value": 1},
        {"id": "f4", "interaction_id": "i404", "signal": "thumbs", "value": True},
        {"id": "f5", "interaction_id": "i1", "signal": "issue", "value": "slow"},
    ]})
    assert r.status_code == 207
    res = r.json()["results"]
    assert [(x["status"], x.get("field")) for x in res] == [
        ("accepted", None), ("rejected", "value"), ("rejected", "signal"),
        ("rejected", "interaction_id"), ("rejected", "value")]
    assert "mood" in res[2]["message"]
    assert _count(store, feedback) == 1


def test_a_batch_over_the_record_limit_is_413_and_stores_nothing(
        settings: Settings, store: Store, portal: BlockingPortal, project: Project) -> None:
    small = settings.model_copy(update={"max_batch_records": 3})
    client = _client(create_app(small, store), portal,
                     create_token(store, project_id=project.id, role="admin"))
    r = client.post(f"{BASE}/interactions/batch", json={"records": [_ix(i) for i in range(4)]})
    err = _error(r, 413, "payload_too_large", "records")
    assert "at most 3" in err["message"]
    assert client.post(f"{BASE}/interactions/batch",
                       json={"records": [_ix(i) for i in range(3)]}).status_code == 200
    assert _count(store, interactions) == 3


def test_a_request_body_over_the_byte_limit_is_413(
        settings: Settings, store: Store, portal: BlockingPortal, project: Project) -> None:
    small = settings.model_copy(update={"max_request_bytes": 10_000})
    app = create_app(small, store)
    client = _client(app, portal, create_token(store, project_id=project.id, role="admin"))
    big = {"records": [_ix(1, input="x" * 20_000)]}
    _error(client.post(f"{BASE}/interactions/batch", json=big), 413, "payload_too_large",
           "body")

    # A chunked upload declares no length: the middleware counts what arrives.
    chunks = [b'{"records": [' + b" " * 6000, b" " * 6000 + b"]}"]
    status, body = anyio.run(_send_chunked, app, f"{BASE}/interactions/batch", chunks)
    assert status == 413 and b'"payload_too_large"' in body
    status, body = anyio.run(_send_chunked, app, f"{BASE}/interactions/batch",
                             [b'{"records": ', b"[]}"])
    assert status == 401  # within the limit the request reaches the route (and its auth)
    assert _count(store, interactions) == 0


async def _send_chunked(app: FastAPI, path: str, chunks: list[bytes]) -> tuple[int, bytes]:
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
               for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("testserver", 80),
             "client": ("127.0.0.1", 1), "headers": [(b"content-type", b"application/json"),
                                                     (b"transfer-encoding", b"chunked")]}
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent
                                      if m["type"] == "http.response.body")


def test_text_over_max_field_bytes_is_rejected_naming_the_field(
        api: Clients, settings: Settings, store: Store) -> None:
    r = api.admin.post(f"{BASE}/interactions/batch", json={"records": [
        _ix(1, output="é" * (settings.max_field_bytes // 2 + 1)), _ix(2)]})
    assert r.status_code == 207
    res = r.json()["results"]
    assert (res[0]["status"], res[0]["field"], res[0]["id"]) == ("rejected", "output", "i1")
    assert res[1]["status"] == "accepted"
    assert _count(store, interactions) == 1


# -- malformed requests ------------------------------------------------------------------
def test_malformed_bodies_get_4xx_in_the_error_shape(api: Clients, store: Store) -> None:
    url = f"{BASE}/interactions/batch"
    json_type = {"content-type": "application/json"}
    err = _error(api.admin.post(url, content=b'{"records": [', headers=json_type), 400,
                 "malformed_json", "body")
    assert "not valid JSON" in err["message"]
    _error(api.admin.post(url, content=b'{"records": ["\xff\xfe"]}', headers=json_type),
           400, "malformed_json", "body")
    _error(api.admin.post(url, content=b'{"records": []}',
                          headers={"content-type": "text/plain"}),
           415, "unsupported_media_type", "body")
    _error(api.admin.post(url, content=b'{"records": []}'), 415, "unsupported_media_type",
           "body")
    _error(api.admin.post(url, json=[_ix(1)]), 422, "invalid_input", "body")
    _error(api.admin.post(url, content=b"", headers=json_type), 422, "invalid_input", "body")
    _error(api.admin.post(url, json={"records": {"id": "i1"}}), 422, "invalid_input",
           "records")
    _error(api.admin.post(url, json={"record": []}), 422, "invalid_input", "records")
    assert _count(store, interactions) == 0


def test_bad_query_parameters_name_the_parameter(api: Clients) -> None:
    url = f"{BASE}/interactions"
    _error(api.viewer.get(url, params={"limit": 0}), 422, "invalid_input", "limit")
    _error(api.viewer.get(url, params={"limit": 1001}), 422, "invalid_input", "limit")
    _error(api.viewer.get(url, params={"limit": "ten"}), 422, "invalid_input", "limit")
    _error(api.viewer.get(url, params={"cursor": "garbage"}), 422, "invalid_input",
           "cursor")
    _error(api.viewer.get(url, params={"since": "yesterday"}), 422, "invalid_input", "since")
    _error(api.viewer.get(url, params={"source": "robot"}), 422, "invalid_input", "source")
    _error(api.viewer.get(url, params={"attribute": "no-colon"}), 422, "invalid_input",
           "attribute")
    _error(api.viewer.get(url, params={"model_version": "v\x001"}), 422, "invalid_input",
           "model_version")
    _error(api.viewer.get(url, params={"signal": "mood"}), 422, "invalid_input", "signal")
    _error(api.viewer.get(f"{BASE}/feedback", params={"signal": "mood"}), 422,
           "invalid_input", "signal")
    _error(api.viewer.get(f"{BASE}/interactions/nope"), 404, "not_found")


def test_unknown_routes_and_methods_get_the_error_shape(api: Clients) -> None:
    err = _error(api.admin.get("/api/v1/nothing/here"), 404, "not_found")
    assert "/api/v1/nothing/here" in err["message"]
    _error(api.admin.delete(f"{BASE}/signals"), 405, "method_not_allowed")


def test_pages_get_html_errors_with_user_text_escaped(api: Clients) -> None:
    r = api.anonymous.get("/no/<script>alert(1)</script>")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text


def test_an_unexpected_error_is_a_500_without_internals(
        api: Clients, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    with store.transaction() as conn:
        # PostgreSQL refuses while annotation_links and dataset_lineage point at it.
        conn.execute(text("DROP TABLE feedback" +
                          (" CASCADE" if store.dialect == "postgresql" else "")))
    r = api.admin.get(f"{BASE}/feedback")
    err = _error(r, 500, "internal_error")
    assert err["details"] == {}
    assert "Traceback" not in r.text and "feedback" not in err["message"].lower()
    assert any("raised an unexpected error" in rec.getMessage() for rec in caplog.records)


# -- browsing ----------------------------------------------------------------------------
@pytest.fixture
def filled(api: Clients) -> dict[str, Any]:
    """23 interactions over 5 distinct timestamps (ties test the cursor's tie-break)."""
    t0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
    records = [_ix(i, timestamp=(t0 + timedelta(minutes=i // 5)).isoformat(),
                   model_version="v2" if i % 2 else "v1",
                   attributes={"locale": "de" if i % 3 == 0 else "en"},
                   experiment="exp1" if i < 6 else None)
               for i in range(23)]
    r = api.admin.post(f"{BASE}/interactions/batch", json={"records": records})
    assert r.json()["accepted"] == 23
    fb = [{"id": f"f{i}", "interaction_id": f"i{i}", "signal": "thumbs", "value": i % 2 == 0,
           "timestamp": (t0 + timedelta(hours=1, minutes=i // 4)).isoformat()}
          for i in range(10)]
    fb += [{"id": "r3", "interaction_id": "i3", "signal": "rating", "value": 2,
            "source": "expert"}]
    r = api.admin.post(f"{BASE}/feedback/batch", json={"records": fb})
    assert r.json()["accepted"] == 11
    return {"t0": t0, "records": records}


def _walk(client: httpx.Client, url: str, limit: int, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        q = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        r = client.get(url, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100


def test_walking_all_pages_gives_every_interaction_once_newest_first(
        api: Clients, filled: dict[str, Any]) -> None:
    pages = _walk(api.viewer, f"{BASE}/interactions", 4)
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 3]
    flat = [i for p in pages for i in p]
    assert sorted(flat) == sorted(f"i{i}" for i in range(23))
    minutes = [int(i[1:]) // 5 for i in flat]
    assert minutes == sorted(minutes, reverse=True)
    # an exact multiple of the page size ends without an empty page
    assert [len(p) for p in _walk(api.viewer, f"{BASE}/interactions", 23)] == [23]


def test_interaction_filters(api: Clients, filled: dict[str, Any]) -> None:
    def ids(**params: Any) -> set[str]:
        return {i for p in _walk(api.viewer, f"{BASE}/interactions", 5, **params) for i in p}

    assert ids(model_version="v2") == {f"i{i}" for i in range(23) if i % 2}
    assert ids(attribute="locale:de") == {f"i{i}" for i in range(23) if i % 3 == 0}
    assert ids(attribute=["locale:de"], model_version="v1") == {
        f"i{i}" for i in range(23) if i % 6 == 0}
    assert ids(signal="thumbs") == {f"i{i}" for i in range(10)}
    assert ids(source="expert") == {"i3"}
    assert ids(experiment="exp1") == {f"i{i}" for i in range(6)}
    t0 = filled["t0"]
    assert ids(since=(t0 + timedelta(minutes=4)).isoformat()) == {"i20", "i21", "i22"}
    assert ids(until=(t0 + timedelta(minutes=1)).isoformat()) == {f"i{i}" for i in range(5)}


def test_feedback_listing_and_one_interaction_with_its_feedback(
        api: Clients, filled: dict[str, Any]) -> None:
    pages = _walk(api.viewer, f"{BASE}/feedback", 3)
    flat = [i for p in pages for i in p]
    assert sorted(flat) == sorted([f"f{i}" for i in range(10)] + ["r3"])
    assert len(flat) == len(set(flat)) == 11
    only = api.viewer.get(f"{BASE}/feedback", params={"signal": "rating"}).json()["items"]
    assert [(f["id"], f["value"], f["source"]) for f in only] == [("r3", 2, "expert")]
    by_int = api.viewer.get(f"{BASE}/feedback", params={"interaction_id": "i3"}).json()
    assert {f["id"] for f in by_int["items"]} == {"f3", "r3"}

    one = api.viewer.get(f"{BASE}/interactions/i3").json()
    assert (one["id"], one["input"], one["model_version"]) == ("i3", "question 3", "v2")
    assert {(f["id"], f["signal"], f["value"]) for f in one["feedback"]} == {
        ("f3", "thumbs", False), ("r3", "rating", 2)}

    status = api.viewer.get(f"{BASE}/status").json()
    assert status == {"interactions": 23, "feedback": 11,
                      "by_signal": {"issue": 0, "rating": 1, "thumbs": 10},
                      "by_source": {"end_user": 10, "expert": 1},
                      "by_model_version": {"v1": 12, "v2": 11}}


def test_ids_with_slashes_are_reachable(api: Clients) -> None:
    api.admin.post(f"{BASE}/interactions/batch",
                   json={"records": [{"id": "conv/7/turn 2", "input": "q", "output": "a"}]})
    r = api.viewer.get(f"{BASE}/interactions/conv%2F7%2Fturn%202")
    assert r.status_code == 200 and r.json()["id"] == "conv/7/turn 2"


def test_pii_is_redacted_and_user_ids_pseudonymised_in_what_is_served(
        api: Clients, settings: Settings, store: Store) -> None:
    r = api.ingest.post(f"{BASE}/interactions/batch", json={"records": [{
        "id": "p1", "input": "I am jo@example.com", "output": "Call +1 415 555 0100",
        "user_id": "jo-42", "session_id": "s-1"}]})
    assert r.status_code == 200
    got = api.viewer.get(f"{BASE}/interactions/p1").json()
    assert (got["input"], got["output"]) == ("I am <EMAIL>", "Call <PHONE>")
    key = settings.pseudonym_key_bytes()
    assert got["user_id"] == pseudonymise(key, "jo-42") != "jo-42"
    assert got["session_id"] == pseudonymise(key, "s-1")
    listed = api.viewer.get(f"{BASE}/interactions").text
    assert "jo@example.com" not in listed and "jo-42" not in listed


def test_unknown_or_repeated_query_parameters_are_rejected(api: Clients) -> None:
    err = _error(api.viewer.get(f"{BASE}/interactions", params={"modelversion": "v2"}), 422,
                 "invalid_input", "modelversion")
    assert "model_version" in err["message"]
    _error(api.viewer.get(f"{BASE}/interactions?limit=5&limit=6"), 422, "invalid_input",
           "limit")
    assert api.viewer.get(f"{BASE}/interactions?attribute=a:1&attribute=b:2").status_code \
        == 200


@pytest.mark.parametrize("bad", ["nul \x00 here", "lone \ud800 surrogate"])
def test_text_no_database_can_store_is_rejected_naming_the_field(
        api: Clients, bad: str) -> None:
    def post(client: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
        # json.dumps writes the lone surrogate as the escape \ud800, which JSON allows.
        return client.post(url, content=json.dumps(body),
                           headers={"content-type": "application/json"})

    _error(post(api.root, "/api/v1/projects", {"name": "p2", "description": bad}),
           422, "invalid_input", "description")
    _error(post(api.maintainer, f"{BASE}/signals", {
        "name": "s2", "type": "text", "description": bad}), 422, "invalid_input",
           "description")
    err = _error(post(api.maintainer, f"{BASE}/signals", {
        "name": "s3", "type": "categorical", "labels": ["ok", bad]}), 422, "invalid_input")
    assert err["details"]["field"] in ("labels", "labels.1")
    assert [p["name"] for p in api.root.get("/api/v1/projects").json()["items"]] == [
        "other-shop", "shop"]
