"""``external``: run your own training command and register the artifact it writes.

For training that does not belong in this process — a TRL DPO script on a GPU box, a
fine-tuning job behind a queue — feedbackloop exports the dataset, runs the command and
registers what it wrote. The command gets, as environment variables and as ``{name}``
placeholders in its arguments:

=========================  ====================================================
``FEEDBACKLOOP_DATASET``   the exported dataset: JSONL, one row a line with its
                           ``split`` (train, validation, test) and the row's fields;
                           with ``export_task`` (``dpo``, ``reward``, ``kto``,
                           ``sft``…) a folder of the files :mod:`..exports` writes
                           for that training task (one per split, and the card)
``FEEDBACKLOOP_ARTIFACT``  where to write the model: a file or a folder (a folder
                           is stored as a reproducible tar)
``FEEDBACKLOOP_METRICS``   optional: write a JSON object of metrics here
``FEEDBACKLOOP_SEED``      the run's seed
``FEEDBACKLOOP_PARAMS``    the trainer's parameters as JSON
=========================  ====================================================

(placeholders: ``{dataset}``, ``{artifact}``, ``{metrics}``, ``{seed}``). A command that
exits with a non-zero code, times out or writes no artifact fails the run, keeping the end
of its stderr in the run's error; nothing is registered. The command runs in a temporary
folder that is removed afterwards.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import InvalidInput
from .base import TrainContext, TrainOutput

__all__ = ["ExternalModel", "ExternalTrainer"]

STDERR_TAIL = 2000


class ExternalModel:
    """An artifact written by an external command: feedbackloop keeps and serves its bytes
    but cannot run it."""

    kind = "external"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def predict(self, item: Mapping[str, Any]) -> Any:
        raise InvalidInput("this version was trained by an external command; feedbackloop "
                           "stores its artifact but cannot run it (load the artifact with "
                           "the library that wrote it)", field="trainer")


def _tail(text: str) -> str:
    text = text.strip()
    return text[-STDERR_TAIL:] if len(text) > STDERR_TAIL else text


class ExternalTrainer:
    name = "external"
    tasks: tuple[str, ...] = ()
    component = "generation"
    params: dict[str, Any] = {"command": None, "timeout": 3600, "env": {},
                              "export_task": None, "export_style": "standard",
                              "export_format": "jsonl"}

    def fit(self, ctx: TrainContext) -> TrainOutput:
        command = ctx.params.get("command")
        if isinstance(command, str):
            args = shlex.split(command)
        elif isinstance(command, list) and all(isinstance(a, str) for a in command):
            args = list(command)
        else:
            raise InvalidInput("the external trainer needs the parameter 'command' (a "
                               "command line or a list of arguments)", field="command")
        if not args:
            raise InvalidInput("parameter 'command' is empty", field="command")
        timeout = ctx.params.get("timeout")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise InvalidInput(f"parameter 'timeout' must be a positive number of seconds, "
                               f"not {timeout!r}", field="timeout")
        extra = ctx.params.get("env") or {}
        if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                  for k, v in extra.items()):
            raise InvalidInput("parameter 'env' must map names to text values", field="env")
        dataset = self._export(ctx)
        artifact = ctx.workdir / "artifact"
        metrics_path = ctx.workdir / "metrics.json"
        places = {"dataset": str(dataset), "artifact": str(artifact),
                  "metrics": str(metrics_path), "seed": str(ctx.seed)}
        args = [a.format_map(places) if "{" in a else a for a in args]
        params = {k: v for k, v in ctx.params.items() if k != "env"}
        env = {**os.environ, **extra, "FEEDBACKLOOP_DATASET": str(dataset),
               "FEEDBACKLOOP_ARTIFACT": str(artifact),
               "FEEDBACKLOOP_METRICS": str(metrics_path),
               "FEEDBACKLOOP_SEED": str(ctx.seed),
               "FEEDBACKLOOP_PARAMS": orjson.dumps(params).decode()}
        ctx.progress("command", 0, 1)
        began = time.perf_counter()
        try:
            done = subprocess.run(args, env=env, cwd=ctx.workdir, capture_output=True,
                                  text=True, timeout=float(timeout), check=False)
        except FileNotFoundError:
            raise InvalidInput(f"the training command {args[0]!r} was not found",
                               field="command") from None
        except subprocess.TimeoutExpired as exc:
            err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) \
                else (exc.stderr or "")
            raise InvalidInput(f"the training command ran longer than {timeout} s and was "
                               f"stopped; the end of its stderr:\n{_tail(err)}",
                               field="command") from None
        seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise InvalidInput(f"the training command failed with exit code "
                               f"{done.returncode}; the end of its stderr:\n"
                               f"{_tail(done.stderr)}", field="command",
                               exit_code=done.returncode)
        if not artifact.exists():
            raise InvalidInput("the training command succeeded but wrote no artifact at "
                               f"$FEEDBACKLOOP_ARTIFACT ({artifact})", field="command")
        metrics: dict[str, Any] = {}
        if metrics_path.exists():
            try:
                metrics = orjson.loads(metrics_path.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"the metrics file the command wrote is not JSON: {exc}",
                                   field="metrics") from None
            if not isinstance(metrics, dict):
                raise InvalidInput("the metrics file must hold a JSON object",
                                   field="metrics")
        metrics["external"] = {"command": args[0], "seconds": round(seconds, 3),
                               "artifact_kind": "folder" if artifact.is_dir() else "file"}
        ctx.progress("command", 1, 1)
        return TrainOutput(artifact, metrics, description=f"external: {shlex.join(args)}"[:500])

    def _export(self, ctx: TrainContext) -> Any:
        """The plain JSONL of every row, or with ``export_task`` the training library's
        files (improve.exports: one file per split and the dataset card, in a folder)."""
        task = ctx.params.get("export_task")
        if task is None:
            assert ctx.export is not None
            return ctx.export(ctx.workdir / "dataset.jsonl")
        from ..datasets import get_dataset_by_id
        from ..exports import export_dataset

        with ctx.store.read() as conn:
            ds = get_dataset_by_id(conn, ctx.project, ctx.dataset.id)
        folder = ctx.workdir / "dataset"
        export_dataset(ctx.store, ctx.project, ds, folder, task=str(task),
                       style=str(ctx.params.get("export_style")),
                       format=str(ctx.params.get("export_format")))
        return folder

    def load(self, data: bytes) -> ExternalModel:
        return ExternalModel(data)
