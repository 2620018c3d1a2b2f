"""Analysis of a stored experiment with 10,000,000 exposure rows, beside the bare aggregate
SQL, on SQLite and PostgreSQL.

The experiment: two arms split 50/50, 10,000,000 units (pseudonym-shaped ids) each with one
exposure row and one observation of a binary primary metric (10 % vs 10.2 % success), so
20,000,000 rows are scanned; no guardrails. The observations are stored as the refresh
stores them: one unit row per unit holding its mean (with one observation a unit has just
that row). Ours: ``experiments.analyze`` end to end (the exposure counts and per-arm sums in
SQL, then the comparison, sequential interval, SRM, Bayesian view, group-sequential and
stopping rules). Baseline: the same aggregate queries (exposed units per arm; count, sum and
sum of squares of the unit rows per arm) run bare through the driver. Target: under 5 s.
Each timing is the median of 3 runs after a warm-up run.

Building the rows takes a minute or two (sqlite3 ``executemany`` in unit order, psycopg
``COPY``). The SQLite file is kept under ``$XDG_CACHE_HOME/feedbackloop-bench`` (default
``~/.cache``) keyed by the schema revision and the row count, and reused by later runs;
``FEEDBACKLOOP_BENCH_NO_CACHE=1`` builds it afresh.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from feedbackloop import experiments as ex
from feedbackloop.capture.projects import Project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.store import Store

from .databases import BenchDatabase, database
from .report import Result

GROUP = "experiments"
UNITS = int(os.environ.get("FEEDBACKLOOP_BENCH_EXPERIMENT_UNITS", 10_000_000))
TARGET_MS = 5000.0
RATES = (0.100, 0.102)
_CHUNK = 500_000
DESIGN = {"arms": [{"name": "control"}, {"name": "treatment"}],
          "primary": {"metric": "converted"}, "mde": 0.002, "baseline": 0.1,
          "looks": [0.25, 0.5, 0.75, 1.0]}
BASELINE_SQL = [
    "SELECT arm, COUNT(*) FROM experiment_exposures WHERE experiment_id = {e} GROUP BY arm",
    "SELECT COUNT(*), SUM(value), SUM(value * value) FROM experiment_observations "
    "WHERE experiment_id = {e} AND signal_id = {s} AND arm = 0",
    "SELECT COUNT(*), SUM(value), SUM(value * value) FROM experiment_observations "
    "WHERE experiment_id = {e} AND signal_id = {s} AND arm = 1",
]


def _chunks(n: int, seed: int = 0) -> Any:
    """(first unit index, arms, values) in chunks, the same for every database."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, _CHUNK):
        size = min(_CHUNK, n - start)
        arms = rng.integers(0, 2, size)
        rates = np.where(arms == 0, RATES[0], RATES[1])
        values = (rng.random(size) < rates).astype(np.float64)
        yield start, arms, values


def _setup(store: Store, project: Project) -> tuple[int, int]:
    """The signal and a running experiment; (experiment id, signal id)."""
    from sqlalchemy import select

    from feedbackloop.store.tables import signals

    create_signal(store, project, SignalIn(name="converted", type="binary"))
    exp = ex.create_experiment(store, project, "checkout", design=DESIGN)
    ex.start_experiment(store, project, "checkout")
    with store.read() as conn:
        sid = conn.execute(select(signals.c.id).where(signals.c.name == "converted")).scalar()
    return exp.id, int(sid)  # type: ignore[arg-type]


