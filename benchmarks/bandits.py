"""Bandit decisions: choose an arm and log it, under 1 ms at the 99th percentile.

A three-arm Thompson-sampling bandit (binary rewards, 3,000 rewarded decisions of state)
answers ``experiments.bandits.choose(store, project, name, unit_id=..., context=...)``: the
cached probability vector (see the module: re-checked once a second), one draw, the unit
pseudonymised, and one ``bandit_decisions`` row inserted and committed. Each call is timed
alone; p50 and p99 over 20,000 calls after 2,000 warm-ups. Baseline: a raw INSERT of the
same row with the driver (sqlite3 / psycopg, autocommit, one statement), the floor of any
logged decision.

A second row interleaves a reward after every tenth decision (rewards timed apart): each
reward re-reads the state and redraws the Thompson probabilities into the cache itself, so
the choices after it should cost what they cost without rewards.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from feedbackloop.experiments import bandits as B
from feedbackloop.store import Store
from feedbackloop.store.tables import bandit_arms

from .databases import PSEUDONYM_KEY, BenchDatabase, database
from .report import Result

GROUP = "bandits"
CALLS = 20_000
WARMUP = 2_000
TARGET_MS = 1.0
ARMS = [{"name": "control", "version": "v1"}, {"name": "short", "version": "v2"},
        {"name": "long", "version": "v3"}]


def _seed_state(store: Store, experiment_id: int) -> None:
    """3,000 rewarded decisions' worth of state: the arms pay 0.10, 0.12 and 0.15."""
    with store.transaction() as conn:
        for arm, (n, wins) in enumerate(((1000, 100), (1000, 120), (1000, 150))):
            conn.execute(bandit_arms.update().where(
                bandit_arms.c.experiment_id == experiment_id, bandit_arms.c.arm == arm)
                .values(n=n, reward_sum=float(wins), reward_sumsq=float(wins)))


def _time(fn: Any, n: int, warmup: int) -> np.ndarray:
    for i in range(warmup):
        fn(i)
    out = np.empty(n)
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(warmup + i)
        out[i] = clock() - t0
    return out / 1e6


def _baseline(db: BenchDatabase, experiment_id: int, probabilities: list[float]) -> np.ndarray:
    conn = db.driver_connection()
    probs = orjson.dumps(probabilities).decode()
    ctx = orjson.dumps({"page": "home", "slot": 1}).decode()
    try:
        if db.kind == "sqlite":
            sql = ("INSERT INTO bandit_decisions (experiment_id, unit, arm, propensity, "
                   "probabilities, context, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)")

            def insert(i: int) -> None:
                conn.execute(sql, (experiment_id, f"p_{i:032x}", i % 3, probabilities[i % 3],
                                   probs, ctx, datetime.now(UTC).replace(tzinfo=None)
                                   .isoformat(" ")))
        else:
            conn.autocommit = True
            sql = ("INSERT INTO bandit_decisions (experiment_id, unit, arm, propensity, "
                   "probabilities, context, decided_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                   "RETURNING id")

            def insert(i: int) -> None:
                conn.execute(sql, (experiment_id, f"p_{i:032x}", i % 3, probabilities[i % 3],
                                   probs, ctx, datetime.now(UTC))).fetchone()
        return _time(insert, CALLS, WARMUP)
    finally:
        conn.close()


def _run(db: BenchDatabase) -> list[Result]:
    store = Store.from_url(db.url)
    key = PSEUDONYM_KEY.encode()
    B.clear_bandit_cache()
    try:
        bandit = B.create_bandit(store, db.project, "bench", arms=ARMS)
        _seed_state(store, bandit.id)
        name = db.project.name
        ctx = {"page": "home", "slot": 1}
        last: dict[str, Any] = {}

        def decide(i: int) -> None:
            last.update(B.choose(store, name, "bench", unit_id=f"user-{i}", context=ctx,
                                 pseudonym_key=key))

        ours = _time(decide, CALLS, WARMUP)
        probabilities = [last["probabilities"][a["name"]] for a in ARMS]
        base = _baseline(db, bandit.id, probabilities)

        rng = np.random.default_rng(0)
        rewarded: list[float] = []
        chosen: list[float] = []

        def decide_and_learn(i: int) -> None:
            t0 = time.perf_counter()
            d = B.choose(store, name, "bench", unit_id=f"user-{i}", context=ctx,
                         pseudonym_key=key)
            t1 = time.perf_counter()
            chosen.append(t1 - t0)
            if i % 10 == 9:
                B.reward(store, name, "bench", d["decision_id"], int(rng.random() < 0.12))
                rewarded.append(time.perf_counter() - t1)

        _time(decide_and_learn, CALLS // 4, WARMUP // 4)
        learn_calls = np.array(chosen[WARMUP // 4:]) * 1000
        rewarded = rewarded[WARMUP // 40:]
    finally:
        store.dispose()
    p = {k: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
         for k, v in (("ours", ours), ("base", base), ("learn", learn_calls))}
    rew = np.array(rewarded) * 1000
    print(f"  {db.kind}: choose p50 {p['ours'][0] * 1000:.0f} µs, p99 {p['ours'][1] * 1000:.0f}"
          f" µs (raw INSERT p50 {p['base'][0] * 1000:.0f} µs, p99 {p['base'][1] * 1000:.0f} "
          f"µs); with a reward every 10th decision: choose p99 {p['learn'][1] * 1000:.0f} µs, "
          f"reward p50 {float(np.percentile(rew, 50)) * 1000:.0f} µs", flush=True)
    where = ("3-arm Thompson bandit (binary, 3,000 rewards of state), unit pseudonymised, "
             "context stored")
    return [
        Result(GROUP, "bandit decision: choose + log (p99)", db.kind, p["ours"][1],
               p["base"][1], "ms", f"p99 < {TARGET_MS:g} ms", p["ours"][1] < TARGET_MS,
               higher_is_better=False,
               note=f"{where}; {CALLS:,} calls each timed alone after {WARMUP:,} warm-ups; "
                    f"ours: experiments.bandits.choose (cached probabilities, 1 s TTL), p50 "
                    f"{p['ours'][0] * 1000:.0f} µs; baseline: a raw driver INSERT of the "
                    f"same row (autocommit), p50 {p['base'][0] * 1000:.0f} µs",
               extra={"order": 0, "p50_ms": p["ours"][0], "baseline_p50_ms": p["base"][0]}),
        Result(GROUP, "bandit decision with a reward every 10th (p99)", db.kind,
               p["learn"][1], p["ours"][1], "ms", higher_is_better=False,
               note=f"choose timed alone while every tenth decision is rewarded (each reward "
                    f"re-reads the state and redraws 10,000 posterior samples per arm into "
                    f"the cache); {CALLS // 4:,} calls; "
                    f"reward itself p50 {float(np.percentile(rew, 50)) * 1000:.0f} µs; "
                    f"baseline: choose without rewards",
               extra={"order": 1, "p50_ms": p["learn"][0],
                      "reward_p50_ms": float(np.percentile(rew, 50)),
                      "reward_p99_ms": float(np.percentile(rew, 99))}),
    ]


def run(dbs: list[str] | None = None) -> list[Result]:
    """Measure and return the rows of the ``bandits`` group."""
    results: list[Result] = []
    for kind in dbs or ["sqlite"]:
        with database(kind) as db:
            rows = _run(db)
        for r in rows:
            print(r.line(), flush=True)
        results += rows
    assert all(math.isfinite(r.ours) for r in results)
    return results
