"""Dawid and Skene's EM: the true label of each task and each worker's confusion matrix.

Dawid, A. P. and Skene, A. M. (1979). Maximum likelihood estimation of observer
error-rates using the EM algorithm. Journal of the Royal Statistical Society, Series C
(Applied Statistics), 28(1), 20-28.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .majority import encode_annotations, probas_dict, vote_shares

__all__ = ["DawidSkene"]


class DawidSkene:
    """Latent-class model of annotations: task i has an unobserved true label z_i with
    prior ``π_k = P(z_i = k)``, and worker j reports label l with probability
    ``e_j[k, l] = P(label = l | z_i = k)`` (the worker's confusion matrix, rows = true label),
    independently across workers given z_i. The posterior of task i is

        P(z_i = k | labels) ∝ π_k · Π_{(j, l) labels of i} e_j[k, l],

    and EM alternates that E-step with the M-step

        π_k = Σ_i T_ik / N,    e_j[k, l] ∝ Σ_{i labelled l by j} T_ik.

    EM starts from the majority-vote shares as T (Dawid and Skene 1979, section 3) and
    stops when the relative change in the log-likelihood Σ_i log Σ_k π_k Π e_j[k, l] is at
    most ``tol`` or after ``n_iter`` iterations (``converged_`` says which).

    Smoothing: ``smoothing`` (default 0.01) is added to every count in the M-step, for the
    confusion cells and the class counts alike, so no probability is exactly 0 and no
    ``log(0)`` occurs — e.g. for a worker who never saw some true class, whose row is then
    uniform. This is the MAP estimate under a Dirichlet(1 + smoothing) prior; with the
    default it moves estimates by about 0.01 / (labels of the worker).

    Fitted attributes: ``labels_`` (task → most probable label, ties in label order),
    ``probas_`` (task → {label: posterior}), ``priors_`` (label → π), ``errors_``
    (worker → KxK array, rows = true label, columns = given label, both in ``classes_``
    order), ``classes_``, ``n_iter_``, ``log_likelihood_``, ``converged_``.

    All steps are numpy ``bincount``s over the annotations, O(annotations x labels) per
    iteration.
    """

    labels_: dict[Hashable, Hashable]
    probas_: dict[Hashable, dict[Hashable, float]]
    priors_: dict[Hashable, float]
    errors_: dict[Hashable, np.ndarray]
    classes_: list[Hashable]
    n_iter_: int
    log_likelihood_: float
    converged_: bool

    def __init__(self, n_iter: int = 100, tol: float = 1e-6, smoothing: float = 0.01) -> None:
        if n_iter < 1:
            raise ValueError(f"n_iter must be at least 1, got {n_iter}")
        if tol < 0:
            raise ValueError(f"tol must be non-negative, got {tol}")
        if smoothing <= 0:
            raise ValueError(f"smoothing must be positive so that log(0) cannot occur, "
                             f"got {smoothing}")
        self.n_iter = n_iter
        self.tol = tol
        self.smoothing = smoothing

    def fit(self, task: Any, worker: Any, label: Any) -> DawidSkene:
        tasks, t, workers, w, classes, lab = encode_annotations(task, worker, label)
        n_tasks, n_workers, n_classes = len(tasks), len(workers), len(classes)
        posterior = vote_shares(t, lab, n_tasks, n_classes)
        cell = w * n_classes + lab
        previous = -np.inf
        converged = False
        iteration = 0
        while iteration < self.n_iter:
            iteration += 1
            priors, errors = self._m_step(posterior, t, cell, n_workers, n_classes)
            posterior, log_lik = _e_step(priors, errors, t, w, lab, n_tasks)
            if abs(log_lik - previous) <= self.tol * abs(log_lik):
                converged = True
                break
            previous = log_lik
        self.classes_ = classes
        self.n_iter_ = iteration
        self.log_likelihood_ = float(log_lik)
        self.converged_ = converged
        self.priors_ = dict(zip(classes, priors.tolist(), strict=True))
        self.errors_ = {name: errors[j] for j, name in enumerate(workers)}
        self.probas_ = probas_dict(tasks, classes, posterior)
        best = posterior.argmax(axis=1)
        self.labels_ = {task: classes[k] for task, k in zip(tasks, best.tolist(), strict=True)}
        return self

    def _m_step(self, posterior: np.ndarray, t: np.ndarray, cell: np.ndarray,
                n_workers: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
        per_label = posterior[t]  # (annotations, classes): T of the annotated task
        counts = np.empty((n_workers, n_classes, n_classes))
        for k in range(n_classes):
            counts[:, k, :] = np.bincount(cell, weights=per_label[:, k],
                                          minlength=n_workers * n_classes
                                          ).reshape(n_workers, n_classes)
        counts += self.smoothing
        errors = counts / counts.sum(axis=2, keepdims=True)
        class_counts = posterior.sum(axis=0) + self.smoothing
        return class_counts / class_counts.sum(), errors


def _e_step(priors: np.ndarray, errors: np.ndarray, t: np.ndarray, w: np.ndarray,
            lab: np.ndarray, n_tasks: int) -> tuple[np.ndarray, float]:
    """Posterior over true labels per task and the observed-data log-likelihood."""
    contrib = np.log(errors)[w, :, lab]  # (annotations, classes): log e_j[k, l]
    log_joint = np.empty((n_tasks, priors.size))
    for k in range(priors.size):
        log_joint[:, k] = np.bincount(t, weights=contrib[:, k], minlength=n_tasks)
    log_joint += np.log(priors)
    norm = logsumexp(log_joint, axis=1)
    return np.exp(log_joint - norm[:, None]), float(norm.sum())
