"""File import and export: streaming pipelines between files and the store.

Import: the reader cuts the file into chunks of about 2,000 records; worker processes
decode and prepare them (parse, validate, redact, hash); the writer in this process stores
chunk after chunk, each in its own transaction and in file order. At most a few chunks are
in flight, so memory stays bounded for a file of any size. Because chunks commit in order
and the client id is the idempotency key, an import killed half-way leaves whole chunks
stored, and running it again completes it without duplicates.

Export: pages of 1,000 records in keyset order, written as they come.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy import select

from ..errors import InvalidInput
from ..executors import InlineExecutor
from ..settings import Settings
from ..store import Store
from ..store.tables import interactions as interaction_table
from .browse import InteractionFilter, _db_ts, list_feedback, list_interactions
from .files import (
    KINDS,
    Decoder,
    RawChunk,
    attr_type,
    decode_item,
    open_reader,
    open_writer,
    wire_fields,
)
from .ingest import BatchResult, Ingestor, copy_text_formatter, pack_interactions
from .prepare import Prepared, Reject
from .projects import Project

__all__ = ["ExportResult", "ImportResult", "export", "import_file"]

CHUNK_RECORDS = 2_000
IN_FLIGHT = 4
EXPORT_PAGE = 1_000


@dataclass
class ImportResult:
    """What an import did. ``errors`` holds the first ``max_errors`` rejects (the rejects
    file has them all); ``errors_truncated`` counts the rest."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_truncated: int = 0

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + self.rejected

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"accepted": self.accepted, "duplicates": self.duplicates,
                               "rejected": self.rejected, "errors": self.errors}
        if self.errors_truncated:
            out["errors_truncated"] = self.errors_truncated
        return out


# -- the worker side -----------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _init_worker(decoder: Decoder, preparer: Any, keep_originals: bool,
                 pack: tuple[int, bool] | None = None) -> None:
    copy_text = copy_text_formatter() if pack is not None and pack[1] else None
    _worker.update(decoder=decoder, preparer=preparer, keep=keep_originals, pack=pack,
                   copy_text=copy_text)


def prepare_chunk(decoder: Decoder, preparer: Any, items: list[tuple[int, Any]],
                  keep_originals: bool) -> tuple[list[Prepared | Reject], dict[int, Any]]:
    """Decode and prepare one chunk: the prepared items in file order, and the originals
    (when a rejects file is wanted) by line, for records that may still be rejected."""
    out: list[Prepared | Reject] = []
    originals: dict[int, Any] = {}
    for index, item in items:
        rec, original = decode_item(decoder, index, item)
        prepared = rec if isinstance(rec, Reject) else preparer.prepare(index, rec)
        out.append(prepared)
        if keep_originals:
            originals[index] = original
    return out, originals


def _prepare_in_worker(items: list[tuple[int, Any]]) -> tuple[Any, dict[int, Any]]:
    prepared, originals = prepare_chunk(_worker["decoder"], _worker["preparer"], items,
                                        _worker["keep"])
    pack = _worker["pack"]
    if pack is None:
        return prepared, originals
    # Interactions travel back packed (see PackedInteractions): unpickling and formatting
    # rows were the writer's largest costs, and the writer is the pipeline's bottleneck.
    return pack_interactions(prepared, pack[0], _worker["copy_text"]), originals


def _executor(workers: int, initargs: tuple[Any, ...]) -> Executor:
    if workers <= 0 or (os.cpu_count() or 1) < 2:
        _init_worker(*initargs)
        return InlineExecutor()
    methods = multiprocessing.get_all_start_methods()
    # fork starts a worker in milliseconds and shares the loaded modules; elsewhere the
    # default method pickles the (small) decoder and preparer once per worker.
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                               initializer=_init_worker, initargs=initargs)


