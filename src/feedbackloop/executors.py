"""Executors shared by the batch pipelines (file import, scoring)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

__all__ = ["InlineExecutor"]


class InlineExecutor(Executor):
    """Runs each job when it is submitted, in this process: for ``workers=0``, one CPU,
    small runs, or work that is not CPU-bound. The same interface as a process pool, so
    the pipeline code has one path."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut
