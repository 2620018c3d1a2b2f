"""Batch scoring: run scorers over a project's interactions and store the results as
automated feedback.

For each scorer the engine

1. makes sure the project has a signal named after the scorer (created from its
   :class:`~feedbackloop.scoring.base.ScorerInfo` on first use);
2. streams, in keyset order (by internal id), the interactions that have neither automated
   feedback from this scorer version nor a recorded score error for it: an anti-join, so a
   re-run only sees what is new, and memory stays bounded for a project of any size;
3. looks every item up in ``score_cache`` by (scorer, version, content hash of the fields
   the scorer reads); only misses reach the scorer, and identical content is scored once;
4. calls the scorer in batches (in worker processes when ``info.cpu_bound``), item by item
   when a batch raises, and checks every value against the output type;
5. writes the values through the :class:`~feedbackloop.capture.ingest.Ingestor` (so they
   are validated and redacted like any feedback), and misses to the cache and failures to
   ``score_errors``.

Feedback ids are deterministic (``auto:<scorer>:<version>:<interaction id>``), so a run
that is interrupted and started again stores nothing twice.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, and_, case, exists, func, select, true
from sqlalchemy.exc import IntegrityError

from ..capture.ingest import Ingestor
from ..capture.projects import Project, Signal, create_signal, get_signal
from ..capture.schema import SignalIn
from ..errors import Conflict, FeedbackloopError, InvalidInput, NotFound
from ..executors import InlineExecutor
from ..settings import Settings
from ..store import Store, as_utc, utcnow
from ..store.tables import feedback, interactions, score_cache, score_errors
from ._workers import Outcome, install, score_in_worker
from .base import NEEDS, OUTPUT_TYPES, ScoreItem, Scorer, ScorerInfo

__all__ = [
    "ScorerReport",
    "ScoringReport",
    "content_hash",
    "feedback_id",
    "forget_errors",
    "rater_id",
    "score_project",
]

ProgressCallback = Callable[[str, int, int], None]
SAMPLE_ERRORS = 5
_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
_MAX_VERSION = 50  # score_errors.version and score_cache.version are String(50)
_ID_LIMIT = 200  # feedback client ids


# -- reports -------------------------------------------------------------------------------
@dataclass
class ScorerReport:
    """What one scorer did in one run.

    ``scored``: interactions that got a new automated feedback value. ``cached``: items
    answered without calling the scorer (from ``score_cache``, or content seen earlier in
    this run). ``skipped``: interactions scored (or failed) before, by this version.
    ``not_applicable``: with ``skip_incomplete``, interactions left out because they lack
    a field the scorer reads (no reference for a reference metric). ``errors``: items
    recorded in ``score_errors`` by this run (a re-run skips them); ``error_samples`` the
    first few (interaction id and message).
    """

    scorer: str
    version: str
    signal: str
    scored: int = 0
    cached: int = 0
    skipped: int = 0
    not_applicable: int = 0
    errors: int = 0
    error_samples: list[dict[str, str]] = field(default_factory=list)
    scorer_items: int = 0
    seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        """Items handled (stored or recorded as errors) per second of this scorer's run."""
        done = self.scored + self.errors
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "version": self.version, "signal": self.signal,
                "scored": self.scored, "cached": self.cached, "skipped": self.skipped,
                "not_applicable": self.not_applicable, "errors": self.errors,
                "error_samples": self.error_samples, "scorer_items": self.scorer_items,
                "seconds": round(self.seconds, 3),
                "items_per_second": round(self.items_per_second, 1)}


@dataclass
class ScoringReport:
    """One :class:`ScorerReport` per scorer, in the order the scorers were given."""

    project: str
    scorers: list[ScorerReport] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.scorers)

    @property
    def scored(self) -> int:
        return sum(r.scored for r in self.scorers)

    def __getitem__(self, name: str) -> ScorerReport:
        for r in self.scorers:
            if r.scorer == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "scored": self.scored, "errors": self.errors,
                "scorers": [r.to_dict() for r in self.scorers]}


# -- identities ----------------------------------------------------------------------------
def content_hash(info: ScorerInfo, fields: Mapping[str, Any]) -> str:
    """The cache key of what a scorer reads: a BLAKE2b digest (40 hex characters) of the
    fields it needs. Options are not part of it: by the Scorer contract, options that change
    results change the version (see ``scoring._options``), and options that do not (a batch
    size, a cache folder) should not throw cached values away."""
    data = {k: fields.get(k) for k in sorted(info.needs)}
    blob = orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                        default=str)
    return hashlib.blake2b(blob, digest_size=20).hexdigest()


