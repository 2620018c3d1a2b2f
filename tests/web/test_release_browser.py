"""The issue's "cannot release until the gate and the tier's sign-offs pass", in headless
Chromium against a real uvicorn server on a SQLite file. A maintainer of a medium-risk
project creates the gate for v2 (tested by an A/B experiment with logged feedback) through
the form and tries to release it: refused before the check, refused when she signs her own
gate, refused without a second person's approval; a second maintainer approves it; then
the release goes through, names v1 as its rollback target, links its case study, and rolls
back in one click.

The browser context bypasses the pages' Content-Security-Policy, so a planted script that
did not run (the sign-off comment) was stopped by escaping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.improve import registry as reg
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..governance.release_data import release_project, run_experiment
from ..live_server import serve
from .test_pages import PASSWORD, XSS
from .test_pages_browser import browser_context, page  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Store]]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    reg.clear_resolve_cache()
    p = release_project(store, "medium")
    run_experiment(store, settings, p)
    try:
        with serve(settings, store) as url:
            yield url, store
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


def _live(store: Store) -> str:
    with store.read() as conn:
        return next(v.name for v in reg.list_versions(conn, "shop", "assistant")
                    if v.status == "live")


def test_cannot_release_until_the_gate_and_sign_offs_pass(
        page: Any, server: tuple[str, Store]) -> None:  # noqa: F811
    base, store = server
    _sign_in(page, base, "mia", "/projects/shop")
    page.locator("nav.stages").get_by_role("link", name="Releases").click()
    page.wait_for_url(f"{base}/projects/shop/releases")
    assert "medium risk" in page.locator("#policy").inner_text()

    page.select_option("#gate-component", "assistant")
    page.locator("#gate-version").fill("v2")
    page.locator("#gate-experiment").fill("tone")
    page.locator("#gate-cohort").fill("region")
    page.locator("#gate-tolerance").fill("0.1")
    page.locator("#create-gate").click()
    page.wait_for_url(f"{base}/projects/shop/gates/1?done=created")
    gate = f"{base}/projects/shop/gates/1"

    # 1. not checked yet
    page.locator("#release").click()
    assert "not checked yet" in page.locator("#errors").inner_text()
    # 2. checked: passed, with its evidence and plot
    page.goto(gate)
    page.locator("#check").click()
    page.wait_for_url(f"{gate}?done=checked")
    assert page.locator("#status").inner_text() == "passed"
    assert page.locator("#criteria tr[data-criterion]").count() == 3
    assert page.locator("#plot svg .row").count() >= 3
    # 3. she may not approve her own gate
    page.select_option("#sign-capacity", "maintainer")
    page.locator("#sign").click()
    assert "second person" in page.locator("#errors").inner_text()
    # 4. without the second person's approval the release is refused
    page.goto(gate)
    page.locator("#release").click()
    assert "lacks its sign-offs" in page.locator("#errors").inner_text()
    assert _live(store) == "v1"

    # a second maintainer approves it
    _sign_in(page, base, "max", "/projects/shop/gates/1")
    page.locator("#sign-comment").fill(f"Checked the evidence {XSS}")
    page.locator("#sign").click()
    page.wait_for_url(f"{gate}?done=signed")
    assert "maintainer: 1 of 1 (max)" in page.locator("#required").inner_text()
    assert XSS in page.locator("#signoffs").inner_text()  # shown as text, never run
    assert page.dialogs == []
    page.screenshot(path="/tmp/gate_page.png", full_page=True)

    # now the release goes through, names its rollback target and links its case study
    _sign_in(page, base, "mia", "/projects/shop/gates/1")
    page.locator("#release-reason").fill("more thumbs up in the experiment")
    page.locator("#release").click()
    page.wait_for_url(f"{base}/projects/shop/releases/1?done=released")
    assert page.locator("#rollback-to").inner_text() == "v1"
    assert _live(store) == "v2"
    page.screenshot(path="/tmp/release_page.png", full_page=True)
    page.locator("#case-study").click()
    page.wait_for_url(f"{base}/projects/shop/releases/1/case-study")
    assert "v2" in page.locator("main").inner_text()
    page.go_back()
    page.locator("#rollback-reason").fill("complaints")
    page.locator("#rollback").click()
    page.wait_for_url(f"{base}/projects/shop/releases/1?done=rolled_back")
    assert page.locator("#status").inner_text() == "rolled back"
    assert _live(store) == "v1"
    assert page.dialogs == []
