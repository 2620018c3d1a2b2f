"""What a trainer is: the protocol every built-in and plug-in trainer follows.

A trainer is a class registered under the entry-point group ``feedbackloop.trainers``
(see :mod:`.registry`), built without arguments. It declares

* ``name``: its registered name;
* ``tasks``: the dataset recipes it trains on (``("preference",)``; empty: any);
* ``component``: the component its versions belong to unless the caller says otherwise;
* ``params``: every parameter with its default (an unknown parameter is an error);

and implements ``fit(context) -> TrainOutput`` (the artifact as bytes or a file or folder,
and the metrics) and ``load(artifact_bytes) -> Predictor``. ``fit`` must be deterministic
given the data, the parameters and ``context.seed``: serialise with :func:`canonical_json`
(or another byte-stable format), never with pickle.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Predictor",
    "TrainContext",
    "TrainOutput",
    "Trainer",
    "canonical_json",
    "floats",
]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what a trainer reports while it works."""


@dataclass(frozen=True)
class DatasetInfo:
    """What a trainer knows of its dataset (a view of improve.datasets.Dataset)."""

    id: int
    name: str
    version: int
    recipe: str
    content_hash: str

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass
class TrainContext:
    dataset: DatasetInfo
    rows: dict[str, list[dict[str, Any]]]  # split → row data, in dataset order
    params: dict[str, Any]
    seed: int
    workdir: Path
    progress: Progress
    # for trainers that build on other versions (the reranker) or export (external)
    store: Any = None
    project: Any = None
    artifact_root: Any = None
    export: Callable[[Path], Path] | None = None

    def split(self, name: str) -> list[dict[str, Any]]:
        return self.rows.get(name, [])


@dataclass
class TrainOutput:
    artifact: bytes | Path
    metrics: dict[str, Any]
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Predictor(Protocol):
    """A loaded model version. ``predict`` takes one input (a dict) and answers for it;
    reward models and rerankers also ``score`` a response and ``choose`` among several."""

    kind: str

    def predict(self, item: Mapping[str, Any]) -> Any: ...


class Trainer(Protocol):
    name: str
    tasks: tuple[str, ...]
    component: str
    params: dict[str, Any]

    def fit(self, context: TrainContext) -> TrainOutput: ...

    def load(self, data: bytes) -> Predictor: ...


def floats(values: Any) -> list[float]:
    """A numpy array (any shape, flattened) as Python floats (exact in JSON)."""
    return [float(x) for x in np.asarray(values, dtype=np.float64).ravel()]


def canonical_json(value: Any) -> bytes:
    """Byte-stable JSON: sorted keys, no spaces, floats as their shortest repr (exact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def texts(rows: Sequence[Mapping[str, Any]], key: str, where: str) -> list[str]:
    """Column ``key`` of the rows as strings; a missing or non-text value names the row."""
    from ...errors import InvalidInput

    out = []
    for i, row in enumerate(rows):
        value = row.get(key)
        if not isinstance(value, str):
            raise InvalidInput(f"{where} row {i}: {key!r} must be text, not "
                               f"{type(value).__name__}", field=key, row=i)
        out.append(value)
    return out