def feedback_id(info: ScorerInfo, interaction_client_id: str) -> str:
    """The deterministic feedback id of a scorer version's value for one interaction. Ids
    that would pass the 200-character limit end in a digest of the interaction id."""
    head = f"auto:{info.name}:{info.version}:"
    if len(head) + len(interaction_client_id) <= _ID_LIMIT:
        return head + interaction_client_id
    digest = hashlib.blake2b(interaction_client_id.encode("utf-8", "surrogatepass"),
                             digest_size=16).hexdigest()
    return f"{head}#{digest}"


def rater_id(info: ScorerInfo) -> str:
    return f"{info.name}@{info.version}"


# -- checks --------------------------------------------------------------------------------
def _check_scorers(scorers: Sequence[Scorer]) -> None:
    """Every scorer describes itself well enough to become a signal; names are unique."""
    if not scorers:
        raise InvalidInput("no scorers given", field="scorers")
    seen: set[str] = set()
    for i, scorer in enumerate(scorers):
        info = getattr(scorer, "info", None)
        if not isinstance(info, ScorerInfo) or not callable(getattr(scorer, "score", None)):
            raise InvalidInput(f"scorers[{i}] ({type(scorer).__name__}) is not a Scorer: it "
                               "needs an `info` ScorerInfo and a `score` method",
                               field="scorers")
        name = info.name
        where = f"scorer {name!r}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput(f"scorers[{i}]: name {name!r} must be 1-100 letters, digits, "
                               "'_', '.', ':' or '-' (it names the signal)", field="info.name")
        if name in seen:
            raise InvalidInput(f"{where} is given twice", field="scorers")
        seen.add(name)
        if not isinstance(info.version, str) or not 1 <= len(info.version) <= _MAX_VERSION:
            raise InvalidInput(f"{where}: version must be text of 1-{_MAX_VERSION} "
                               "characters", field="info.version")
        if info.output_type not in OUTPUT_TYPES:
            raise InvalidInput(f"{where}: output type {info.output_type!r} is not one of "
                               f"{', '.join(OUTPUT_TYPES)}", field="info.output_type")
        unknown = set(info.needs) - set(NEEDS)
        if unknown:
            raise InvalidInput(f"{where}: needs {', '.join(sorted(unknown))}, which "
                               f"interactions do not have ({', '.join(NEEDS)})",
                               field="info.needs")
        if info.output_type == "ordinal" and (info.scale_min is None or info.scale_max is None):
            raise InvalidInput(f"{where}: an ordinal scorer declares scale_min and scale_max",
                               field="info.scale_min")
        if info.output_type == "categorical" and not info.labels:
            raise InvalidInput(f"{where}: a categorical scorer declares its labels",
                               field="info.labels")


def _signal_for(store: Store, project: Project, info: ScorerInfo) -> Signal:
    """The scorer's signal: created from its info on first use. A signal of that name with
    another type is an error, since its values could not be compared."""
    try:
        with store.read() as conn:
            signal = get_signal(conn, project.id, info.name)
    except NotFound:
        spec = SignalIn(
            name=info.name, type=info.output_type,
            scale_min=info.scale_min if info.output_type in ("ordinal", "numeric") else None,
            scale_max=info.scale_max if info.output_type in ("ordinal", "numeric") else None,
            labels=list(info.labels) if info.output_type == "categorical" and info.labels
            else None,
            description=info.description or f"automated metric {info.name}")
        try:
            return create_signal(store, project, spec)
        except Conflict:  # created by a concurrent run
            with store.read() as conn:
                signal = get_signal(conn, project.id, info.name)
    if signal.type != info.output_type:
        raise InvalidInput(
            f"signal {info.name!r} exists in project {project.name!r} as {signal.type}, but "
            f"scorer {info.name!r} produces {info.output_type} values: rename or remove the "
            "signal", field="signal", signal=info.name)
    return signal


# -- queries -------------------------------------------------------------------------------
_COLUMNS = {"input": interactions.c.input, "output": interactions.c.output,
            "reference": interactions.c.reference, "context": interactions.c.context}


