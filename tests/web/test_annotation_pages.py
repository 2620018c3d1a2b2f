"""The Annotate stage over HTTP on SQLite and PostgreSQL: the campaign list, the form that
creates a campaign, the campaign page (agreement, drift, aggregated labels), guidelines,
the annotator workspace as a plain form (no scripts), and the JSON API; with permissions
by role and campaign, escaping of hostile text, and no server error on bad input.

The data are made by the real services: interactions and feedback through the ingest
path (a metric signal as source "automated"), guidelines, campaigns and annotations
through :mod:`feedbackloop.annotation`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from feedbackloop.access import create_token, create_user, grant
from feedbackloop.annotation.aggregate import latest_aggregation
from feedbackloop.annotation.assignment import next_item, submit
from feedbackloop.annotation.campaigns import (
    CampaignSpec,
    create_campaign,
    export_campaign,
    get_campaign,
)
from feedbackloop.annotation.guidelines import create_guideline, list_guidelines
from feedbackloop.annotation.reliability import project_agreement
from feedbackloop.capture.browse import list_feedback
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.annotation_pages import answers_from, drift_window
from feedbackloop.web.app import create_app

from .test_pages import PASSWORD, XSS, _client, _csrf, _sign_in

JS_LINK = "[click me](javascript:alert(3))"
N_ITEMS = 40
N_PAIRS = 6


@dataclass
class Lab:
    store: Store
    settings: Settings
    project: Project
    user_ids: dict[str, int]


def answer_for(rater: str, position: int) -> tuple[int, bool]:
    """What each simulated rater answers on an item (quality 1-5, helpful): ann and bob
    agree on everything; cat agrees on quality of even items only and on helpful of every
    third item only, so cat drifts."""
    quality = 1 + position % 5
    helpful = quality >= 3
    if rater == "cat":
        if position % 2:
            quality = 6 - quality
        if position % 3 != 0:
            helpful = not helpful
    return quality, helpful


def seed(store: Store, settings: Settings) -> Lab:
    """Project "lab": interactions q0..q39 (v1) with a metric ``judge`` (automated) and an
    end-user ``helpful`` on each, so human and metric disagree on some; pairs p0..p5 with
    the same input from v1 and v2; hostile text in one interaction. Users: mia
    (maintainer), ann, bob, cat, out (annotators), vic (viewer). Guidelines for quality and
    helpful (with a planted script and a javascript: link)."""
    project = create_project(store, "lab", description="Annotation lab")
    for spec in (SignalIn(name="quality", type="ordinal", scale_min=1, scale_max=5),
                 SignalIn(name="helpful", type="binary"),
                 SignalIn(name="judge", type="numeric", scale_min=0, scale_max=1),
                 SignalIn(name="pref", type="pairwise")):
        create_signal(store, project, spec)
    records: list[dict[str, Any]] = [
        {"id": f"q{k}", "input": f"question {k}",
         "output": f"The answer to question {k} is short and clear.", "model_version": "v1",
         "context": {"doc": f"doc {k}"}} for k in range(N_ITEMS)]
    records[7] = {**records[7], "input": f"question 7 {XSS}", "output": f"answer {XSS}",
                  "context": {"doc": XSS}}
    for j in range(N_PAIRS):
        for version in ("v1", "v2"):
            records.append({"id": f"p{j}-{version}", "input": f"pair question {j}",
                            "output": f"{version} says answer {j}", "model_version": version})
    ing = Ingestor(store, settings, project)
    assert ing.interactions(records).rejected == 0
    fb = [{"id": f"judge-{k}", "interaction_id": f"q{k}", "signal": "judge",
           "value": round(k / N_ITEMS, 3), "source": "automated"} for k in range(N_ITEMS)]
    fb += [{"id": f"thumb-{k}", "interaction_id": f"q{k}", "signal": "helpful",
            "value": k % 2 == 0, "source": "end_user"} for k in range(N_ITEMS)]
    assert ing.feedback(fb).rejected == 0
    ids = {}
    for name, role in (("mia", "maintainer"), ("ann", "annotator"), ("bob", "annotator"),
                       ("cat", "annotator"), ("out", "annotator"), ("vic", "viewer")):
        ids[name] = create_user(store, name, PASSWORD)
        grant(store, name, project.id, role)
    create_guideline(store, project, "quality",
                     f"# Quality\n\nRate the answer. {XSS}\n\n{JS_LINK}\n\n**Be strict.**",
                     [{"value": 1, "label": "poor", "description": "wrong or off topic",
                       "examples": [f"an example {XSS}"]},
                      {"value": 5, "label": "excellent", "description": "right and clear",
                       "examples": ["The answer is right."]}],
                     note="first", created_by="mia")
    create_guideline(store, project, "helpful", "Would this answer help the user?",
                     [{"value": True, "label": "helps"}, {"value": False, "label": "no"}],
                     created_by="mia")
    create_guideline(store, project, "pref", "Which answer is better?", [], created_by="mia")
    return Lab(store, settings, project, ids)


def campaign(lab: Lab, name: str = "c1", **changes: Any) -> Any:
    spec = {"name": name, "signals": ["quality", "helpful"], "raters": ["ann", "bob", "cat"],
            "budget": 8, "overlap": 3, "policy": "disagreement",
            "options": {"metric": "judge", "human": "helpful"}, **changes}
    return create_campaign(lab.store, lab.project, CampaignSpec(**spec), created_by="mia")


def work_all(lab: Lab, camp: Any, rater: str, comment: str | None = None) -> int:
    """The rater answers every item left for them through the service."""
    n = 0
    while (item := next_item(lab.store, lab.project, camp, rater)) is not None:
        quality, helpful = answer_for(rater, item.position)
        submit(lab.store, lab.project, camp, rater, item.assignment_id,
               {"quality": quality, "helpful": helpful}, comment=comment)
        n += 1
    return n


@pytest.fixture
def lab(store: Store, settings: Settings) -> Lab:
    return seed(store, settings)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def client(lab: Lab, portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(lab.settings, lab.store), portal) as c:
        yield c


def _as(client: httpx.Client, name: str) -> httpx.Client:
    client.cookies.clear()
    return _sign_in(client, name)


def _errors(page: str) -> str:
    """The page's error box, as text, for assertion messages."""
    found = re.search(r'id="errors">(.*?)</div>', page, re.S)
    return _text(found.group(1)) if found else "(no error box)"


