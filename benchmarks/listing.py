"""Listing the newest 100 interactions of a project of 10k, 100k and 1M interactions:
``browse.list_interactions`` (first page and the page after its cursor) beside a raw driver
SELECT of the same rows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from feedbackloop.capture.browse import decode_cursor, list_interactions
from feedbackloop.capture.projects import create_project
from feedbackloop.capture.sample import DEFAULT_START, generate_interactions
from feedbackloop.store import Store

from .databases import BenchDatabase, database
from .ingest import bulk_insert, driver_rows
from .report import Result

GROUP = "list"
SIZES = (10_000, 100_000, 1_000_000)
TARGET_MS = 50.0
TARGET_SIZE = 1_000_000
REPEAT = 50
WARMUP = 5
_TEXTS = 20_000  # distinct sample records the fixtures cycle through


def _fill_records(n: int, texts: list[dict[str, Any]], tag: str) -> Iterator[dict[str, Any]]:
    """``n`` interactions of sample text with their own ids and a timestamp every 20 s."""
    for i in range(n):
        r = dict(texts[i % len(texts)])
        r["id"] = f"{tag}-{i:08d}"
        r["timestamp"] = (DEFAULT_START + timedelta(seconds=20 * i)).isoformat()
        yield r


def _timings(call: Callable[[], Any]) -> tuple[float, float]:
    """(median, p95) in ms of ``call`` over REPEAT runs after WARMUP runs."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def _raw_queries(db: BenchDatabase) -> tuple[str, str]:
    p = "?" if db.kind == "sqlite" else "%s"
    first = (f"SELECT * FROM interactions WHERE project_id = {p} "
             "ORDER BY timestamp DESC, id DESC LIMIT 100")
    after = (f"SELECT * FROM interactions WHERE project_id = {p} AND "
             f"(timestamp < {p} OR (timestamp = {p} AND id < {p})) "
             "ORDER BY timestamp DESC, id DESC LIMIT 100")
    return first, after


def _measure(db: BenchDatabase, store: Store, project_id: int, size: int,
             raw: Any) -> list[Result]:
    first_sql, after_sql = _raw_queries(db)
    with store.read() as conn:
        page = list_interactions(conn, project_id, limit=100)
        cursor = page.next_cursor
        assert cursor is not None and len(page.items) == 100
        ours1 = _timings(lambda: list_interactions(conn, project_id, limit=100))
        ours2 = _timings(lambda: list_interactions(conn, project_id, limit=100,
                                                   cursor=cursor))
        second = list_interactions(conn, project_id, limit=100, cursor=cursor)
    ts, pk = decode_cursor(cursor)
    ts_db: Any = ts.strftime("%Y-%m-%d %H:%M:%S.%f") if db.kind == "sqlite" else ts
    cur = raw.cursor()

    def raw_first() -> list[Any]:
        cur.execute(first_sql, (project_id,))
        return cur.fetchall()

    def raw_after() -> list[Any]:
        cur.execute(after_sql, (project_id, ts_db, ts_db, pk))
        return cur.fetchall()

    # The same rows in the same order, or the comparison means nothing.
    assert [r[2] for r in raw_first()] == [i.id for i in page.items]
    assert [r[2] for r in raw_after()] == [i.id for i in second.items]
    base1 = _timings(raw_first)
    base2 = _timings(raw_after)
    cur.close()
    target = f"< {TARGET_MS:.0f} ms p95" if size == TARGET_SIZE else ""
    out = []
    for label, ours, base, order in (("newest 100", ours1, base1, 0),
                                     ("second page (cursor)", ours2, base2, 1)):
        out.append(Result(
            GROUP, f"list {label}, {size:,} interactions", db.kind, ours[0], base[0], "ms",
            target, (ours[1] < TARGET_MS) if target else None, ours_p95=ours[1],
            baseline_p95=base[1], higher_is_better=False,
            extra={"order": size * 2 + order}))
    return out


def run(kinds: list[str], sizes: tuple[int, ...] = SIZES) -> list[Result]:
    texts = list(generate_interactions(_TEXTS, seed=1))
    results: list[Result] = []
    for kind in kinds:
        with database(kind) as db:
            store = Store.from_url(db.url)
            try:
                projects = {}
                for size in sizes:
                    t0 = time.perf_counter()
                    proj = create_project(store, f"list-{size}")
                    bulk_insert(db, driver_rows(_fill_records(size, texts, f"l{size}"),
                                                proj.id, kind), chunk=50_000)
                    projects[size] = proj.id
                    print(f"  list: filled {size:,} interactions on {kind} in "
                          f"{time.perf_counter() - t0:.1f} s", flush=True)
                raw = db.driver_connection()
                try:
                    # Statistics as a running database keeps them (autovacuum; SQLite's
                    # `PRAGMA optimize`), so the planner sees the tables' real sizes.
                    if kind == "sqlite":
                        raw.execute("ANALYZE")
                    else:
                        raw.autocommit = True
                        raw.execute("ANALYZE interactions")
                    for size in sizes:
                        for r in _measure(db, store, projects[size], size, raw):
                            results.append(r)
                            print(r.line(), flush=True)
                finally:
                    raw.close()
            finally:
                store.dispose()
    return results