# -- the pipeline --------------------------------------------------------------------------
class _Progress:
    """A Rich progress bar of bytes read, on stderr; nothing when disabled."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self._bar: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TextColumn("{task.fields[records]} records"),
                             TimeRemainingColumn(), console=Console(stderr=True),
                             transient=False)
        self._task = self._bar.add_task(label, total=total, records=0)
        self._bar.start()

    def update(self, position: int, records: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=position, records=records)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _RejectsFile:
    def __init__(self, path: Path | None) -> None:
        self._fh: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(path, "wb")  # noqa: SIM115

    @property
    def wanted(self) -> bool:
        return self._fh is not None

    def write(self, error: dict[str, Any], original: Any) -> None:
        if self._fh is None:
            return
        line = dict(error)
        if isinstance(original, str):
            line["raw"] = original
        elif original is not None:
            line["record"] = original
        self._fh.write(orjson.dumps(line, default=str) + b"\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def import_file(store: Store, settings: Settings, project: Project, kind: str,
                path: str | Path, *, format: str | None = None,
                rejects: str | Path | None = None, workers: int = 2,
                chunk_size: int = CHUNK_RECORDS, progress: bool | None = None,
                max_errors: int = 1_000) -> ImportResult:
    """Import a JSONL, CSV or Parquet file of ``kind`` records into ``project``.

    ``progress`` None shows a bar when stderr is a terminal. Raises
    :class:`~feedbackloop.errors.InvalidInput` before storing anything when the file's
    shape is wrong (unknown format or column); bad records become rejects instead.
    """
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not {kind!r}",
                           field="kind")
    if chunk_size < 1:
        raise InvalidInput("chunk size must be at least 1", field="chunk_size")
    ingestor = Ingestor(store, settings, project)
    pack: tuple[int, bool] | None = None
    if kind == "feedback":
        ingestor._load_signals()
        preparer: Any = ingestor.feedback_preparer
        write: Callable[[Any], BatchResult] = ingestor.write_feedback
    else:
        preparer = ingestor.interaction_preparer
        write = ingestor.write_packed_interactions
        pack = (project.id, ingestor.copy_text())
    result = ImportResult()
    sink = _RejectsFile(Path(rejects) if rejects is not None else None)
    with open_reader(path, kind, format) as reader:
        show = sys.stderr.isatty() if progress is None else progress
        bar = _Progress(show, reader.size, f"{reader.path.name} → {project.name}")
        pool = _executor(workers, (reader.decoder, preparer, sink.wanted, pack))
        pending: deque[tuple[Future[Any], int]] = deque()
        try:
            chunks: Iterator[RawChunk] = reader.chunks(chunk_size)
            for chunk in chunks:
                pending.append((pool.submit(_prepare_in_worker, chunk.items), chunk.position))
                if len(pending) >= IN_FLIGHT:
                    _write_next(pending, write, result, sink, max_errors, bar)
            while pending:
                _write_next(pending, write, result, sink, max_errors, bar)
        finally:
            for fut, _ in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            bar.stop()
            sink.close()
    return result


def _write_next(pending: deque[tuple[Future[Any], int]],
                write: Callable[[Any], BatchResult],
                result: ImportResult, sink: _RejectsFile, max_errors: int,
                bar: _Progress) -> None:
    fut, position = pending.popleft()
    prepared, originals = fut.result()
    batch = write(prepared)
    result.accepted += batch.accepted
    result.duplicates += batch.duplicates
    for r in batch.results:
        if r.status != "rejected":
            continue
        result.rejected += 1
        error = {"line": r.index, "id": r.id, "field": r.field, "message": r.message}
        if len(result.errors) < max_errors:
            result.errors.append(error)
        else:
            result.errors_truncated += 1
        sink.write(error, originals.get(r.index))
    bar.update(position, result.total)


# -- export --------------------------------------------------------------------------------
@dataclass
class ExportResult:
    path: str
    format: str
    kind: str
    records: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "kind": self.kind,
                "records": self.records}


def _attribute_types(store: Store, project: Project, since: datetime | None) -> dict[str, str]:
    """Keys of the interactions' attributes and a column type for each: the light first
    pass that fixes the CSV header and the Parquet schema before any row is written."""
    t = interaction_table
    seen: dict[str, set[type]] = {}
    q = select(t.c.attributes).where(t.c.project_id == project.id,
                                     t.c.attributes.is_not(None))
    with store.read() as conn:
        if since is not None:
            q = q.where(t.c.timestamp >= _db_ts(conn, since))
        rows = conn.execution_options(yield_per=EXPORT_PAGE).execute(q)
        for (attrs,) in rows:
            for k, v in (attrs or {}).items():
                if v is not None:
                    seen.setdefault(k, set()).add(type(v))
                else:
                    seen.setdefault(k, set())
    return {k: attr_type(types) for k, types in seen.items()}


def _pages(store: Store, project: Project, kind: str,
           since: datetime | None) -> Iterator[list[dict[str, Any]]]:
    cursor: str | None = None
    while True:
        with store.read() as conn:
            if kind == "interactions":
                page = list_interactions(conn, project.id, limit=EXPORT_PAGE, cursor=cursor,
                                         where=InteractionFilter(since=since))
            else:
                page = list_feedback(conn, project.id, limit=EXPORT_PAGE, cursor=cursor,
                                     since=since)
        yield [item.to_wire() for item in page.items]
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def export(store: Store, project: Project, kind: str, path: str | Path,
           format: str | None = None, since: datetime | None = None) -> ExportResult:
    """Write the project's ``kind`` records (newest first; from ``since`` on when given)
    to ``path`` in JSONL, CSV or Parquet, with the wire field names."""
    wire_fields(kind)
    attr_types: dict[str, str] = {}
    if kind == "interactions":
        attr_types = _attribute_types(store, project, since)
    writer = open_writer(path, kind, format, attr_types=attr_types)
    try:
        for records in _pages(store, project, kind, since):
            for rec in records:
                writer.write(rec)
    except BaseException:
        writer.close(keep=False)
        raise
    writer.close()
    return ExportResult(str(writer.path), writer.format, kind, writer.count)

