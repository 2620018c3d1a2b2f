"""Issue #7's "done when" in headless Chromium against a real server on a SQLite file.

max, a maintainer, triages the project's feedback on the triage page, finds themes, makes
findings of two of them and prioritises them on their pages: the backlog ranks them. He
links the dataset that addresses the top one; v2 is trained on it and tested against v1
(the improve and test stages, through their services here: their pages have their own
browser tests). On the gate page his release is refused until the gate is checked and ann,
a second maintainer, has approved it; then it goes out naming v1 as its rollback target.
The trace page explains the release from the first feedback, and the audit log page shows
the refusals, then the broken chain after someone edits an entry behind the app's back.
The data is :mod:`.story`'s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from feedbackloop import experiments as ex
from feedbackloop.access.service import grant
from feedbackloop.capture.projects import get_project
from feedbackloop.governance import gates, policy
from feedbackloop.improve import registry
from feedbackloop.settings import Settings, load_settings
from feedbackloop.store import Store, tables
from feedbackloop.triage import service as triage

from ..live_server import serve
from ..web.test_pages_browser import browser_context, page  # noqa: F401
from . import story
from .release_data import PASSWORD, password_hash

pytestmark = pytest.mark.browser


def _users(store: Store) -> None:
    with store.read() as conn:
        pid = get_project(conn, story.PROJECT).id
    for user in ("max", "ann"):
        with store.transaction() as conn:
            conn.execute(tables.users.insert().values(
                username=user, password_hash=password_hash(), is_superuser=False,
                created_at=datetime.now(UTC)))
        grant(store, user, pid, "maintainer")


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Store, Settings]]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    registry.clear_resolve_cache()
    ex.clear_assignment_cache()
    story.project(store, risk_tier="low")
    _users(store)
    story.feedback_log(store, settings)
    for name, route, pattern in (("slow", "latency", "slow|waited"),
                                 ("prices", "factuality", "price"),
                                 ("personal data", "privacy", "e-?mail|phone")):
        triage.add_rule(store, story.PROJECT, name, route, {"text": pattern}, actor="max")
    try:
        with serve(settings, store) as url:
            yield url, store, settings
    finally:
        store.dispose()


def _sign_in(tab: Any, base: str, user: str, path: str) -> None:
    tab.context.clear_cookies()
    tab.goto(base + path)
    assert tab.url.startswith(f"{base}/sign-in")
    tab.locator("#username").press_sequentially(user)
    tab.locator("#password").press_sequentially(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(base + path)


def _finding_from_theme(tab: Any, base: str, keyword: str, inputs: dict[str, str]) -> str:
    """Make a finding of the theme whose label holds ``keyword``; prioritise it on its
    page; return the page's URL."""
    tab.goto(f"{base}/projects/shop/triage")
    row = tab.locator("#theme-list tr[data-theme]").filter(has_text=keyword).first
    row.get_by_role("button", name="Make a finding").click()
    tab.wait_for_url(f"{base}/projects/shop/findings/*")
    here = tab.url.split("?")[0]
    form = tab.locator("#update-form")
    for name, value in inputs.items():
        form.locator(f"input[name={name}]").fill(value)
    tab.locator("#save").click()
    tab.wait_for_url(f"{here}?*")
    return str(here)


def _improve_and_test(store: Store, settings: Settings) -> None:
    """v2 trained on the dataset, v1 live, then the project governed (medium risk) and
    v1 against v2 tested to a decision; the gate made by max."""
    with store.read() as conn:
        ds = conn.execute(select(tables.datasets.c.id)).scalar_one()
    from feedbackloop.improve.datasets import get_dataset_by_id

    with store.read() as conn:
        dataset = get_dataset_by_id(conn, story.PROJECT, ds)
    story.versions(store, dataset)
    registry.promote(store, story.PROJECT, story.COMPONENT, "v1", to="live", actor="max")
    policy.set_policy(store, story.PROJECT, risk_tier="medium", actor="max")
    story.experiment(store)
    ex.start_experiment(store, story.PROJECT, story.EXPERIMENT, actor="max")
    story.experiment_traffic(store, settings)
    ex.decide(store, story.PROJECT, story.EXPERIMENT, "ship", "more thumbs up",
              arm="treatment", decided_by="max")
    gates.create_gate(store, story.PROJECT, story.COMPONENT, "v2", actor="max",
                      experiment=story.EXPERIMENT, cohort_attribute="locale")


