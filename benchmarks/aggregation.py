"""Label aggregation on 2 cores' worth of numpy: Dawid-Skene EM on 100,000 tasks with 5
labels each (target < 30 s), beside majority vote on the same annotations; and
Bradley-Terry on 200 items and 50,000 comparisons, beside a plain win count."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from feedbackloop.stats import BradleyTerry, DawidSkene, MajorityVote

from .report import Result

GROUP = "aggregation"
TASKS = 100_000
PER_TASK = 5
CLASSES = 3
WORKERS = 200
TARGET_S = 30.0
ITEMS = 200
COMPARISONS = 50_000


def simulated_annotations(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``TASKS`` tasks with ``PER_TASK`` labels from ``WORKERS`` workers: accuracies from
    0.4 to 0.9, every tenth worker a spammer answering at random."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, CLASSES, TASKS)
    accuracy = rng.uniform(0.4, 0.9, WORKERS)
    accuracy[::10] = 1 / CLASSES
    task = np.repeat(np.arange(TASKS), PER_TASK)
    worker = rng.integers(0, WORKERS, task.size)
    correct = rng.random(task.size) < accuracy[worker]
    label = np.where(correct, truth[task], rng.integers(0, CLASSES, task.size))
    return task, worker, label, truth


def comparisons(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = rng.normal(0, 1, ITEMS)
    a = rng.integers(0, ITEMS, COMPARISONS)
    b = (a + rng.integers(1, ITEMS, COMPARISONS)) % ITEMS
    a_wins = rng.random(COMPARISONS) < 1 / (1 + np.exp(-(theta[a] - theta[b])))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def _seconds(call: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def _accuracy(labels: dict[Any, Any], truth: np.ndarray) -> float:
    return float(np.mean(np.array([labels[i] for i in range(truth.size)]) == truth))


def run(kinds: list[str]) -> list[Result]:
    print(f"aggregation: {TASKS:,} tasks x {PER_TASK} labels, {WORKERS} workers")
    task, worker, label, truth = simulated_annotations()
    DawidSkene().fit(task[:1000], worker[:1000], label[:1000])  # warm-up
    ds, mv = DawidSkene(), MajorityVote()
    ours = _seconds(lambda: ds.fit(task, worker, label))
    base = _seconds(lambda: mv.fit(task, worker, label))
    results = [Result(GROUP, f"Dawid-Skene, {TASKS:,} tasks x {PER_TASK} labels", "-",
                      ours * 1000, base * 1000, "ms", f"< {TARGET_S:.0f} s", ours < TARGET_S,
                      higher_is_better=False,
                      note=(f"baseline: majority vote; {ds.n_iter_} EM iterations; accuracy "
                            f"{_accuracy(ds.labels_, truth):.3f} vs majority "
                            f"{_accuracy(mv.labels_, truth):.3f}"),
                      extra={"order": 0})]
    print(results[-1].line(), flush=True)
    winner, loser = comparisons()
    bt = BradleyTerry()
    ours = _seconds(lambda: bt.fit(winner, loser))
    base = _seconds(lambda: np.bincount(winner, minlength=ITEMS))
    results.append(Result(GROUP, f"Bradley-Terry, {ITEMS} items, {COMPARISONS:,} comparisons",
                          "-", ours * 1000, base * 1000, "ms", higher_is_better=False,
                          note=f"baseline: win counts; {bt.n_iter_} Newton iterations",
                          extra={"order": 1}))
    print(results[-1].line(), flush=True)
    return results
