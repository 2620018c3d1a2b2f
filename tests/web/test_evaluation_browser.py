"""The evaluation page in headless Chromium against a real uvicorn server on SQLite: the
plots are there, a discrepancy is tagged through the form with a note carrying a planted
script, and the tag shows in the knowledge base as text, the script never running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.access import create_user, grant
from feedbackloop.evaluation import evaluate
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..evaluation.simulation import simulate
from ..live_server import serve
from .test_pages import PASSWORD, XSS
from .test_pages_browser import browser_context, page  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, int]]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    sim = simulate(store, settings, n=800, seed=2)
    create_user(store, "mia", PASSWORD)
    grant(store, "mia", sim.project.id, "maintainer")
    report = evaluate(store, "sim", "thumbs", ["score", "noise"], created_by="setup")
    assert report.id is not None
    try:
        with serve(settings, store) as url:
            yield url, report.id
    finally:
        store.dispose()


def test_open_the_evaluation_tag_a_discrepancy_see_it_in_the_knowledge_base(
        page: Any, server: tuple[str, int]) -> None:  # noqa: F811
    base, evaluation_id = server
    path = f"/projects/sim/evaluations/{evaluation_id}"
    page.goto(base + path)
    page.locator("#username").press_sequentially("mia")
    page.locator("#password").press_sequentially(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + path)

    assert page.locator("h1").inner_text() == f"Evaluation {evaluation_id}"
    assert page.locator("svg.chart.box-plot").count() == 2
    assert page.locator("svg.chart.box-plot g.box").count() == 4
    assert page.locator("svg.chart.reliability polyline.isotonic").count() == 2
    assert page.locator("svg.chart.reliability g.bin").count() >= 10
    assert page.locator("#agreement tbody tr").count() == 2
    assert page.locator("#weights tbody tr").count() == 2

    table = page.locator("#discrepancy-table-1")
    first_row = table.locator("tbody tr").first
    interaction = first_row.get_attribute("data-interaction")
    first_row.locator("input[type=checkbox]").check()
    form = page.locator("#tag-1")
    form.locator("select[name=cause]").select_option("guideline_gap")
    form.locator("input[name=note]").press_sequentially(XSS)
    form.get_by_role("button", name="Tag selected").click()
    page.wait_for_url(f"{base}{path}#discrepancies")
    row = page.locator(f'#discrepancy-table-1 tr[data-interaction="{interaction}"]')
    assert "guideline gap" in row.inner_text()

    page.get_by_role("link", name="Knowledge base", exact=True).first.click()
    page.wait_for_url(f"{base}/projects/sim/knowledge-base")
    assert page.locator('#causes tr[data-cause="guideline_gap"] td.num').inner_text() == "1"
    assert page.locator("#cause-guideline_gap td.note").inner_text() == XSS
    page.wait_for_timeout(300)  # give a planted onerror handler time to fire
    assert page.locator("main img").count() == 0
    assert page.dialogs == []

    page.locator("#cause-guideline_gap a.id").click()
    page.wait_for_url(f"{base}/projects/sim/interactions/{interaction}")
    assert page.locator("#input").inner_text().startswith("question ")