def test_done_when_in_the_browser(page: Any,  # noqa: F811
                                  server: tuple[str, Store, Settings]) -> None:
    base, store, settings = server
    shop = f"{base}/projects/shop"

    # -- triage and themes ---------------------------------------------------------------
    _sign_in(page, base, "max", "/projects/shop/triage")
    page.locator("#run").click()
    page.wait_for_url(f"{shop}/triage?*")
    assert page.locator("#escalated tbody tr").count() == 2  # privacy, to the maintainer
    assert page.locator("#queue-items tbody tr").count() == 24  # no rule, no classifier
    page.select_option("#themes-form select[name=method]", "tfidf")
    page.locator("#themes-form input[name=k]").fill("3")
    page.locator("#run-themes").click()
    page.wait_for_url(f"{shop}/triage?*")
    assert page.locator("#theme-list tr[data-theme]").count() == 3

    # -- two findings, prioritised; the backlog ranks them --------------------------------
    top = _finding_from_theme(page, base, "rambling", {"severity": "3", "effort": "2",
                                                       "risk": "2", "confidence": "0.8",
                                                       "owner": "max"})
    assert page.locator("#priority").inner_text().startswith("25.2")
    _finding_from_theme(page, base, "price", {"severity": "4", "effort": "5", "risk": "1",
                                              "confidence": "0.6"})
    page.locator("nav.stages").get_by_role("link", name="Backlog").click()
    page.wait_for_url(f"{shop}/findings")
    ranked = page.locator("#backlog tbody tr[data-finding]")
    assert ranked.count() == 2
    assert "rambling" in ranked.nth(0).inner_text() and "price" in ranked.nth(1).inner_text()
    assert "reach * severity * confidence / effort" in page.locator("#formula").inner_text()

    # -- the dataset that addresses it; v2; the experiment ---------------------------------
    story.dataset(store)
    page.goto(top)
    page.locator("#link-form input[name=dataset]").fill("thumbs-kto")
    page.locator("#link").click()
    page.wait_for_url(f"{top}?*")
    assert "thumbs-kto" in page.locator("#datasets").inner_text()
    _improve_and_test(store, settings)

    # -- the gate: refused until checked and approved by a second person -------------------
    gate = f"{shop}/gates/1"
    page.goto(gate)
    page.locator("#release").click()
    assert "not checked yet" in page.locator("#errors").inner_text()
    page.goto(gate)
    page.locator("#check").click()
    page.wait_for_url(f"{gate}?done=checked")
    assert page.locator("#status").inner_text() == "passed"
    page.select_option("#sign-capacity", "maintainer")
    page.locator("#sign").click()
    assert "second person" in page.locator("#errors").inner_text()
    page.goto(gate)
    page.locator("#release").click()
    assert "lacks its sign-offs" in page.locator("#errors").inner_text()

    _sign_in(page, base, "ann", "/projects/shop/gates/1")
    page.select_option("#sign-capacity", "maintainer")
    page.locator("#sign").click()
    page.wait_for_url(f"{gate}?done=signed")

    _sign_in(page, base, "max", "/projects/shop/gates/1")
    page.locator("#release").click()
    page.wait_for_url(f"{shop}/releases/1?done=released")
    assert page.locator("#rollback-to").inner_text() == "v1"

    # -- trace: from the release back to the first feedback --------------------------------
    with store.read() as conn:
        first = conn.execute(select(tables.feedback.c.id).where(
            tables.feedback.c.client_id == "fb0")).scalar_one()
    page.goto(f"{shop}/trace?kind=release&id=1")
    nodes = page.locator("#nodes")
    for node in ("release:1", "experiment:1", "model_version:2", "dataset:1",
                 f"finding:{top.rsplit('/', 1)[1]}", f"feedback:{first}"):
        assert nodes.locator(f'tr[data-node="{node}"]').count() == 1, node
    assert page.locator("#graph svg").count() == 1

    # -- the audit log: the refusals, then a tampered entry ---------------------------------
    page.goto(f"{shop}/audit?action=release.promote.refused")
    assert page.locator("#verification").get_attribute("data-ok") == "true"
    assert page.locator("#entries tbody tr").count() == 2
    with store.transaction() as conn:
        victim = conn.execute(select(tables.audit_log.c.id).where(
            tables.audit_log.c.action == "finding.create")).scalars().first()
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET reason = 'nothing to see' WHERE id = :i"),
                     {"i": victim})
    page.goto(f"{shop}/audit")
    broken = page.locator("#verification")
    assert broken.get_attribute("data-ok") == "false"
    assert f"broken at entry {victim}" in broken.inner_text()
    assert page.dialogs == []
