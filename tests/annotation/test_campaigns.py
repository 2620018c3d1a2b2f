"""Campaigns on SQLite and PostgreSQL: the spec's checks (each naming its field), the
guideline versions a campaign records, raters and their roles, listing and closing,
status counts and the export rows."""

from __future__ import annotations

from typing import Any

import pytest

from feedbackloop.access.service import create_user, grant
from feedbackloop.annotation.assignment import next_item, skip, submit
from feedbackloop.annotation.campaigns import (
    CampaignSpec,
    campaign_status,
    close_campaign,
    create_campaign,
    export_campaign,
    get_campaign,
    list_campaigns,
    parse_spec,
)
from feedbackloop.annotation.guidelines import create_guideline
from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .campaign_data import add_feedback, add_interactions, make_project


def _spec(**kw: Any) -> CampaignSpec:
    base: dict[str, Any] = {"name": "c", "signals": ["quality"], "raters": ["ann", "bob"],
                            "budget": 5}
    base.update(kw)
    return CampaignSpec(**base)


def test_bad_specs_name_the_field(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    create_user(store, "vic", "password-123")
    grant(store, "vic", project.id, "viewer")
    create_user(store, "out", "password-123")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": "has space"}, "name", "campaign name"),
        ({"signals": []}, "signals", "at least one signal"),
        ({"signals": ["quality", "quality"]}, "signals", "named twice"),
        ({"signals": ["quality", "pref"]}, "signals", "pairwise signal is annotated alone"),
        ({"raters": []}, "raters", "at least one rater"),
        ({"raters": ["ann", "ann"]}, "raters", "named twice"),
        ({"raters": ["vic"]}, "raters", "has role 'viewer'"),
        ({"raters": ["out"]}, "raters", "is not a member"),
        ({"budget": 0}, "budget", "between 1 and 1,000,000"),
        ({"budget": 1_000_001}, "budget", "between 1 and 1,000,000"),
        ({"overlap": 3}, "overlap", "number of raters (2)"),
        ({"overlap": 0}, "overlap", "between 1"),
        ({"gold_rate": 0.6}, "gold_rate", "between 0 and 0.5"),
        ({"gold_rate": float("nan")}, "gold_rate", "between 0 and 0.5"),
        ({"lease_minutes": 0}, "lease_minutes", "between 1 and 10080"),
        ({"drift_threshold": 2}, "drift_threshold", "between -1 and 1"),
        ({"seed": -1}, "seed", "seed"),
        ({"policy": {}}, "policy", "name or an object"),
        ({"policy": {"random": -1}}, "policy.random", "positive"),
        ({"policy": "clever"}, "policy", "unknown selection policy"),
        ({"options": {"colour": "red"}}, "options.colour", "unknown option"),
        ({"options": {"by": ["locale"]}}, "options.by", "unknown option"),
        ({"options": {"since": "yesterday"}}, "options.since", "ISO 8601"),
        ({"options": {"since": "2025-02-01", "until": "2025-01-01"}}, "options.since",
         "before until"),
        ({"options": {"attributes": ["de"]}}, "options.attributes", "object"),
        ({"options": {"model_version": 3}}, "options.model_version", "name or a list"),
        ({"options": {"versions": ["v1", "v2"]}}, "options.versions", "pairwise"),
        ({"guideline_versions": {"thumbs": 1}}, "guideline_versions.thumbs",
         "not a signal of the campaign"),
    ]
    for change, field, words in cases:
        with pytest.raises(InvalidInput) as exc:
            create_campaign(store, project, _spec(**change))
        assert exc.value.field == field, (change, exc.value.field, exc.value.message)
        assert words in exc.value.message, (change, exc.value.message)
    with pytest.raises(NotFound) as nf:
        create_campaign(store, project, _spec(signals=["missing"]))
    assert nf.value.details["field"] == "signals"
    with pytest.raises(NotFound) as nf:
        create_campaign(store, project, _spec(raters=["nobody"]))
    assert nf.value.details["field"] == "raters"
    with pytest.raises(NotFound) as nf:
        create_campaign(store, project, _spec(guideline_versions={"quality": 4}))
    assert nf.value.details["field"] == "guideline_versions.quality"
    assert list_campaigns_names(store, project) == []


