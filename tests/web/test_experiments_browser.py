"""The issue's "done when" on the web, in headless Chromium against a real uvicorn server on
a SQLite file. A maintainer plans an experiment from a hypothesis through the form (two
registered model versions of ``generation`` as the arms, an annotator-rated signal as the
primary metric), starts it; live traffic arrives in two rounds (each unit assigned by the
service, its interaction logged with experiment, arm and propensity, then rated by an
annotator); the page shows the sequential interval narrower after the second round, with
a look for each; the maintainer records the decision through the form and sees it; a
viewer sees no form.

The browser context bypasses the pages' Content-Security-Policy, so a planted script that
did not run (the hypothesis, the rationale) was stopped by escaping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..live_server import serve
from .test_experiment_pages import Lab, seed_lab, traffic
from .test_pages import PASSWORD, XSS
from .test_pages_browser import browser_context, page  # noqa: F401

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Lab]]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    lab = seed_lab(store, settings)
    try:
        with serve(settings, store) as url:
            yield url, lab
    finally:
        store.dispose()


def _sign_in(tab: Any, base: str, user: str, path: str) -> None:
    tab.goto(base + path)
    assert tab.url.startswith(f"{base}/sign-in")
    tab.locator("#username").press_sequentially(user)
    tab.locator("#password").press_sequentially(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(base + path)


def _width(tab: Any, arm: str) -> float:
    return float(tab.locator(f'#comparisons tr[data-arm="{arm}"]')
                 .get_attribute("data-seq-width"))


def test_plan_run_watch_the_interval_tighten_and_decide(
        page: Any, server: tuple[str, Lab]) -> None:  # noqa: F811
    base, lab = server
    _sign_in(page, base, "max", "/projects/lab")
    page.locator("nav.stages").get_by_role("link", name="Experiments").click()
    page.wait_for_url(f"{base}/projects/lab/experiments")
    page.locator("#new-experiment").click()
    page.wait_for_url(f"{base}/projects/lab/experiments/new")

    # plan from a hypothesis
    hypothesis = f"Shorter answers from v2 are rated more helpful {XSS}"
    page.locator("#name").fill("shorter")
    page.locator("#hypothesis").fill(hypothesis)
    page.select_option("#component", "generation")
    page.locator("#arm_0_name").fill("control")
    page.select_option("#arm_0_version", "v1")
    page.locator("#arm_1_name").fill("short")
    page.select_option("#arm_1_version", "v2")
    page.select_option("#metric", "helpful")
    page.locator("#mde").fill("0.1")
    page.locator("#baseline").fill("0.5")
    page.locator("#create").click()
    page.wait_for_url(f"{base}/projects/lab/experiments/shorter?done=created")
    assert page.locator("#status").inner_text() == "draft"
    assert page.locator("#hypothesis").inner_text() == f"Hypothesis: {hypothesis}"
    assert "units per arm" in page.locator("#planned").inner_text()

    page.locator("#start").click()
    page.wait_for_url(f"{base}/projects/lab/experiments/shorter?done=started")
    assert page.locator("#status").inner_text() == "running"

    # round one of live traffic, rated by annotators
    traffic(lab, "shorter", range(0, 150), {"control": 0.4, "short": 0.7}, seed=11)
    page.reload()
    first = _width(page, "short")
    assert page.locator('#sequence g.arm[data-arm="short"]').get_attribute(
        "data-looks") == "1"
    n_first = page.locator('#arms tr[data-arm="short"] td').nth(4).inner_text()

    # round two: the interval tightens, and the plot has a second look
    traffic(lab, "shorter", range(150, 700), {"control": 0.4, "short": 0.7}, seed=12)
    page.reload()
    second = _width(page, "short")
    assert second < first * 0.7, (first, second)
    assert page.locator('#sequence g.arm[data-arm="short"]').get_attribute(
        "data-looks") == "2"
    assert page.locator('#sequence g.arm[data-arm="short"] polygon.band').count() == 1
    n_second = page.locator('#arms tr[data-arm="short"] td').nth(4).inner_text()
    assert int(n_second.replace(",", "")) > int(n_first.replace(",", ""))
    assert "false-positive" in page.locator("#lesson").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "fl-experiment.png"), full_page=True)

    # record the decision
    rationale = f"The sequential interval excludes zero; ship v2 {XSS}"
    page.locator("#decision-ship").check()
    page.select_option("#decision-arm-select", "short")
    page.locator("#rationale-input").fill(rationale)
    page.locator("#decide").click()
    page.wait_for_url(f"{base}/projects/lab/experiments/shorter?done=decided")
    assert page.locator("#decision-label").inner_text() == "Ship"
    assert page.locator("#decision-arm").inner_text() == "short"
    assert page.locator("#rationale").inner_text() == rationale
    assert page.locator("#status").inner_text() == "decided"
    assert page.locator("#decide-form").count() == 0
    page.wait_for_timeout(300)  # give a planted onerror handler time to fire
    assert page.locator("main img").count() == 0
    assert page.dialogs == []

    page.locator("nav.stages").get_by_role("link", name="Experiments").click()
    page.wait_for_url(f"{base}/projects/lab/experiments")
    row = page.locator('#experiments tr[data-experiment="shorter"]').inner_text()
    assert "ship" in row and "helpful" in row and "decided" in row

    # a viewer sees the decision but no form
    page.context.clear_cookies()
    _sign_in(page, base, "vic", "/projects/lab/experiments/shorter")
    assert page.locator("#rationale").inner_text() == rationale
    assert page.locator("form[action$='/decide'], form[action$='/start']").count() == 0
    assert page.dialogs == []
