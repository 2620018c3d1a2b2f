"""Majority vote: each task gets the label most of its workers gave."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from ._long_format import check_lengths, encode, to_list

__all__ = ["MajorityVote", "encode_annotations", "vote_shares"]


def encode_annotations(
    task: Any, worker: Any, label: Any
) -> tuple[list[Hashable], np.ndarray, list[Hashable], np.ndarray, list[Hashable], np.ndarray]:
    """Validate the three long-format columns and encode them as integer codes:
    ``(tasks, t, workers, w, classes, l)``."""
    columns = {"task": to_list("task", task), "worker": to_list("worker", worker),
               "label": to_list("label", label)}
    check_lengths(columns)
    tasks, t = encode("task", columns["task"])
    workers, w = encode("worker", columns["worker"])
    classes, lab = encode("label", columns["label"])
    return tasks, t, workers, w, classes, lab


def vote_shares(t: np.ndarray, lab: np.ndarray, n_tasks: int, n_classes: int) -> np.ndarray:
    """Share of each task's labels that went to each class, shape (tasks, classes)."""
    counts = np.bincount(t * n_classes + lab, minlength=n_tasks * n_classes)
    counts = counts.reshape(n_tasks, n_classes).astype(float)
    return np.asarray(counts / counts.sum(axis=1, keepdims=True))


def probas_dict(tasks: list[Hashable], classes: list[Hashable],
                probas: np.ndarray) -> dict[Hashable, dict[Hashable, float]]:
    return {task: dict(zip(classes, row, strict=True))
            for task, row in zip(tasks, probas.tolist(), strict=True)}


class MajorityVote:
    """Majority vote over long-format annotations ``(task, worker, label)``.

    For task t with n_t labels, ``probas_[t][k] = #{labels of t equal to k} / n_t``; the
    label is argmax_k of that share and ``confidence_[t]`` is the winning share. A tie goes
    to the first tied label in label order: sorted order when the labels are comparable
    (so ``0`` before ``1``, ``"bad"`` before ``"good"``), order of first appearance
    otherwise. Every worker counts equally; see :class:`DawidSkene` for weighting workers
    by their estimated reliability.

    Fitted attributes: ``labels_``, ``probas_``, ``confidence_`` (dicts keyed by task),
    ``classes_`` (labels in label order).
    """

    labels_: dict[Hashable, Hashable]
    probas_: dict[Hashable, dict[Hashable, float]]
    confidence_: dict[Hashable, float]
    classes_: list[Hashable]

    def fit(self, task: Any, worker: Any, label: Any) -> MajorityVote:
        tasks, t, _, _, classes, lab = encode_annotations(task, worker, label)
        shares = vote_shares(t, lab, len(tasks), len(classes))
        winner = shares.argmax(axis=1)  # argmax returns the first maximum: label order
        self.classes_ = classes
        self.probas_ = probas_dict(tasks, classes, shares)
        self.labels_ = {task: classes[k] for task, k in zip(tasks, winner.tolist(), strict=True)}
        self.confidence_ = dict(zip(tasks, shares.max(axis=1).tolist(), strict=True))
        return self