def list_campaigns_names(store: Store, project: Any) -> list[str]:
    with store.read() as conn:
        return [c.name for c in list_campaigns(conn, project)]


def test_parse_spec_turns_validation_errors_into_invalid_input() -> None:
    spec = parse_spec({"name": "c", "signals": ["q"], "raters": ["a"], "budget": 3,
                       "policy": {"random": 1, "recheck": 2}})
    assert spec.policy == {"random": 1, "recheck": 2} and spec.overlap == 1
    for data, field in (({"name": "c", "signals": ["q"], "raters": ["a"], "budget": "x"},
                         "budget"),
                        ({"name": "c", "signals": ["q"], "raters": ["a"], "budget": 3,
                          "colour": 1}, "colour"),
                        ({"signals": ["q"], "raters": ["a"], "budget": 3}, "name"),
                        ({"name": "c", "signals": ["q"], "raters": ["a"], "budget": 3,
                          "kind": "party"}, "kind")):
        with pytest.raises(InvalidInput) as exc:
            parse_spec(data)
        assert exc.value.field == field
    with pytest.raises(InvalidInput):
        parse_spec(["not", "an", "object"])


def test_a_campaign_records_its_guideline_versions(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    create_guideline(store, project, "quality", "second text")
    calls: list[tuple[str, int, int]] = []
    latest = create_campaign(store, project, _spec(name="latest", signals=["quality",
                                                                           "thumbs"]),
                             created_by="lead", progress=lambda *a: calls.append(a))
    assert [(s["signal"], s["guideline_version"], s["type"]) for s in latest.signals] == [
        ("quality", 2, "ordinal"), ("thumbs", 1, "binary")]
    # checking, gold, one ranking (random), writing, then done
    assert [c[0] for c in calls] == ["checking the spec", "finding gold items",
                                     "ranking by random", "writing 5 items", "done"]
    assert [c[1] for c in calls] == [0, 1, 2, 3, 4] and {c[2] for c in calls} == {4}
    assert latest.created_by == "lead" and latest.policy == {"random": 1.0}
    pinned = create_campaign(store, project, _spec(name="pinned",
                                                   guideline_versions={"quality": 1}))
    assert pinned.signals[0]["guideline_version"] == 1
    item = next_item(store, project, pinned, "ann")
    assert item is not None and item.signals[0]["guideline_version"] == 1
    out = submit(store, project, pinned, "ann", item.assignment_id, {"quality": 2},
                 settings=settings)
    rows = list(export_campaign(store, project, pinned))
    assert rows[0]["guideline_version"] == "1"
    assert out["feedback"] == [f"campaign-{pinned.id}-a{item.assignment_id}-quality"]
    # a project without a guideline on the signal cannot start a campaign on it
    bare = make_project(store, settings, n=3, name="bare", raters=())
    from feedbackloop.capture.projects import create_signal
    from feedbackloop.capture.schema import SignalIn

    create_signal(store, bare, SignalIn(name="fresh", type="binary"))
    grant(store, "ann", bare.id, "maintainer")
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, bare, _spec(signals=["fresh"], raters=["ann"]))
    assert exc.value.field == "guideline_versions" and "no guideline" in exc.value.message


