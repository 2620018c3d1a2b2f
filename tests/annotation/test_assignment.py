"""Assignment on SQLite and PostgreSQL: k distinct raters per item and never the same
rater twice, leases that expire and return items to the pool, concurrent raters that
never exceed k, hidden gold served at its rate, pairwise left/right, atomic submits,
skips with a reason."""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from feedbackloop.annotation.assignment import (
    WorkItem,
    next_item,
    rater_progress,
    skip,
    submit,
)
from feedbackloop.annotation.campaigns import (
    Campaign,
    CampaignSpec,
    close_campaign,
    create_campaign,
)
from feedbackloop.capture.projects import Project
from feedbackloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feedbackloop.settings import Settings
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import (
    annotation_links,
    assignments,
    campaign_items,
    feedback,
    interactions,
)

from .campaign_data import add_feedback, add_interactions, make_project


def _campaign(store: Store, project: Project, **kw: Any) -> Campaign:
    spec: dict[str, Any] = {"name": "c", "signals": ["quality"], "raters": ["ann", "bob",
                                                                            "cat"],
                            "budget": 6, "overlap": 2}
    spec.update(kw)
    return create_campaign(store, project, CampaignSpec(**spec))


def _work(store: Store, project: Project, camp: Campaign, rater: str, settings: Settings,
          value: Any = 3, **kw: Any) -> WorkItem | None:
    item = next_item(store, project, camp, rater, **kw)
    if item is not None:
        submit(store, project, camp, rater, item.assignment_id,
               {camp.signals[0]["signal"]: value}, settings=settings, **kw)
    return item


def _count(store: Store, table: Any, *where: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where))
                   .scalar_one())


def test_each_item_goes_to_k_distinct_raters(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=20)
    camp = _campaign(store, project)
    served: dict[str, list[int]] = defaultdict(list)
    active = ["ann", "bob", "cat"]
    while active:
        for rater in list(active):
            item = _work(store, project, camp, rater, settings)
            if item is None:
                active.remove(rater)
            else:
                served[rater].append(item.item_id)
    for rater, items in served.items():
        assert len(items) == len(set(items)), rater  # never the same item twice
    per_item = Counter(i for items in served.values() for i in items)
    assert sorted(per_item.values()) == [2] * 6
    with store.read() as conn:
        rows = conn.execute(select(campaign_items.c.n_active, campaign_items.c.n_done)
                            .where(campaign_items.c.campaign_id == camp.id)).all()
        progress = rater_progress(conn, camp, "ann")
    assert all(tuple(r) == (2, 2) for r in rows)
    assert progress["done"] == len(served["ann"]) and progress["remaining"] == 0
    assert progress["total"] == 6
    assert sum(len(v) for v in served.values()) == 12
    assert next_item(store, project, camp, "ann") is None


def test_an_open_lease_is_resumed_and_items_come_in_position_order(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=20)
    camp = _campaign(store, project, overlap=1)
    first = next_item(store, project, camp, "ann")
    again = next_item(store, project, camp, "ann")
    assert first is not None and again is not None
    assert again.assignment_id == first.assignment_id and first.position == 0
    other = next_item(store, project, camp, "bob")
    assert other is not None and other.position == 1
    assert first.to_dict()["interaction"]["id"].startswith("i")
    assert first.signals == [{"name": "quality", "type": "ordinal", "scale_min": 1.0,
                              "scale_max": 5.0, "labels": None, "description": "",
                              "guideline_version": 1}]
    assert first.expires_at - utcnow() <= timedelta(minutes=30)
    assert first.expires_at - utcnow() > timedelta(minutes=29)


