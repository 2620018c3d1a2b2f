"""Label aggregation on 2 cores' worth of numpy: Dawid-Skene EM on 100,000 tasks with 5
labels each (target < 30 s), beside majority vote on the same annotations;
Bradley-Terry on 200 items and 50,000 comparisons, beside a plain win count; and
Krippendorff's alpha on 100,000 units x 10 raters with 20 % missing (nominal < 1 s,
interval on continuous ratings < 2 s) beside the ``krippendorff`` package, which runs in a
subprocess under a memory and time limit because it builds a values x values matrix."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from feedbackloop.stats import BradleyTerry, DawidSkene, MajorityVote
from feedbackloop.stats.agreement import krippendorff_alpha

from .report import Result

GROUP = "aggregation"
TASKS = 100_000
PER_TASK = 5
CLASSES = 3
WORKERS = 200
TARGET_S = 30.0
ITEMS = 200
COMPARISONS = 50_000
ALPHA_UNITS = 100_000
ALPHA_RATERS = 10
ALPHA_MISSING = 0.2
ALPHA_NOMINAL_TARGET_S = 1.0
ALPHA_INTERVAL_TARGET_S = 2.0
SMALL_UNITS = 100  # the package builds units x values x values: 1,000 units need 488 GB
PACKAGE_MEMORY_GB = 8
PACKAGE_TIMEOUT_S = 300


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


def alpha_ratings(level: str, units: int = ALPHA_UNITS, seed: int = 0) -> np.ndarray:
    """(raters, units) ratings with ``ALPHA_MISSING`` missing: 5 categories, each rater
    right 80 % of the time (nominal), or a true score plus N(0, 0.5) noise, all values
    distinct (interval, continuous)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, units)
    if level == "nominal":
        ratings = np.where(rng.random((ALPHA_RATERS, units)) < 0.8, truth,
                           rng.integers(0, 5, (ALPHA_RATERS, units))).astype(float)
    else:
        ratings = truth + rng.normal(0, 0.5, (ALPHA_RATERS, units))
    ratings[rng.random(ratings.shape) < ALPHA_MISSING] = np.nan
    return ratings


_PACKAGE_RUN = """
import json, sys, time
import krippendorff
from benchmarks.aggregation import alpha_ratings
level, units = sys.argv[1], int(sys.argv[2])
ratings = alpha_ratings(level, units)
t0 = time.perf_counter()
value = krippendorff.alpha(ratings, level_of_measurement=level)
print(json.dumps({"seconds": time.perf_counter() - t0, "alpha": float(value)}))
"""


def _limit_memory() -> None:
    limit = PACKAGE_MEMORY_GB * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def package_alpha(level: str, units: int) -> tuple[float | None, float | None, str]:
    """Seconds and alpha of ``krippendorff.alpha`` in a subprocess limited to
    ``PACKAGE_MEMORY_GB`` of address space and ``PACKAGE_TIMEOUT_S``; (None, None, why)
    when it fails."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        done = subprocess.run([sys.executable, "-c", _PACKAGE_RUN, level, str(units)],
                              capture_output=True, text=True, cwd=root, env=env,
                              timeout=PACKAGE_TIMEOUT_S, preexec_fn=_limit_memory,
                              check=False)
    except subprocess.TimeoutExpired:
        return None, None, f"did not finish in {PACKAGE_TIMEOUT_S} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit code " + str(done.returncode)])[-1]
        return None, None, f"failed under a {PACKAGE_MEMORY_GB} GB memory limit: {last[:160]}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return float(out["seconds"]), float(out["alpha"]), ""


def _best_of(call: Callable[[], Any], repeat: int = 3) -> float:
    return min(_seconds(call) for _ in range(repeat))


def alpha_results() -> list[Result]:
    results = []
    size = f"{ALPHA_UNITS:,} units x {ALPHA_RATERS} raters, {ALPHA_MISSING:.0%} missing"
    nominal = alpha_ratings("nominal")
    ours_value = krippendorff_alpha(nominal, "nominal").value
    ours = _best_of(lambda: krippendorff_alpha(nominal, "nominal"))
    base, base_value, why = package_alpha("nominal", ALPHA_UNITS)
    note = (f"baseline: krippendorff {_package_version()} in a subprocess; alpha "
            f"{ours_value:.6f} vs {base_value:.6f}" if base is not None else
            f"baseline: krippendorff {_package_version()} {why}")
    results.append(Result(GROUP, f"Krippendorff's alpha, nominal, {size}", "-",
                          ours * 1000, base * 1000 if base is not None else None, "ms",
                          f"< {ALPHA_NOMINAL_TARGET_S:.0f} s",
                          ours < ALPHA_NOMINAL_TARGET_S, higher_is_better=False, note=note,
                          extra={"order": 2}))
    print(results[-1].line(), flush=True)
    interval = alpha_ratings("interval")
    ours_value = krippendorff_alpha(interval, "interval").value
    ours = _best_of(lambda: krippendorff_alpha(interval, "interval"))
    base, base_value, why = package_alpha("interval", ALPHA_UNITS)
    distinct = int(np.unique(interval[~np.isnan(interval)]).size)
    note = (f"{distinct:,} distinct values; baseline: krippendorff {_package_version()} "
            + (f"{base_value:.6f} in {base:.1f} s" if base is not None else why))
    results.append(Result(GROUP, f"Krippendorff's alpha, interval (continuous), {size}",
                          "-", ours * 1000, base * 1000 if base is not None else None, "ms",
                          f"< {ALPHA_INTERVAL_TARGET_S:.0f} s",
                          ours < ALPHA_INTERVAL_TARGET_S, higher_is_better=False, note=note,
                          extra={"order": 3}))
    print(results[-1].line(), flush=True)
    small = alpha_ratings("interval", SMALL_UNITS)
    ours_value = krippendorff_alpha(small, "interval").value
    ours = _best_of(lambda: krippendorff_alpha(small, "interval"))
    base, base_value, why = package_alpha("interval", SMALL_UNITS)
    note = (f"the size the package can still handle; alpha {ours_value:.6f} vs "
            f"{base_value:.6f}" if base is not None else why)
    results.append(Result(GROUP, f"Krippendorff's alpha, interval (continuous), "
                                 f"{SMALL_UNITS:,} units x {ALPHA_RATERS} raters", "-",
                          ours * 1000, base * 1000 if base is not None else None, "ms",
                          higher_is_better=False, note=note, extra={"order": 4}))
    print(results[-1].line(), flush=True)
    boot = _seconds(lambda: krippendorff_alpha(interval, "interval",
                                               rng=np.random.default_rng(0)))
    point = results[1].ours / 1000
    results.append(Result(GROUP, f"Krippendorff's alpha, interval, {size}, with 1,000 "
                                 "bootstrap resamples", "-", boot * 1000, point * 1000, "ms",
                          higher_is_better=False,
                          note="baseline: the point estimate alone (no interval)",
                          extra={"order": 5}))
    print(results[-1].line(), flush=True)
    return results


def _package_version() -> str:
    from importlib.metadata import version

    return version("krippendorff")


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
    results += alpha_results()
    return results
