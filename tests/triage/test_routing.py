"""Routing on both databases: rules first, a classifier trained on human routes, the human
queue below the threshold, escalation to the role on duty, and an audit entry for each."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from feedbackloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feedbackloop.governance.audit import entries, verify
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, triage_items
from feedbackloop.triage.service import (
    add_rule,
    delete_rule,
    escalation_criteria,
    get_threshold,
    list_items,
    list_rules,
    resolve_item,
    route_item,
    run_triage,
    set_threshold,
    status_counts,
)

from .data import KINDS, support


def _actions(store: Store) -> list[str]:
    with store.read() as conn:
        return [e.action for e in entries(conn)]


def _route_of(store: Store) -> dict[str, tuple[str | None, str, str]]:
    with store.read() as conn:
        rows = conn.execute(select(feedback.c.client_id, triage_items.c.route,
                                   triage_items.c.status, triage_items.c.method)
                            .join(triage_items, triage_items.c.feedback_id == feedback.c.id))
        return {r.client_id: (r.route, r.status, r.method) for r in rows}


def test_candidates_are_negative_or_commented_and_wait_without_a_classifier(
        store: Store, settings: Settings) -> None:
    p, _ids = support(store, settings, per_kind=3)
    summary = run_triage(store, p, actor="alice")
    # 12 commented thumbs-down and 2 one-star ratings; thumbs-up and five stars are not.
    assert summary["items"] == 14
    assert summary["by_status"]["queued"] == 14
    assert summary["classifier"]["method"] == "none"
    routes = _route_of(store)
    assert "up0" not in routes and "r0" not in routes and "r2" in routes
    assert run_triage(store, p)["items"] == 0  # nothing twice
    assert _actions(store).count("triage.run") == 1


def test_rules_route_and_escalate_and_only_the_role_on_duty_resolves(
        store: Store, settings: Settings) -> None:
    p, ids = support(store, settings, per_kind=3)
    add_rule(store, p, "pii", "privacy", {"text": r"email|phone", "signal": "thumbs"},
             escalate=True, actor="alice")
    add_rule(store, p, "slow", "latency", {"text": "slow|forever"}, actor="alice")
    with store.read() as conn:
        assert [r.name for r in list_rules(conn, p)] == ["pii", "slow"]
    run_triage(store, p, actor="alice")
    routes = _route_of(store)
    for fid in ids["privacy"]:
        assert routes[fid] == ("privacy", "escalated", "rule")
    for fid in ids["latency"]:
        assert routes[fid] == ("latency", "routed", "rule")
    with store.read() as conn:
        crit = escalation_criteria(conn, p)
        escalated = list_items(conn, p, status="escalated")
    assert crit["escalate_to"] == "maintainer" and crit["rules"][0]["name"] == "pii"
    assert {i.escalated_to for i in escalated} == {"maintainer"}
    item = escalated[0]
    with pytest.raises(PermissionDenied, match="escalated to maintainer"):
        resolve_item(store, p, item.id, actor="ann", actor_role="annotator", note="fine")
    with pytest.raises(Conflict, match="resolve it"):
        route_item(store, p, item.id, "ux", actor="bob")
    with pytest.raises(InvalidInput) as exc:
        resolve_item(store, p, item.id, actor="mia", actor_role="maintainer", note=" ")
    assert exc.value.field == "note"
    done = resolve_item(store, p, item.id, actor="mia", actor_role="maintainer",
                        note="removed the leaked address")
    assert done.status == "resolved" and done.decided_by == "mia"
    assert {"triage_rule.create", "triage.run", "triage.resolve"} <= set(_actions(store))
    assert verify(store).ok


def test_human_routes_train_a_classifier_that_routes_new_items_with_confidence(
        store: Store, settings: Settings) -> None:
    p, ids = support(store, settings, per_kind=8)
    run_triage(store, p, actor="system")
    with store.read() as conn:
        queued = {i.feedback_client_id: i for i in list_items(conn, p, status="queued")}
    # People route the first 6 of each kind (known truth); privacy escalates on its route.
    for kind, fids in ids.items():
        for fid in fids[:6]:
            routed = route_item(store, p, queued[fid].id, kind, actor="alice")
            assert routed.method == "human"
            assert routed.status == ("escalated" if kind == "privacy" else "routed")
    # New feedback in the same words: the classifier routes it.
    from feedbackloop.capture.ingest import Ingestor

    new_i = [{"id": f"n{k}", "input": "q", "output": "a"} for k in range(4)]
    new_f = [{"id": f"nf{k}", "interaction_id": f"n{k}", "signal": "thumbs", "value": False,
              "source": "end_user", "comment": KINDS[kind][0]}
             for k, kind in enumerate(KINDS)]
    ing = Ingestor(store, settings, p)
    assert ing.interactions(new_i).rejected == 0
    assert ing.feedback(new_f).rejected == 0
    set_threshold(store, p, 0.3, actor="alice")
    summary = run_triage(store, p, actor="system")
    assert summary["classifier"]["n_train"] == 24
    assert summary["classifier"]["calibration"].startswith("sigmoid")
    routes = _route_of(store)
    for k, kind in enumerate(KINDS):
        route, status, method = routes[f"nf{k}"]
        assert method == "classifier"
        assert route == kind
        assert status == ("escalated" if kind == "privacy" else "routed")
    # A threshold of 1 sends everything the classifier decides to a person.
    set_threshold(store, p, 1.0, actor="alice")
    assert ing.interactions([{"id": "n9", "input": "q", "output": "a"}]).rejected == 0
    assert ing.feedback([{"id": "nf9", "interaction_id": "n9", "signal": "thumbs",
                          "value": False, "comment": "so slow"}]).rejected == 0
    run_triage(store, p)
    assert _route_of(store)["nf9"][1] == "queued"
    with store.read() as conn:
        assert get_threshold(conn, p) == 1.0
        item = next(i for i in list_items(conn, p) if i.feedback_client_id == "nf9")
        assert item.suggested_route == "latency" and item.confidence is not None
        assert status_counts(conn, p)["queued"] >= 1


def test_bad_rules_and_routes_name_the_field(store: Store, settings: Settings) -> None:
    p, _ = support(store, settings, per_kind=1)
    cases = [({"signal": "nope"}, "conditions.signal"), ({"text": "("}, "conditions.text"),
             ({"colour": 1}, "conditions.colour"), ({}, "conditions"),
             ({"value_min": 3, "value_max": 1}, "conditions.value_min"),
             ({"value_max": float("nan")}, "conditions.value_max"), ([], "conditions")]
    for conditions, field in cases:
        with pytest.raises(InvalidInput) as exc:
            add_rule(store, p, "r", "ux", conditions)  # type: ignore[arg-type]
        assert exc.value.field == field, conditions
    with pytest.raises(InvalidInput) as exc:
        add_rule(store, p, "r", "weather", {"text": "x"})
    assert exc.value.field == "route"
    with pytest.raises(InvalidInput) as exc:
        add_rule(store, p, ":settings", "ux", {"text": "x"})
    assert exc.value.field == "name"
    add_rule(store, p, "r", "ux", {"text": "x"})
    with pytest.raises(Conflict):
        add_rule(store, p, "r", "ux", {"text": "y"})
    with pytest.raises(InvalidInput):
        set_threshold(store, p, 1.5)
    with pytest.raises(NotFound):
        delete_rule(store, p, "missing")
    delete_rule(store, p, "r", actor="alice", reason="obsolete")
    assert "triage_rule.delete" in _actions(store)
    with pytest.raises(NotFound):
        route_item(store, p, 999_999, "ux", actor="a")
    with pytest.raises(InvalidInput):
        route_item(store, p, 1, "nowhere", actor="a")


def test_two_runs_at_once_triage_each_item_once(store: Store, settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    p, _ = support(store, settings, per_kind=3)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: run_triage(store, p, actor="x"), range(2)))
    assert sorted(r["items"] for r in results) == [0, 14]
    with store.read() as conn:
        assert sum(status_counts(conn, p).values()) == 14