def test_an_expired_lease_returns_the_item_to_the_pool(store: Store,
                                                       settings: Settings) -> None:
    project = make_project(store, settings, n=20)
    camp = _campaign(store, project, overlap=1, budget=3, lease_minutes=10)
    t0 = utcnow()
    held = next_item(store, project, camp, "ann", now=t0)
    assert held is not None and held.position == 0
    # before the end of ann's lease bob gets the next item
    early = next_item(store, project, camp, "bob", now=t0 + timedelta(minutes=5))
    assert early is not None and early.position == 1
    submit(store, project, camp, "bob", early.assignment_id, {"quality": 2},
           settings=settings, now=t0 + timedelta(minutes=6))
    # after it, ann's item is back in the pool: the next rater who reaches it gets it
    late = next_item(store, project, camp, "cat", now=t0 + timedelta(minutes=11))
    assert late is not None and late.item_id == held.item_id
    with store.read() as conn:
        status = conn.execute(select(assignments.c.status).where(
            assignments.c.id == held.assignment_id)).scalar_one()
        n_active = conn.execute(select(campaign_items.c.n_active).where(
            campaign_items.c.id == held.item_id)).scalar_one()
    assert status == "expired" and n_active == 1
    with pytest.raises(Conflict) as exc:  # cat holds the only place now
        submit(store, project, camp, "ann", held.assignment_id, {"quality": 4},
               settings=settings, now=t0 + timedelta(minutes=12))
    assert "expired" in exc.value.message and exc.value.details["field"] == "assignment"
    skip(store, project, camp, "cat", late.assignment_id, "not my language",
         now=t0 + timedelta(minutes=13))
    # ann goes on after her latest item first; the freed item before it comes when
    # nothing is left after it, and an expired row of hers is leased again
    nxt = next_item(store, project, camp, "ann", now=t0 + timedelta(minutes=14))
    assert nxt is not None and nxt.position == 2
    submit(store, project, camp, "ann", nxt.assignment_id, {"quality": 3},
           settings=settings, now=t0 + timedelta(minutes=15))
    back = next_item(store, project, camp, "ann", now=t0 + timedelta(minutes=16))
    assert back is not None and back.item_id == held.item_id
    assert back.assignment_id == held.assignment_id
    assert next_item(store, project, camp, "bob", now=t0 + timedelta(minutes=17)) is None