@dataclass(frozen=True)
class _Target:
    """The query side of one scorer run: which interactions, and what marks them done."""

    project_id: int
    signal_id: int
    info: ScorerInfo
    since: datetime | None
    skip_incomplete: bool = False

    def _base(self, conn: Connection) -> list[Any]:
        t = interactions
        where: list[Any] = [t.c.project_id == self.project_id]
        if self.since is not None:
            since = as_utc(self.since)
            assert since is not None
            # SQLite compares the stored naive UTC text; PostgreSQL aware values.
            where.append(t.c.timestamp >= (since.replace(tzinfo=None)
                                           if conn.dialect.name == "sqlite" else since))
        return where

    def _complete(self) -> Any:
        """Has every optional field the scorer reads (always true without
        ``skip_incomplete``)."""
        if not self.skip_incomplete:
            return true()
        return and_(true(), *(_COLUMNS[n].is_not(None) for n in ("reference", "context")
                              if n in self.info.needs))

    def _pending(self) -> Any:
        t = interactions
        done = exists().where(feedback.c.interaction_id == t.c.id,
                              feedback.c.signal_id == self.signal_id,
                              feedback.c.source == "automated",
                              feedback.c.rater_id == rater_id(self.info))
        failed = exists().where(score_errors.c.interaction_id == t.c.id,
                                score_errors.c.scorer == self.info.name,
                                score_errors.c.version == self.info.version)
        return and_(~done, ~failed)

    def counts(self, conn: Connection) -> tuple[int, int, int]:
        """(interactions in range, those complete enough, those still to score), in one
        pass."""
        complete = self._complete()
        q = select(func.count(),
                   func.coalesce(func.sum(case((complete, 1), else_=0)), 0),
                   func.coalesce(func.sum(case((and_(complete, self._pending()), 1),
                                               else_=0)), 0)
                   ).select_from(interactions).where(*self._base(conn))
        total, usable, pending = conn.execute(q).one()
        return int(total), int(usable), int(pending)

    def page(self, conn: Connection, after: int, limit: int) -> list[Any]:
        t = interactions
        cols = [t.c.id, t.c.client_id] + [_COLUMNS[n] for n in NEEDS if n in self.info.needs]
        q = (select(*cols)
             .where(*self._base(conn), t.c.id > after, self._complete(), self._pending())
             .order_by(t.c.id).limit(limit))
        return list(conn.execute(q))


def _cached(conn: Connection, info: ScorerInfo, hashes: list[str]) -> dict[str, Outcome]:
    if not hashes:
        return {}
    q = select(score_cache.c.content_hash, score_cache.c.value, score_cache.c.error).where(
        score_cache.c.scorer == info.name, score_cache.c.version == info.version,
        score_cache.c.content_hash.in_(hashes))
    found = {}
    for h, value, error in conn.execute(q):
        if error is not None:
            found[h] = Outcome(error=error)
        elif isinstance(value, dict):  # a value with the judge's rationale
            found[h] = Outcome(value.get("value"), value.get("rationale"))
        else:
            found[h] = Outcome(value)
    return found


def _insert_new(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert rows, leaving alone those whose key is stored already (a concurrent run)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)


def forget_errors(conn: Connection, project_id: int, info: ScorerInfo) -> int:
    """Drop a scorer version's recorded errors in a project and its cached errors, so that
    the next run tries those items again (after a transient failure). Does not commit."""
    gone = conn.execute(score_errors.delete().where(
        score_errors.c.project_id == project_id, score_errors.c.scorer == info.name,
        score_errors.c.version == info.version)).rowcount
    conn.execute(score_cache.delete().where(
        score_cache.c.scorer == info.name, score_cache.c.version == info.version,
        score_cache.c.error.is_not(None)))
    return int(gone or 0)


# -- execution -----------------------------------------------------------------------------
def _executor(scorer: Scorer, workers: int, pending: int, batch_size: int) -> tuple[Executor,
                                                                                   int]:
    """A process pool for a CPU-bound scorer with enough work to share, else inline. The
    pool forks (workers inherit the scorer, whatever it holds; nothing is pickled) where
    the system can; elsewhere the scorer is pickled once per worker."""
    batches = math.ceil(pending / batch_size)
    n = min(workers, batches)
    if not scorer.info.cpu_bound or n < 2:
        install(scorer)
        return InlineExecutor(), 1
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=install,
                               initargs=(scorer,))
    # Start the workers now, before a progress bar starts its thread.
    pool.submit(os.getpid).result()
    return pool, n


class _Progress:
    """A Rich bar (items done of items to score) on stderr, or a callback, or nothing."""

    def __init__(self, progress: bool | ProgressCallback | None, name: str,
                 total: int) -> None:
        self._bar: Any = None
        self._callback: ProgressCallback | None = None
        self.name, self.total, self.done = name, total, 0
        if callable(progress):
            self._callback = progress
            return
        show = sys.stderr.isatty() if progress is None else progress
        if not show or total == 0:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TimeRemainingColumn(),
                             console=Console(stderr=True))
        self._task = self._bar.add_task(name, total=total)
        self._bar.start()

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
        if self._callback is not None:
            self._callback(self.name, self.done, self.total)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


