"""Opening the next item in the annotation workspace, in a project of 1,000,000
interactions with a campaign over all of them (overlap 3, random order), for a rater who
has finished 10,000 items already while the other raters have not started: the worst case
for the "not yet seen by this rater" probe, since every item the rater finished is still
open to the others.

``assignment.next_item`` (campaign look-up, lease sweep, gold draw, the probe, the
conditional claim, the lease row and the item's interaction) beside a raw driver SELECT
of the same interaction by primary key, the floor of showing any item. The rater's answer
between two calls (``submit``) is not measured. Creating campaigns is reported too,
beside a raw SELECT of the project's interaction ids: 10,000 items chosen from the
million by a stratified + random mix (the selection's cost), and all 1,000,000 (the
cost of writing a million items).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbackloop.access.service import create_user, grant
from feedbackloop.annotation.assignment import next_item, rater_progress, submit
from feedbackloop.annotation.campaigns import CampaignSpec, create_campaign
from feedbackloop.annotation.guidelines import create_guideline
from feedbackloop.capture.projects import create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.store import Store

from .databases import BenchDatabase, database
from .ingest import bulk_insert, driver_rows
from .report import Result

GROUP = "annotation"
N = 1_000_000
FINISHED = 10_000
TARGET_MS = 100.0
SELECT_BUDGET = 10_000
SELECT_TARGET_S = 10.0
REPEAT = 50
WARMUP = 5
START = datetime(2025, 1, 1, tzinfo=UTC)


def _records(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"id": f"a{i:08d}", "timestamp": (START + timedelta(seconds=20 * i)).isoformat(),
               "model_version": "v1" if i % 2 else "v2", "input": f"question {i}",
               "output": f"answer {i}", "attributes": {"locale": "de" if i % 3 else "en"}}


def _finish_items(db: BenchDatabase, campaign_id: int, rater: str, n: int) -> None:
    """The rater's first ``n`` items done, written directly (a fixture, not measured)."""
    p = "?" if db.kind == "sqlite" else "%s"
    now: Any = datetime.now(UTC)
    if db.kind == "sqlite":
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    conn = db.driver_connection()
    try:
        cur = conn.cursor()
        if db.kind == "sqlite":
            cur.execute("BEGIN")
        cur.execute(
            "INSERT INTO assignments (campaign_id, item_id, rater, status, swapped, "
            f"leased_at, expires_at, finished_at) SELECT campaign_id, id, {p}, 'done', "
            f"{'0' if db.kind == 'sqlite' else 'false'}, {p}, {p}, {p} FROM campaign_items "
            f"WHERE campaign_id = {p} AND position < {p}",
            (rater, now, now, now, campaign_id, n))
        cur.execute(f"UPDATE campaign_items SET n_active = 1, n_done = 1 WHERE campaign_id "
                    f"= {p} AND position < {p}", (campaign_id, n))
        conn.commit() if db.kind == "postgres" else cur.execute("COMMIT")
        if db.kind == "sqlite":
            cur.execute("ANALYZE")
        else:
            conn.autocommit = True
            cur.execute("ANALYZE")
        cur.close()
    finally:
        conn.close()


