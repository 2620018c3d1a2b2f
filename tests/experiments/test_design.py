"""Experiment design on SQLite and PostgreSQL: checked (errors name the field), planned from
the design or recent traffic, frozen once started, and revised only by a new experiment
that records what it supersedes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from feedbackloop import experiments as ex
from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.stats.experiments import sample_size_proportions
from feedbackloop.store import Store

from .stored import DESIGN, log, shop


def _design(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(DESIGN)
    d.update(changes)
    return d


def test_create_fills_defaults_and_plans_from_the_design(store: Store) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "tone", design=_design(),
                               hypothesis="A warmer tone gets more thumbs up",
                               created_by="ann")
    d = exp.design
    assert (exp.status, exp.kind, d["unit"], d["control"]) == ("draft", "ab", "user",
                                                               "control")
    assert d["primary"] == {"metric": "thumbs", "kind": "proportion",
                            "higher_is_better": True}
    assert d["guardrails"][0]["kind"] == "mean"
    assert (d["alpha"], d["power"], d["sides"], d["correction"]) == (0.05, 0.8, 2, "holm")
    assert d["sequential"] == {"method": "asymptotic-cs", "tuning_n": None}
    # R: power.prop.test(p1 = 0.3, p2 = 0.35, power = 0.8) -> n = 1376.509 per group
    assert d["planned"]["per_arm"] == 1377 == sample_size_proportions(0.3, 0.05).per_arm
    assert d["planned"]["total"] == 2754
    assert d["planned"]["units_per_day"] is None  # no traffic yet
    assert len(exp.salt) == 16 and len(exp.design_hash) == 64
    with store.read() as conn:
        assert ex.get_experiment(conn, "shop", "tone").to_dict() == exp.to_dict()
        assert [e.name for e in ex.list_experiments(conn, "shop")] == ["tone"]
    with pytest.raises(Conflict) as taken:
        ex.create_experiment(store, "shop", "tone", design=_design())
    assert taken.value.details["field"] == "name"


def test_unequal_weights_plan_for_the_smallest_arm(store: Store) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "w", design=_design(
        arms=[{"name": "a", "weight": 0.8}, {"name": "b", "weight": 0.2}]))
    per_arm = exp.design["planned"]["per_arm"]
    assert exp.design["planned"]["total"] == -(-per_arm * 5 // 1)  # per_arm / 0.2


def test_unplannable_designs_say_why(store: Store) -> None:
    shop(store)
    tiny = ex.create_experiment(store, "shop", "tiny", design=_design(
        primary={"metric": "rating"}, guardrails=[], sd=1.0, mde=1e-9))
    assert tiny.design["planned"]["per_arm"] is None
    assert "too small" in tiny.design["planned"]["reason"]
    d = _design(primary={"metric": "rating"}, guardrails=[])
    d.pop("baseline")
    blind = ex.create_experiment(store, "shop", "blind", design=d)
    assert "no standard deviation" in blind.design["planned"]["reason"]
    notes = ex.analyze(store, "shop", "blind")["notes"]
    assert any(n.startswith("sample size not planned: no standard deviation") for n in notes)


def test_plan_from_recent_traffic(store: Store, settings: Settings) -> None:
    shop(store)
    now = datetime.now(UTC)
    rows = [{"id": f"i{k}", "input": "q", "output": "a", "user_id": f"u{k % 70}",
             "timestamp": (now - timedelta(days=7) + timedelta(minutes=k)).isoformat()}
            for k in range(140)]
    fb = [{"id": f"f{k}", "interaction_id": f"i{k}", "signal": "thumbs",
           "value": k % 5 == 0} for k in range(140)]
    log(store, settings, rows, fb)
    d = _design()
    d.pop("baseline")
    exp = ex.create_experiment(store, "shop", "t", design=d)
    planned = exp.design["planned"]
    assert planned["baseline"] == pytest.approx(0.2)
    assert planned["source"] == "last 14 days"
    assert planned["per_arm"] == sample_size_proportions(0.2, 0.05).per_arm
    # 70 users over the ~7 days the window covers
    assert planned["units_per_day"] == pytest.approx(10, rel=0.1)
    assert planned["expected_days"] == pytest.approx(planned["total"] / 10, rel=0.1)


BAD = [
    ({"arms": [{"name": "a"}]}, "arms"),
    ({"arms": [{"name": "a"}, {"name": "a"}]}, "arms"),
    ({"arms": [{"name": "a", "weight": 0.7}, {"name": "b", "weight": 0.7}]}, "arms"),
    ({"arms": [{"name": "a", "weight": 1.0}, {"name": "b"}]}, "arms"),
    ({"arms": [{"name": "a"}, {"name": "b", "version": "v9"}]}, "component"),
    ({"arms": [{"name": "a b"}, {"name": "c"}]}, "arms[0].name"),
    ({"control": "nobody"}, "control"),
    ({"primary": {"metric": "missing"}}, "primary.metric"),
    ({"primary": {"metric": "note"}}, "primary.metric"),
    ({"primary": {"metric": "pref"}}, "primary.metric"),
    ({"primary": {"metric": "issue"}}, "primary.success"),
    ({"primary": {"metric": "issue", "success": "happy"}}, "primary.success"),
    ({"primary": {"metric": "thumbs", "kind": "mean"}}, "primary.kind"),
    ({"primary": {"metric": "thumbs", "colour": 1}}, "primary.colour"),
    ({"guardrails": [{"metric": "thumbs"}]}, "guardrails[0].metric"),
    ({"guardrails": [{"metric": "rating", "allowed_change": -1}]},
     "guardrails[0].allowed_change"),
    ({"mde": 0}, "mde"),
    ({"alpha": 0.9}, "alpha"),
    ({"power": 1}, "power"),
    ({"sides": 3}, "sides"),
    ({"baseline": 1.5}, "baseline"),
    ({"unit": "device"}, "unit"),
    ({"looks": [0.5, 0.4, 1.0]}, "looks"),
    ({"looks": [0.5]}, "looks"),
    ({"sequential": {"method": "bayes"}}, "sequential.method"),
    ({"correction": "bonferroni"}, "correction"),
    ({"max_days": 0}, "max_days"),
    ({"surprise": True}, "design.surprise"),
]


def test_bad_designs_name_the_field(store: Store) -> None:
    shop(store)
    for change, field in BAD:
        with pytest.raises(InvalidInput) as err:
            ex.create_experiment(store, "shop", "bad", design=_design(**change))
        assert err.value.details["field"] == field, (change, err.value.message)
    with store.read() as conn:
        assert ex.list_experiments(conn, "shop") == []


def test_wrong_metric_type_says_so(store: Store) -> None:
    shop(store)
    with pytest.raises(InvalidInput, match="a metric of the wrong type"):
        ex.create_experiment(store, "shop", "x", design=_design(primary={"metric": "note"}))
    exp = ex.create_experiment(store, "shop", "cat", design=_design(
        primary={"metric": "issue", "success": "solved"}))
    assert exp.design["primary"]["kind"] == "proportion"
    with pytest.raises(InvalidInput, match="experiment name"):
        ex.create_experiment(store, "shop", "", design=_design())
    with pytest.raises(NotFound):
        ex.create_experiment(store, "nope", "x", design=_design())


def test_arms_name_versions_of_the_component(store: Store) -> None:
    shop(store)
    reg.register_version(store, "shop", "generation", "g-1")
    reg.register_version(store, "shop", "generation", "g-2")
    arms = [{"name": "old", "version": "g-1"}, {"name": "new", "version": "g-2"}]
    exp = ex.create_experiment(store, "shop", "gen", design=_design(arms=arms),
                               component="generation")
    assert [a["version"] for a in exp.design["arms"]] == ["g-1", "g-2"]
    assert exp.design["arms"][0]["weight"] == 0.5
    with pytest.raises(InvalidInput) as err:
        ex.create_experiment(store, "shop", "gen2", component="generation", design=_design(
            arms=[{"name": "old", "version": "g-1"}, {"name": "new", "version": "g-3"}]))
    assert err.value.details["field"] == "arms[1].version"
    with pytest.raises(InvalidInput) as err:
        ex.create_experiment(store, "shop", "gen3", design=_design(), component="ranking")
    assert err.value.details["field"] == "component"


def test_design_frozen_after_start_and_revised_by_a_new_experiment(store: Store) -> None:
    shop(store)
    ex.create_experiment(store, "shop", "tone", design=_design())
    draft = ex.update_design(store, "shop", "tone", _design(mde=0.1))
    assert draft.design["mde"] == 0.1 and draft.status == "draft"
    assert draft.design["planned"]["per_arm"] < 1377
    started = ex.start_experiment(store, "shop", "tone")
    assert started.status == "running" and started.started_at is not None
    with pytest.raises(Conflict) as err:
        ex.start_experiment(store, "shop", "tone")
    assert err.value.details["status"] == "running"

    # the same design again is no change; a different one is refused, naming the field
    same = ex.update_design(store, "shop", "tone", _design(mde=0.1))
    assert same.design_hash == started.design_hash
    with pytest.raises(Conflict) as frozen:
        ex.update_design(store, "shop", "tone", _design(mde=0.1, alpha=0.01))
    assert frozen.value.details["field"] == "design.alpha"
    assert "'alpha' cannot change" in frozen.value.message

    new = ex.update_design(store, "shop", "tone", _design(mde=0.1, alpha=0.01),
                           new_name="tone-2", created_by="ann")
    assert (new.name, new.status, new.supersedes) == ("tone-2", "running", "tone")
    assert new.salt != started.salt and new.design["alpha"] == 0.01
    with store.read() as conn:
        old = ex.get_experiment(conn, "shop", "tone")
    assert (old.status, old.superseded_by) == ("superseded", "tone-2")
    assert old.stop_reason == "superseded by tone-2" and old.stopped_at is not None
    with pytest.raises(Conflict):
        ex.update_design(store, "shop", "tone", _design(), new_name="tone-3")
    with pytest.raises(Conflict):
        ex.update_design(store, "shop", "tone-2", _design(), new_name="tone")  # name taken


def test_stop_and_status_rules(store: Store) -> None:
    shop(store)
    ex.create_experiment(store, "shop", "s", design=_design())
    with pytest.raises(Conflict):
        ex.stop_experiment(store, "shop", "s")
    ex.start_experiment(store, "shop", "s")
    stopped = ex.stop_experiment(store, "shop", "s", reason="enough")
    assert (stopped.status, stopped.stop_reason) == ("stopped", "enough")
    with store.read() as conn:
        assert [e.name for e in ex.list_experiments(conn, "shop", status="stopped")] == ["s"]
        assert ex.list_experiments(conn, "shop", status="running") == []
        with pytest.raises(InvalidInput):
            ex.list_experiments(conn, "shop", status="paused")