@dataclass
class _Batch:
    """One page of interactions on its way through the scorer."""

    rows: list[Any]
    hashes: list[str]
    known: dict[str, Outcome]  # from score_cache
    borrowed: dict[str, _Batch]  # content another batch of this run is scoring
    misses: list[str]  # content this batch sends to the scorer
    future: Future[list[Outcome]]
    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def outcome(self, h: str) -> Outcome:
        if h in self.outcomes:
            return self.outcomes[h]
        if h in self.known:
            return self.known[h]
        return self.borrowed[h].outcomes[h]


def _item(info: ScorerInfo, row: Any) -> ScoreItem:
    """What the scorer sees: only the fields it declares (the cache key covers no more)."""
    needs = info.needs
    return ScoreItem(input=row.input if "input" in needs else "",
                     output=row.output if "output" in needs else "",
                     reference=row.reference if "reference" in needs else None,
                     context=row.context if "context" in needs else None)


class _Run:
    """One scorer over one project: reads pages, keeps a few batches in flight, writes."""

    def __init__(self, store: Store, ingestor: Ingestor, project: Project, scorer: Scorer,
                 signal: Signal, since: datetime | None, batch_size: int,
                 skip_incomplete: bool) -> None:
        self.store, self.ingestor, self.scorer = store, ingestor, scorer
        self.info = scorer.info
        self.project = project
        self.target = _Target(project.id, signal.id, self.info, since, skip_incomplete)
        self.batch_size = batch_size
        self.report = ScorerReport(self.info.name, self.info.version, signal.name)
        self.claims: dict[str, _Batch] = {}

    def run(self, workers: int, progress: bool | ProgressCallback | None) -> ScorerReport:
        start = time.perf_counter()
        with self.store.read() as conn:
            total, usable, pending = self.target.counts(conn)
        self.report.not_applicable = total - usable
        self.report.skipped = usable - pending
        if pending:
            pool, n = _executor(self.scorer, workers, pending, self.batch_size)
            bar = _Progress(progress, self.info.name, pending)
            try:
                # Inline, score and write page by page; with workers, keep every one busy.
                self._pipeline(pool, 1 if n == 1 else n + 1, bar)
            except BrokenProcessPool as exc:
                raise FeedbackloopError(
                    f"a worker process died while scoring with {self.info.name!r} ({exc}); "
                    "run again with --workers 0 to see the scorer's own error",
                    scorer=self.info.name) from None
            finally:
                bar.stop()
                pool.shutdown(wait=True, cancel_futures=True)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def _pages(self) -> Iterator[list[Any]]:
        after = 0
        while True:
            with self.store.read() as conn:
                rows = self.target.page(conn, after, self.batch_size)
            if not rows:
                return
            yield rows
            after = rows[-1].id

    def _pipeline(self, pool: Executor, in_flight: int, bar: _Progress) -> None:
        queue: deque[_Batch] = deque()
        try:
            for rows in self._pages():
                queue.append(self._submit(pool, rows))
                if len(queue) >= in_flight:
                    self._finish(queue.popleft(), bar)
            while queue:
                self._finish(queue.popleft(), bar)
        finally:
            for batch in queue:
                batch.future.cancel()

    def _submit(self, pool: Executor, rows: list[Any]) -> _Batch:
        info = self.info
        hashes = [content_hash(info, row._mapping) for row in rows]
        unique = list(dict.fromkeys(hashes))
        borrowed = {h: self.claims[h] for h in unique if h in self.claims}
        with self.store.read() as conn:
            known = _cached(conn, info, [h for h in unique if h not in borrowed])
        misses: list[str] = []
        items: list[ScoreItem] = []
        first = dict(zip(hashes, rows, strict=True))
        for h in unique:
            if h not in known and h not in borrowed:
                misses.append(h)
                items.append(_item(info, first[h]))
        future = pool.submit(score_in_worker, items)
        batch = _Batch(rows, hashes, known, borrowed, misses, future)
        for h in misses:
            self.claims[h] = batch
        self.report.scorer_items += len(items)
        self.report.cached += len(rows) - len(misses)
        return batch

    def _finish(self, batch: _Batch, bar: _Progress) -> None:
        info, report = self.info, self.report
        batch.outcomes = dict(zip(batch.misses, batch.future.result(), strict=True))
        now = utcnow()
        cache_rows = []
        for h, o in batch.outcomes.items():
            value = o.value if o.comment is None else {"value": o.value, "rationale": o.comment}
            cache_rows.append({"scorer": info.name, "version": info.version, "content_hash": h,
                               "value": None if o.error else value, "error": o.error,
                               "created_at": now})
        records: list[dict[str, Any]] = []
        errors: list[tuple[Any, str]] = []
        by_feedback_id: dict[str, Any] = {}
        for row, h in zip(batch.rows, batch.hashes, strict=True):
            o = batch.outcome(h)
            if o.error is not None:
                errors.append((row, o.error))
                continue
            fid = feedback_id(info, row.client_id)
            by_feedback_id[fid] = row
            rec = {"id": fid, "interaction_id": row.client_id, "signal": info.name,
                   "value": o.value, "source": "automated", "rater_id": rater_id(info)}
            if o.comment is not None:
                rec["comment"] = o.comment
            records.append(rec)
        if records:
            result = self.ingestor.feedback(records)
            for r in result.results:
                if r.status == "accepted":
                    report.scored += 1
                elif r.status == "duplicate":
                    report.skipped += 1
                else:
                    errors.append((by_feedback_id[r.id or ""],
                                   f"value not stored: {r.field}: {r.message}"))
        error_rows = [{"project_id": self.project.id, "interaction_id": row.id,
                       "scorer": info.name, "version": info.version, "message": message,
                       "created_at": now} for row, message in errors]
        for _ in range(3):
            try:
                with self.store.transaction() as conn:
                    _insert_new(conn, score_cache, cache_rows)
                    _insert_new(conn, score_errors, error_rows)
                break
            except IntegrityError:  # pragma: no cover - a racing run; retry sees its rows
                continue
        for row, message in errors:
            report.errors += 1
            if len(report.error_samples) < SAMPLE_ERRORS:
                report.error_samples.append({"interaction_id": row.client_id,
                                             "message": message})
        for h in batch.misses:
            if self.claims.get(h) is batch:
                del self.claims[h]
        bar.advance(len(batch.rows))


