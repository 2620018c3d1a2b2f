"""The bandit service on SQLite and PostgreSQL: the floor by risk tier, every decision logged
with the probability it was drawn with, rewards updating the state (and the cache), the
bandit converging to the best arm on a simulation, status intervals, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sqlalchemy import select

from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.experiments import bandits as B
from feedbackloop.improve import registry as reg
from feedbackloop.store import Store
from feedbackloop.store.tables import bandit_arms, bandit_decisions, experiments

KEY = b"test-pseudonym-key"
ARMS = [{"name": "old", "version": "v1"}, {"name": "new", "version": "v2"}, "third"]


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    B.clear_bandit_cache()


@pytest.fixture
def shop(store: Store) -> str:
    p = create_project(store, "shop", risk_tier="medium")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    create_signal(store, p, SignalIn(name="comment", type="text"))
    return p.name


def test_floor_defaults_by_risk_tier_and_is_bounded(store: Store) -> None:
    for tier, floor in (("low", 0.01), ("medium", 0.05), ("high", 0.10)):
        create_project(store, f"p-{tier}", risk_tier=tier)
        b = B.create_bandit(store, f"p-{tier}", "b", arms=["a", "b"])
        assert b.floor == floor and b.status == "running"
    raised = B.create_bandit(store, "p-low", "wide", arms=["a", "b", "c"], floor=0.2)
    assert raised.floor == 0.2
    with pytest.raises(InvalidInput, match=r"below 0\.1, the least exploration a high-risk") as e:
        B.create_bandit(store, "p-high", "low-floor", arms=["a", "b"], floor=0.05)
    assert e.value.field == "floor"
    with pytest.raises(InvalidInput, match=r"above 1/K = 0.3333"):
        B.create_bandit(store, "p-low", "too-high", arms=["a", "b", "c"], floor=0.4)
    eleven = [f"arm{i}" for i in range(11)]
    with pytest.raises(InvalidInput, match="allows at most 10 arms"):
        B.create_bandit(store, "p-high", "many", arms=eleven)


def test_create_checks_its_input(store: Store, shop: str) -> None:
    B.create_bandit(store, shop, "b", arms=ARMS, reward_signal="thumbs")
    cases = [
        (dict(name="b", arms=ARMS), Conflict, "exists already"),
        (dict(name="x", arms=["a"]), InvalidInput, "at least 2 arms"),
        (dict(name="x", arms=["a", "a"]), InvalidInput, "appears twice"),
        (dict(name="x", arms=[{"name": "a", "weight": 1}, "b"]), InvalidInput, "unknown key"),
        (dict(name="x", arms=ARMS, policy="greedy"), InvalidInput, "policy must be one of"),
        (dict(name="x", arms=ARMS, reward_kind="ratio"), InvalidInput, "reward_kind"),
        (dict(name="x", arms=ARMS, reward_signal="nope"), NotFound, "no signal 'nope'"),
        (dict(name="x", arms=ARMS, reward_signal="rating"), InvalidInput,
         "a metric of the wrong type"),
        (dict(name="x", arms=ARMS, reward_signal="comment", reward_kind="mean"),
         InvalidInput, "a metric of the wrong type"),
        (dict(name="has space", arms=ARMS), InvalidInput, "bandit name"),
        (dict(name="x", arms=ARMS, component="ranking"), NotFound,
         "no version 'v1' of component 'ranking'"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            B.create_bandit(store, shop, **kwargs)  # type: ignore[arg-type]
    reg.register_version(store, shop, "ranking", "v1")
    reg.register_version(store, shop, "ranking", "v2")
    made = B.create_bandit(store, shop, "versions", arms=ARMS, component="ranking",
                           reward_kind="mean", reward_signal="rating")
    assert made.arms == [{"name": "old", "version": "v1"}, {"name": "new", "version": "v2"},
                         {"name": "third", "version": None}]
    with store.read() as conn:
        row = conn.execute(select(experiments).where(experiments.c.id == made.id)).one()
        arms = conn.execute(select(bandit_arms.c.arm, bandit_arms.c.n).where(
            bandit_arms.c.experiment_id == made.id).order_by(bandit_arms.c.arm)).all()
    assert (row.kind, row.status, row.component) == ("bandit", "running", "ranking")
    assert row.design["policy"] == "thompson" and row.design["floor"] == 0.05
    assert [tuple(a) for a in arms] == [(0, 0), (1, 0), (2, 0)]


def test_every_decision_logs_the_probability_it_was_drawn_with(store: Store, shop: str) -> None:
    B.create_bandit(store, shop, "b", arms=ARMS, policy="ucb")
    rng = np.random.default_rng(0)
    first = B.choose(store, shop, "b", unit_id="user-1", context={"page": "home"},
                     pseudonym_key=KEY, rng=rng)
    # UCB1 with no rewards: every arm unplayed, equal shares; floor 0.05 keeps them equal
    assert first["probabilities"] == pytest.approx({"old": 1 / 3, "new": 1 / 3,
                                                    "third": 1 / 3})
    assert first["propensity"] == first["probabilities"][first["arm"]]
    assert first["version"] == {"old": "v1", "new": "v2", "third": None}[first["arm"]]
    # reward arm "new" only: UCB1 keeps the two unplayed arms first
    counts = {"old": 0, "new": 0, "third": 0}
    decisions = []
    for i in range(300):
        d = B.choose(store, shop, "b", unit_id=f"user-{i}", pseudonym_key=KEY, rng=rng,
                     ttl=math.inf)
        counts[d["arm"]] += 1
        decisions.append(d)
    with store.read() as conn:
        rows = {r.id: r for r in conn.execute(select(bandit_decisions))}
    names = ["old", "new", "third"]
    for d in [first, *decisions]:
        row = rows[d["decision_id"]]
        assert names[row.arm] == d["arm"]
        assert row.propensity == d["propensity"]  # exactly, not approximately
        assert row.probabilities[row.arm] == row.propensity
        assert row.probabilities == [d["probabilities"][n] for n in names]
        assert row.reward is None
        assert row.decided_at is not None and row.decided_at.year >= 2024  # parses back
    assert rows[first["decision_id"]].unit == pseudonymise(KEY, "user-1")
    assert rows[first["decision_id"]].context == {"page": "home"}
    # the arms follow the logged probabilities (all 1/3 here): chi-square goodness of fit
    assert stats.chisquare(list(counts.values())).pvalue > 0.001


def test_rewards_update_the_state_and_the_cached_probabilities(store: Store,
                                                               shop: str) -> None:
    B.create_bandit(store, shop, "b", arms=["a", "b"], policy="ucb")
    rng = np.random.default_rng(1)
    d = B.choose(store, shop, "b", rng=rng, ttl=math.inf)
    assert d["probabilities"] == {"a": 0.5, "b": 0.5}
    got = B.reward(store, shop, "b", d["decision_id"], 1)
    assert got == {"decision_id": d["decision_id"], "arm": d["arm"], "reward": 1.0, "n": 1,
                   "mean": 1.0}
    # the reward updated the cached vector even with an infinite TTL: the unplayed arm
    # now goes first (UCB1), floor 0.05 left on the played one
    after = B.choose(store, shop, "b", rng=rng, ttl=math.inf)
    other = "b" if d["arm"] == "a" else "a"
    assert after["probabilities"] == pytest.approx({d["arm"]: 0.05, other: 0.95})
    # retrying the same reward changes nothing; a different one is a conflict
    assert B.reward(store, shop, "b", d["decision_id"], 1.0)["n"] == 1
    with pytest.raises(Conflict, match="rewarded 1 already"):
        B.reward(store, shop, "b", d["decision_id"], 0)
    with pytest.raises(InvalidInput, match="rewards 0 or 1"):
        B.reward(store, shop, "b", after["decision_id"], 0.5)
    with pytest.raises(InvalidInput, match="finite"):
        B.reward(store, shop, "b", after["decision_id"], float("nan"))
    with pytest.raises(NotFound, match="no decision 999"):
        B.reward(store, shop, "b", 999, 1)
    with pytest.raises(InvalidInput, match="decision_id"):
        B.reward(store, shop, "b", 0, 1)
    B.create_bandit(store, shop, "other", arms=["a", "b"])
    with pytest.raises(NotFound, match="bandit 'other' has no decision"):
        B.reward(store, shop, "other", after["decision_id"], 1)
    with store.read() as conn:
        state = conn.execute(select(bandit_arms.c.arm, bandit_arms.c.n,
                                    bandit_arms.c.reward_sum).where(
            bandit_arms.c.experiment_id == 1).order_by(bandit_arms.c.arm)).all()
    assert sorted(tuple(s)[1:] for s in state) == [(0, 0.0), (1, 1.0)]


def test_the_bandit_converges_to_the_best_arm(store: Store, shop: str) -> None:
    B.create_bandit(store, shop, "b", arms=["a", "b", "c"])  # Thompson, floor 0.05
    truth = {"a": 0.1, "b": 0.2, "c": 0.6}
    rng = np.random.default_rng(2)
    plays = []
    for _ in range(250):
        # each reward updates the cached probabilities: every choice sees every reward
        d = B.choose(store, shop, "b", rng=rng, ttl=math.inf)
        plays.append(d["arm"])
        B.reward(store, shop, "b", d["decision_id"], int(rng.random() < truth[d["arm"]]))
    status = B.bandit_status(store, shop, "b", rng=rng)
    by = {a["name"]: a for a in status["arms"]}
    assert by["c"]["probability"] > 0.85
    assert by["a"]["probability"] >= 0.05 and by["b"]["probability"] >= 0.05
    assert plays[-100:].count("c") > 75
    assert plays[:50].count("c") < plays[-50:].count("c")
    assert status["decisions"] == status["rewarded"] == 250
    assert sum(a["n"] for a in status["arms"]) == 250


def test_status_gives_each_arm_its_interval(store: Store, shop: str) -> None:
    B.create_bandit(store, shop, "bin", arms=["a", "b"])
    B.create_bandit(store, shop, "mean", arms=["a", "b"], reward_kind="mean")
    rng = np.random.default_rng(3)
    values = {"a": [], "b": []}  # type: dict[str, list[float]]
    for i in range(40):
        for name, reward in (("bin", i % 4 == 0), ("mean", 3.0 + (i % 5))):
            d = B.choose(store, shop, name, rng=rng, ttl=0.0)
            B.reward(store, shop, name, d["decision_id"], float(reward))
            if name == "mean":
                values[d["arm"]].append(float(reward))
    binary = B.bandit_status(store, shop, "bin", rng=rng)
    for arm in binary["arms"]:
        m = arm["mean"]
        if arm["n"]:
            assert m["method"] == "Wilson score interval"
            assert m["ci95"][0] <= m["estimate"] <= m["ci95"][1]
    mean = B.bandit_status(store, shop, "mean", rng=rng)
    assert mean["policy_method"].startswith("Thompson sampling, normal-inverse-gamma")
    for arm in mean["arms"]:
        x = np.array(values[arm["name"]])
        if len(x) >= 2:
            ci = stats.t.interval(0.95, len(x) - 1, x.mean(), x.std(ddof=1) / np.sqrt(len(x)))
            assert arm["mean"]["estimate"] == pytest.approx(x.mean())
            assert arm["mean"]["ci95"] == pytest.approx(list(ci))
    fresh = B.create_bandit(store, shop, "fresh", arms=["a", "b"])
    empty = B.bandit_status(store, shop, fresh.name)
    assert empty["arms"][0]["mean"] == {"estimate": None, "ci95": None, "method": None,
                                        "reason": "no rewarded decisions yet"}
    assert sum(a["probability"] for a in empty["arms"]) == pytest.approx(1.0)


def test_choose_refuses_bad_input_and_stopped_bandits(store: Store, shop: str) -> None:
    B.create_bandit(store, shop, "b", arms=["a", "b"])
    with pytest.raises(NotFound, match="no bandit 'nope'"):
        B.choose(store, shop, "nope")
    with pytest.raises(InvalidInput, match="context must be an object"):
        B.choose(store, shop, "b", context=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="16,384 bytes"):
        B.choose(store, shop, "b", context={"x": "y" * 20_000})
    with pytest.raises(InvalidInput, match="unit_id"):
        B.choose(store, shop, "b", unit_id="")
    with pytest.raises(InvalidInput, match="NUL"):
        B.choose(store, shop, "b", unit_id="a\x00b", pseudonym_key=KEY)
    with store.transaction() as conn:
        conn.execute(experiments.update().values(status="stopped"))
    B.clear_bandit_cache()
    with pytest.raises(Conflict, match="only a running bandit chooses"):
        B.choose(store, shop, "b")