def test_get_list_close_and_names_taken(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    first = create_campaign(store, project, _spec(name="first"))
    second = create_campaign(store, "shop", _spec(name="2024"))
    with store.read() as conn:
        assert get_campaign(conn, project, "first").id == first.id
        assert get_campaign(conn, project, first.id).name == "first"
        assert get_campaign(conn, project, str(first.id)).name == "first"
        assert get_campaign(conn, project, "2024").id == second.id  # a name before an id
        assert [c.name for c in list_campaigns(conn, project)] == ["2024", "first"]
        with pytest.raises(NotFound) as nf:
            get_campaign(conn, project, "third")
        assert nf.value.details["field"] == "campaign"
    with pytest.raises(Conflict) as exc:
        create_campaign(store, project, _spec(name="first"))
    assert exc.value.details["field"] == "name"
    closed = close_campaign(store, project, "first")
    assert closed.status == "closed" and closed.closed_at is not None
    assert closed.to_dict()["status"] == "closed"
    with pytest.raises(Conflict):
        close_campaign(store, project, first)


def test_status_counts_and_export_rows(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=20)
    add_feedback(store, settings, project, [
        {"id": f"x{j}-{k}", "interaction_id": f"i{k:03d}", "signal": "quality",
         "value": 4, "source": "expert", "rater_id": f"x{j}"}
        for k in (18, 19) for j in range(2)])
    camp = create_campaign(store, project, _spec(
        budget=4, overlap=2, gold_rate=0.5, policy={"random": 1, "stratified": 1},
        options={"by": ["model_version"]}, seed=2))
    served = []
    for rater in ("ann", "bob"):
        for _ in range(3):
            item = next_item(store, project, camp, rater)
            assert item is not None
            served.append((rater, item))
            submit(store, project, camp, rater, item.assignment_id, {"quality": 4},
                   correction="fixed" if rater == "bob" else None, settings=settings)
    extra = next_item(store, project, camp, "ann")
    assert extra is not None
    skip(store, project, camp, "ann", extra.assignment_id, "duplicate question")
    held = next_item(store, project, camp, "bob")
    assert held is not None
    status = campaign_status(store, project, camp)
    assert status["items"] == 4 and status["gold_items"] == 2
    assert status["by_policy"] == {"random": 2, "stratified": 2}
    assert status["assignments"]["done"] == 6 and status["assignments"]["skipped"] == 1
    assert status["assignments"]["leased"] == 1
    per = {r["rater"]: r for r in status["raters"]}
    gold_ids = {i.item_id for _r, i in served} - {
        i.item_id for _r, i in served if i.interaction["id"] not in ("i018", "i019")}
    for rater in ("ann", "bob"):
        seen = sum(1 for r, i in served if r == rater and i.item_id in gold_ids)
        assert per[rater]["gold_seen"] == seen and per[rater]["gold_correct"] == seen
        assert per[rater]["done"] == 3 - seen
    assert per["ann"]["skipped"] == 1 and per["bob"]["leased"] == 1
    regular_done = sum(1 for _r, i in served if i.item_id not in gold_ids)
    assert status["labels_done"] == regular_done and status["labels_needed"] == 8
    assert status["progress"] == round(regular_done / 8, 4)
    rows = list(export_campaign(store, project, camp))
    assert len(rows) == 7
    assert [r["item"] for r in rows] == sorted(r["item"] for r in rows)
    skips = [r for r in rows if r["signal"] is None]
    assert len(skips) == 1 and skips[0]["skip_reason"] == "duplicate question"
    assert skips[0]["rater"] == "ann" and skips[0]["value"] is None
    gold_rows = [r for r in rows if r["is_gold"]]
    assert all(r["gold_value"] == 4 and r["policy"] == "gold" for r in gold_rows)
    assert all(r["correction"] == "fixed" for r in rows if r["rater"] == "bob")
    assert {r["policy"] for r in rows if not r["is_gold"]} <= {"random", "stratified"}
    assert all(r["finished_at"] >= r["leased_at"] for r in rows)


def test_pairwise_export_records_both_interactions_and_the_side(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=0)
    add_interactions(store, settings, project, 8, same_input=True)
    camp = create_campaign(store, project, _spec(signals=["pref"], budget=4, seed=1))
    sides = {}
    for _ in range(4):
        item = next_item(store, project, camp, "ann")
        assert item is not None and item.interaction_b is not None
        sides[item.interaction["id"]] = (item.interaction_b["id"], item.swapped)
        submit(store, project, camp, "ann", item.assignment_id, {"pref": "left"},
               settings=settings)
    rows = list(export_campaign(store, project, camp))
    assert len(rows) == 4
    for r in rows:
        b, swapped = sides[r["interaction"]]
        assert r["interaction_b"] == b and r["swapped"] == swapped
        assert r["value"] == ("b" if swapped else "a")