def _fill_sqlite(path: str, exp_id: int, sid: int, n: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-262144")
    when = "2026-01-01 00:00:00.000000"
    for start, arms, values in _chunks(n):
        conn.execute("BEGIN")
        units = [f"p_{i:032x}" for i in range(start, start + len(arms))]
        a = arms.tolist()
        conn.executemany(
            "INSERT INTO experiment_exposures (experiment_id, unit, arm, propensity, "
            "exposed_at) VALUES (?, ?, ?, 0.5, ?)",
            ((exp_id, u, x, when) for u, x in zip(units, a, strict=True)))
        conn.executemany(
            "INSERT INTO experiment_observations (experiment_id, signal_id, unit, arm, "
            "value, observed_at) VALUES (?, ?, ?, ?, ?, ?)",
            ((exp_id, sid, u, x, v, when)
             for u, x, v in zip(units, a, values.tolist(), strict=True)))
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _fill_postgres(db: BenchDatabase, exp_id: int, sid: int, n: int) -> None:
    import psycopg

    with psycopg.connect(db.pg_conninfo) as conn:
        for start, arms, values in _chunks(n):
            idx = range(start, start + len(arms))
            exp_buf = io.StringIO()
            obs_buf = io.StringIO()
            for i, x, v in zip(idx, arms.tolist(), values.tolist(), strict=True):
                unit = f"p_{i:032x}"
                exp_buf.write(f"{exp_id}\t{unit}\t{x}\t0.5\t2026-01-01 00:00:00+00\n")
                obs_buf.write(f"{exp_id}\t{sid}\t{unit}\t{x}\t{v}\t2026-01-01 00:00:00+00\n")
            with conn.cursor() as cur:
                with cur.copy("COPY experiment_exposures (experiment_id, unit, arm, "
                              "propensity, exposed_at) FROM STDIN") as copy:
                    copy.write(exp_buf.getvalue())
                with cur.copy("COPY experiment_observations (experiment_id, signal_id, "
                              "unit, arm, value, observed_at) FROM STDIN") as copy:
                    copy.write(obs_buf.getvalue())
            conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE experiment_exposures")
        conn.execute("VACUUM ANALYZE experiment_observations")


def _cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "feedbackloop-bench"


def _sqlite_database(db: BenchDatabase) -> tuple[int, int, str]:
    """Fill (or reuse from the cache) the SQLite file; (experiment id, signal id, note)."""
    store = Store.from_url(db.url)
    try:
        head = store.head_revision()
        cached = _cache_dir() / f"experiments-{head}-{UNITS}.db"
        if cached.exists() and not os.environ.get("FEEDBACKLOOP_BENCH_NO_CACHE"):
            store.dispose()
            shutil.copyfile(cached, db.sqlite_path)
            for suffix in ("-wal", "-shm"):
                Path(db.sqlite_path + suffix).unlink(missing_ok=True)
            store = Store.from_url(db.url)
            with store.read() as conn:
                exp = ex.get_experiment(conn, db.project.name, "checkout")
                sid = conn.exec_driver_sql(
                    "SELECT id FROM signals WHERE name = 'converted'").scalar()
            return exp.id, int(sid), f"reused {cached}"  # type: ignore[arg-type]
        exp_id, sid = _setup(store, db.project)
    finally:
        store.dispose()
    t0 = time.perf_counter()
    _fill_sqlite(db.sqlite_path, exp_id, sid, UNITS)
    note = f"built in {time.perf_counter() - t0:.0f} s"
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        shutil.copyfile(db.sqlite_path, tmp)
        tmp.replace(cached)
        note += f", cached as {cached}"
    except OSError as exc:  # a full or read-only cache folder only costs the next run time
        note += f" (not cached: {exc})"
    return exp_id, sid, note


def _median_ms(fn: Any, runs: int = 3) -> tuple[float, Any]:
    out = fn()  # warm-up: the first scan reads the pages into the caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


def _bare(db: BenchDatabase, exp_id: int, sid: int) -> Any:
    conn = db.driver_connection()
    try:
        def run() -> list[Any]:
            cur = conn.cursor()
            rows = []
            for sql in BASELINE_SQL:
                cur.execute(sql.format(e=exp_id, s=sid))
                rows.append(cur.fetchall())
            cur.close()
            return rows

        return _median_ms(run)
    finally:
        conn.close()


def _measure(db: BenchDatabase) -> Result:
    t0 = time.perf_counter()
    if db.kind == "sqlite":
        exp_id, sid, built = _sqlite_database(db)
    else:
        store = Store.from_url(db.url)
        try:
            exp_id, sid = _setup(store, db.project)
        finally:
            store.dispose()
        _fill_postgres(db, exp_id, sid, UNITS)
        built = f"built with COPY in {time.perf_counter() - t0:.0f} s"
    print(f"  {db.kind}: {UNITS:,} exposures and observations ready ({built})", flush=True)
    store = Store.from_url(db.url)
    try:
        ours, analysis = _median_ms(lambda: ex.analyze(store, db.project.name, "checkout"))
    finally:
        store.dispose()
    base, rows = _bare(db, exp_id, sid)
    exposed = sum(a["exposed"] for a in analysis["arms"])
    assert exposed == UNITS, exposed
    assert [a["n"] for a in analysis["arms"]] == [int(rows[1][0][0]), int(rows[2][0][0])]
    comp = analysis["primary"]["comparisons"][0]
    print(f"  {db.kind}: analyze {ours:,.0f} ms (bare SQL {base:,.0f} ms); lift "
          f"{comp['absolute']['estimate']:+.5f}, sequential CI "
          f"{comp['sequential']['ci']}", flush=True)
    return Result(GROUP, f"analyze, {UNITS // 1_000_000}M exposures", db.kind, ours, base,
                  "ms", f"< {TARGET_MS / 1000:g} s", ours < TARGET_MS,
                  higher_is_better=False,
                  note=f"{UNITS:,} units, each one exposure and one binary observation "
                       f"({UNITS * 2:,} rows scanned), two arms, no guardrails; ours: "
                       "experiments.analyze end to end (SQL sums per arm over the unit "
                       "rows, then comparison, sequential interval, SRM, "
                       "Bayesian view, group-sequential and stopping rules); baseline: the "
                       "same aggregate queries bare through the driver; median of 3 after "
                       f"a warm-up; data {built}",
                  extra={"order": 1, "units": UNITS})


def run(dbs: list[str] | None = None) -> list[Result]:
    """Measure and return the rows of the ``experiments`` group."""
    results = []
    for kind in dbs or ["sqlite"]:
        with database(kind) as db:
            results.append(_measure(db))
            print(results[-1].line(), flush=True)
    return results

