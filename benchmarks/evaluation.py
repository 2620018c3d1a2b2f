"""Two-channel evaluation over 1,000,000 interactions, each scored by a metric, of which
100,000 carry a human thumbs judgement: ``evaluation.evaluate`` end to end (both channels
fetched, every statistic with its interval, the report saved), beside a raw driver SELECT
of the same two channels into numpy arrays, the physical floor of any evaluation.

The fixtures are written with the drivers' bulk paths and are not measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from feedbackloop.capture.projects import create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.evaluation import evaluate
from feedbackloop.store import Store

from .databases import BenchDatabase, database
from .ingest import _chunks, bulk_insert
from .report import Result

GROUP = "evaluation"
N = 1_000_000
LABELLED = 100_000
TARGET_S = 10.0
REPEAT = 3
FEEDBACK_COLUMNS = ("project_id", "client_id", "interaction_id", "signal_id", "value",
                    "value_num", "source", "timestamp", "content_hash", "ingested_at")
START = datetime(2025, 1, 1, tzinfo=UTC)


def _interaction_rows(db: BenchDatabase, n: int) -> Iterator[tuple[Any, ...]]:
    now: Any = datetime.now(UTC)
    if db.kind == "sqlite":
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    for i in range(n):
        ts: Any = START + timedelta(seconds=20 * i)
        if db.kind == "sqlite":
            ts = ts.strftime("%Y-%m-%d %H:%M:%S.%f")
        yield (db.project.id, f"e{i:08d}", ts, "v1" if i % 2 else "v2", "question", "answer",
               None, None, None, None, None, None, None, None, None, None, False, None, "",
               now)


def _feedback_rows(db: BenchDatabase, first_id: int, signals: dict[str, int],
                   n: int, labelled: int) -> Iterator[tuple[Any, ...]]:
    """A metric value on every interaction; a thumbs on every tenth, agreeing with the
    metric about three times in four."""
    rng = np.random.default_rng(0)
    approved = rng.random(n) < 0.3
    score = rng.normal(size=n) + approved
    step = n // labelled
    now: Any = datetime.now(UTC)
    ts: Any = START + timedelta(days=400)
    if db.kind == "sqlite":
        now = now.strftime("%Y-%m-%d %H:%M:%S.%f")
        ts = ts.strftime("%Y-%m-%d %H:%M:%S.%f")
    for i in range(n):
        pk = first_id + i
        yield (db.project.id, f"m{i}", pk, signals["score"], repr(float(score[i])),
               float(score[i]), "automated", ts, "", now)
        if i % step == 0:
            b = bool(approved[i])
            yield (db.project.id, f"h{i}", pk, signals["thumbs"], "true" if b else "false",
                   1.0 if b else 0.0, "annotator", ts, "", now)


def _bulk_feedback(db: BenchDatabase, rows: Iterator[tuple[Any, ...]]) -> None:
    cols = ", ".join(FEEDBACK_COLUMNS)
    conn = db.driver_connection()
    try:
        if db.kind == "sqlite":
            marks = ", ".join("?" * len(FEEDBACK_COLUMNS))
            sql = f"INSERT INTO feedback ({cols}) VALUES ({marks})"
            for part in _chunks(rows, 50_000):
                conn.execute("BEGIN")
                conn.executemany(sql, part)
                conn.execute("COMMIT")
        else:
            for part in _chunks(rows, 50_000):
                with conn.cursor() as cur, cur.copy(
                        f"COPY feedback ({cols}) FROM STDIN") as copy:
                    for row in part:
                        copy.write_row(row)
                conn.commit()
    finally:
        conn.close()


def _fill(db: BenchDatabase, store: Store) -> dict[str, int]:
    t0 = time.perf_counter()
    signals = {s.name: s.id for s in (
        create_signal(store, db.project, SignalIn(name="thumbs", type="binary")),
        create_signal(store, db.project, SignalIn(name="score", type="numeric")))}
    bulk_insert(db, _interaction_rows(db, N), chunk=50_000)
    raw = db.driver_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT min(id) FROM interactions")
        first_id = int(cur.fetchone()[0])
        cur.close()
    finally:
        raw.close()
    _bulk_feedback(db, _feedback_rows(db, first_id, signals, N, LABELLED))
    raw = db.driver_connection()
    try:
        if db.kind == "sqlite":
            raw.execute("ANALYZE")
        else:
            raw.autocommit = True
            raw.execute("ANALYZE")
    finally:
        raw.close()
    print(f"  evaluation: filled {N:,} interactions, {N + LABELLED:,} feedback on {db.kind} "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)
    return signals


def _raw_fetch(db: BenchDatabase, signals: dict[str, int]) -> tuple[int, int]:
    """Both channels into numpy with the driver: the floor under any evaluation."""
    p = "?" if db.kind == "sqlite" else "%s"
    sql = (f"SELECT interaction_id, value_num FROM feedback WHERE project_id = {p} "
           f"AND signal_id = {p}")
    raw = db.driver_connection()
    try:
        sizes = []
        for name in ("thumbs", "score"):
            cur = raw.cursor()
            cur.execute(sql, (db.project.id, signals[name]))
            rows = cur.fetchall()
            cur.close()
            arr = np.array(rows, dtype=float)
            sizes.append(arr.shape[0])
        return sizes[0], sizes[1]
    finally:
        raw.close()


def _median_seconds(work: Any) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(kinds: list[str]) -> list[Result]:
    results: list[Result] = []
    for kind in kinds:
        with database(kind, project="bench") as db:
            store = Store.from_url(db.url)
            try:
                signals = _fill(db, store)
                assert _raw_fetch(db, signals) == (LABELLED, N)
                report = evaluate(store, "bench", "thumbs", ["score"])
                score = report.metric("score")
                assert score["n_paired"] == LABELLED and score["n_unlabelled"] == N - LABELLED
                print(f"  evaluation: AUROC {score['classification']['auroc']['value']:.3f}, "
                      f"timing {report.result['timing_ms']}", flush=True)
                ours = _median_seconds(
                    lambda s=store: evaluate(s, "bench", "thumbs", ["score"]))  # type: ignore[misc]
                base = _median_seconds(
                    lambda d=db, sig=signals: _raw_fetch(d, sig))  # type: ignore[misc]
            finally:
                store.dispose()
        r = Result(GROUP, f"evaluate, {N:,} scored, {LABELLED:,} labelled", kind,
                   ours * 1000, base * 1000, "ms", f"< {TARGET_S:.0f} s",
                   ours < TARGET_S, higher_is_better=False,
                   note="baseline: raw driver SELECT of both channels into numpy")
        print(r.line(), flush=True)
        results.append(r)
    return results
