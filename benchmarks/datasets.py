"""Building a preference dataset from 1,000,000 feedback records: ``build_dataset`` end to
end (feedback and interactions read, votes and rating gaps turned into pairs, PII re-check,
exact and MinHash near-duplicate removal, grouped splits, the content hash, every row and
its lineage written in one transaction), beside a raw driver SELECT of the same feedback
rows, the floor under any build.

The data: 100,000 prompts with three outputs each (300,000 interactions, one in twenty
without consent); each prompt's two neighbouring output pairs judged by three raters
(600,000 pairwise votes) and 400,000 star ratings. Fixtures are written with the drivers'
bulk paths and are not measured.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbackloop.capture.projects import create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.improve.datasets import build_dataset
from feedbackloop.store import Store

from .databases import BenchDatabase, database
from .evaluation import FEEDBACK_COLUMNS, _chunks
from .ingest import bulk_insert
from .report import Result

GROUP = "datasets"
PROMPTS = 100_000
OUTPUTS = 3
N_FEEDBACK = 1_000_000
TARGET_S = 60.0
START = datetime(2025, 1, 1, tzinfo=UTC)
PARAMS = {"signal": "pref", "rating_signal": "stars", "min_gap": 2}

FB_COLUMNS = (*FEEDBACK_COLUMNS, "interaction_b_id", "value_text", "rater_id")


def _ts(db: BenchDatabase, value: datetime) -> Any:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if db.kind == "sqlite" else value


def _texts(rng: random.Random) -> tuple[list[str], list[str]]:
    words = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ru", "si", "to", "vu", "ze")
             for b in ("ban", "cor", "dil", "fen", "gor", "hal", "jin", "kel", "lom", "mar",
                       "nor", "pil", "quo", "ris", "sul", "tam", "vel", "wix", "yor", "zun")]
    words += [f"{w}s" for w in words] + [f"re{w}" for w in words]  # 600 words
    prompts = [f"how do i {' '.join(rng.choices(words, k=10))} {p}" for p in range(PROMPTS)]
    outputs = [" ".join(rng.choices(words, k=24)) for _ in range(PROMPTS * OUTPUTS)]
    return prompts, outputs


def _interaction_rows(db: BenchDatabase, prompts: list[str],
                      outputs: list[str]) -> Iterator[tuple[Any, ...]]:
    now = _ts(db, datetime.now(UTC))
    for i, out in enumerate(outputs):
        yield (db.project.id, f"d{i:07d}", _ts(db, START + timedelta(seconds=i)), "v1",
               prompts[i // OUTPUTS], out, None, None, None, None, None, None, None, None,
               None, None, i % 20 != 7, None, "", now)


def _feedback_rows(db: BenchDatabase, first: int, sig: dict[str, int],
                   rng: random.Random) -> Iterator[tuple[Any, ...]]:
    now = _ts(db, datetime.now(UTC))
    ts = _ts(db, START + timedelta(days=30))
    n = 0
    for p in range(PROMPTS):
        base = first + p * OUTPUTS
        quality = [rng.random() for _ in range(OUTPUTS)]
        for j in range(OUTPUTS - 1):  # pairs (0, 1) and (1, 2)
            a, b = base + j, base + j + 1
            for r in range(3):
                better_a = quality[j] + rng.gauss(0, 0.3) > quality[j + 1]
                choice = "tie" if rng.random() < 0.05 else ("a" if better_a else "b")
                num = {"a": 1.0, "b": 0.0, "tie": 0.5}[choice]
                yield (db.project.id, f"v{n}", a, sig["pref"], f'"{choice}"', num,
                       "annotator", ts, "", now, b, choice, f"rater{r}")
                n += 1
    ratings = N_FEEDBACK - n
    for k in range(ratings):
        i = k % (PROMPTS * OUTPUTS)
        stars = 1 + int(4.99 * rng.random())
        yield (db.project.id, f"s{k}", first + i, sig["stars"], str(stars), float(stars),
               "annotator", ts, "", now, None, None, f"rater{k // (PROMPTS * OUTPUTS)}")


def _bulk(db: BenchDatabase, rows: Iterator[tuple[Any, ...]]) -> None:
    cols = ", ".join(FB_COLUMNS)
    conn = db.driver_connection()
    try:
        for part in _chunks(rows, 50_000):
            if db.kind == "sqlite":
                conn.execute("BEGIN")
                conn.executemany(f"INSERT INTO feedback ({cols}) VALUES "
                                 f"({', '.join('?' * len(FB_COLUMNS))})", part)
                conn.execute("COMMIT")
            else:
                with conn.cursor() as cur, cur.copy(
                        f"COPY feedback ({cols}) FROM STDIN") as copy:
                    for row in part:
                        copy.write_row(row)
                conn.commit()
        if db.kind == "sqlite":
            conn.execute("ANALYZE")
        else:
            conn.autocommit = True
            conn.execute("ANALYZE")
    finally:
        conn.close()


def _fill(db: BenchDatabase, store: Store) -> dict[str, int]:
    t0 = time.perf_counter()
    sig = {s.name: s.id for s in (
        create_signal(store, db.project, SignalIn(name="pref", type="pairwise")),
        create_signal(store, db.project, SignalIn(name="stars", type="ordinal", scale_min=1,
                                                  scale_max=5)))}
    rng = random.Random(0)
    prompts, outputs = _texts(rng)
    bulk_insert(db, _interaction_rows(db, prompts, outputs), chunk=50_000)
    conn = db.driver_connection()
    try:
        cur = conn.cursor()
        cur.execute("SELECT min(id) FROM interactions")
        first = int(cur.fetchone()[0])
        cur.close()
    finally:
        conn.close()
    _bulk(db, _feedback_rows(db, first, sig, rng))
    print(f"  datasets: filled {len(outputs):,} interactions and {N_FEEDBACK:,} feedback on "
          f"{db.kind} in {time.perf_counter() - t0:.0f} s", flush=True)
    return sig


def _raw_select(db: BenchDatabase, sig: dict[str, int]) -> int:
    """The same feedback rows the recipe reads, fetched by the driver: the floor."""
    p = "?" if db.kind == "sqlite" else "%s"
    sql = ("SELECT id, client_id, interaction_id, interaction_b_id, value_num, value_text, "
           f"rater_id FROM feedback WHERE project_id = {p} AND signal_id IN ({p}, {p}) "
           "ORDER BY id")
    conn = db.driver_connection()
    try:
        cur = conn.cursor()
        cur.execute(sql, (db.project.id, sig["pref"], sig["stars"]))
        n = len(cur.fetchall())
        cur.close()
        return n
    finally:
        conn.close()


def run(kinds: list[str]) -> list[Result]:
    results: list[Result] = []
    for kind in kinds:
        with database(kind, project="bench") as db:
            store = Store.from_url(db.url)
            try:
                sig = _fill(db, store)
                t0 = time.perf_counter()
                assert _raw_select(db, sig) == N_FEEDBACK
                base = time.perf_counter() - t0
                stages: dict[str, float] = {}

                def progress(stage: str, _done: int, _total: int,
                             seen: dict[str, float] = stages) -> None:
                    seen[stage] = time.perf_counter()

                t0 = time.perf_counter()
                ds = build_dataset(store, "bench", "prefs", "preference", PARAMS,
                                   progress=progress)
                ours = time.perf_counter() - t0
            finally:
                store.dispose()
        marks = list(stages.items())
        split = {marks[i][0]: round(marks[i + 1][1] - marks[i][1], 1)
                 for i in range(len(marks) - 1)}
        c = ds.counts
        print(f"  datasets: {c['rows']:,} rows from {c['feedback']['used']:,} feedback; "
              f"dropped {c['dropped']}; feedback dropped {c['feedback']['dropped']}; "
              f"stages (s) {split}", flush=True)
        r = Result(GROUP, f"build preference dataset, {N_FEEDBACK:,} feedback", kind,
                   ours * 1000, base * 1000, "ms", f"< {TARGET_S:.0f} s", ours < TARGET_S,
                   higher_is_better=False,
                   note="baseline: raw driver SELECT of the same feedback rows",
                   extra={"rows": c["rows"], "stages_s": split})
        print(r.line(), flush=True)
        results.append(r)
    return results