def score_project(store: Store, settings: Settings, project: Project,
                  scorers: Sequence[Scorer], *, since: datetime | None = None,
                  batch_size: int = 256, workers: int | None = None,
                  progress: bool | ProgressCallback | None = None,
                  retry_errors: bool = False, skip_incomplete: bool = False) -> ScoringReport:
    """Score ``project``'s interactions (from ``since`` on, when given) with each scorer and
    store the results as automated feedback; returns what each scorer did.

    ``workers``: processes for CPU-bound scorers (default: the number of cores; 0 or 1
    scores in this process). ``progress``: a bar on stderr (None: when stderr is a
    terminal), or a callback ``(scorer, done, total)``. ``retry_errors``: first forget the
    errors recorded for these scorer versions, so those items are tried again.
    ``skip_incomplete``: leave out interactions without a reference (context) when the
    scorer reads one. ``needs`` says what a scorer reads, not what it requires: a judge
    uses a reference when there is one, a reference metric fails without, so by default
    every interaction is scored and the scorer decides.

    Raises :class:`InvalidInput` for a malformed scorer or a signal-type clash, before
    anything is scored.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
            or not 1 <= batch_size <= 100_000:
        raise InvalidInput(f"batch size must be a whole number from 1 to 100000, not "
                           f"{batch_size!r}", field="batch_size")
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 256:
        raise InvalidInput(f"workers must be a whole number from 0 to 256, not {workers!r}",
                           field="workers")
    _check_scorers(scorers)
    signals = [_signal_for(store, project, s.info) for s in scorers]
    if retry_errors:
        with store.transaction() as conn:
            for s in scorers:
                forget_errors(conn, project.id, s.info)
    if store.dialect == "postgresql":
        # After a bulk import the planner's row estimates are stale (4 rows estimated for
        # 15,000) and each page of the anti-join rescans the project; fresh statistics
        # keep the page query on the indexes. ANALYZE samples, so it is cheap.
        with store.transaction() as conn:
            conn.exec_driver_sql("ANALYZE interactions, feedback, score_errors")
    # One ingestor for the run, made after the signals exist: it loads them once.
    ingestor = Ingestor(store, settings, project)
    report = ScoringReport(project.name)
    for scorer, signal in zip(scorers, signals, strict=True):
        run = _Run(store, ingestor, project, scorer, signal, since, batch_size,
                   skip_incomplete)
        report.scorers.append(run.run(workers, progress))
    return report

