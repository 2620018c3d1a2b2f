"""Model registry and trainers: the reward model trained on 100,000 preference pairs with
cached sentence embeddings, and ``resolve`` with 100 toggle rules.

*Training*: a preference dataset of 100,000 training pairs (20,000 prompts, five pairs
each) plus 10,000 held-out pairs is written into the ``datasets`` tables, and a 384-number
vector for every text is put into the embedding scorers' disk cache first (synthetic
vectors with known structure: the chosen response lies nearer its prompt's topic and along
a "quality" direction), so no encoder runs: that is what "with cached embeddings" means —
in production the vectors come from an earlier scoring or training run. Ours:
``improve.trainers.train(store, project, "reward-model", dataset, params={"features":
"embeddings", "cache_dir": ...})`` end to end (rows read from the database, vectors from
the cache, feature differences, the Bradley-Terry fit, the held-out report with its
baselines, the artifact stored and the version registered). Baseline: scikit-learn's
``LogisticRegression(fit_intercept=False).fit`` on the same 100,000 x 386 difference
matrix already in memory — the fit alone, the floor of any trainer.

*Resolve*: a component with ten versions and a toggle of 100 rules, each on a cohort
attribute; half the units match no rule (every rule is tried, the worst case) and half a
random one. Ours: ``improve.registry.resolve`` from its cache (the default one-second TTL,
so the freshness query runs now and then inside the measured calls); baseline: the pure
compiled ``Toggle.resolve`` on the same rules and units. Each call is timed alone; p50 and
p99 over 50,000 calls after 2,000 warm-ups. A third row measures ``ttl=0`` (the freshness
query on every call) to show what the cache saves.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from feedbackloop.improve import registry as reg
from feedbackloop.improve.toggles import Toggle
from feedbackloop.scoring._embedding_cache import DiskCache, text_key
from feedbackloop.scoring.embeddings import DIMENSIONS, MODEL_NAME
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import dataset_rows, datasets

from .databases import BenchDatabase, database
from .report import Result

GROUP = "models"
TRAIN_PAIRS = 100_000
TEST_PAIRS = 10_000
PAIRS_PER_PROMPT = 5
TOPICS = 500
TARGET_TRAIN_S = 60.0
TARGET_RESOLVE_MS = 1.0
RULES = 100
CALLS = 50_000
WARMUP = 2_000


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _pairs(rng: np.random.Generator) -> tuple[list[dict[str, str]], dict[str, np.ndarray]]:
    """Rows and the vector of every text (prompts, chosen and rejected responses)."""
    n = TRAIN_PAIRS + TEST_PAIRS
    n_prompts = n // PAIRS_PER_PROMPT
    centres = _unit(rng.normal(size=(TOPICS, DIMENSIONS)))
    quality = _unit(rng.normal(size=(1, DIMENSIONS)))[0]
    topic = rng.integers(TOPICS, size=n_prompts)
    prompts = _unit(centres[topic] + 0.6 * rng.normal(size=(n_prompts, DIMENSIONS))
                    / np.sqrt(DIMENSIONS) * 8)
    which = np.repeat(np.arange(n_prompts), PAIRS_PER_PROMPT)
    noise = 0.8 * 8 / np.sqrt(DIMENSIONS)
    chosen = _unit(centres[topic[which]] + 0.3 * quality
                   + noise * rng.normal(size=(n, DIMENSIONS)))
    off_topic = rng.random(n) < 0.5
    other = np.where(off_topic, rng.integers(TOPICS, size=n), topic[which])
    rejected = _unit(centres[other] - 0.3 * quality * ~off_topic[:, None]
                     + noise * rng.normal(size=(n, DIMENSIONS)))
    rows, vectors = [], {}
    for i in range(n_prompts):
        vectors[f"prompt {i}: how do I do task {i}?"] = prompts[i]
    for j in range(n):
        p = f"prompt {which[j]}: how do I do task {which[j]}?"
        c, r = f"answer {j}a to prompt {which[j]}", f"answer {j}b to prompt {which[j]}"
        vectors[c], vectors[r] = chosen[j], rejected[j]
        rows.append({"prompt": p, "chosen": c, "rejected": r})
    return rows, vectors


def _fill_cache(folder: Path, vectors: dict[str, np.ndarray]) -> None:
    cache = DiskCache(folder, MODEL_NAME, DIMENSIONS)
    items = [(text_key(t), v) for t, v in vectors.items()]
    for start in range(0, len(items), 50_000):
        cache.put_many(items[start:start + 50_000])
    cache.close()


def _insert_dataset(store: Store, project_id: int, rows: list[dict[str, str]]) -> int:
    splits = ["train"] * TRAIN_PAIRS + ["test"] * TEST_PAIRS
    with store.transaction() as conn:
        ds_id = int(conn.execute(datasets.insert().values(
            project_id=project_id, name="prefs", version=1, recipe="preference", params={},
            content_hash=hashlib.sha256(b"bench").hexdigest(),
            counts={"splits": {"train": TRAIN_PAIRS, "test": TEST_PAIRS},
                    "rows": len(rows)},
            card={}, created_by="bench", created_at=utcnow())
        ).inserted_primary_key[0])  # type: ignore[index]
        batch: list[dict[str, Any]] = []
        for i, (row, split) in enumerate(zip(rows, splits, strict=True)):
            batch.append({"dataset_id": ds_id, "position": i, "split": split,
                          "group_key": hashlib.sha256(row["prompt"].encode()).hexdigest(),
                          "data": row, "feedback_ids": []})
            if len(batch) == 10_000:
                conn.execute(dataset_rows.insert(), batch)
                batch = []
        if batch:
            conn.execute(dataset_rows.insert(), batch)
    return ds_id


def _baseline_fit(rows: list[dict[str, str]], vectors: dict[str, np.ndarray],
                  seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    train = rows[:TRAIN_PAIRS]
    p = np.stack([vectors[r["prompt"]] for r in train]).astype(np.float64)
    c = np.stack([vectors[r["chosen"]] for r in train]).astype(np.float64)
    r = np.stack([vectors[r["rejected"]] for r in train]).astype(np.float64)
    rel = np.einsum("ij,ij->i", p, c) - np.einsum("ij,ij->i", p, r)
    x = np.hstack([c - r, rel[:, None], np.zeros((len(train), 1))])
    keep = np.random.default_rng(seed).random(len(train)) < 0.5
    x *= np.where(keep, 1.0, -1.0)[:, None]
    t0 = time.perf_counter()
    LogisticRegression(fit_intercept=False, C=1.0, max_iter=1000, tol=1e-6).fit(
        x, keep.astype(int))
    return time.perf_counter() - t0


def _train(db: BenchDatabase, rows: list[dict[str, str]], cache: Path,
           baseline: float) -> Result:
    from feedbackloop.improve.trainers import train

    store = Store.from_url(db.url)
    try:
        ds_id = _insert_dataset(store, db.project.id, rows)
        marks: list[tuple[str, float]] = []
        t0 = time.perf_counter()
        _, version = train(store, db.project, "reward-model", ds_id,
                           params={"features": "embeddings", "cache_dir": str(cache)},
                           artifact_root=db.workdir / "artifacts",
                           progress=lambda stage, done, total: marks.append(
                               (stage, time.perf_counter())))
        seconds = time.perf_counter() - t0
    finally:
        store.dispose()
    phases: dict[str, float] = {}
    last, current = t0, "read rows"
    for stage, at in marks:  # a stage lasts from its mark to the next one
        phases[current] = phases.get(current, 0.0) + at - last
        last, current = at, stage
    held = version.metrics["held_out"]
    acc = held["accuracy"]["value"]
    split = ", ".join(f"{k} {v:.1f} s" for k, v in phases.items() if v >= 0.05)
    print(f"  {db.kind}: train {seconds:.1f} s ({split}); held-out accuracy {acc:.3f} "
          f"(longer wins {held['baselines']['longer_wins']['value']:.3f}, relevance only "
          f"{held['baselines']['relevance_only']['value']:.3f})", flush=True)
    return Result(GROUP, "reward-model training, 100,000 pairs, cached embeddings",
                  db.kind, seconds, baseline, "s", f"< {TARGET_TRAIN_S:.0f} s",
                  seconds < TARGET_TRAIN_S, higher_is_better=False,
                  note=f"{TRAIN_PAIRS:,} training + {TEST_PAIRS:,} held-out pairs, "
                       f"{TRAIN_PAIRS // PAIRS_PER_PROMPT:,} training prompts, 384-d vectors "
                       f"from the disk cache; ours: train() end to end ({split}), held-out "
                       f"accuracy {acc:.3f}; "
                       "baseline: LogisticRegression.fit on the same difference matrix "
                       "in memory",
                  extra={"order": 0, "phases_s": phases, "held_out_accuracy": acc})


def _latencies(fn: Any, inputs: list[tuple[str, dict[str, str]]]) -> np.ndarray:
    for unit, attrs in inputs[:WARMUP]:
        fn(unit, attrs)
    out = np.empty(len(inputs), dtype=np.float64)
    clock = time.perf_counter_ns
    for i, (unit, attrs) in enumerate(inputs):
        t0 = clock()
        fn(unit, attrs)
        out[i] = clock() - t0
    return out / 1e6  # ms


def _resolve(db: BenchDatabase) -> list[Result]:
    rng = np.random.default_rng(1)
    store = Store.from_url(db.url)
    try:
        for v in range(10):
            reg.register_version(store, db.project, "ranking", f"v{v}")
        reg.promote(store, db.project, "ranking", "v0")
        rules = [{"name": f"cohort {i}",
                  "when": [{"attribute": "cohort", "op": "eq", "value": f"c{i}"}],
                  "split": {f"v{i % 9 + 1}": 50}} for i in range(RULES)]
        reg.set_toggle(store, db.project, "ranking", rules)
        inputs = [(f"user-{i}", {"cohort": f"c{int(rng.integers(RULES))}"}
                   if rng.random() < 0.5 else {"cohort": "none"})
                  for i in range(CALLS)]
        reg.clear_resolve_cache()
        name = db.project.name
        ours = _latencies(lambda u, a: reg.resolve(store, name, "ranking", u, a), inputs)
        pure = Toggle.from_dict("ranking", rules, default="v0")
        base = _latencies(pure.resolve, inputs)
        every = _latencies(lambda u, a: reg.resolve(store, name, "ranking", u, a, ttl=0),
                           inputs[:5000])
        check = [reg.resolve(store, name, "ranking", u, a)["version"] == pure.resolve(u, a)
                 .version for u, a in inputs[:2000]]
        assert all(check), "registry.resolve disagrees with Toggle.resolve"
    finally:
        store.dispose()
    p = {k: (float(np.percentile(v, 50)), float(np.percentile(v, 99)))
         for k, v in (("ours", ours), ("base", base), ("every", every))}
    print(f"  {db.kind}: resolve p50 {p['ours'][0] * 1000:.0f} µs, p99 "
          f"{p['ours'][1] * 1000:.0f} µs (pure toggle p99 {p['base'][1] * 1000:.0f} µs; "
          f"freshness query every call p99 {p['every'][1] * 1000:.0f} µs)", flush=True)
    where = f"{RULES} rules on a cohort attribute, half the units matching none"
    return [
        Result(GROUP, "resolve, 100 toggle rules (p99)", db.kind, p["ours"][1] * 1000,
               p["base"][1] * 1000, "µs", f"p99 < {TARGET_RESOLVE_MS:g} ms",
               p["ours"][1] < TARGET_RESOLVE_MS, higher_is_better=False,
               ours_p95=None,
               note=f"{where}; {CALLS:,} calls each timed alone after {WARMUP:,} warm-ups; "
                    f"ours: registry.resolve from its cache (1 s TTL, then one freshness "
                    f"query), p50 {p['ours'][0] * 1000:.0f} µs; baseline: the pure compiled "
                    f"Toggle.resolve, p50 {p['base'][0] * 1000:.0f} µs",
               extra={"order": 1, "p50_us": p["ours"][0] * 1000}),
        Result(GROUP, "resolve, 100 toggle rules, freshness query on every call (p99)",
               db.kind, p["every"][1] * 1000, p["ours"][1] * 1000, "µs",
               higher_is_better=False,
               note="resolve(ttl=0): what the cache saves; baseline: the cached resolve",
               extra={"order": 2}),
    ]


def run(dbs: list[str] | None = None) -> list[Result]:
    """Measure and return the rows of the ``models`` group."""
    results: list[Result] = []
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    rows, vectors = _pairs(rng)
    with tempfile.TemporaryDirectory(prefix="fl-bench-models-") as folder:
        cache = Path(folder) / "embeddings"
        _fill_cache(cache, vectors)
        print(f"  fixtures: {len(rows):,} pairs, {len(vectors):,} cached vectors in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        baseline = statistics.median(_baseline_fit(rows, vectors, seed) for seed in (0,))
        del vectors
        for kind in dbs or ["sqlite"]:
            with database(kind) as db:
                results.append(_train(db, rows, cache, baseline))
                print(results[-1].line(), flush=True)
    for kind in dbs or ["sqlite"]:
        with database(kind) as db:
            results += _resolve(db)
            for r in results[-2:]:
                print(r.line(), flush=True)
    return results
