"""Off-policy estimates from stored logs on SQLite and PostgreSQL: a bandit's rewarded
decisions and an A/B experiment's exposures with observations give the same numbers as the
pure estimators on the same rows, recover a known policy value, and refuse bad targets."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from sqlalchemy import select

from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.experiments import bandits as B
from feedbackloop.experiments.offpolicy import estimate_stored, target_split
from feedbackloop.stats.offpolicy import OffPolicyLog, evaluate
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import (
    bandit_decisions,
    experiment_exposures,
    experiment_observations,
    experiments,
    signals,
)

TRUTH = {"a": 0.2, "b": 0.4, "c": 0.7}


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    B.clear_bandit_cache()


@pytest.fixture
def shop(store: Store) -> str:
    p = create_project(store, "shop", risk_tier="high")  # floor 0.10: every arm explored
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    return p.name


def _run_bandit(store: Store, shop: str, rounds: int) -> None:
    B.create_bandit(store, shop, "b", arms=list(TRUTH), policy="thompson")
    rng = np.random.default_rng(0)
    for i in range(rounds):
        d = B.choose(store, shop, "b", rng=rng, ttl=math.inf if i % 10 else 0.0)
        if i % 7 == 6:
            continue  # never rewarded: left out, and said so
        B.reward(store, shop, "b", d["decision_id"], int(rng.random() < TRUTH[d["arm"]]))


def test_a_bandit_log_gives_the_pure_estimates(store: Store, shop: str) -> None:
    _run_bandit(store, shop, 210)
    target = {"a": 0.5, "c": 0.5}
    result = estimate_stored(store, shop, "b", target, bootstrap=300, seed=1)
    with store.read() as conn:
        rows = conn.execute(select(bandit_decisions).where(
            bandit_decisions.c.reward.is_not(None)).order_by(bandit_decisions.c.id)).all()
    actions = np.array([r.arm for r in rows])
    rewards = np.array([r.reward for r in rows])
    means = np.array([rewards[actions == k].mean() for k in range(3)])
    log = OffPolicyLog.of(actions, rewards, [r.propensity for r in rows],
                          np.tile([0.5, 0.0, 0.5], (len(rows), 1)),
                          np.tile(means, (len(rows), 1)))
    pure = evaluate(log, rng=np.random.default_rng(1), bootstrap=300)
    assert result["n"] == len(rows) == 180  # 210 decisions, 30 never rewarded
    for key in ("ips", "snips", "dm", "dr"):
        assert result[key]["estimate"] == pytest.approx(pure[key]["estimate"])
        assert result[key]["ci95"] == pytest.approx(pure[key]["ci95"])
    assert result["effective_sample_size"] == pytest.approx(pure["effective_sample_size"])
    assert result["reward_model"] == pytest.approx(dict(zip(TRUTH, means, strict=True)))
    assert result["target"] == {"a": 0.5, "b": 0.0, "c": 0.5}
    assert result["notes"][0] == "30 decisions without a reward yet left out."
    # the policy's true value is 0.45; the estimates find it within their intervals
    true_value = 0.5 * TRUTH["a"] + 0.5 * TRUTH["c"]
    for key in ("ips", "snips", "dr"):
        lo, hi = result[key]["ci95"]
        assert lo < true_value < hi, (key, result[key])


def _ab(store: Store, shop: str) -> tuple[int, list[tuple[int, float, float]]]:
    """An A/B experiment (70/30 split) with 400 exposed units, 360 of them rated."""
    rng = np.random.default_rng(5)
    now = utcnow()
    design = {"arms": [{"name": "control", "version": None, "weight": 0.7},
                       {"name": "treatment", "version": None, "weight": 0.3}],
              "control": "control", "primary": {"metric": "thumbs", "kind": "proportion"}}
    rows: list[tuple[int, float, float]] = []
    with store.transaction() as conn:
        pid = conn.execute(select(signals.c.project_id).limit(1)).scalar_one()
        sig = conn.execute(select(signals.c.id).where(signals.c.name == "thumbs")).scalar_one()
        exp_id = int(conn.execute(experiments.insert().values(
            project_id=pid, name="ab", kind="ab", status="running", hypothesis="",
            design=design, design_hash=hashlib.sha256(b"ab").hexdigest(), salt="s",
            created_by="t", created_at=now, started_at=now)).inserted_primary_key[0])
        for i in range(400):
            arm = int(rng.random() < 0.3)
            prop = 0.3 if arm else 0.7
            conn.execute(experiment_exposures.insert().values(
                experiment_id=exp_id, unit=f"u{i}", arm=arm, propensity=prop, exposed_at=now))
            if i % 10 == 9:
                continue
            values = (rng.random(2) < (0.6 if arm else 0.3)).astype(float)
            for v in values:
                conn.execute(experiment_observations.insert().values(
                    experiment_id=exp_id, signal_id=sig, unit=f"u{i}", arm=arm,
                    value=float(v), observed_at=now))
            rows.append((arm, float(values.mean()), prop))
    return exp_id, rows


def test_an_ab_log_uses_exposure_propensities_and_unit_means(store: Store, shop: str) -> None:
    _, rows = _ab(store, shop)
    result = estimate_stored(store, shop, "ab", {"treatment": 1.0}, bootstrap=0)
    arms = np.array([r[0] for r in rows])
    values = np.array([r[1] for r in rows])
    props = np.array([r[2] for r in rows])
    assert result["n"] == 360 and result["kind"] == "ab"
    assert result["notes"][0] == "40 exposed units without an observation of the metric left out."
    # IPS by hand: (1/n) Σ 1[arm = treatment] · value / 0.3
    assert result["ips"]["estimate"] == pytest.approx(
        float(np.sum((arms == 1) * values / props) / len(rows)))
    assert result["snips"]["estimate"] == pytest.approx(float(values[arms == 1].mean()))
    assert result["logged"]["estimate"] == pytest.approx(float(values.mean()))
    assert result["ips"]["ci95"] is None  # bootstrap 0
    with pytest.raises(NotFound, match="no signal 'nope'"):
        estimate_stored(store, shop, "ab", {"treatment": 1.0}, metric="nope")
    with pytest.raises(InvalidInput, match="no logged rows with a reward"):
        estimate_stored(store, shop, "ab", {"control": 1.0}, metric="rating")  # none rated


def test_bad_targets_and_names_are_refused(store: Store, shop: str) -> None:
    _run_bandit(store, shop, 20)
    for target, message in (({"a": 0.5, "b": 0.4}, "sum to 0.9"),
                            ({"z": 1.0}, "no arm 'z'"),
                            ({"a": 1.5, "b": -0.5}, "must be a number in"),
                            ({}, "must map arm names")):
        with pytest.raises(InvalidInput, match=message) as info:
            estimate_stored(store, shop, "b", target)
        assert info.value.field == "target"
    with pytest.raises(NotFound, match="no experiment or bandit 'nope'"):
        estimate_stored(store, shop, "nope", {"a": 1.0})
    with pytest.raises(InvalidInput, match="bootstrap"):
        estimate_stored(store, shop, "b", {"a": 1.0}, bootstrap=-1)
    # a callable target sees each decision's context
    seen = []

    def policy(context: object) -> dict[str, float]:
        seen.append(context)
        return {"c": 1.0}

    out = estimate_stored(store, shop, "b", policy, bootstrap=0)
    assert out["target"] == "a callable of the context" and len(seen) == out["n"]
    assert list(target_split({"b": 1}, ["a", "b"])) == [0.0, 1.0]
