"""The backlog → finding flow in headless Chromium against a real uvicorn server on a
SQLite file: a maintainer triages the feedback, finds themes, makes a finding from one,
prioritises it, sees it ranked in the backlog with its benefit plot, opens it and moves it
on. A comment carrying a script is shown as text (the context bypasses the CSP, so a
script that did not run was stopped by escaping)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.access import grant
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.settings import load_settings
from feedbackloop.store import Store, tables

from ..live_server import serve
from ..triage.data import support
from .test_experiment_pages import _password_hash
from .test_experiments_browser import _sign_in
from .test_pages import XSS
from .test_pages_browser import browser_context, page  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[str]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    p, _ = support(store, settings, per_kind=4)
    ing = Ingestor(store, settings, p)
    assert ing.interactions([{"id": "x1", "input": "q", "output": "a"}]).rejected == 0
    assert ing.feedback([{"id": "fx", "interaction_id": "x1", "signal": "thumbs",
                          "value": False, "comment": XSS}]).rejected == 0
    with store.transaction() as conn:
        conn.execute(tables.users.insert().values(
            username="max", password_hash=_password_hash(), is_superuser=False,
            created_at=datetime.now(UTC)))
    grant(store, "max", p.id, "maintainer")
    try:
        with serve(settings, store) as url:
            yield url
    finally:
        store.dispose()


def test_themes_become_a_ranked_finding_that_moves_on(page: Any,  # noqa: F811
                                                      server: str) -> None:
    base = server
    _sign_in(page, base, "max", "/projects/help")
    page.locator("nav.stages").get_by_role("link", name="Triage").click()
    page.wait_for_url(f"{base}/projects/help/triage")
    page.locator("#run").click()
    page.wait_for_url(f"{base}/projects/help/triage?done=run")
    assert page.locator("#count-queued").inner_text() == "19"
    assert XSS in page.locator("#queue-items").inner_text()  # shown as text

    page.select_option("#themes-form select[name=method]", "tfidf")
    page.locator("#themes-form input[name=k]").fill("4")
    page.locator("#run-themes").click()
    page.wait_for_url(f"{base}/projects/help/triage?done=themes")
    assert page.locator("#theme-list tbody tr").count() == 4
    assert page.locator("#theme-list svg.spark").count() == 4
    page.locator("#theme-list tbody tr").first.get_by_role(
        "button", name="Make a finding").click()
    page.wait_for_url("**/findings/*?done=created")
    assert "not scored" in page.locator("#priority").inner_text()

    page.locator("#update-form input[name=severity]").fill("4")
    page.locator("#update-form input[name=effort]").fill("2")
    page.locator("#update-form input[name=risk]").fill("1")
    page.locator("#update-form input[name=confidence]").fill("0.5")
    page.locator("#update-form input[name=owner]").fill("max")
    page.locator("#save").click()
    page.wait_for_url("**/findings/*?done=updated")
    assert "removes" in page.locator("#benefit").inner_text()
    finding_url = page.url.split("?")[0]

    page.locator("nav.stages").get_by_role("link", name="Backlog").click()
    page.wait_for_url(f"{base}/projects/help/findings")
    assert "reach * severity * confidence / effort" in page.locator("#formula").inner_text()
    row = page.locator("#backlog tbody tr").first
    assert row.locator("td.priority").inner_text() != "not scored"
    assert page.locator("#benefit-plot svg circle").count() == 1
    row.get_by_role("link").click()
    page.wait_for_url(finding_url)
    page.select_option("#next-status", "triaged")
    page.locator("#move").click()
    page.wait_for_url("**/findings/*?done=status")
    assert page.locator("#status").inner_text() == "triaged"
    page.wait_for_timeout(300)  # give a planted onerror handler time to fire
    assert page.dialogs == []
