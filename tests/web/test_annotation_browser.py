"""The issue's "done when", in headless Chromium against a real uvicorn server on a SQLite
file: a maintainer creates a campaign that picks items by disagreement through the form;
three raters sign in and work it with the keyboard (one writes a correction and sees the
live diff, one skips with a reason); a pairwise campaign is worked side by side and the
stored preference follows the recorded left/right swap; the campaign page then shows
Krippendorff's alpha with its interval, per-rater drift with its plot, and the aggregated
labels. The data are made by the real services (ingest, a metric as source "automated").

The browser context bypasses the pages' Content-Security-Policy, so a planted script that
did not run was stopped by escaping.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.annotation.aggregate import latest_aggregation
from feedbackloop.annotation.campaigns import export_campaign, get_campaign
from feedbackloop.annotation.reliability import project_agreement
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..live_server import serve
from .test_annotation_pages import N_PAIRS, Lab, answer_for, campaign, seed
from .test_pages import PASSWORD, XSS
from .test_pages_browser import browser_context, page  # noqa: F401

pytestmark = pytest.mark.browser

SCREENSHOTS = Path("/tmp")


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[str, Lab]]:
    settings = load_settings(data_dir=str(tmp_path / "data"), database_url=sqlite_url,
                             pseudonym_key="browser-test-key")
    store = Store.from_url(sqlite_url)
    lab = seed(store, settings)
    try:
        with serve(settings, store) as url:
            yield url, lab
    finally:
        store.dispose()


def _sign_in(page: Any, base: str, path: str, user: str) -> None:  # noqa: F811
    page.context.clear_cookies()
    page.goto(base + path)
    assert page.url.startswith(base + "/sign-in")
    page.locator("#username").press_sequentially(user)
    page.locator("#password").press_sequentially(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(base + path)


def _create_campaign_through_the_form(page: Any, base: str) -> int:  # noqa: F811
    _sign_in(page, base, "/projects/lab/annotate", "mia")
    page.get_by_role("link", name="Campaigns", exact=True).first.click()
    page.wait_for_url(f"{base}/projects/lab/annotate")
    page.locator("#new-campaign").click()
    page.wait_for_url(f"{base}/projects/lab/campaigns/new")
    page.locator("#name").press_sequentially("by-disagreement")
    for signal in ("quality", "helpful"):
        page.locator(f'input[name=signals][value="{signal}"]').check()
    for rater in ("ann", "bob", "cat"):
        page.locator(f'input[name=raters][value="{rater}"]').check()
    page.locator("#budget").fill("8")
    page.locator("#overlap").fill("3")
    page.locator("input[name=weight_random]").fill("")
    page.locator("#weight_disagreement").fill("1")
    page.select_option("#dis_metric", "judge")
    page.select_option("#dis_human", "helpful")
    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_url(re.compile(r".*/projects/lab/campaigns/\d+$"))
    assert "disagreement 8" in page.locator("#progress").inner_text()
    return int(page.url.rsplit("/", 1)[1])


def _work(page: Any, base: str, work: str, rater: str) -> dict[str, int]:  # noqa: F811
    """The rater works the queue with the keyboard; ann writes a correction on her first
    item, bob skips his second. Returns the counts of what happened."""
    _sign_in(page, base, work, rater)
    done = skipped = 0
    while page.locator("#queue-done").count() == 0:
        position = int(page.locator("#item").get_attribute("data-position"))
        quality, helpful = answer_for(rater, position)
        if rater == "bob" and done == 1 and not skipped:
            page.keyboard.press("s")
            page.locator("#reason").press_sequentially("not sure what the user asked")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.url.endswith("?done=skipped")
            skipped += 1
            continue
        if rater == "ann" and done == 0:
            output = page.locator("#output").inner_text()
            page.keyboard.press("c")  # opens the correction, starting from the output
            box = page.locator("#correction")
            assert box.input_value() == output
            box.fill(output.replace("short and clear", "long and correct"))
            diff = page.locator("#diff")
            assert diff.is_visible()
            assert diff.locator("del").all_inner_texts() == ["short", "clear."]
            assert diff.locator("ins").all_inner_texts() == ["long", "correct."]
            assert "2 words added, 2 removed" in diff.inner_text()
            page.screenshot(path=str(SCREENSHOTS / "fl-workspace-diff.png"), full_page=True)
            page.keyboard.press("Escape")
            page.locator("#comment").fill(f"hard one {XSS}")
            page.keyboard.press("Escape")
        # digits answer the signals in the order the page shows them
        for fieldset in page.locator("fieldset.signal").all():
            name = fieldset.locator("legend").inner_text().split()[0]
            key = str(quality) if name == "quality" else ("1" if helpful else "0")
            page.keyboard.press(key)
            assert fieldset.locator(f'input[value="{key}"]').is_checked()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url.endswith("?done=saved"), page.url
        done += 1
        assert page.locator("#progress-done").inner_text() == str(done)
    assert page.dialogs == []
    return {"done": done, "skipped": skipped}


def test_a_campaign_by_disagreement_worked_by_three_raters_then_its_agreement_page(
        page: Any, server: tuple[str, Lab]) -> None:  # noqa: F811
    base, lab = server
    campaign_id = _create_campaign_through_the_form(page, base)
    work = f"/projects/lab/campaigns/{campaign_id}/work"

    # ann sees the guideline (collapsible, its planted script inert) and the shortcuts
    _sign_in(page, base, work, "ann")
    guideline = page.locator("#guideline")
    assert not guideline.locator(".markdown").first.is_visible()
    page.keyboard.press("g")
    assert guideline.locator("h1", has_text="Quality").is_visible()
    assert XSS in guideline.inner_text()
    assert guideline.locator("a", has_text="click me").count() == 0  # javascript: link
    page.keyboard.press("g")
    assert "Enter" in page.locator("#shortcuts").inner_text()
    assert page.locator("main img").count() == 0

    counts = {rater: _work(page, base, work, rater) for rater in ("ann", "bob", "cat")}
    assert counts == {"ann": {"done": 8, "skipped": 0}, "bob": {"done": 7, "skipped": 1},
                      "cat": {"done": 8, "skipped": 0}}
    with lab.store.read() as conn:
        camp = get_campaign(conn, lab.project, campaign_id)
    rows = list(export_campaign(lab.store, lab.project, camp))
    skips = [r for r in rows if r["signal"] is None]
    assert [(r["rater"], r["skip_reason"]) for r in skips] == [
        ("bob", "not sure what the user asked")]
    corrected = [r for r in rows if r["correction"]]
    assert len(corrected) == 1 and corrected[0]["rater"] == "ann"
    assert "long and correct" in corrected[0]["correction"]
    assert corrected[0]["comment"] == f"hard one {XSS}"
    by_rater = {(r["rater"], r["item"], r["signal"]): r["value"] for r in rows if r["signal"]}
    for (rater, position, signal), value in by_rater.items():
        quality, helpful = answer_for(rater, position)
        assert value == (quality if signal == "quality" else helpful)

    # the maintainer reads the campaign page and runs the aggregation
    url = f"/projects/lab/campaigns/{campaign_id}"
    _sign_in(page, base, url, "mia")
    assert page.locator("#items-complete").inner_text() == "7 of 8"
    expected = project_agreement(lab.store, lab.project, "helpful", campaign=camp,
                                 window=5, min_items=5)
    alpha, (lo, hi) = expected["krippendorff_alpha"], expected["alpha_ci95"]
    k = [s["signal"] for s in camp.signals].index("helpful") + 1  # the section's number
    section = page.locator('section[data-signal="helpful"]')
    assert section.locator(f"#alpha-{k}").inner_text() == f"{alpha:.3f}"
    assert f"[{lo:.3f}, {hi:.3f}]" in section.locator(f"#agreement-{k} tr.alpha").inner_text()
    drifting = {r["rater"] for r in expected["raters"] if r["drift"]}
    assert drifting == {"cat"}
    assert section.locator(f'#raters-{k} tr[data-rater="cat"] .drift').inner_text() \
        .startswith("drift")
    assert section.locator(f'#raters-{k} tr[data-rater="ann"] .drift').inner_text() == "ok"
    plot = section.locator("svg.chart.drift")
    assert plot.locator("g.rater").count() == 3
    assert plot.locator("g.rater.drifting").get_attribute("data-rater") == "cat"
    assert plot.locator("line.threshold").count() == 1
    assert section.locator(f"#no-aggregation-{k}").is_visible()

    section.get_by_role("button", name="Run aggregation").click()
    page.wait_for_url(f"{base}{url}#labels-helpful")
    with lab.store.read() as conn:
        latest = latest_aggregation(conn, lab.project, "helpful", campaign=camp)
    assert latest is not None and latest["method"] == "dawid-skene"
    section = page.locator('section[data-signal="helpful"]')
    rows_shown = section.locator(f"#labels-table-{k} tbody tr")
    assert rows_shown.count() == len(latest["labels"]) == 8
    first = latest["labels"][0]
    row = section.locator(f'#labels-table-{k} tr[data-interaction="{first["interaction"]}"]')
    assert row.locator("td.confidence").inner_text() == f"{first['confidence']:.3f}"
    page.screenshot(path=str(SCREENSHOTS / "fl-campaign.png"), full_page=True)
    page.wait_for_timeout(300)  # give a planted handler time to fire
    assert page.dialogs == []


def test_pairwise_side_by_side_with_the_keyboard(
        page: Any, server: tuple[str, Lab]) -> None:  # noqa: F811
    base, lab = server
    camp = campaign(lab, name="pairs", signals=["pref"], raters=["ann"], overlap=1,
                    budget=N_PAIRS, policy="random", options={"versions": ["v1", "v2"]},
                    seed=1)
    work = f"/projects/lab/campaigns/{camp.id}/work"
    _sign_in(page, base, work, "ann")
    keys = ["a", "ArrowRight", "t", "b", "ArrowLeft", "a"]
    chosen = {"a": "left", "ArrowLeft": "left", "b": "right", "ArrowRight": "right",
              "t": "tie"}
    pressed = []
    for key in keys:
        left, right = page.locator("#left"), page.locator("#right")
        lbox, rbox = left.bounding_box(), right.bounding_box()
        assert lbox["x"] + lbox["width"] <= rbox["x"] and abs(lbox["y"] - rbox["y"]) < 2
        shown = (left.get_attribute("data-interaction"), right.get_attribute("data-interaction"))
        assert left.locator(".output").inner_text().startswith(shown[0][-2:])
        aid = int(page.locator("#item").get_attribute("data-assignment"))
        page.keyboard.press(key)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        pressed.append((aid, chosen[key], shown))
    assert page.locator("#queue-done").is_visible()
    rows = {r["assignment"]: r for r in export_campaign(lab.store, lab.project, camp)}
    swaps = set()
    for aid, side, (left_id, right_id) in pressed:
        row = rows[aid]
        swaps.add(row["swapped"])
        # the recorded order is the order shown: b on the left when swapped
        assert (row["interaction_b"], row["interaction"]) == (left_id, right_id) \
            if row["swapped"] else (row["interaction"], row["interaction_b"]) == (left_id,
                                                                                right_id)
        expected = {"tie": "tie", "left": "b" if row["swapped"] else "a",
                    "right": "a" if row["swapped"] else "b"}[side]
        assert row["value"] == expected, (side, row)
    assert swaps == {True, False}
    assert page.dialogs == []


def test_the_workspace_works_without_its_script(
        page: Any, server: tuple[str, Lab]) -> None:  # noqa: F811
    base, lab = server
    camp = campaign(lab, name="plain", raters=["ann"], overlap=1, budget=3)
    page.route("**/static/workspace.js", lambda route: route.abort())
    work = f"/projects/lab/campaigns/{camp.id}/work"
    _sign_in(page, base, work, "ann")
    page.keyboard.press("g")  # no script: the key does nothing
    assert not page.locator("#guideline .markdown").first.is_visible()
    answered = []
    for _ in range(2):
        position = int(page.locator("#item").get_attribute("data-position"))
        quality, helpful = answer_for("ann", position)
        page.locator('fieldset.signal[data-type="ordinal"] label.choice',
                     has_text=str(quality)).first.click()
        page.locator('fieldset.signal[data-type="binary"] label.choice',
                     has_text="yes" if helpful else "no").click()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url(f"{base}{work}?done=saved")
        answered.append((position, quality, helpful))
    page.locator("#reason").fill("cannot judge")
    page.get_by_role("button", name="Skip", exact=True).click()
    page.wait_for_url(f"{base}{work}?done=skipped")
    assert page.locator("#queue-done").is_visible()
    rows = list(export_campaign(lab.store, lab.project, camp))
    got = {(r["item"], r["signal"]): r["value"] for r in rows if r["signal"]}
    assert got == {**{(p, "quality"): q for p, q, _ in answered},
                   **{(p, "helpful"): h for p, _, h in answered}}
    assert [r["skip_reason"] for r in rows if r["signal"] is None] == ["cannot judge"]
