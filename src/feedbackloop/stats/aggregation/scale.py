"""Means of numeric ratings corrected for each rater's leniency or severity."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from ._long_format import check_lengths, encode, to_list, to_values

__all__ = ["RaterBiasCorrectedMean"]


class RaterBiasCorrectedMean:
    """Additive rater-bias model for scale ratings (1-5 stars, 0-10 scores):

        value_ij = μ_i + b_j + ε_ij,    Σ_j b_j = 0,

    with μ_i the task's true mean and b_j worker j's bias (positive = lenient), fitted by
    least squares with alternating updates (a two-way additive model without interaction;
    the ALS/backfitting scheme of e.g. Hastie and Tibshirani 1990, ch. 4):

        b_j ← mean over j's ratings of (value - μ_i),  then b ← b - mean(b),
        μ_i ← mean over i's ratings of (value - b_j),

    until no μ or b moves more than ``tol`` or after ``n_iter`` rounds (``converged_``).
    Each step cannot increase the squared error, so the fit never does worse in-sample
    than the plain per-task mean (the start, b = 0).

    Identifiability: the biases are fixed only up to one shift per connected component of
    the task-worker graph; the sum-to-zero constraint is global, so on a disconnected
    design the components' levels are not comparable. A worker who rated only tasks no one
    else rated has a bias that cannot be told apart from those tasks' means.

    Fitted attributes: ``means_`` (task → μ), ``biases_`` (worker → b), ``n_iter_``,
    ``converged_``.
    """

    means_: dict[Hashable, float]
    biases_: dict[Hashable, float]
    n_iter_: int
    converged_: bool

    def __init__(self, n_iter: int = 1000, tol: float = 1e-9) -> None:
        if n_iter < 1:
            raise ValueError(f"n_iter must be at least 1, got {n_iter}")
        self.n_iter = n_iter
        self.tol = tol

    def fit(self, task: Any, worker: Any, value: Any) -> RaterBiasCorrectedMean:
        task_ids, worker_ids = to_list("task", task), to_list("worker", worker)
        v = to_values("value", value)
        check_lengths({"task": task_ids, "worker": worker_ids, "value": v})
        tasks, t = encode("task", task_ids)
        workers, w = encode("worker", worker_ids)
        per_task = np.bincount(t, minlength=len(tasks)).astype(float)
        per_worker = np.bincount(w, minlength=len(workers)).astype(float)
        means = np.bincount(t, weights=v, minlength=len(tasks)) / per_task
        biases = np.zeros(len(workers))
        converged = False
        iteration = 0
        while iteration < self.n_iter:
            iteration += 1
            new_biases = np.bincount(w, weights=v - means[t], minlength=len(workers))
            new_biases = new_biases / per_worker
            new_biases -= new_biases.mean()
            new_means = np.bincount(t, weights=v - new_biases[w],
                                    minlength=len(tasks)) / per_task
            change = max(np.abs(new_biases - biases).max(), np.abs(new_means - means).max())
            means, biases = new_means, new_biases
            if change <= self.tol:
                converged = True
                break
        self.n_iter_ = iteration
        self.converged_ = converged
        self.means_ = dict(zip(tasks, means.tolist(), strict=True))
        self.biases_ = dict(zip(workers, biases.tolist(), strict=True))
        return self