def test_a_late_submit_on_an_unswept_lease_is_accepted(store: Store,
                                                       settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    camp = _campaign(store, project, overlap=1, lease_minutes=5)
    t0 = utcnow()
    held = next_item(store, project, camp, "ann", now=t0)
    assert held is not None
    out = submit(store, project, camp, "ann", held.assignment_id, {"quality": 5},
                 settings=settings, now=t0 + timedelta(minutes=20))
    assert out == {"assignment": held.assignment_id,
                   "feedback": [f"campaign-{camp.id}-a{held.assignment_id}-quality"]}


def test_concurrent_raters_never_exceed_the_overlap(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=30, raters=[f"r{k}" for k in range(6)])
    camp = _campaign(store, project, raters=[f"r{k}" for k in range(6)], budget=12,
                     overlap=3)
    errors: list[BaseException] = []
    done: dict[str, list[int]] = defaultdict(list)
    barrier = threading.Barrier(6)

    def rater(name: str) -> None:
        try:
            barrier.wait()
            while True:
                item = _work(store, project, camp, name, settings)
                if item is None:
                    return
                done[name].append(item.item_id)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=rater, args=(f"r{k}",)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    per_item = Counter(i for items in done.values() for i in items)
    assert len(per_item) == 12 and set(per_item.values()) == {3}
    for name, items in done.items():
        assert len(items) == len(set(items)), name
    with store.read() as conn:
        counts = conn.execute(select(assignments.c.item_id, func.count())
                              .where(assignments.c.campaign_id == camp.id,
                                     assignments.c.status == "done")
                              .group_by(assignments.c.item_id)).all()
        over = conn.execute(select(func.count()).where(
            campaign_items.c.campaign_id == camp.id,
            campaign_items.c.n_active != 3)).scalar_one()
    assert {n for _i, n in counts} == {3} and over == 0


def _experts(store: Store, settings: Settings, project: Project, keys: range) -> None:
    add_feedback(store, settings, project, [
        {"id": f"x{j}-{k}", "interaction_id": f"i{k:03d}", "signal": "quality",
         "value": 4 if j < 2 or k % 2 else 1, "source": "expert", "rater_id": f"x{j}"}
        for k in keys for j in range(3)])


def test_gold_is_served_at_its_rate_and_never_shown_as_gold(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=400)
    _experts(store, settings, project, range(300, 400))  # experts' majority: 4
    camp = _campaign(store, project, budget=300, overlap=1, gold_rate=0.2,
                     options={"model_version": ["v1", "v2"]}, seed=9)
    with store.read() as conn:
        gold = {int(i): v for i, v in conn.execute(
            select(campaign_items.c.id, campaign_items.c.gold_value)
            .where(campaign_items.c.campaign_id == camp.id, campaign_items.c.is_gold))}
    assert len(gold) == 100 and set(map(str, gold.values())) == {"{'quality': 4}"}
    n, hits = 150, 0
    pattern = []
    for _ in range(n):
        item = next_item(store, project, camp, "ann")
        assert item is not None
        data = item.to_dict()
        assert "gold" not in str(sorted(data)) and "is_gold" not in data
        hits += item.item_id in gold
        pattern.append((item.interaction["id"], item.item_id in gold))
        answer = 4 if item.item_id in gold and hits % 2 else 3
        submit(store, project, camp, "ann", item.assignment_id, {"quality": answer},
               settings=settings)
    # binomial(150, 0.2): mean 30, sd 4.9; four standard deviations either side
    sd = math.sqrt(n * 0.2 * 0.8)
    assert abs(hits - n * 0.2) < 4 * sd, hits
    assert len({cid for cid, _g in pattern}) == n  # never the same item twice
    # gold items have no overlap cap: bob is served gold items ann has seen
    bob_gold = 0
    for _ in range(30):
        item = _work(store, project, camp, "bob", settings)
        assert item is not None
        bob_gold += item.item_id in gold
    assert bob_gold > 0
    from feedbackloop.annotation.campaigns import campaign_status

    status = campaign_status(store, project, camp)
    ann = next(r for r in status["raters"] if r["rater"] == "ann")
    assert ann["gold_seen"] == hits and ann["done"] == n - hits
    assert ann["gold_correct"] == (hits + 1) // 2
    assert status["gold_items"] == 100 and status["items"] == 300
    # the same spec and seed on the same data serve the same sequence
    replay = _campaign(store, project, name="c2", budget=300, overlap=1, gold_rate=0.2,
                       options={"model_version": ["v1", "v2"]}, seed=9)
    again = []
    for _ in range(20):
        item = _work(store, project, replay, "ann", settings)
        assert item is not None
        again.append(item.interaction["id"])
    assert again == [cid for cid, _g in pattern[:20]]


def test_gold_needs_gold_items_and_takes_explicit_ones(store: Store,
                                                       settings: Settings) -> None:
    project = make_project(store, settings, n=20)
    with pytest.raises(InvalidInput) as exc:
        _campaign(store, project, gold_rate=0.1)
    assert exc.value.field == "gold_rate" and "no gold items" in exc.value.message
    camp = _campaign(store, project, gold_rate=0.5, options={
        "gold": [{"interaction": "i005", "values": {"quality": "2"}}]})
    with store.read() as conn:
        rows = conn.execute(select(campaign_items.c.interaction_id,
                                   campaign_items.c.gold_value, campaign_items.c.policy)
                            .where(campaign_items.c.is_gold)).all()
    assert [(r.gold_value, r.policy) for r in rows] == [({"quality": 2}, "gold")]
    assert camp.options["gold"] == 1 and camp.options["n_gold"] == 1
    with pytest.raises(NotFound) as nf:
        _campaign(store, project, name="x", gold_rate=0.5, options={
            "gold": [{"interaction": "nope", "values": {"quality": 2}}]})
    assert nf.value.details["field"] == "options.gold[0].interaction"
    with pytest.raises(InvalidInput) as exc:
        _campaign(store, project, name="x", gold_rate=0.5, options={
            "gold": [{"interaction": "i001", "values": {"quality": 7}}]})
    assert exc.value.field == "options.gold[0].values.quality"


def test_pairwise_sides_are_random_recorded_and_mapped(store: Store,
                                                       settings: Settings) -> None:
    project = make_project(store, settings, n=0)
    add_interactions(store, settings, project, 20, same_input=True)  # 10 inputs, each by v1 and v2
    camp = _campaign(store, project, signals=["pref"], budget=10, overlap=1)
    sides = []
    for k in range(10):
        item = next_item(store, project, camp, "ann")
        assert item is not None and item.interaction_b is not None
        assert item.interaction["input"] == item.interaction_b["input"]
        left, right = item.to_dict()["left"], item.to_dict()["right"]
        if item.swapped:
            assert (left, right) == (item.interaction_b, item.interaction)
        else:
            assert (left, right) == (item.interaction, item.interaction_b)
        sides.append(item.swapped)
        answer = ("left", "right", "tie", "a")[k % 4]
        out = submit(store, project, camp, "ann", item.assignment_id, {"pref": answer},
                     settings=settings)
        with store.read() as conn:
            row = conn.execute(select(feedback.c.value, interactions.c.client_id)
                               .join(interactions,
                                     interactions.c.id == feedback.c.interaction_id)
                               .where(feedback.c.client_id == out["feedback"][0])).one()
            swapped = conn.execute(select(assignments.c.swapped).where(
                assignments.c.id == item.assignment_id)).scalar_one()
        assert swapped == item.swapped and row.client_id == item.interaction["id"]
        expected = {"left": "b" if item.swapped else "a",
                    "right": "a" if item.swapped else "b", "tie": "tie", "a": "a"}[answer]
        assert row.value == expected
    assert 0 < sum(sides) < 10


def test_a_bad_answer_writes_nothing(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    camp = _campaign(store, project, signals=["quality", "topic", "note"], overlap=1)
    item = next_item(store, project, camp, "ann")
    assert item is not None
    cases = [({"quality": 9, "topic": "billing"}, "answers.quality", "outside the scale"),
             ({"quality": 3, "topic": "refund"}, "answers.topic", "not a label"),
             ({"quality": 3}, "answers.topic", "give a value"),
             ({"quality": 3, "topic": "other", "mood": 1}, "answers.mood", "not a signal"),
             ({"quality": "x", "topic": "other"}, "answers.quality", "not a number")]
    for answers, field, words in cases:
        with pytest.raises(InvalidInput) as exc:
            submit(store, project, camp, "ann", item.assignment_id, answers,
                   settings=settings, comment="c")
        assert exc.value.field == field and words in exc.value.message, exc.value.message
    assert _count(store, feedback) == 0 and _count(store, annotation_links) == 0
    with store.read() as conn:
        assert conn.execute(select(assignments.c.status)).scalar_one() == "leased"
    # the text signal is optional; correction and comment land on the first row
    out = submit(store, project, camp, "ann", item.assignment_id,
                 {"quality": 3, "topic": "other"}, correction="Better answer",
                 comment="call me at 030 1234567", settings=settings)
    assert out["feedback"] == [f"campaign-{camp.id}-a{item.assignment_id}-quality",
                               f"campaign-{camp.id}-a{item.assignment_id}-topic"]
    with store.read() as conn:
        rows = conn.execute(select(feedback.c.client_id, feedback.c.source,
                                   feedback.c.rater_id, feedback.c.guideline_version,
                                   feedback.c.correction, feedback.c.comment)
                            .order_by(feedback.c.id)).all()
        links = conn.execute(select(func.count()).select_from(annotation_links)).scalar_one()
        n_done = conn.execute(select(campaign_items.c.n_done).where(
            campaign_items.c.id == item.item_id)).scalar_one()
    assert [(r.source, r.rater_id, r.guideline_version) for r in rows] == [
        ("annotator", "ann", "1"), ("annotator", "ann", "1")]
    assert rows[0].correction == "Better answer" and rows[1].comment is None
    assert "1234567" not in (rows[0].comment or "")  # redacted like all feedback
    assert links == 2 and n_done == 1
    with pytest.raises(Conflict):
        submit(store, project, camp, "ann", item.assignment_id,
               {"quality": 3, "topic": "other"}, settings=settings)


def test_skip_needs_a_reason_and_frees_the_item(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    camp = _campaign(store, project, overlap=1, budget=2)
    item = next_item(store, project, camp, "ann")
    assert item is not None
    for reason in ("", "   "):
        with pytest.raises(InvalidInput) as exc:
            skip(store, project, camp, "ann", item.assignment_id, reason)
        assert exc.value.field == "reason"
    skip(store, project, camp, "ann", item.assignment_id, "  I cannot read Korean ")
    with store.read() as conn:
        row = conn.execute(select(assignments).where(
            assignments.c.id == item.assignment_id)).one()
        assert rater_progress(conn, camp, "ann")["skipped"] == 1
    assert (row.status, row.skip_reason) == ("skipped", "I cannot read Korean")
    nxt = next_item(store, project, camp, "ann")
    assert nxt is not None and nxt.item_id != item.item_id  # never offered again to ann
    bob = next_item(store, project, camp, "bob")
    assert bob is not None and bob.item_id == item.item_id  # back in the pool
    with pytest.raises(Conflict):
        skip(store, project, camp, "ann", item.assignment_id, "again")


def test_errors_name_the_rater_assignment_and_campaign(store: Store,
                                                       settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    camp = _campaign(store, project, raters=["ann", "bob"])
    with pytest.raises(PermissionDenied) as denied:
        next_item(store, project, camp, "cat")
    assert "not a rater" in denied.value.message
    item = next_item(store, project, camp, "ann")
    assert item is not None
    with pytest.raises(NotFound) as nf:  # bob may not answer ann's assignment
        submit(store, project, camp, "bob", item.assignment_id, {"quality": 1},
               settings=settings)
    assert nf.value.details["field"] == "assignment"
    with pytest.raises(NotFound):
        submit(store, project, camp, "ann", 999, {"quality": 1}, settings=settings)
    with pytest.raises(NotFound):
        next_item(store, project, "missing", "ann")
    close_campaign(store, project, camp)
    with pytest.raises(Conflict) as closed:
        next_item(store, project, camp, "ann")
    assert "closed" in closed.value.message
    with store.read() as conn:  # closing ended the open lease
        assert conn.execute(select(assignments.c.status)).scalar_one() == "expired"


def test_a_calibration_campaign_gives_every_item_to_every_rater(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    camp = _campaign(store, project, kind="calibration", budget=4, overlap=1)
    assert camp.overlap == 3 and camp.kind == "calibration"
    for rater in ("ann", "bob", "cat"):
        got = []
        while (item := _work(store, project, camp, rater, settings)) is not None:
            got.append(item.item_id)
        assert len(got) == 4
    with pytest.raises(InvalidInput) as exc:
        _campaign(store, project, name="cal2", kind="calibration", gold_rate=0.1)
    assert exc.value.field == "gold_rate"


def test_progress_counts_what_is_left_for_the_rater(store: Store, settings: Settings,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from feedbackloop.annotation import assignment

    project = make_project(store, settings, n=20)
    camp = _campaign(store, project, overlap=2, budget=6, raters=["ann", "bob"])
    with store.read() as conn:
        assert rater_progress(conn, camp, "ann") == {
            "rater": "ann", "done": 0, "skipped": 0, "leased": 0, "gold_done": 0,
            "remaining": 6, "remaining_capped": False, "total": 6}
    _work(store, project, camp, "ann", settings)
    _work(store, project, camp, "ann", settings)
    held = next_item(store, project, camp, "ann")
    assert held is not None
    skip(store, project, camp, "bob", next_item(store, project, camp, "bob").assignment_id,
         "unsure")  # type: ignore[union-attr]
    with store.read() as conn:
        ann = rater_progress(conn, camp, "ann")
        bob = rater_progress(conn, camp, "bob")
    # ann: 2 done, 1 held (counted as left), 3 untouched
    assert (ann["done"], ann["leased"], ann["remaining"]) == (2, 1, 4)
    # bob skipped item 0 for good: 5 left
    assert (bob["skipped"], bob["remaining"]) == (1, 5)
    monkeypatch.setattr(assignment, "REMAINING_CAP", 2)
    with store.read() as conn:
        capped = rater_progress(conn, camp, "bob")
    assert capped["remaining"] == 2 and capped["remaining_capped"] is True
