"""Trainers: plug-ins (entry-point group ``feedbackloop.trainers``) that turn a dataset
into a candidate model version. Built-ins: ``reward-model``, ``reranker``, ``classifier``
and ``external``. :func:`train` runs one and records the run."""

from __future__ import annotations

from .base import Predictor, TrainContext, Trainer, TrainOutput
from .registry import GROUP, available_trainers, clear_trainer_cache, get_trainer
from .service import TrainingRun, get_training_run, list_training_runs, train

__all__ = [
    "GROUP",
    "Predictor",
    "TrainContext",
    "TrainOutput",
    "Trainer",
    "TrainingRun",
    "available_trainers",
    "clear_trainer_cache",
    "get_trainer",
    "get_training_run",
    "list_training_runs",
    "train",
]
