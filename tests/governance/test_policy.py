"""Risk-tier policies on SQLite and PostgreSQL: tier defaults, project and component
overrides, validation naming the key, and the audit entry of every change."""

from __future__ import annotations

import pytest

from feedbackloop.capture.projects import create_project, get_project
from feedbackloop.errors import Conflict, InvalidInput
from feedbackloop.governance import audit
from feedbackloop.governance.policy import (
    DEFAULTS,
    check_plain_promotion,
    list_policies,
    policy_for,
    set_policy,
)
from feedbackloop.store import Store


def test_tier_defaults(store: Store) -> None:
    for tier in ("low", "medium", "high"):
        create_project(store, f"p-{tier}", risk_tier=tier)
    with store.read() as conn:
        low, medium, high = (policy_for(conn, f"p-{t}") for t in ("low", "medium", "high"))
    assert (low["second_person"], low["automation_may_promote"]) == (False, True)
    assert (medium["second_person"], medium["automation_may_promote"]) == (True, False)
    assert high["signoffs"] == [{"capacity": "expert", "count": 1},
                                {"capacity": "maintainer", "count": 1}]
    assert high["expert_before_exposure"] and high["escalate_to"] == "admin"
    assert medium["escalate_to"] == "maintainer" and low["source"] == "tier defaults"
    assert [p["bandit_exploration_cap"] for p in (low, medium, high)] == [0.01, 0.05, 0.10]


def test_project_and_component_overrides_and_audit(store: Store) -> None:
    create_project(store, "shop", risk_tier="low")
    after = set_policy(store, "shop", risk_tier="medium",
                       overrides={"escalate_to": "expert"}, actor="ana", reason="go live")
    assert (after["risk_tier"], after["escalate_to"], after["source"]) == \
        ("medium", "expert", "project")
    comp = set_policy(store, "shop", component="generation", risk_tier="high", actor="ana")
    with store.read() as conn:
        assert get_project(conn, "shop").risk_tier == "medium"
        assert policy_for(conn, "shop", "ranking")["risk_tier"] == "medium"
        assert policy_for(conn, "shop")["escalate_to"] == "expert"
        stored = list_policies(conn, "shop")
        log = audit.entries(conn, entity_kind="policy")
    # the component's tier sets its defaults; the project's overrides still apply
    assert (comp["risk_tier"], comp["escalate_to"], comp["source"]) == \
        ("high", "expert", "component")
    assert [(r["component"], r["risk_tier"]) for r in stored] == \
        [(None, "medium"), ("generation", "high")]
    assert [(e.action, e.actor, e.entity_id) for e in log] == \
        [("policy.set", "ana", "shop:generation"), ("policy.set", "ana", "shop")]
    assert log[1].before["risk_tier"] == "low" and log[1].after["risk_tier"] == "medium"
    assert log[1].reason == "go live"
    assert audit.verify(store).ok


@pytest.mark.parametrize(("overrides", "field"), [
    ({"nope": 1}, "overrides.nope"),
    ({"second_person": "yes"}, "overrides.second_person"),
    ({"bandit_exploration_cap": 0.9}, "overrides.bandit_exploration_cap"),
    ({"bandit_exploration_cap": float("nan")}, "overrides.bandit_exploration_cap"),
    ({"escalate_to": "viewer"}, "overrides.escalate_to"),
    ({"escalation_routes": ["weather"]}, "overrides.escalation_routes"),
    ({"signoffs": [{"capacity": "boss", "count": 1}]}, "overrides.signoffs[0].capacity"),
    ({"signoffs": [{"capacity": "expert", "count": 0}]}, "overrides.signoffs[0].count"),
    ({"signoffs": [{"capacity": "expert", "count": 1},
                   {"capacity": "expert", "count": 2}]}, "overrides.signoffs[1].capacity"),
    ({"signoffs": "maintainer"}, "overrides.signoffs"),
    ("x", "overrides"),
])
def test_bad_overrides_name_the_key(store: Store, overrides: object, field: str) -> None:
    create_project(store, "shop")
    with pytest.raises(InvalidInput) as err:
        set_policy(store, "shop", overrides=overrides, actor="ana")  # type: ignore[arg-type]
    assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        set_policy(store, "shop", risk_tier="extreme", actor="ana")
    assert err.value.field == "risk_tier"
    with store.read() as conn:
        assert list_policies(conn, "shop") == []
        assert audit.entries(conn, entity_kind="policy") == []


def test_plain_promotion_only_where_automation_may_promote(store: Store) -> None:
    create_project(store, "shop", risk_tier="low")
    with store.read() as conn:
        check_plain_promotion(conn, "shop", "ranking", "live")
    set_policy(store, "shop", overrides={"automation_may_promote": False}, actor="ana")
    with store.read() as conn:
        check_plain_promotion(conn, "shop", "ranking", "staged")
        with pytest.raises(Conflict, match="release promote"):
            check_plain_promotion(conn, "shop", "ranking", "live")
    assert set(DEFAULTS["low"]) == set(DEFAULTS["high"])
