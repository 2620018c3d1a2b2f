"""The issue's "done when" on the web, in headless Chromium against a real uvicorn server on
a SQLite file: pairwise feedback through ingest, a preference dataset and two reward models
trained with TF-IDF features (the real services; rm-1 live). A maintainer opens the
dataset, follows a row's lineage link to the feedback behind it, opens rm-2, serves it to
10 % of the pro cohort through the toggle form, promotes it, rolls it back and sees the
status history grow at each step.

The browser context bypasses the pages' Content-Security-Policy, so a planted script that
did not run (the hostile prompt and version description) was stopped by escaping.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.improve import registry as reg
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..live_server import serve
from .test_improve_pages import Shop, seed_shop
from .test_pages import PASSWORD, XSS
from .test_pages_browser import browser_context, page  # noqa: F401

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Shop]]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    shop = seed_shop(store, settings, tmp_path / "artifacts")
    try:
        with serve(settings, store) as url:
            yield url, shop
    finally:
        store.dispose()


def _history(tab: Any) -> list[str]:
    return [t.strip() for t in tab.locator("#history tbody tr td:nth-child(3)")
            .all_inner_texts()]


def test_dataset_lineage_then_toggle_promote_and_roll_back(
        page: Any, server: tuple[str, Shop]) -> None:  # noqa: F811
    base, shop = server
    page.goto(f"{base}/projects/shop/datasets")
    assert page.url.startswith(f"{base}/sign-in")
    page.locator("#username").press_sequentially("max")
    page.locator("#password").press_sequentially(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/projects/shop/datasets")

    # the dataset: card, bars, rows with their lineage
    page.get_by_role("link", name="prefs@1").click()
    page.wait_for_url(f"{base}/projects/shop/datasets/prefs/1")
    assert page.locator("#hash").inner_text() == shop.dataset.content_hash
    assert page.locator("#chart-splits rect.bar").count() == len(
        shop.dataset.counts["splits"])
    page.screenshot(path=str(SCREENSHOTS / "fl-improve-dataset.png"), full_page=True)
    link = page.locator("td.lineage a.id").first
    vote = link.inner_text()
    k = vote.removeprefix("vote-")
    link.click()
    page.wait_for_url(f"{base}/projects/shop/interactions/i%2F{k}a")
    feedback = page.locator("#feedback tbody tr")
    assert feedback.count() == 1
    assert "pref" in feedback.inner_text() and f"r{int(k) % 3}" in feedback.inner_text()

    # the model version, reached through the stage navigation
    page.get_by_role("link", name="Models", exact=True).click()
    page.wait_for_url(f"{base}/projects/shop/models")
    page.locator('tr[data-version="rm-2"] a').first.click()
    page.wait_for_url(f"{base}/projects/shop/models/reward/rm-2")
    assert page.locator("#status-badge").inner_text() == "candidate"
    assert page.locator("#description").inner_text() == f"second try {XSS}"
    assert page.locator("#baselines tbody tr").count() == 3
    assert _history(page) == ["candidate"]

    # serve it to 10 % of the pro cohort
    page.select_option("#serve", "rm-2")
    page.locator("#percent").fill("10")
    page.locator("#conditions").fill("plan=pro")
    page.locator("#toggle-confirm").check()
    page.locator("#set-toggle").click()
    page.wait_for_url(re.compile(r".*/models/reward/rm-2\?done=toggle#status$"))
    assert page.locator("#notice").inner_text() == "Toggle saved."
    rule = page.locator('#rules tr[data-rule="0"]').inner_text()
    assert "plan = pro" in rule and "rm-2 10 %" in rule
    assert reg.resolve(shop.store, "shop", "reward", "someone", {"plan": "free"}
                       )["version"] == "rm-1"

    # promote: the form will not submit unconfirmed
    page.select_option("#promote-to", "live")
    page.locator("#promote").click()
    assert page.url.endswith("done=toggle#status")  # the browser kept the form back
    page.locator("#promote-confirm").check()
    page.locator("#promote").click()
    page.wait_for_url(re.compile(r".*\?done=promoted#status$"))
    assert page.locator("#status-badge").inner_text() == "live"
    assert _history(page) == ["candidate", "candidate → live"]

    # roll back: rm-1 returns
    assert "rm-1 is live again" in page.locator("#rollback-form").inner_text()
    page.locator("#rollback-confirm").check()
    page.locator("#rollback").click()
    page.wait_for_url(re.compile(r".*\?done=rolled_back#status$"))
    assert page.locator("#status-badge").inner_text() == "rolled back"
    assert _history(page) == ["candidate", "candidate → live", "live → rolled back"]
    assert page.locator("#notice").inner_text() == "Rolled back: rm-1 is live."
    assert "not served" in page.locator('#rules tr[data-rule="0"]').inner_text()
    page.screenshot(path=str(SCREENSHOTS / "fl-improve-model.png"), full_page=True)
    with shop.store.read() as conn:
        assert reg.get_version(conn, "shop", "reward", "rm-1").status == "live"
    page.wait_for_timeout(200)  # time for a planted onerror handler to fire
    assert page.locator("main img").count() == 0
    assert page.dialogs == []

