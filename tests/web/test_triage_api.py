"""The triage API on SQLite and PostgreSQL: run, queue, route, resolve (only the role on
duty), rules, themes, findings and the backlog; roles; 4xx naming the field, never 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from feedbackloop.access import create_token
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

from ..triage.data import feedback_ids, support
from .test_api import _client, portal  # noqa: F401

API = "/api/v1/projects/help"


@pytest.fixture
def clients(store: Store, settings: Settings, portal: BlockingPortal  # noqa: F811
            ) -> Iterator[tuple[dict[str, httpx.Client], list[int]]]:
    p, ids = support(store, settings, per_kind=4)
    app = create_app(settings, store)
    tokens = {role: create_token(store, project_id=p.id, role=role, name=f"{role}-1")
              for role in ("viewer", "maintainer", "expert")}
    with _client(app, portal, tokens["viewer"]) as v, \
            _client(app, portal, tokens["maintainer"]) as m, \
            _client(app, portal, tokens["expert"]) as e:
        yield ({"viewer": v, "maintainer": m, "expert": e},
               feedback_ids(store, p, ids["latency"]))


def _field(r: httpx.Response) -> Any:
    return r.json()["error"]["details"].get("field")


def test_triage_through_the_api(clients: tuple[dict[str, httpx.Client], list[int]]) -> None:
    c, _ = clients
    viewer, maint, expert = c["viewer"], c["maintainer"], c["expert"]
    rule = {"name": "pii", "route": "privacy", "conditions": {"text": "email|phone"},
            "escalate": True}
    assert viewer.post(f"{API}/triage/rules", json=rule).status_code == 403
    assert maint.post(f"{API}/triage/rules", json=rule).status_code == 201
    r = maint.post(f"{API}/triage/rules", json={**rule, "name": "b",
                                                "conditions": {"text": "("}})
    assert r.status_code == 422 and _field(r) == "conditions.text"
    r = maint.post(f"{API}/triage/rules", json={**rule, "name": "c", "extra": 1})
    assert r.status_code == 422
    assert viewer.get(f"{API}/triage/rules").json()["rules"][0]["name"] == "pii"
    assert maint.put(f"{API}/triage/threshold", json={"threshold": 0.8}).json() == {
        "threshold": 0.8}
    assert maint.put(f"{API}/triage/threshold", json={"threshold": 2}).status_code == 422
    assert viewer.post(f"{API}/triage/run").status_code == 403
    summary = maint.post(f"{API}/triage/run").json()
    assert summary["by_status"]["escalated"] == 4
    queue = viewer.get(f"{API}/triage/items", params={"status": "queued"}).json()
    assert queue["counts"]["queued"] == len(queue["items"]) == 14
    item = queue["items"][0]["id"]
    r = maint.post(f"{API}/triage/items/{item}/route", json={"route": "ux"})
    assert r.json()["method"] == "human"
    assert maint.post(f"{API}/triage/items/{item}/route",
                      json={"route": "moon"}).status_code == 422
    assert maint.post(f"{API}/triage/items/999999/route",
                      json={"route": "ux"}).status_code == 404
    esc = viewer.get(f"{API}/triage/escalations").json()
    assert esc["escalate_to"] == "maintainer" and len(esc["items"]) == 4
    target = esc["items"][0]["id"]
    for who in (viewer, expert):
        r = who.post(f"{API}/triage/items/{target}/resolve", json={"note": "done"})
        assert r.status_code == 403, r.text
    r = maint.post(f"{API}/triage/items/{target}/resolve", json={"note": "done"})
    assert r.json()["status"] == "resolved"
    assert maint.delete(f"{API}/triage/rules/pii").status_code == 204
    assert maint.delete(f"{API}/triage/rules/pii").status_code == 404


def test_themes_findings_and_backlog_through_the_api(
        clients: tuple[dict[str, httpx.Client], list[int]]) -> None:
    c, latency = clients
    viewer, maint = c["viewer"], c["maintainer"]
    assert viewer.get(f"{API}/themes").json() == {"run": None}
    run = maint.post(f"{API}/themes", json={"method": "tfidf", "k": 4}).json()
    assert len(run["themes"]) == 4
    assert viewer.get(f"{API}/themes", params={"run": run["id"]}).json()["run"]["id"] \
        == run["id"]
    assert maint.post(f"{API}/themes", json={"method": "tfidf", "k": 99}).status_code == 422
    made = maint.post(f"{API}/findings", json={
        "title": "Slow", "feedback": latency, "severity": 3, "effort": 1, "risk": 1,
        "confidence": 1})
    assert made.status_code == 201, made.text
    f = made.json()
    assert f["reach"]["users"] == 3 and f["priority"] == pytest.approx(9.0)
    for bad in ({"severity": 0}, {"effort": 0}, {"risk": 6}, {"confidence": 1.01}):
        r = maint.post(f"{API}/findings", json={"title": "x", "feedback": latency, **bad})
        assert r.status_code == 422, bad
    r = maint.post(f"{API}/findings", json={"title": "x", "feedback": [10**8]})
    assert r.status_code == 404
    themed = maint.post(f"{API}/findings", json={"title": "T", "theme": run["themes"][0]["id"]})
    assert themed.status_code == 201
    r = maint.patch(f"{API}/findings/{f['id']}", json={"severity": 5, "reason": "worse"})
    assert r.json()["priority"] == pytest.approx(15.0)
    assert maint.patch(f"{API}/findings/{f['id']}", json={}).status_code == 422
    r = maint.post(f"{API}/findings/{f['id']}/status", json={"status": "closed"})
    assert r.status_code == 422 and _field(r) == "reason"
    r = maint.post(f"{API}/findings/{f['id']}/status", json={"status": "fixed"})
    assert r.status_code == 409 and r.json()["error"]["details"]["from"] == "new"
    assert viewer.post(f"{API}/findings/{f['id']}/status",
                       json={"status": "triaged"}).status_code == 403
    backlog = viewer.get(f"{API}/findings/backlog").json()
    assert backlog["items"][0]["id"] == f["id"]
    assert backlog["items"][0]["expected_benefit"]["ci95"] is not None
    assert viewer.get(f"{API}/findings/{f['id']}").json()["linked_feedback"] == 4
    assert viewer.get(f"{API}/findings/999999").status_code == 404
    r = maint.post(f"{API}/findings/{f['id']}/links", json={"dataset": "nope"})
    assert r.status_code == 404
    r = maint.post(f"{API}/findings/{f['id']}/links", json={})
    assert r.status_code == 422
    assert len(viewer.get(f"{API}/findings", params={"status": "new"}).json()["items"]) == 2
