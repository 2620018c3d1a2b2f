"""The Release stage over HTTP on SQLite and PostgreSQL: the releases page with the policy,
a gate created, checked and signed through its forms (refusals are messages on the page,
recorded in the audit log), the release refused until the gate and sign-offs pass, the
release page with its rollback target and case-study link, rollback; the JSON API with
tokens of different roles; user text escaped."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from feedbackloop.access import create_token
from feedbackloop.capture.projects import Project
from feedbackloop.governance import audit
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app
from feedbackloop.web.release_pages import interval_plot

from ..governance.release_data import release_project, run_experiment
from .test_api import _client as _api_client
from .test_pages import XSS, _client, _csrf, _sign_in


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def shop(store: Store, settings: Settings) -> Project:
    reg.clear_resolve_cache()
    p = release_project(store, "medium")
    run_experiment(store, settings, p)
    return p


@pytest.fixture
def app(shop: Project, store: Store, settings: Settings):  # type: ignore[no-untyped-def]
    return create_app(settings, store)


@pytest.fixture
def client(app, portal: BlockingPortal) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with _client(app, portal) as c:
        yield c


def _post(client: httpx.Client, path: str, data: dict[str, str],
          csrf_from: str) -> httpx.Response:
    page = client.get(csrf_from)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf": _csrf(page.text), **data})


def _errors(page: str) -> str:
    found = re.search(r'id="errors"[^>]*>(.*?)</div>', page, re.S)
    return html.unescape(found.group(1)) if found else ""


def test_a_gate_through_its_forms_and_a_release_rolled_back(
        client: httpx.Client, store: Store, shop: Project) -> None:
    _sign_in(client, "mia")
    page = client.get("/projects/shop/releases")
    assert page.status_code == 200
    assert "medium risk" in page.text and 'id="gate-form"' in page.text
    assert "1 maintainer" in page.text
    r = _post(client, "/projects/shop/gates", {"component": "assistant", "version": "v9"},
              "/projects/shop/releases")
    assert r.status_code == 404 or "no version" in _errors(r.text)
    r = _post(client, "/projects/shop/gates",
              {"component": "assistant", "version": "v2", "experiment": "tone",
               "cohort_attribute": "region", "cohort_tolerance": "0.1"},
              "/projects/shop/releases")
    assert r.status_code == 303, r.text
    gate_url = r.headers["location"].split("?")[0]
    gate = client.get(gate_url).text
    assert "not checked" in gate and 'id="release-form"' in gate

    # cannot release yet: not checked
    r = _post(client, f"{gate_url}/release", {}, gate_url)
    assert r.status_code == 409 and "not checked yet" in _errors(r.text)
    r = _post(client, f"{gate_url}/check", {}, gate_url)
    assert r.status_code == 303
    gate = client.get(gate_url).text
    assert 'id="status">passed' in gate and '<svg class="chart intervals"' in gate
    assert 'data-label="region=north"' in gate
    # mia created the gate: she may not approve it (medium tier: a second person)
    r = _post(client, f"{gate_url}/sign", {"capacity": "maintainer"}, gate_url)
    assert r.status_code == 403 and "second person" in _errors(r.text)
    r = _post(client, f"{gate_url}/release", {}, gate_url)
    assert r.status_code == 409 and "lacks its sign-offs" in _errors(r.text)

    client.cookies.clear()
    _sign_in(client, "max")
    r = _post(client, f"{gate_url}/sign", {"capacity": "maintainer", "comment": XSS},
              gate_url)
    assert r.status_code == 303
    gate = client.get(gate_url).text
    assert XSS not in gate and html.escape(XSS, quote=False) in gate
    assert "maintainer: 1 of 1 (max)" in gate

    client.cookies.clear()
    _sign_in(client, "mia")
    r = _post(client, f"{gate_url}/release", {"reason": XSS}, gate_url)
    assert r.status_code == 303, _errors(r.text)
    release_url = r.headers["location"].split("?")[0]
    page = client.get(release_url).text
    assert 'id="rollback-to">v1' in page and 'id="case-study"' in page
    assert f'href="{release_url}/case-study"' in page
    assert "release 1" in client.get(gate_url).text  # the gate links its release
    listed = client.get("/projects/shop/releases").text
    assert 'data-release="1"' in listed
    r = _post(client, f"{release_url}/rollback", {"reason": "complaints"}, release_url)
    assert r.status_code == 303
    page = client.get(release_url).text
    assert 'id="status">rolled back' in page and 'id="rollback-form"' not in page
    with store.read() as conn:
        actions = [e.action for e in audit.entries(conn, project_id=shop.id, limit=20)]
    assert {"gate.sign.refused", "release.promote.refused", "release.promote",
            "release.rollback"} <= set(actions)


def test_a_viewer_sees_no_forms_and_posting_is_refused(client: httpx.Client,
                                                       store: Store, shop: Project) -> None:
    from feedbackloop.governance.gates import create_gate

    gid = create_gate(store, shop, "assistant", "v2", actor="mia", experiment="tone")["id"]
    _sign_in(client, "val")
    page = client.get("/projects/shop/releases").text
    assert 'id="gate-form"' not in page
    gate = client.get(f"/projects/shop/gates/{gid}").text
    for form in ("check-form", "sign-form", "release-form"):
        assert f'id="{form}"' not in gate
    r = _post(client, f"/projects/shop/gates/{gid}/check", {}, f"/projects/shop/gates/{gid}")
    assert r.status_code == 403
    r = _post(client, f"/projects/shop/gates/{gid}/sign", {"capacity": "maintainer"},
              f"/projects/shop/gates/{gid}")
    assert r.status_code == 403 and "may not sign off at all" in _errors(r.text)
    r = client.post(f"/projects/shop/gates/{gid}/check", data={"csrf": "forged"})
    assert r.status_code == 403 and "expired" in r.text
    for url in ("/projects/shop/gates/999", "/projects/shop/gates/x",
                "/projects/shop/gates/99999999999999999999", "/projects/shop/releases/7"):
        assert client.get(url).status_code == 404, url
    with store.read() as conn:
        refused = audit.entries(conn, entity_kind="gate", entity_id=str(gid), limit=1)[0]
    assert (refused.action, refused.actor) == ("gate.sign.refused", "val")


def test_the_api_with_tokens_of_each_role(app, portal: BlockingPortal,  # type: ignore[no-untyped-def]
                                          store: Store, shop: Project) -> None:
    tokens = {role: create_token(store, project_id=shop.id, role=role, name=role)
              for role in ("maintainer", "expert", "viewer")}
    tokens["other-maintainer"] = create_token(store, project_id=shop.id, role="maintainer")
    tokens["admin"] = create_token(store, project_id=None, role="admin")
    api = {k: _api_client(app, portal, t) for k, t in tokens.items()}
    base = "/api/v1/projects/shop"
    try:
        r = api["maintainer"].post(f"{base}/gates", json={
            "component": "assistant", "version": "v2", "experiment": "tone"})
        assert r.status_code == 201, r.text
        gid = r.json()["id"]
        assert api["viewer"].post(f"{base}/gates", json={
            "component": "assistant", "version": "v2"}).status_code == 403
        bad = api["maintainer"].post(f"{base}/gates", json={
            "component": "assistant", "version": "v2", "extra": 1})
        assert bad.status_code == 422
        refused = api["maintainer"].post(f"{base}/releases", json={
            "component": "assistant", "version": "v2", "gate_id": gid})
        assert refused.status_code == 409
        assert "not checked yet" in refused.json()["error"]["message"]
        checked = api["maintainer"].post(f"{base}/gates/{gid}/check")
        assert checked.json()["status"] == "passed"
        viewer_sign = api["viewer"].post(f"{base}/gates/{gid}/signoffs",
                                         json={"capacity": "maintainer"})
        assert viewer_sign.status_code == 403
        assert api["expert"].post(f"{base}/gates/{gid}/signoffs",
                                  json={"capacity": "maintainer"}).status_code == 403
        signed = api["other-maintainer"].post(f"{base}/gates/{gid}/signoffs",
                                              json={"capacity": "maintainer"})
        assert signed.status_code == 201 and signed.json()["signoff_status"]["met"]
        assert api["viewer"].get(f"{base}/gates/{gid}").json()["status"] == "passed"
        assert [g["id"] for g in api["viewer"].get(f"{base}/gates").json()["items"]] == [gid]
        released = api["maintainer"].post(f"{base}/releases", json={
            "component": "assistant", "version": "v2", "gate_id": gid, "reason": "better"})
        assert released.status_code == 201, released.text
        rid = released.json()["id"]
        assert released.json()["rollback_to"] == "v1"
        assert api["viewer"].get(f"{base}/releases/{rid}").json()["case_study"]
        assert api["viewer"].get(f"{base}/releases").json()["items"][0]["id"] == rid
        assert api["viewer"].post(f"{base}/rollback",
                                  json={"component": "assistant"}).status_code == 403
        back = api["maintainer"].post(f"{base}/rollback",
                                      json={"component": "assistant", "reason": "oops"})
        assert back.status_code == 200 and back.json()["live"] == "v1"
        assert api["viewer"].get(f"{base}/policy").json()["policy"]["risk_tier"] == "medium"
        assert api["maintainer"].put(f"{base}/policy",
                                     json={"risk_tier": "low"}).status_code == 403
        bad_policy = api["admin"].put(f"{base}/policy", json={"overrides": {"x": 1}})
        assert bad_policy.status_code == 422
        assert bad_policy.json()["error"]["details"]["field"] == "overrides.x"
        assert api["admin"].put(f"{base}/policy", json={
            "risk_tier": "high", "reason": "medical"}).json()["risk_tier"] == "high"
        assert api["viewer"].get(f"{base}/gates/0").status_code == 422
        assert api["viewer"].get(f"{base}/releases/99").status_code == 404
        assert api["viewer"].get(f"{base}/gates?nope=1").status_code == 422
    finally:
        for c in api.values():
            c.close()


def test_the_interval_plot_escapes_labels_and_draws_open_ends() -> None:
    svg = interval_plot([{"label": XSS, "estimate": 0.1, "lo": None, "hi": 0.3, "ok": True},
                         {"label": "b", "estimate": float("nan")}],
                        title="t", limit=-0.05, limit_label="tolerance")
    assert svg is not None and "<script>" not in svg and 'class="limit"' in svg
    assert svg.count('class="row"') == 1
    assert interval_plot([], title="t") is None