def _timings(step: Callable[[], float]) -> tuple[float, float]:
    """(median, p95) in ms of the measured part of ``step`` (which returns seconds)."""
    for _ in range(WARMUP):
        step()
    times = sorted(step() * 1000 for _ in range(REPEAT))
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def _measure(db: BenchDatabase, store: Store, n: int) -> list[Result]:
    proj = db.project
    create_signal(store, proj, SignalIn(name="quality", type="ordinal", scale_min=1,
                                        scale_max=5))
    create_guideline(store, proj, "quality", "# Quality\n\nHow good is the answer?")
    for rater in ("ann", "bob", "cat"):
        create_user(store, rater, "benchmark-password")
        grant(store, rater, proj.id, "annotator")
    t0 = time.perf_counter()
    camp = create_campaign(store, proj, CampaignSpec(
        name="bench", signals=["quality"], raters=["ann", "bob", "cat"], budget=n,
        overlap=3, policy="random"))
    create_s = time.perf_counter() - t0
    assert camp.options["n_items"] == n
    raw = db.driver_connection()
    p = "?" if db.kind == "sqlite" else "%s"
    cur = raw.cursor()
    t0 = time.perf_counter()
    cur.execute(f"SELECT id FROM interactions WHERE project_id = {p} ORDER BY id", (proj.id,))
    assert len(cur.fetchall()) == n
    ids_s = time.perf_counter() - t0
    print(f"  annotation: campaign of {n:,} items created on {db.kind} in {create_s:.1f} s",
          flush=True)
    t0 = time.perf_counter()
    mix = create_campaign(store, proj, CampaignSpec(
        name="bench-mix", signals=["quality"], raters=["ann", "bob", "cat"],
        budget=SELECT_BUDGET, overlap=3, policy={"stratified": 1, "random": 1},
        options={"by": ["model_version", "locale"]}))
    mix_s = time.perf_counter() - t0
    assert mix.options["n_items"] == SELECT_BUDGET
    _finish_items(db, camp.id, "ann", FINISHED)
    settings = db.settings()
    served: list[int] = []
    with_progress: list[float] = []

    def ours() -> float:
        began = time.perf_counter()
        item = next_item(store, proj, camp, "ann")
        took = time.perf_counter() - began
        # what the workspace shows beside the item
        with store.read() as conn:
            progress = rater_progress(conn, camp, "ann")
        with_progress.append(time.perf_counter() - began)
        assert item is not None and item.position >= FINISHED
        assert progress["remaining"] == 1001 and progress["remaining_capped"]
        served.append(item.position)
        submit(store, proj, camp, "ann", item.assignment_id, {"quality": 3},
               settings=settings)
        return took

    mine = _timings(ours)
    shown = sorted(t * 1000 for t in with_progress[WARMUP:])
    page = statistics.median(shown), shown[int(0.95 * (len(shown) - 1))]
    assert len(set(served)) == len(served)  # a new item each time, never one seen before
    sql = (f"SELECT id, client_id, input, output, context, reference, model_version, "
           f"attributes FROM interactions WHERE id = {p}")
    key = [FINISHED + 7]

    def base() -> float:
        began = time.perf_counter()
        cur.execute(sql, (key[0],))
        row = cur.fetchone()
        took = time.perf_counter() - began
        assert row is not None
        key[0] += 1
        return took

    floor = _timings(base)
    cur.close()
    raw.close()
    return [
        Result(GROUP, f"next item, {n:,} items, rater done {FINISHED:,}", db.kind, mine[0],
               floor[0], "ms", f"< {TARGET_MS:.0f} ms p95", mine[1] < TARGET_MS,
               ours_p95=mine[1], baseline_p95=floor[1], higher_is_better=False,
               note="baseline: one interaction by primary key (raw driver)"),
        Result(GROUP, f"next item + progress, {n:,} items, rater done {FINISHED:,}",
               db.kind, page[0], floor[0], "ms", f"< {TARGET_MS:.0f} ms p95",
               page[1] < TARGET_MS, ours_p95=page[1], baseline_p95=floor[1],
               higher_is_better=False,
               note="what the workspace calls per item: next_item, then rater_progress"),
        Result(GROUP, f"create campaign, {SELECT_BUDGET:,} of {n:,} (stratified+random)",
               db.kind, mix_s * 1000, ids_s * 1000, "ms", f"< {SELECT_TARGET_S:.0f} s",
               mix_s < SELECT_TARGET_S, higher_is_better=False,
               note="baseline: raw SELECT of the project's interaction ids"),
        Result(GROUP, f"create campaign, all {n:,} items (random)", db.kind,
               create_s * 1000, ids_s * 1000, "ms", higher_is_better=False,
               note="baseline: raw SELECT of the project's interaction ids; most of the "
                    "time is writing the million campaign_items rows"),
    ]


def run(kinds: list[str], n: int = N) -> list[Result]:
    results: list[Result] = []
    for kind in kinds:
        with database(kind) as db:
            t0 = time.perf_counter()
            bulk_insert(db, driver_rows(_records(n), db.project.id, kind), chunk=50_000)
            print(f"  annotation: filled {n:,} interactions on {kind} in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            store = Store.from_url(db.url)
            try:
                for r in _measure(db, store, n):
                    results.append(r)
                    print(r.line(), flush=True)
            finally:
                store.dispose()
    return results
