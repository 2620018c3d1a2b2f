"""The pages in headless Chromium against a real uvicorn server on a SQLite file: signing
in by typing, filtering the interaction browser, following links, and proof that a script
planted in user text does not run.

The browser context bypasses the pages' Content-Security-Policy, so a payload that did not
run was stopped by escaping, not by the second line of defence.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..live_server import serve
from .test_pages import PASSWORD, XSS, World, _fill

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path("/tmp/fl-browser.png")


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Chromium for the module; each test starts without cookies."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    profile = tmp_path_factory.mktemp("chrome")
    with playwright_api.sync_playwright() as p:
        # launch() refuses --user-data-dir; a persistent context takes it as a parameter.
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(profile), executable_path=CHROMIUM, headless=True,
            bypass_csp=True, viewport={"width": 1360, "height": 900},
            args=["--no-sandbox", "--headless", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, World]]:
    """A uvicorn server on a free loopback port, serving a filled SQLite store."""
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    world = _fill(store, settings)
    try:
        with serve(settings, store) as url:
            yield url, world
    finally:
        store.dispose()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    browser_context.clear_cookies()
    tab = browser_context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    yield tab
    tab.close()


def _sign_in(page: Any, base: str, path: str) -> None:
    page.goto(base + path)
    assert page.url.startswith(base + "/sign-in")
    page.locator("#username").press_sequentially("alice")
    page.locator("#password").press_sequentially(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + path)


def _listed_ids(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#interactions a.id").all_inner_texts()]


def test_sign_in_filter_and_follow_to_an_interaction(
        page: Any, server: tuple[str, World]) -> None:
    base, _ = server
    _sign_in(page, base, "/projects/shop")
    assert page.locator("h1").inner_text() == "shop"
    assert page.locator("#count-interactions").inner_text() == "11"
    assert page.locator("svg.chart rect.bar").count() == 30
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.get_by_role("link", name="Interactions", exact=True).first.click()
    page.wait_for_url(f"{base}/projects/shop/interactions")
    assert len(_listed_ids(page)) == 11

    page.select_option("select[name=model_version]", "v2")
    page.get_by_role("button", name="Filter").click()
    # static/filters.js leaves the empty fields out of the query string
    page.wait_for_url(f"{base}/projects/shop/interactions?model_version=v2")
    assert _listed_ids(page) == ["i1", "i3", "i5", "i7"]

    page.get_by_role("link", name="Clear").click()
    page.wait_for_url(f"{base}/projects/shop/interactions")
    page.locator("input[name=attribute]").press_sequentially("locale=de")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"{base}/projects/shop/interactions?attribute=locale%3Dde")
    assert _listed_ids(page) == ["i0", "i1", "i2"]

    page.locator("#interactions a.id", has_text="i1").click()
    page.wait_for_url(f"{base}/projects/shop/interactions/i1")
    assert page.locator("#input").inner_text() == "question i1"
    rows = page.locator("#feedback tbody tr")
    assert rows.count() == 2
    thumbs = rows.filter(has_text="thumbs")
    assert "wrong refund policy" in thumbs.inner_text()
    assert "Refunds take 14 days." in thumbs.inner_text()
    assert "rater-7" in thumbs.inner_text()
    assert page.dialogs == []


def test_planted_script_shows_as_text_and_never_runs(
        page: Any, server: tuple[str, World]) -> None:
    base, _ = server
    _sign_in(page, base, "/projects/shop/interactions")
    assert page.get_by_text(XSS, exact=True).is_visible()
    page.goto(f"{base}/projects/shop/interactions/xss")
    assert page.locator("#input").inner_text() == XSS
    assert XSS in page.locator("#context").inner_text()
    assert page.locator("#feedback").get_by_text(XSS, exact=True).is_visible()
    page.goto(f"{base}/projects/shop/feedback")
    assert page.get_by_text(XSS, exact=True).is_visible()
    page.wait_for_timeout(300)  # give a planted onerror handler time to fire
    assert page.locator("img").count() == 0
    assert page.dialogs == []


def test_sign_out_ends_the_session(
        page: Any, server: tuple[str, World]) -> None:
    base, _ = server
    _sign_in(page, base, "/")
    assert page.get_by_role("link", name="shop").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/sign-in")
    page.goto(f"{base}/projects/shop")
    assert page.url == f"{base}/sign-in?next=%2Fprojects%2Fshop"
