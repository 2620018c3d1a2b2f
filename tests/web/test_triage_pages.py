"""Triage pages over HTTP on SQLite and PostgreSQL: the triage page (run, queue, route,
escalations, themes, rules), the backlog (formula, benefit plot) and a finding (status,
priority inputs, dataset link); roles, CSRF, bad input as a message, user text escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from feedbackloop.access import grant
from feedbackloop.capture.projects import Project
from feedbackloop.settings import Settings
from feedbackloop.store import Store, tables, utcnow
from feedbackloop.triage.service import add_rule
from feedbackloop.web.app import create_app
from feedbackloop.web.triage_pages import benefit_plot, trend_sparkline

from ..triage.data import feedback_ids, support
from .test_experiment_pages import _password_hash
from .test_pages import XSS, _client, _csrf, _sign_in


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def world(store: Store, settings: Settings) -> tuple[Project, dict[str, list[str]]]:
    p, ids = support(store, settings, per_kind=4)
    for name, role in (("vic", "viewer"), ("max", "maintainer")):
        with store.transaction() as conn:
            conn.execute(tables.users.insert().values(
                username=name, password_hash=_password_hash(), is_superuser=False,
                created_at=datetime.now(UTC)))
        grant(store, name, p.id, role)
    add_rule(store, p, "pii", "privacy", {"text": "email|phone"}, escalate=True)
    return p, ids


@pytest.fixture
def client(store: Store, settings: Settings, world: object,
           portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(settings, store), portal) as c:
        yield c


def _post(client: httpx.Client, path: str, data: dict[str, str], page: str) -> httpx.Response:
    return client.post(path, data={"csrf": _csrf(client.get(page).text), **data})


def test_a_viewer_reads_but_cannot_act(client: httpx.Client) -> None:
    _sign_in(client, "vic")
    page = client.get("/projects/help/triage")
    assert page.status_code == 200
    assert 'id="run"' not in page.text and "Escalated to maintainer" in page.text
    r = _post(client, "/projects/help/triage/run", {}, "/projects/help/triage")
    assert r.status_code == 403
    assert client.get("/projects/help/findings").status_code == 200
    assert client.get("/projects/help/findings/99").status_code == 404
    assert client.get("/projects/help/findings/abc").status_code == 404


def test_a_maintainer_triages_themes_and_works_a_finding(
        client: httpx.Client, store: Store,
        world: tuple[Project, dict[str, list[str]]]) -> None:
    project, ids = world
    _sign_in(client, "max")
    base = "/projects/help"
    r = client.post(f"{base}/triage/run", data={"csrf": "forged"})
    assert r.status_code == 403
    r = _post(client, f"{base}/triage/run", {}, f"{base}/triage")
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert 'id="count-queued">14<' in page and 'id="count-escalated">4<' in page
    item = re.search(r'action="/projects/help/triage/items/(\d+)/route"', page)
    assert item is not None
    r = _post(client, f"{base}/triage/items/{item.group(1)}/route", {"route": "latency"},
              f"{base}/triage")
    assert r.status_code == 303
    bad = _post(client, f"{base}/triage/items/{item.group(1)}/route", {"route": "nowhere"},
                f"{base}/triage")
    assert bad.status_code == 422 and "route must be one of" in bad.text
    esc = re.search(r'action="/projects/help/triage/items/(\d+)/resolve"', page)
    assert esc is not None
    r = _post(client, f"{base}/triage/items/{esc.group(1)}/resolve",
              {"note": "removed the address"}, f"{base}/triage")
    assert r.status_code == 303
    bad = _post(client, f"{base}/triage/rules", {"name": "x", "route": "ux",
                                                 "conditions": "{"}, f"{base}/triage")
    assert bad.status_code == 422 and "conditions must be a JSON object" in bad.text
    r = _post(client, f"{base}/triage/themes", {"method": "tfidf", "k": "4"}, f"{base}/triage")
    assert r.status_code == 303
    page = client.get(f"{base}/triage").text
    assert 'id="theme-list"' in page and "<svg class=\"spark\"" in page
    theme = re.search(r'name="theme" value="(\d+)"', page)
    assert theme is not None
    r = _post(client, f"{base}/findings", {"theme": theme.group(1), "title": XSS},
              f"{base}/triage")
    assert r.status_code == 303 and "/findings/" in r.headers["location"]
    here = r.headers["location"].split("?")[0]
    page = client.get(here).text
    assert XSS not in page and "&lt;script&gt;" in page
    assert "not scored" in page
    bad = _post(client, f"{here}/update", {"severity": "9"}, here)
    assert bad.status_code == 422 and "severity must be a whole number from 1 to 5" in bad.text
    r = _post(client, f"{here}/update", {"severity": "4", "effort": "2", "risk": "2",
                                         "confidence": "0.5", "owner": "max"}, here)
    assert r.status_code == 303
    page = client.get(here).text
    assert 'id="priority"><strong>' in page and "removes" in page
    bad = _post(client, f"{here}/status", {"status": "fixed"}, here)
    assert bad.status_code == 409 and "from new to fixed" in bad.text
    assert _post(client, f"{here}/status", {"status": "triaged"}, here).status_code == 303
    bad = _post(client, f"{here}/link", {"dataset": "nope"}, here)
    assert bad.status_code == 404 and "no dataset" in bad.text
    with store.transaction() as conn:
        conn.execute(tables.datasets.insert().values(
            project_id=project.id, name="fix-set", version=1, recipe="sft", params={},
            content_hash="0" * 64, counts={}, card={}, created_at=utcnow()))
    assert _post(client, f"{here}/link", {"dataset": "fix-set"}, here).status_code == 303
    page = client.get(here).text
    assert "fix-set v1" in page
    trace = re.search(r'href="(/projects/help/trace\?kind=finding&amp;id=\d+)"', page)
    assert trace is not None
    traced = client.get(trace.group(1).replace("&amp;", "&"))
    assert traced.status_code == 200 and "fix-set" in traced.text
    # The backlog: formula, the finding, its benefit plot; a second finding by ids.
    fb = ",".join(map(str, feedback_ids(store, project, ids["ux"][:2])))
    r = _post(client, f"{base}/findings", {"title": "Reset button", "feedback": fb,
                                           "severity": "2", "effort": "1", "risk": "1",
                                           "confidence": "1"}, f"{base}/findings")
    assert r.status_code == 303
    bad = _post(client, f"{base}/findings", {"title": "x", "feedback": "a,b"},
                f"{base}/findings")
    assert bad.status_code == 422
    page = client.get(f"{base}/findings").text
    assert "reach * severity * confidence / effort" in page
    assert 'id="benefit-plot"' in page and XSS not in page
    assert page.count('<tr data-finding=') == 2


def test_plots_escape_and_skip_what_they_cannot_draw() -> None:
    assert trend_sparkline([], label="x") is None
    svg = trend_sparkline([{"week": "2026-03-02", "count": 2}], label=XSS)
    assert svg is not None and "<script>" not in svg
    assert benefit_plot([{"title": "t", "expected_benefit": {"value": None}}]) is None
    plot = benefit_plot([{"title": XSS, "rank": 1, "expected_benefit": {
        "value": 0.1, "ci95": [0.05, 0.2]}}])
    assert plot is not None and "<script>" not in plot and "<circle" in plot
