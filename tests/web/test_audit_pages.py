"""The audit log, provenance and case-study pages and their JSON API over HTTP, on SQLite
and PostgreSQL: entries with their changes and the chain's verification (a broken chain is
flagged), the trace as an SVG graph and Markdown, a release's case study and its download;
user text escaped everywhere; edits of entries refused and recorded; bad input a 4xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy import text, update

from feedbackloop.access import grant
from feedbackloop.access.service import create_token
from feedbackloop.governance import audit
from feedbackloop.settings import Settings
from feedbackloop.store import Store, tables
from feedbackloop.store.tables import audit_log, findings
from feedbackloop.web.app import create_app

from ..governance.chain import Chain, build_chain
from .test_experiment_pages import _password_hash
from .test_pages import XSS, _client, _sign_in


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def chain(store: Store, settings: Settings) -> Chain:
    c = build_chain(store, settings, comment=XSS)
    with store.transaction() as conn:
        conn.execute(tables.users.insert().values(
            username="vic", password_hash=_password_hash(), is_superuser=False,
            created_at=datetime.now(UTC)))
        conn.execute(update(findings).where(findings.c.id == c.finding_id)
                     .values(title=XSS))
        audit.record(conn, actor=XSS, action="finding.status", entity_kind="finding",
                     entity_id=c.finding_id, project_id=c.project.id,
                     before={"status": "new"}, after={"status": XSS}, reason=XSS)
    grant(store, "vic", c.project.id, "viewer")
    return c


@pytest.fixture
def client(chain: Chain, store: Store, settings: Settings,
           portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(settings, store), portal) as c:
        yield c


def _no_raw_xss(page: str) -> None:
    assert "<script>alert(1)" not in page and "<img src=x" not in page


def test_the_audit_page_lists_entries_filters_and_verifies(
        client: httpx.Client, chain: Chain, store: Store) -> None:
    _sign_in(client, "vic")
    page = client.get("/projects/shop/audit")
    assert page.status_code == 200, page.text
    assert 'id="verification" data-ok="true"' in page.text
    for action in ("project.create", "model.promote", "experiment.create", "finding.status"):
        assert f'data-action="{action}"' in page.text, action
    assert f'href="/projects/shop/trace?kind=finding&amp;id={chain.finding_id}"' in page.text
    _no_raw_xss(page.text)
    only = client.get("/projects/shop/audit", params={"action": "model.register"}).text
    assert only.count('data-action="model.register"') == 2
    assert 'data-action="model.promote"' not in only
    kind = client.get("/projects/shop/audit",
                      params={"kind": "model_version", "entity": str(chain.v1_id)}).text
    assert 'data-action="model.promote"' in kind and 'data-action="model.register"' in kind
    assert 'data-action="experiment.create"' not in kind
    assert 'id="no-entries"' in client.get("/projects/shop/audit",
                                           params={"action": "nothing"}).text
    assert client.get("/projects/shop/audit", params={"before": "x"}).status_code == 422
    assert client.get("/projects/shop/audit", params={"kind": "k" * 31}).status_code == 422

    with store.transaction() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"
                          + (" ON audit_log" if conn.dialect.name == "postgresql" else "")))
        conn.execute(update(audit_log).where(audit_log.c.id == 2).values(actor="eve"))
    broken = client.get("/projects/shop/audit").text
    assert 'id="verification" data-ok="false"' in broken
    assert "broken at entry 2" in broken


def test_the_trace_page_draws_the_graph_and_downloads_markdown(
        client: httpx.Client, chain: Chain) -> None:
    _sign_in(client, "vic")
    assert 'id="trace-form"' in client.get("/projects/shop/trace").text
    first = chain.feedback_ids[0]
    page = client.get("/projects/shop/trace", params={"kind": "feedback", "id": str(first)})
    assert page.status_code == 200, page.text
    svg = page.text.split('id="provenance-graph"', 1)[1].split("</svg>", 1)[0]
    for node in (f"feedback:{first}", f"finding:{chain.finding_id}",
                 f"dataset:{chain.dataset_id}", f"model_version:{chain.v2_id}",
                 f"experiment:{chain.experiment_id}", f"release:{chain.release_id}"):
        assert f'data-node="{node}"' in svg, node
    assert 'href="/projects/shop/releases/' in svg
    _no_raw_xss(page.text)
    md = client.get("/projects/shop/trace", params={"kind": "model_version",
                                                   "id": "ranking:v2", "format": "md"})
    assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
    assert "attachment" in md.headers["content-disposition"]
    assert "# Provenance of model ranking:v2" in md.text and "<script>" not in md.text

    bad = client.get("/projects/shop/trace", params={"kind": "user", "id": "1"})
    assert bad.status_code == 200 and 'id="errors"' in bad.text
    missing = client.get("/projects/shop/trace", params={"kind": "release", "id": "999"})
    assert missing.status_code == 404
    assert client.get("/projects/shop/trace", params={"format": "md"}).status_code == 422
    assert client.get("/projects/shop/trace", params={"format": "pdf"}).status_code == 422


def test_the_case_study_page_and_its_markdown(client: httpx.Client, chain: Chain) -> None:
    _sign_in(client, "vic")
    page = client.get(f"/projects/shop/releases/{chain.release_id}/case-study")
    assert page.status_code == 200, page.text
    for part in ('id="what-changed"', 'id="why"', 'id="evidence"', 'id="after"',
                 f'data-finding="{chain.finding_id}"', 'id="gate-status">passed',
                 "issue #8", 'id="metric-changes"'):
        assert part in page.text, part
    _no_raw_xss(page.text)
    md = client.get(f"/projects/shop/releases/{chain.release_id}/case-study.md")
    assert md.status_code == 200 and "## What happened after" in md.text
    assert "<script>" not in md.text
    assert client.get("/projects/shop/releases/999/case-study").status_code == 404


def test_pages_need_a_reader(client: httpx.Client, chain: Chain, store: Store) -> None:
    assert client.get("/projects/shop/audit").status_code == 303  # sign in first
    _sign_in(client, "vic")
    assert client.get("/projects/nope/audit").status_code == 404


def test_the_audit_api(client: httpx.Client, chain: Chain, store: Store) -> None:
    viewer = {"Authorization": "Bearer " + create_token(store, project_id=chain.project.id,
                                                        role="viewer")}
    admin = {"Authorization": "Bearer " + create_token(store, project_id=None,
                                                       role="admin")}
    got = client.get("/api/v1/projects/shop/audit", headers=viewer,
                     params={"entity_kind": "finding", "limit": 5})
    assert got.status_code == 200, got.text
    assert [e["action"] for e in got.json()["items"]] == ["finding.status"]
    one = client.get("/api/v1/projects/shop/audit", headers=viewer, params={"limit": 1})
    assert one.json()["next_before_id"] == one.json()["items"][0]["id"]
    assert client.get("/api/v1/projects/shop/audit", headers=viewer,
                      params={"limit": 0}).status_code == 422
    assert client.get("/api/v1/projects/shop/audit", headers=viewer,
                      params={"entity": "x"}).status_code == 422  # unknown parameter

    entry = got.json()["items"][0]["id"]
    for method in ("PATCH", "DELETE"):
        refused = client.request(method, f"/api/v1/projects/shop/audit/{entry}",
                                 headers=viewer)
        assert refused.status_code == 409, refused.text
        assert "append-only" in refused.json()["error"]["message"]
    assert client.request("PATCH", "/api/v1/projects/shop/audit/99999",
                          headers=viewer).status_code == 404
    with store.read() as conn:
        refusals = [e.action for e in audit.entries(conn, entity_kind="audit_entry")]
    assert refusals == ["audit.delete.refused", "audit.edit.refused"]

    assert client.get("/api/v1/audit/verify", headers=viewer).status_code == 403
    verified = client.get("/api/v1/audit/verify", headers=admin).json()
    assert verified["ok"] is True and verified["first_bad"] is None

    graph = client.get("/api/v1/projects/shop/trace", headers=viewer,
                       params={"kind": "release", "id": str(chain.release_id)})
    assert graph.status_code == 200, graph.text
    assert f"feedback:{chain.feedback_ids[0]}" in {n["id"] for n in graph.json()["nodes"]}
    assert client.get("/api/v1/projects/shop/trace", headers=viewer,
                      params={"kind": "user", "id": "1"}).status_code == 422
    assert client.get("/api/v1/projects/shop/trace", headers=viewer,
                      params={"kind": "release", "id": "x"}).status_code == 422
    study = client.get(f"/api/v1/projects/shop/releases/{chain.release_id}/case-study",
                       headers=viewer)
    assert study.status_code == 200 and study.json()["release"]["version"] == "v2"
