"""The embedded transport: records go straight into the store through the Ingestor.

Each record is prepared (validated, redacted, pseudonymised, hashed) when it is logged, so
a bad record fails in the caller's hands, exactly as with the remote transport, and the
background thread only has the batched insert left to do.

A client made with ``writer_process=True`` that logs interactions in volume (a full
batch) starts one writer process where processes are forked: full batches of interactions
are then packed (see :class:`~feedbackloop.capture.ingest.PackedInteractions`) and written
there, on the second core, while the caller prepares the next batch (see ``start`` in
:mod:`feedbackloop.sdk.batching`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError

from ..capture.browse import (
    FeedbackRecord,
    InteractionFilter,
    InteractionRecord,
    get_interaction,
    list_feedback,
    list_interactions,
)
from ..capture.ingest import (
    Ingestor,
    PackedInteractions,
    compact,
    init_writer,
    pack_compact,
    write_packed_in_worker,
)
from ..capture.prepare import Reject
from ..capture.projects import (
    Project,
    create_project,
    create_signal,
    get_project,
    get_signal,
    list_signals,
    signal_specs,
)
from ..capture.schema import SignalIn
from ..errors import InvalidInput, NotFound
from ..settings import Settings
from ..store import Store
from .batching import Outcome, Retryable

__all__ = ["EmbeddedTransport"]

log = logging.getLogger("feedbackloop.client")

# Batches smaller than this are written here: for them a writer process would cost more
# (packing, a trip to another process) than it saves.
WRITER_MIN_BATCH = 1_000


def _fork_is_default() -> bool:
    # A forked writer needs nothing re-imported and no ``__main__`` guard in the caller's
    # script; where the default is spawn, batches are written in this process.
    try:
        return multiprocessing.get_start_method(allow_none=False) == "fork"
    except (RuntimeError, ValueError):
        return False


@dataclass
class _Started:
    """A batch handed to the writer process: its packed rows, kept to write again."""

    packed: PackedInteractions
    future: Future[Any] | None


class EmbeddedTransport:
    """Writes to and reads from one project of a local store."""

    def __init__(self, store: Store, settings: Settings, project: str, *,
                 owns_store: bool, create: bool, writer_process: bool = False) -> None:
        self.store = store
        self._owns_store = owns_store
        self.project = self._project(project, create)
        self.ingestor = Ingestor(store, settings, self.project)
        self._settings = settings
        self._reload_signals()
        self._pool: ProcessPoolExecutor | None = None
        # none | ready | off (guarded by the send lock); off unless asked for.
        self._pool_state = "none" if writer_process else "off"
        url = store.engine.url.render_as_string(hide_password=True)
        self.describe = f"{url} project {project!r}"

    def _project(self, name: str, create: bool) -> Project:
        try:
            with self.store.read() as conn:
                return get_project(conn, name)
        except NotFound:
            if not create:
                raise NotFound(
                    f"no project {name!r} in this database; create it with `feedbackloop "
                    f"projects create {name}` or pass create_project=True", field="project",
                    project=name) from None
        return create_project(self.store, name)

    def _reload_signals(self) -> None:
        with self.store.read() as conn:
            self.ingestor.feedback_preparer.signals = signal_specs(conn, self.project.id)

    # -- writes ------------------------------------------------------------------------
    def check(self, kind: str, record: dict[str, Any]) -> Any:
        if kind == "interaction":
            prepared = self.ingestor.interaction_preparer.prepare(0, record)
        else:
            prepared = self.ingestor.feedback_preparer.prepare(0, record)
            if isinstance(prepared, Reject) and prepared.field == "signal":
                # The signal may have been defined since we loaded them (by the CLI, say).
                self._reload_signals()
                prepared = self.ingestor.feedback_preparer.prepare(0, record)
        if isinstance(prepared, Reject):
            raise InvalidInput(f"{kind} {record.get('id')!r}: field {prepared.field!r}: "
                               f"{prepared.message}", field=prepared.field,
                               id=record.get("id"), kind=kind)
        return compact(prepared) if kind == "interaction" else prepared

    def start(self, kind: str, payloads: list[Any]) -> _Started | None:
        """Hand a batch of prepared interactions to the writer process (started by the
        first such batch); None (written in :meth:`send`) for feedback and for batches
        under ``WRITER_MIN_BATCH``."""
        if kind != "interaction" or len(payloads) < WRITER_MIN_BATCH:
            return None
        pool = self._ready_pool()
        if pool is None:
            return None
        # Rows travel as tuples: formatting them (COPY text on PostgreSQL) is the writer
        # process's work, not this thread's, which is the busier of the two.
        packed = pack_compact(payloads, self.project.id)
        return _Started(packed, self._submit(pool, packed))

    @staticmethod
    def _submit(pool: ProcessPoolExecutor, packed: PackedInteractions) -> Future[Any] | None:
        try:
            return pool.submit(write_packed_in_worker, packed)
        except RuntimeError:  # shut down (interpreter exit) or broken: write here
            return None

    def _ready_pool(self) -> ProcessPoolExecutor | None:
        """The writer process, started by the first full batch. It is forked here, in the
        thread that is logging and holds the send lock: none of this client's locks is
        held elsewhere then, and the writer needs nothing re-imported."""
        if self._pool_state == "ready":
            return self._pool
        if self._pool_state != "none":
            return None
        self._pool_state = "off"
        if (os.cpu_count() or 1) < 2 or not _fork_is_default():
            return None
        try:
            url = self.store.engine.url.render_as_string(hide_password=False)
            pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("fork"),
                initializer=init_writer, initargs=(url, self._settings, self.project))
            pool.submit(int)  # forks the writer now
        except Exception as exc:
            log.info("feedbackloop client: no writer process (%r); writing in this one",
                     exc)
            return None
        self._pool, self._pool_state = pool, "ready"
        return pool

    def _stop_pool(self, state: str) -> None:
        pool, self._pool, self._pool_state = self._pool, None, state
        if pool is not None:
            pool.shutdown(wait=True)

    def _send_started(self, started: _Started, pooled: bool = True) -> Sequence[Outcome]:
        pool = self._pool
        if pooled and started.future is None and pool is not None:  # a retry
            started.future = self._submit(pool, started.packed)
        if started.future is not None:
            try:
                status, value = started.future.result()
            except BrokenProcessPool as exc:
                log.warning("feedbackloop client: the writer process died (%s); writing "
                            "in this process", exc)
                self._stop_pool("off")
            else:
                if status == "retry":
                    started.future = None
                    raise Retryable(value)
                return value
        try:
            result = self.ingestor.write_packed_interactions(started.packed)
        except (OperationalError, InterfaceError) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc.orig}") from None
        return [(r.status, r.field, r.message) for r in result.results]

    def send(self, kind: str, payloads: list[Any],
             ahead: _Started | None = None) -> Sequence[Outcome]:
        if ahead is not None:
            return self._send_started(ahead)
        if kind == "interaction":
            return self._send_started(_Started(pack_compact(payloads, self.project.id), None),
                                      pooled=False)
        for i, prepared in enumerate(payloads):
            prepared.index = i
        try:
            result = self.ingestor.write_feedback(payloads)
        except (OperationalError, InterfaceError) as exc:
            # "database is locked", a dropped PostgreSQL connection: the transaction was
            # rolled back, so the batch can be written again.
            raise Retryable(f"{type(exc).__name__}: {exc.orig}") from None
        return [(r.status, r.field, r.message) for r in result.results]

    # -- reads -------------------------------------------------------------------------
    def _signal_id(self, conn: Any, name: str | None) -> int | None:
        return None if name is None else get_signal(conn, self.project.id, name).id

    def page_interactions(self, filters: dict[str, Any], limit: int,
                          cursor: str | None) -> tuple[list[InteractionRecord], str | None]:
        attributes = filters.get("attributes")
        with self.store.read() as conn:
            where = InteractionFilter(
                model_version=filters.get("model_version"),
                attributes={k: str(v) for k, v in attributes.items()} if attributes else None,
                signal_id=self._signal_id(conn, filters.get("signal")),
                source=filters.get("source"), since=filters.get("since"),
                until=filters.get("until"), experiment=filters.get("experiment"))
            page = list_interactions(conn, self.project.id, limit=limit, cursor=cursor,
                                     where=where)
        return page.items, page.next_cursor

    def page_feedback(self, filters: dict[str, Any], limit: int,
                      cursor: str | None) -> tuple[list[FeedbackRecord], str | None]:
        with self.store.read() as conn:
            page = list_feedback(conn, self.project.id, limit=limit, cursor=cursor,
                                 interaction_id=filters.get("interaction_id"),
                                 signal_id=self._signal_id(conn, filters.get("signal")),
                                 source=filters.get("source"), since=filters.get("since"),
                                 until=filters.get("until"))
        return page.items, page.next_cursor

    # -- the model registry ----------------------------------------------------------------
    def resolve(self, component: str, unit_id: str,
                attributes: dict[str, Any] | None) -> dict[str, Any]:
        from ..improve.registry import resolve

        return resolve(self.store, self.project, component, unit_id, attributes)

    def load_model(self, component: str, name: str) -> Any:
        from ..improve.registry import load_model

        return load_model(self.store, self.project, component, name)

    # -- experiments and bandits -----------------------------------------------------------
    def assign(self, experiment: str, unit_id: str,
               covariate: float | None) -> dict[str, Any]:
        from ..experiments import assign

        return assign(self.store, self.project, experiment, unit_id, covariate=covariate,
                      pseudonym_key=self._settings.pseudonym_key_bytes())

    def choose(self, bandit: str, unit_id: str | None,
               context: dict[str, Any] | None) -> dict[str, Any]:
        from ..experiments.bandits import choose

        return choose(self.store, self.project, bandit, unit_id=unit_id, context=context,
                      pseudonym_key=self._settings.pseudonym_key_bytes())

    def reward(self, bandit: str, decision_id: int, reward: float) -> dict[str, Any]:
        from ..experiments.bandits import reward as record

        return record(self.store, self.project, bandit, decision_id, reward)

    def get_interaction(self, interaction_id: str) -> InteractionRecord:
        with self.store.read() as conn:
            return get_interaction(conn, self.project.id, interaction_id)

    def project_info(self) -> dict[str, Any]:
        return self.project.to_dict()

    def signals(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return [s.to_dict() for s in list_signals(conn, self.project.id)]

    def create_signal(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            signal_in = SignalIn.model_validate(spec)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"]) or "(signal)"
            raise InvalidInput(f"signal {spec.get('name')!r}: field {field!r}: {err['msg']}",
                               field=field) from None
        signal = create_signal(self.store, self.project, signal_in)
        self._reload_signals()
        return signal.to_dict()

    def after_fork_in_child(self) -> None:
        # SQLAlchemy's advice for forks: drop the inherited pool without closing the
        # parent's connections. The writer process is the parent's too.
        self.store.engine.dispose(close=False)
        self._pool, self._pool_state = None, "none"

    def close(self) -> None:
        self._stop_pool("off")
        if self._owns_store:
            self.store.dispose()
