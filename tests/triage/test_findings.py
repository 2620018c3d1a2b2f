"""Findings on both databases: made from feedback or a theme, reach from the data, the
priority formula, range checks, the status machine, the backlog and dataset links."""

from __future__ import annotations

import math

import pytest

from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.governance.audit import entries, verify
from feedbackloop.settings import Settings
from feedbackloop.stats.intervals import wilson_interval
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import datasets
from feedbackloop.triage.findings import (
    create_finding,
    finding_detail,
    link_dataset,
    link_feedback,
    ranked_backlog,
    set_status,
    update_finding,
)
from feedbackloop.triage.priority import check_inputs, priority_score
from feedbackloop.triage.themes import run_themes

from .data import feedback_ids as fids
from .data import support


def test_reach_priority_and_benefit_follow_the_data(store: Store, settings: Settings) -> None:
    p, ids = support(store, settings, per_kind=6)
    slow = create_finding(store, p, title="Answers are slow", feedback_ids=fids(
        store, p, ids["latency"]), severity=4, effort=2, risk=3, confidence=0.5,
        owner="bob", route="latency", actor="alice")
    # 6 interactions by users u-latency-0..2: reach is 3 users.
    assert (slow.reach_users, slow.reach_interactions) == (3, 6)
    assert slow.priority == pytest.approx(3 * 4 * 0.5 / 2 * (1 - 2 / 8))
    wrong = create_finding(store, p, title="Wrong refund facts",
                           feedback_ids=fids(store, p, ids["factuality"][:2]), actor="alice")
    assert wrong.priority is None and wrong.status == "new"
    wrong = update_finding(store, p, wrong.id, severity=5, effort=0.5, risk=1,
                           confidence=1.0, actor="alice")
    assert wrong.priority == pytest.approx(2 * 5 * 1.0 / 0.5)  # 2 users, 2 interactions
    wrong = link_feedback(store, p, wrong.id, fids(store, p, ids["factuality"]), actor="al")
    assert wrong.reach_users == 3 and wrong.priority == pytest.approx(3 * 5 / 0.5)
    with store.read() as conn:
        backlog = ranked_backlog(conn, p)
    assert [b["id"] for b in backlog["items"]] == [wrong.id, slow.id]
    assert "reach * severity * confidence / effort" in backlog["formula"]
    # 26 negative items in the project (24 thumbs-down, 2 one-star ratings).
    assert backlog["total_negative"] == 26
    benefit = backlog["items"][1]["expected_benefit"]
    ref = wilson_interval(6, 26)
    assert benefit["value"] == pytest.approx(6 / 26 * 0.5)
    assert benefit["ci95"] == pytest.approx([ref.ci[0] * 0.5, ref.ci[1] * 0.5])
    with store.read() as conn:
        actions = [e.action for e in entries(conn)]
    assert actions.count("finding.create") == 2
    assert {"finding.update", "finding.link_feedback"} <= set(actions)


def test_priority_inputs_out_of_range_are_rejected_naming_the_field(
        store: Store, settings: Settings) -> None:
    p, ids = support(store, settings, per_kind=1)
    fb = fids(store, p, ids["ux"])
    bad = [("severity", 0), ("severity", 6), ("severity", 2.5), ("severity", True),
           ("risk", 0), ("risk", 9), ("effort", 0), ("effort", -1), ("effort", math.inf),
           ("confidence", 1.5), ("confidence", -0.1), ("confidence", math.nan)]
    for field, value in bad:
        with pytest.raises(InvalidInput) as exc:
            create_finding(store, p, title="t", feedback_ids=fb, **{field: value})
        assert exc.value.field == field, (field, value)
    for kwargs, field in [({"title": ""}, "title"), ({"title": "x" * 201}, "title"),
                          ({"title": "t", "route": "weather"}, "route"),
                          ({"title": "t", "feedback_ids": []}, "feedback")]:
        with pytest.raises(InvalidInput) as exc:
            create_finding(store, p, **{"feedback_ids": fb, **kwargs})  # type: ignore[arg-type]
        assert exc.value.field == field
    with pytest.raises(NotFound):
        create_finding(store, p, title="t", feedback_ids=[10**9])
    with pytest.raises(NotFound):
        create_finding(store, p, title="t", theme_id=10**6)
    assert check_inputs(severity=5.0)["severity"] == 5
    assert priority_score(reach=10, severity=None, effort=1, risk=1, confidence=1) is None


def test_the_status_machine_refuses_illegal_moves_naming_them(
        store: Store, settings: Settings) -> None:
    p, ids = support(store, settings, per_kind=1)
    f = create_finding(store, p, title="t", feedback_ids=fids(store, p, ids["ux"]))
    with pytest.raises(Conflict, match="from new to in_progress") as exc:
        set_status(store, p, f.id, "in_progress")
    assert exc.value.details["from"] == "new" and exc.value.details["to"] == "in_progress"
    for status in ("triaged", "in_progress", "fixed", "in_progress", "fixed", "verified",
                   "closed"):
        f = set_status(store, p, f.id, status, actor="bob")
        assert f.status == status
    with pytest.raises(Conflict, match="from closed to new"):
        set_status(store, p, f.id, "new")
    with pytest.raises(Conflict, match="closed"):
        update_finding(store, p, f.id, owner="eve")
    with pytest.raises(InvalidInput) as exc2:
        set_status(store, p, f.id, "done")
    assert exc2.value.field == "status"
    g = create_finding(store, p, title="u", feedback_ids=fids(store, p, ids["ux"]))
    with pytest.raises(InvalidInput) as exc2:
        set_status(store, p, g.id, "closed")
    assert exc2.value.field == "reason"
    set_status(store, p, g.id, "closed", reason="won't fix: by design")
    with store.read() as conn:
        moves = [(e.before, e.after) for e in entries(conn) if e.action == "finding.status"]
    assert moves[-1] == ({"status": "new"}, {"status": "triaged"})
    assert verify(store).ok


def test_a_theme_becomes_a_finding_linked_to_a_dataset(store: Store,
                                                       settings: Settings) -> None:
    p, _ids = support(store, settings, per_kind=4)
    run = run_themes(store, p, method="tfidf", k=4, actor="alice")
    theme = run["themes"][0]
    f = create_finding(store, p, title=theme["label"], theme_id=theme["id"], actor="alice")
    with store.read() as conn:
        detail = finding_detail(conn, p, f.id)
    assert detail["linked_feedback"] == theme["size"]
    assert detail["theme_id"] == theme["id"]
    with store.transaction() as conn:
        ds = int(conn.execute(datasets.insert().values(
            project_id=p.id, name="fix-set", version=1, recipe="sft", params={},
            content_hash="0" * 64, counts={}, card={}, created_at=utcnow()
        )).inserted_primary_key[0])  # type: ignore[index]
    out = link_dataset(store, p, f.id, "fix-set", actor="alice")
    assert out["dataset"] == {"id": ds, "name": "fix-set", "version": 1}
    assert link_dataset(store, p, f.id, ds, actor="alice")["link"] == out["link"]
    with store.read() as conn:
        detail = finding_detail(conn, p, f.id)
        actions = [e.action for e in entries(conn)]
    assert detail["datasets"][0]["name"] == "fix-set"
    assert actions.count("provenance.link") == 1
    with pytest.raises(NotFound):
        link_dataset(store, p, f.id, "nope")