def _text(page: str) -> str:
    """The page with tags removed, entities as they read."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", page))


# -- permissions -------------------------------------------------------------------------
def test_who_may_do_what(client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab)
    work = f"/projects/lab/campaigns/{camp.id}/work"

    _as(client, "ann")  # an annotator: works her queue, may not create campaigns
    page = client.get("/projects/lab/annotate")
    assert page.status_code == 200
    assert 'id="new-campaign"' not in page.text
    assert f'href="/projects/lab/campaigns/{camp.id}/work">Start</a>' in page.text
    assert client.get("/projects/lab/campaigns/new").status_code == 403
    r = client.post("/projects/lab/campaigns/new", data={
        "csrf": _csrf(page.text), "name": "sneaky", "signals": "quality", "raters": "ann",
        "budget": "2", "weight_random": "1"})
    assert r.status_code == 403
    assert client.get(work).status_code == 200
    assert client.get(f"/projects/lab/campaigns/{camp.id}/export").status_code == 403
    r = client.post(f"/projects/lab/campaigns/{camp.id}/aggregate", data={
        "csrf": _csrf(page.text), "signal": "helpful", "method": "majority"})
    assert r.status_code == 403
    r = client.post("/projects/lab/signals/quality/guidelines", data={
        "csrf": _csrf(page.text), "body": "mine now"})
    assert r.status_code == 403
    with lab.store.read() as conn:
        assert len(list_guidelines(conn, lab.project, "quality")) == 1

    _as(client, "out")  # an annotator who is not a rater of this campaign
    r = client.get(work)
    assert r.status_code == 403
    assert "is not a rater of campaign" in _text(r.text)
    page = client.get("/projects/lab/annotate")
    assert f"{camp.id}/work" not in page.text  # no queue offered

    _as(client, "vic")  # a viewer reads, never annotates
    assert client.get(f"/projects/lab/campaigns/{camp.id}").status_code == 200
    r = client.get(work)
    assert r.status_code == 403 and "may not annotate" in _text(r.text)
    r = client.post(work, data={"csrf": _csrf(page.text), "assignment": "1",
                                "answer-0": "3", "answer-1": "1"})
    assert r.status_code == 403

    client.cookies.clear()  # signed out: to the sign-in page and back
    r = client.get(work)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in?next=")


def test_a_project_outside_the_users_reach_answers_like_a_missing_one(
        client: httpx.Client, lab: Lab, store: Store) -> None:
    other = create_project(store, "elsewhere")
    create_signal(store, other, SignalIn(name="quality", type="binary"))
    _as(client, "ann")
    for path in ("/projects/elsewhere/annotate", "/projects/elsewhere/campaigns/1",
                 "/projects/elsewhere/signals/quality/guidelines",
                 "/projects/lab/campaigns/999", "/projects/lab/campaigns/99999999999",
                 "/projects/lab/campaigns/0/work", "/projects/lab/signals/nope/guidelines"):
        assert client.get(path).status_code == 404, path


# -- the campaign form ----------------------------------------------------------------------
def test_a_maintainer_creates_a_campaign_by_disagreement_through_the_form(
        client: httpx.Client, lab: Lab) -> None:
    _as(client, "mia")
    page = client.get("/projects/lab/annotate")
    assert 'id="new-campaign"' in page.text
    assert re.search(r'href="/projects/lab/annotate"\s+class="current"', page.text)
    form = client.get("/projects/lab/campaigns/new")
    assert form.status_code == 200
    for rater in ("ann", "bob", "cat", "mia", "out"):
        assert f'name="raters" value="{rater}"' in form.text
    assert 'name="raters" value="vic"' not in form.text  # a viewer may not annotate
    r = client.post("/projects/lab/campaigns/new", data={
        "csrf": _csrf(form.text), "name": "by-disagreement", "kind": "standard",
        "signals": ["quality", "helpful"], "raters": ["ann", "bob", "cat"],
        "budget": "8", "overlap": "3", "gold_rate": "0", "lease_minutes": "30",
        "drift_threshold": "0.6", "seed": "0", "weight_disagreement": "1",
        "dis_metric": "judge", "dis_human": "helpful"})
    assert r.status_code == 303, _text(r.text)[:500]
    with lab.store.read() as conn:
        made = get_campaign(conn, lab.project, "by-disagreement")
    assert r.headers["location"] == f"/projects/lab/campaigns/{made.id}"
    assert made.policy == {"disagreement": 1.0}
    assert made.options["metric"] == "judge" and made.options["human"] == "helpful"
    assert made.raters == ["ann", "bob", "cat"] and made.overlap == 3
    assert [s["guideline_version"] for s in made.signals] == [1, 1]
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    text = _text(page.text)
    assert "0 of 8 items" in text and "disagreement 8" in text
    assert "n/a: no ratings from annotators or experts" in text
    listing = client.get("/projects/lab/annotate").text
    assert f'href="/projects/lab/campaigns/{made.id}">by-disagreement</a>' in listing


BAD_CAMPAIGN_FORMS: list[tuple[dict[str, Any], str]] = [
    ({"name": ""}, "give the campaign a name"),
    ({"name": "bad name!"}, "campaign name must be"),
    ({"name": "x\x00"}, "NUL"),
    ({"signals": []}, "choose at least one signal"),
    ({"signals": ["nope"]}, "nope"),
    ({"raters": []}, "choose at least one rater"),
    ({"raters": ["vic"], "overlap": "1"}, "vic"),
    ({"budget": "lots"}, "the budget must be a whole number"),
    ({"budget": "0"}, "the budget must be between 1 and 1,000,000"),
    ({"budget": "9" * 40}, "the budget must be"),
    ({"overlap": "9"}, "overlap must be between 1 and the number of raters"),
    ({"gold_rate": "nan"}, "the gold rate must be a finite number"),
    ({"gold_rate": "0.9"}, "gold_rate"),
    ({"weight_disagreement": "", "weight_random": ""}, "give at least one selection policy"),
    ({"weight_disagreement": "-1"}, "must not be negative"),
    ({"dis_metric": "nope"}, "nope"),
    ({"dis_kind": "human-metric", "dis_metric": ""}, "option kind human-metric needs"),
    ({"dis_kind": "sideways"}, "option kind must be"),
    ({"seed": "-3"}, "the seed must be between"),
    ({"drift_threshold": "high"}, "the drift threshold must be a number"),
]


def test_bad_campaign_forms_are_explained_never_a_server_error(
        client: httpx.Client) -> None:
    _as(client, "mia")
    form = client.get("/projects/lab/campaigns/new")
    base = {"csrf": _csrf(form.text), "name": "ok", "signals": ["quality"],
            "raters": ["ann", "bob"], "budget": "4", "overlap": "2",
            "weight_disagreement": "1", "dis_metric": "judge", "dis_human": "helpful"}
    for changes, words in BAD_CAMPAIGN_FORMS:
        data = {**base, **changes}
        r = client.post("/projects/lab/campaigns/new", data=data)
        assert r.status_code == 422, (changes, r.status_code)
        assert words in _text(r.text), (changes, _errors(r.text))
        assert 'id="campaign-form"' in r.text  # the form again, with the choices kept
    r = client.post("/projects/lab/campaigns/new", data={**base, "csrf": "forged"})
    assert r.status_code == 403


# -- the workspace without scripts ------------------------------------------------------------
def test_the_workspace_works_as_a_plain_form(client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab)
    work = f"/projects/lab/campaigns/{camp.id}/work"
    _as(client, "ann")
    page = client.get(work)
    assert page.status_code == 200
    text = page.text
    assert 'id="guideline"' in text and "<h1>Quality</h1>" in text
    assert "<strong>Be strict.</strong>" in text
    for key in ("<kbd>1</kbd>", "<kbd>5</kbd>", "<kbd>0</kbd>", "<kbd>Enter</kbd>",
                "<kbd>s</kbd>"):
        assert key in text, key
    assert '/static/workspace.js' in text
    assert "0</strong> done" in text and "8</span> left" in text
    assert re.search(r'id="lease">held for you until \d\d:\d\d UTC<', text)
    position = int(re.search(r'data-position="(\d+)"', text).group(1))  # type: ignore[union-attr]
    assignment = re.search(r'name="assignment" value="(\d+)"', text).group(1)  # type: ignore[union-attr]
    # nothing chosen: the same item again, with the message
    r = client.post(work, data={"csrf": _csrf(text), "assignment": assignment,
                                "answer-1": "1"})
    assert r.status_code == 422 and "choose a value for quality" in _text(r.text)
    assert f'name="assignment" value="{assignment}"' in r.text
    quality, helpful = answer_for("ann", position)
    r = client.post(work, data={"csrf": _csrf(text), "assignment": assignment,
                                "answer-0": str(quality), "answer-1": "1" if helpful else "0",
                                "correction": "The answer is long and unclear.",
                                "comment": f"see {XSS}"})
    assert r.status_code == 303 and r.headers["location"] == f"{work}?done=saved"
    page = client.get(r.headers["location"])
    assert "Saved. Here is the next item." in page.text
    assert "1</strong> done" in page.text
    assert f'name="assignment" value="{assignment}"' not in page.text  # the next item
    with lab.store.read() as conn:
        stored = list_feedback(conn, lab.project.id, limit=10, source="annotator").items
    assert {(f.signal, f.rater_id, f.guideline_version) for f in stored} == {
        ("quality", "ann", "1"), ("helpful", "ann", "1")}
    first = next(f for f in stored if f.signal == "quality")
    assert first.value == quality and first.correction == "The answer is long and unclear."
    assert first.comment == f"see {XSS}"
    # the same assignment again: a clear conflict, the next item still offered
    r = client.post(work, data={"csrf": _csrf(text), "assignment": assignment,
                                "answer-0": "3", "answer-1": "1"})
    assert r.status_code in (404, 409) and "assignment" in _text(r.text)
    # skip with a reason; a skip without one is refused
    text = page.text
    nxt = re.search(r'name="assignment" value="(\d+)"', text).group(1)  # type: ignore[union-attr]
    r = client.post(work, data={"csrf": _csrf(text), "assignment": nxt, "action": "skip",
                                "reason": "  "})
    assert r.status_code == 422 and "say why you skip" in _text(r.text)
    r = client.post(work, data={"csrf": _csrf(text), "assignment": nxt, "action": "skip",
                                "reason": "not my language"})
    assert r.status_code == 303 and r.headers["location"].endswith("?done=skipped")
    rows = [row for row in export_campaign(lab.store, lab.project, camp)
            if row["rater"] == "ann" and row["signal"] is None]
    assert [row["skip_reason"] for row in rows] == ["not my language"]
    # bad posts never crash
    for data in ({"assignment": "abc"}, {"assignment": "99999999999999999999999"},
                 {"assignment": "424242", "answer-0": "3", "answer-1": "1"},
                 {"assignment": nxt, "answer-0": "9", "answer-1": "1"},
                 {"assignment": nxt, "answer-0": "3\x00", "answer-1": "1"},
                 {"assignment": nxt, "answer-0": "3", "answer-1": "1", "comment": "a\x00"}):
        r = client.post(work, data={"csrf": _csrf(text), **data})
        assert 400 <= r.status_code < 500, (data, r.status_code)
    r = client.post(work, data={"csrf": "forged", "assignment": nxt, "answer-0": "3",
                                "answer-1": "1"})
    assert r.status_code == 403


def test_a_finished_queue_says_so(client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab, budget=2, overlap=1, raters=["ann"])
    assert work_all(lab, camp, "ann") == 2
    _as(client, "ann")
    page = client.get(f"/projects/lab/campaigns/{camp.id}/work")
    assert page.status_code == 200 and 'id="queue-done"' in page.text
    assert "2</strong> done" in page.text
    listing = client.get("/projects/lab/annotate").text
    assert "finished" in listing


def test_pairwise_items_show_side_by_side_and_left_follows_the_recorded_swap(
        client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab, name="pairs", signals=["pref"], raters=["ann"], overlap=1,
                    budget=N_PAIRS, policy="random", options={"versions": ["v1", "v2"]},
                    seed=1)
    work = f"/projects/lab/campaigns/{camp.id}/work"
    _as(client, "ann")
    seen_swapped = set()
    for _ in range(N_PAIRS):
        page = client.get(work)
        text = page.text
        assert 'id="pair"' in text and "<kbd>a</kbd>" in text and "<kbd>→</kbd>" in text
        left = re.search(r'id="left" data-interaction="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        right = re.search(r'id="right" data-interaction="([^"]+)"', text).group(1)  # type: ignore[union-attr]
        assert {left[-2:], right[-2:]} == {"v1", "v2"} and left[:-2] == right[:-2]
        assert text.index('id="left"') < text.index('id="right"')
        assignment = re.search(r'name="assignment" value="(\d+)"', text).group(1)  # type: ignore[union-attr]
        r = client.post(work, data={"csrf": _csrf(text), "assignment": assignment,
                                    "answer-0": "left"})
        assert r.status_code == 303
        # read the export whole: a generator left half-read holds a server-side cursor
        row = next(x for x in list(export_campaign(lab.store, lab.project, camp))
                   if x["assignment"] == int(assignment))
        # "left" is the interaction shown on the left: b when swapped, else a
        shown_left = row["interaction_b"] if row["swapped"] else row["interaction"]
        assert shown_left == left
        assert row["value"] == ("b" if row["swapped"] else "a")
        seen_swapped.add(row["swapped"])
    assert seen_swapped == {True, False}  # both orders occur (seeded)
    r = client.post(work, data={"csrf": _csrf(text), "assignment": assignment,
                                "answer-0": "up"})
    assert r.status_code == 422


def test_answers_from_the_form() -> None:
    from starlette.datastructures import FormData

    signals = [{"signal": "quality", "type": "ordinal"}, {"signal": "note", "type": "text"},
               {"signal": "pref", "type": "pairwise"}]
    got = answers_from(FormData([("answer-0", " 4 "), ("answer-2", "right")]), signals)
    assert got == {"quality": "4", "pref": "right"}
    with pytest.raises(Exception, match="choose left, right or tie"):
        answers_from(FormData([("answer-0", "4"), ("answer-2", "a")]), signals)
    assert drift_window(8) == (5, 5) and drift_window(60) == (15, 15)
    assert drift_window(150) == (38, 20) and drift_window(500) == (50, 20)


# -- the campaign page ----------------------------------------------------------------------
def test_campaign_page_shows_agreement_drift_and_aggregated_labels(
        client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab)
    for rater in ("ann", "bob", "cat"):
        assert work_all(lab, camp, rater) == 8
    _as(client, "mia")
    url = f"/projects/lab/campaigns/{camp.id}"
    page = client.get(url)
    assert page.status_code == 200
    text = page.text
    assert "8 of 8" in _text(text)
    expected = project_agreement(lab.store, lab.project, "helpful", campaign=camp,
                                 window=5, min_items=5)
    alpha, (lo, hi) = expected["krippendorff_alpha"], expected["alpha_ci95"]
    section = text.split('data-signal="helpful"', 1)[1]
    assert f'id="alpha-2">{alpha:.3f}</span>' in section
    assert f"[{lo:.3f}, {hi:.3f}]" in section
    drift = {r["rater"]: r["drift"] for r in expected["raters"]}
    assert drift["cat"] and not drift["ann"] and not drift["bob"]
    assert re.search(r'data-rater="cat" class="drifting">.*?badge bad">drift', section, re.S)
    assert re.search(r'data-rater="ann" class="">.*?badge good">ok', section, re.S)
    assert section.count('class="rater series-') == 3
    assert 'class="threshold"' in section
    assert "Not aggregated yet." in section
    # run the aggregation through the button
    r = client.post(f"{url}/aggregate", data={"csrf": _csrf(text), "signal": "helpful",
                                              "method": "dawid-skene"})
    assert r.status_code == 303 and r.headers["location"] == f"{url}#labels-helpful"
    page = client.get(url).text
    with lab.store.read() as conn:
        latest = latest_aggregation(conn, lab.project, "helpful", campaign=camp)
    assert latest is not None and latest["method"] == "dawid-skene"
    section = page.split('data-signal="helpful"', 1)[1]
    table = section.split('id="labels-table-2"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr data-interaction=") == 8
    first = latest["labels"][0]
    row = table.split(f'data-interaction="{first["interaction"]}"', 1)[1].split("</tr>")[0]
    assert f'{first["confidence"]:.3f}' in row
    assert ("true" if first["value"] else "false") in row
    # an ordinal signal gets the mean
    assert '<option value="mean">mean</option>' in page.split('data-signal="quality"')[1]
    for data, words in (({"signal": "helpful", "method": "mean-ish"}, "method must be"),
                        ({"signal": "judge", "method": "mean"},
                         "choose a signal of this campaign")):
        r = client.post(f"{url}/aggregate", data={"csrf": _csrf(text), **data})
        assert r.status_code == 422 and words in _text(r.text), data
    # export and close
    r = client.get(f"{url}/export?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3 * 8 * 2
    assert {row["rater"] for row in rows} == {"ann", "bob", "cat"}
    r = client.get(f"{url}/export?format=jsonl")
    assert len(r.text.splitlines()) == 48
    assert client.get(f"{url}/export?format=xml").status_code == 422
    r = client.post(f"{url}/close", data={"csrf": _csrf(text)})
    assert r.status_code == 303
    page = client.get(url).text
    assert 'id="campaign-status">closed' in page
    _as(client, "ann")  # a closed campaign serves nothing
    page = client.get(f"{url}/work").text
    assert "This campaign is closed." in page and 'id="rate-form"' not in page


def test_calibration_campaign_lists_the_most_disagreed_items(
        client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab, name="calib", kind="calibration", budget=4, policy="random",
                    options={})
    for rater in ("ann", "bob"):
        work_all(lab, camp, rater)
    work_all(lab, camp, "cat", comment=f"**unsure** {XSS} {JS_LINK}")
    _as(client, "vic")
    page = client.get(f"/projects/lab/campaigns/{camp.id}").text
    assert 'id="calibration-1"' in page
    table = page.split('id="calibration-1"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr data-interaction=") >= 1
    assert "<strong>cat</strong>" in table
    # comments are Markdown, rendered safely
    assert "<strong>unsure</strong> &lt;script&gt;alert(1)&lt;/script&gt;" in table
    assert "<script>" not in table and 'href="javascript' not in table
    assert 'id="aggregate-1"' not in page  # a viewer gets no button


# -- guidelines and escaping ------------------------------------------------------------------
def test_guideline_page_renders_markdown_safely_and_adds_a_version(
        client: httpx.Client, lab: Lab) -> None:
    _as(client, "mia")
    url = "/projects/lab/signals/quality/guidelines"
    page = client.get(url)
    assert page.status_code == 200
    text = page.text
    body = text.split('id="guideline-body">', 1)[1].split("</div>", 1)[0]
    assert "<h1>Quality</h1>" in body and "<strong>Be strict.</strong>" in body
    assert "<script>" not in text.split("</head>", 1)[1].replace(
        '<script src="/static/filters.js" defer></script>', "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "javascript:" not in re.sub(r"\[click me\]\(javascript:alert\(3\)\)", "", body)
    assert 'href="javascript' not in text
    assert "poor" in text and "an example &lt;script&gt;" in text
    r = client.post(url, data={
        "csrf": _csrf(text), "body": "## Version two\n\nMore *examples*.", "note": "clearer",
        "rubric-0-value": "1", "rubric-0-fixed": "1", "rubric-0-label": "poor",
        "rubric-0-description": "wrong", "rubric-0-examples": "bad one\n\nworse one",
        "rubric-1-value": "2", "rubric-1-fixed": "1", "rubric-1-label": "",
        "rubric-1-description": "", "rubric-1-examples": ""})
    assert r.status_code == 303 and r.headers["location"] == url
    page = client.get(url).text
    assert "Version 2" in page and "<em>examples</em>" in page and "clearer" in page
    assert 'href="/projects/lab/signals/quality/guidelines?version=1"' in page
    old = client.get(url + "?version=1").text
    assert "<h1>Quality</h1>" in old
    for bad in ("?version=x", "?version=7", "?version=99999999999"):
        assert client.get(url + bad).status_code == 404, bad
    with lab.store.read() as conn:
        latest = list_guidelines(conn, lab.project, "quality")[0]
    assert latest.version == 2
    assert latest.rubric == [{"value": 1, "label": "poor", "description": "wrong",
                              "examples": ["bad one", "worse one"]}]
    # bad versions are explained and kept
    for data, words in (({"body": "  "}, "write the guideline text"),
                        ({"body": "x\x00"}, "NUL"),
                        ({"body": "ok", "rubric-0-value": "", "rubric-0-label": "x"},
                         "give the value"),
                        ({"body": "ok", "rubric-0-value": "9", "rubric-0-label": "x"}, "9")):
        r = client.post(url, data={"csrf": _csrf(text), **data})
        assert r.status_code == 422 and words in _text(r.text), (data, _text(r.text)[:400])


def test_hostile_text_in_items_comments_and_guidelines_is_escaped(
        client: httpx.Client, lab: Lab) -> None:
    camp = campaign(lab, name="hostile", budget=N_ITEMS, overlap=1, raters=["ann"],
                    policy="random", options={})
    _as(client, "ann")
    work = f"/projects/lab/campaigns/{camp.id}/work"
    for _ in range(N_ITEMS):
        page = client.get(work).text
        if "question 7 " in page:
            break
        assignment = re.search(r'name="assignment" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
        client.post(work, data={"csrf": _csrf(page), "assignment": assignment,
                                "action": "skip", "reason": f"later {XSS}"})
    else:
        pytest.fail("the item with hostile text was never served")
    assert XSS not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"
    assert f"question 7 {escaped}" in page and f"answer {escaped}" in page
    assert "<img" not in page and 'href="javascript' not in page
    assignment = re.search(r'name="assignment" value="(\d+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post(work, data={"csrf": _csrf(page), "assignment": assignment,
                                "answer-0": "2", "answer-1": "0", "comment": XSS,
                                "correction": JS_LINK})
    assert r.status_code == 303
    # the rater's comment is shown (escaped) where raters' work is listed
    listing = client.get("/projects/lab/feedback").text
    assert XSS not in listing and escaped.split("&lt;img")[0] in listing


# -- the JSON API ---------------------------------------------------------------------------
@pytest.fixture
def tokens(lab: Lab) -> dict[str, dict[str, str]]:
    made = {}
    for name, role in (("mia", "maintainer"), ("ann", "annotator"), ("bob", "annotator"),
                       ("vic", "viewer"), ("out", "annotator")):
        token = create_token(lab.store, project_id=lab.project.id, role=role,
                             user_id=lab.user_ids[name], name=name)
        made[name] = {"Authorization": f"Bearer {token}"}
    unbound = create_token(lab.store, project_id=lab.project.id, role="annotator")
    made["unbound"] = {"Authorization": f"Bearer {unbound}"}
    return made


def _json(r: httpx.Response) -> Any:
    return orjson.loads(r.content)


def test_api_guidelines_campaigns_queue_agreement_and_aggregation(
        client: httpx.Client, lab: Lab, tokens: dict[str, dict[str, str]]) -> None:
    api = "/api/v1/projects/lab"
    mia, ann, bob, vic = tokens["mia"], tokens["ann"], tokens["bob"], tokens["vic"]
    # guidelines
    r = client.get(f"{api}/signals/helpful/guidelines", headers=vic)
    assert r.status_code == 200 and [g["version"] for g in _json(r)["items"]] == [1]
    r = client.post(f"{api}/signals/helpful/guidelines", headers=mia, json={
        "body": "Helpful means it answers.", "rubric": [{"value": 1, "label": "yes"}],
        "note": "v2"})
    assert r.status_code == 201 and _json(r)["version"] == 2
    assert client.post(f"{api}/signals/helpful/guidelines", headers=ann,
                       json={"body": "x"}).status_code == 403
    r = client.get(f"{api}/signals/helpful/guidelines/2", headers=vic)
    assert _json(r)["rubric"][0]["label"] == "yes"
    assert client.get(f"{api}/signals/helpful/guidelines/9", headers=vic).status_code == 404
    # campaigns
    spec = {"name": "api-1", "signals": ["helpful"], "raters": ["ann", "bob"], "budget": 3,
            "overlap": 2, "policy": {"disagreement": 1},
            "options": {"metric": "judge", "human": "helpful"}}
    assert client.post(f"{api}/campaigns", headers=ann, json=spec).status_code == 403
    r = client.post(f"{api}/campaigns", headers=mia, json=spec)
    assert r.status_code == 201, r.text
    made = _json(r)
    # A token made for a user acts (and is recorded) as that user.
    assert made["signals"][0]["guideline_version"] == 2 and made["created_by"] == "mia"
    r = client.get(f"{api}/campaigns", headers=vic)
    assert [c["name"] for c in _json(r)["items"]] == ["api-1"]
    assert _json(client.get(f"{api}/campaigns/api-1", headers=vic))["id"] == made["id"]
    assert _json(client.get(f"{api}/campaigns/{made['id']}", headers=vic))["name"] == "api-1"
    # the queue: each rater through their own token
    for headers, rater in ((ann, "ann"), (bob, "bob")):
        while True:
            r = client.get(f"{api}/campaigns/api-1/next", headers=headers)
            assert r.status_code == 200, r.text
            body = _json(r)
            if body["item"] is None:
                assert body["progress"]["done"] == 3
                break
            item = body["item"]
            assert "is_gold" not in item and item["signals"][0]["name"] == "helpful"
            value = item["interaction"]["id"] != "q0" or rater == "ann"
            r = client.post(f"{api}/campaigns/api-1/assignments/{item['assignment_id']}/submit",
                            headers=headers, json={"answers": {"helpful": value},
                                                   "comment": "fine"})
            assert r.status_code == 200, r.text
            assert _json(r)["feedback"] == [
                f"campaign-{made['id']}-a{item['assignment_id']}-helpful"]
    for who in ("vic", "out", "unbound"):
        r = client.get(f"{api}/campaigns/api-1/next", headers=tokens[who])
        assert r.status_code == 403, who
        assert _json(r)["error"]["details"].get("field") in ("rater", "project", None)
    status = _json(client.get(f"{api}/campaigns/api-1/status", headers=vic))
    assert status["items_complete"] == 3 and status["progress"] == 1.0
    # agreement and aggregation
    r = client.get(f"{api}/agreement?signal=helpful&campaign=api-1", headers=vic)
    assert r.status_code == 200
    agreement = _json(r)
    assert agreement["units"] == 3 and agreement["n_raters"] == 2
    assert {x["rater"] for x in agreement["raters"]} == {"ann", "bob"}
    assert client.get(f"{api}/aggregations/latest?signal=helpful",
                      headers=vic).status_code == 404
    r = client.post(f"{api}/aggregations", headers=mia, json={
        "signal": "helpful", "method": "majority", "campaign": "api-1"})
    assert r.status_code == 201, r.text
    agg = _json(r)
    assert agg["n_items"] == 3 and all(0 <= x["confidence"] <= 1 for x in agg["labels"])
    latest = _json(client.get(f"{api}/aggregations/latest?signal=helpful&campaign=api-1",
                              headers=vic))
    assert latest["id"] == agg["id"] and len(latest["labels"]) == 3
    assert _json(client.get(f"{api}/aggregations/{agg['id']}", headers=vic))["method"] \
        == "majority"
    assert client.post(f"{api}/aggregations", headers=ann, json={
        "signal": "helpful", "method": "majority"}).status_code == 403
    # export and close
    r = client.get(f"{api}/campaigns/api-1/export?format=jsonl", headers=mia)
    rows = [orjson.loads(line) for line in r.text.splitlines()]
    assert len(rows) == 6 and {x["comment"] for x in rows} == {"fine"}
    r = client.get(f"{api}/campaigns/api-1/export?format=csv", headers=mia)
    assert r.text.splitlines()[0].startswith("campaign,item,interaction,")
    assert client.get(f"{api}/campaigns/api-1/export", headers=ann).status_code == 403
    r = client.post(f"{api}/campaigns/api-1/close", headers=mia)
    assert r.status_code == 200 and _json(r)["status"] == "closed"
    r = client.get(f"{api}/campaigns/api-1/next", headers=ann)
    assert r.status_code == 409


BAD_API_CALLS: list[tuple[str, str, Any, str]] = [
    ("post", "/campaigns", {"name": "x", "signals": ["quality"], "raters": ["ann"],
                            "budget": 0}, "budget"),
    ("post", "/campaigns", {"name": "x", "signals": ["nope"], "raters": ["ann"],
                            "budget": 2}, "signals"),
    ("post", "/campaigns", {"name": "x", "signals": ["quality"], "raters": ["ghost"],
                            "budget": 2}, "raters"),
    ("post", "/campaigns", {"name": "x\x00", "signals": ["quality"], "raters": ["ann"],
                            "budget": 2}, "name"),
    ("post", "/campaigns", {"name": "x", "signals": ["quality"], "raters": ["ann"],
                            "budget": 2, "policy": "luck"}, "policy"),
    ("post", "/campaigns", {"name": "x", "signals": ["quality"], "raters": ["ann"],
                            "budget": 2, "surprise": 1}, "surprise"),
    ("post", "/signals/quality/guidelines", {"body": "x", "rubric": [{"value": 9}]},
     "rubric"),
    ("post", "/signals/nope/guidelines", {"body": "x"}, "signal"),
    ("post", "/aggregations", {"signal": "quality", "method": "bradley-terry"}, "method"),
    ("post", "/aggregations", {"signal": "quality", "method": "mean",
                               "campaign": "none-such"}, "campaign"),
    ("get", "/agreement?signal=quality", None, "signal"),
    ("get", "/agreement?signal=quality&bogus=1", None, "bogus"),
    ("get", "/campaigns/none-such/status", None, "campaign"),
]


def test_api_bad_input_names_the_field(
        client: httpx.Client, tokens: dict[str, dict[str, str]]) -> None:
    for method, path, body, field in BAD_API_CALLS:
        url = "/api/v1/projects/lab" + path
        r = (client.post(url, headers=tokens["mia"], json=body) if method == "post"
             else client.get(url, headers=tokens["mia"]))
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
        error = _json(r)["error"]
        assert field in (error["details"].get("field") or "") or field in error["message"], \
            (path, body, error)


def test_api_submit_errors(client: httpx.Client, lab: Lab,
                           tokens: dict[str, dict[str, str]]) -> None:
    camp = campaign(lab, raters=["ann", "bob"], overlap=1, budget=2)
    api = f"/api/v1/projects/lab/campaigns/{camp.name}"
    item = _json(client.get(f"{api}/next", headers=tokens["ann"]))["item"]
    aid = item["assignment_id"]
    for answers, field in (({"quality": 9, "helpful": True}, "answers.quality"),
                           ({"helpful": True}, "answers.quality"),
                           ({"quality": 3, "helpful": True, "x": 1}, "answers.x")):
        r = client.post(f"{api}/assignments/{aid}/submit", headers=tokens["ann"],
                        json={"answers": answers})
        assert r.status_code == 422 and _json(r)["error"]["details"]["field"] == field
    r = client.post(f"{api}/assignments/{aid}/submit", headers=tokens["bob"],
                    json={"answers": {"quality": 3, "helpful": True}})
    assert r.status_code in (404, 409)  # not bob's
    r = client.post(f"{api}/assignments/{aid}/skip", headers=tokens["ann"],
                    json={"reason": ""})
    assert r.status_code == 422 and _json(r)["error"]["details"]["field"] == "reason"
    r = client.post(f"{api}/assignments/{aid}/skip", headers=tokens["ann"],
                    json={"reason": "unsure"})
    assert r.status_code == 200 and _json(r) == {"assignment": aid, "skipped": True}
    r = client.post(f"{api}/assignments/{aid}/skip", headers=tokens["ann"],
                    json={"reason": "again"})
    assert r.status_code == 409
