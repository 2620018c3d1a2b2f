"""The SDK: log interactions and feedback, read them back, from Python.

One interface, two transports::

    client = Client("https://fl.example.com", token, project="shop")   # over HTTP
    client = Client.local(project="shop")                              # straight to the store

``log_interaction`` and ``log_feedback`` check the record at once (a bad one raises
:class:`~feedbackloop.errors.InvalidInput` naming the field) and queue it; a background
thread writes the queue in batches (see :mod:`feedbackloop.sdk.batching` for the rules).
``flush()`` waits for the queue and reports what was stored, duplicated or rejected.
"""

from __future__ import annotations

import atexit
import math
import os
import random
import threading
import weakref
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .capture.browse import FeedbackRecord, InteractionRecord
from .errors import InvalidInput, NotFound
from .sdk.batching import Batcher
from .sdk.results import FlushResult, QueueFull, RejectedRecord
from .settings import Settings

__all__ = ["Client", "FeedbackRecord", "FlushResult", "InteractionRecord", "QueueFull",
           "RejectedRecord"]

_PAGE = 1000  # the API's largest page
_id_source: random.Random | None = None


def new_id() -> str:
    """A random version-4 UUID as 32 hex digits.

    Drawn from a private generator seeded from the OS (re-seeded in forked children) rather
    than ``uuid.uuid4()``: that makes a system call per id, and each one hands the GIL to
    the sender thread, which made it the slowest step of logging. A private generator, so
    that ``random.seed(0)`` in the caller's code cannot make ids repeat between runs.
    """
    global _id_source
    source = _id_source
    if source is None:
        source = _id_source = random.Random()
        os.register_at_fork(after_in_child=source.seed)
    n = source.getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (4 << 76)  # version 4
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    return f"{n:032x}"


def _present(**fields: Any) -> dict[str, Any]:
    """The wire record: fields left at their default are left out, so that a record logged
    again hashes as the same record."""
    return {k: v for k, v in fields.items() if v is not None}


def _iso(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, datetime):
        raise InvalidInput(f"timestamp must be a datetime or an ISO 8601 string, not "
                           f"{type(value).__name__}", field="timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _after_fork(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None and not client._closed:
        client._close_lock = threading.Lock()
        client._batcher.after_fork_in_child()
        client._transport.after_fork_in_child()


class Client:
    """Logs to and reads from one project, remotely (HTTP) or embedded (local store).

    Remote: ``Client(url, token, project)``. Embedded: :meth:`Client.local`.

    Parameters shared by both:

    - ``batch_size``: most records per write (the API takes up to 10,000).
    - ``flush_interval``: seconds a partial batch may wait before it is sent.
    - ``max_retries``: re-sends of a batch that failed in transit, with exponential
      back-off starting at ``backoff`` seconds, before its records are given up as
      undelivered (and handed back in the flush result).
    - ``max_queue``: most records waiting to be sent; when full, logging blocks up to
      ``queue_timeout`` seconds and then raises :class:`QueueFull`.
    - ``exit_timeout``: how long the interpreter's exit waits for the queue to be sent.

    Thread-safe. Use it as a context manager, or call :meth:`close`; records still queued
    when the interpreter exits are flushed then.
    """

    def __init__(self, url: str, token: str, project: str, *, batch_size: int = 500,
                 flush_interval: float = 1.0, max_retries: int = 6, timeout: float = 30.0,
                 max_queue: int = 100_000, queue_timeout: float = 30.0,
                 backoff: float = 0.5, exit_timeout: float = 30.0) -> None:
        from .sdk.remote import RemoteTransport

        transport = RemoteTransport(url, token, project, timeout=timeout,
                                    max_retries=max_retries, backoff=backoff)
        self._setup(transport, batch_size=batch_size, flush_interval=flush_interval,
                    max_retries=max_retries, max_queue=max_queue, queue_timeout=queue_timeout,
                    backoff=backoff, exit_timeout=exit_timeout)

    @classmethod
    def local(cls, db_url: str | None = None, *, project: str,
              settings: Settings | None = None, create_project: bool = False,
              batch_size: int = 5_000, flush_interval: float = 1.0, max_retries: int = 6,
              max_queue: int = 100_000, queue_timeout: float = 30.0, backoff: float = 0.5,
              exit_timeout: float = 30.0, writer_process: bool = False) -> Client:
        """A client that writes straight to a store, with no server in between.

        ``db_url`` defaults to the settings' database (the embedded SQLite file under
        ``.feedbackloop/`` unless ``FEEDBACKLOOP_DATABASE_URL`` says otherwise). The schema
        is migrated when it is behind. ``create_project`` creates a missing project
        instead of failing. Batches are larger than the remote default (5,000): with no
        network in between, a transaction's fixed cost is what a batch amortises.
        ``writer_process`` (Linux, off by default) forks one process that writes full
        batches of interactions while the caller prepares the next: for bulk-loading
        scripts, not for servers, since forking a process whose other threads may hold
        locks (logging, a database pool) can leave the child waiting on them forever.
        """
        from .sdk.embedded import EmbeddedTransport
        from .settings import load_settings
        from .store import Store

        if settings is None:
            settings = load_settings(database_url=db_url)
        elif db_url is not None:
            settings = settings.model_copy(update={"database_url": db_url})
        store = Store.from_url(settings.resolved_database_url)
        try:
            store.ensure_schema()
            transport = EmbeddedTransport(store, settings, project, owns_store=True,
                                          create=create_project,
                                          writer_process=writer_process)
        except BaseException:
            store.dispose()
            raise
        client = cls.__new__(cls)
        client._setup(transport, batch_size=batch_size, flush_interval=flush_interval,
                      max_retries=max_retries, max_queue=max_queue,
                      queue_timeout=queue_timeout, backoff=backoff, exit_timeout=exit_timeout,
                      inline=True)
        return client

    def _setup(self, transport: Any, *, batch_size: int, flush_interval: float,
               max_retries: int, max_queue: int, queue_timeout: float, backoff: float,
               exit_timeout: float, inline: bool = False) -> None:
        self._transport = transport
        self.project = transport.project if isinstance(transport.project, str) \
            else transport.project.name
        self._batcher = Batcher(transport.send, batch_size=batch_size,
                                flush_interval=flush_interval, max_retries=max_retries,
                                max_queue=max_queue, queue_timeout=queue_timeout,
                                backoff=backoff, name=f"feedbackloop-sender-{self.project}",
                                inline=inline, start=getattr(transport, "start", None))
        self._check = transport.check
        self._put = self._batcher.put
        self._exit_timeout = exit_timeout
        self._close_lock = threading.Lock()
        self._closed = False
        atexit.register(self._at_exit)
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _after_fork(me))

    def __repr__(self) -> str:
        return f"<feedbackloop.Client {self._transport.describe}>"

    # -- logging -----------------------------------------------------------------------
    def log_interaction(
        self, input: str, output: str, *, id: str | None = None,
        model_version: str | None = None, context: Any = None, reference: str | None = None,
        attributes: Mapping[str, Any] | None = None, user_id: str | None = None,
        session_id: str | None = None, latency_ms: float | None = None,
        error: str | None = None, experiment: str | None = None, arm: str | None = None,
        propensity: float | None = None, consent: bool = False,
        metadata: Mapping[str, Any] | None = None,
        timestamp: datetime | str | None = None,
    ) -> str:
        """Queue one interaction and return its id.

        Without ``id`` a random one is made and ``timestamp`` defaults to now. With your
        own ``id`` a missing timestamp is left to the store (time of writing), so that
        logging the same record again is recognised as a duplicate rather than a
        conflicting second version.
        """
        if id is None:
            id = new_id()
            if timestamp is None:
                timestamp = datetime.now(UTC)
        record = _present(
            id=id, input=input, output=output,
            timestamp=_iso(timestamp) if timestamp is not None else None,
            model_version=model_version, context=context, reference=reference,
            attributes=dict(attributes) if attributes is not None else None,
            user_id=user_id, session_id=session_id, latency_ms=latency_ms, error=error,
            experiment=experiment, arm=arm, propensity=propensity,
            consent=True if consent else None,
            metadata=dict(metadata) if metadata is not None else None)
        self._put("interaction", record, self._check("interaction", record))
        return id

    def log_feedback(
        self, interaction_id: str, signal: str, value: Any, *, id: str | None = None,
        interaction_id_b: str | None = None, source: str = "end_user",
        rater_id: str | None = None, correction: str | None = None,
        comment: str | None = None, guideline_version: str | None = None,
        timestamp: datetime | str | None = None,
    ) -> str:
        """Queue one judgement of an interaction (of two, for a pairwise signal) and
        return its id. Ids and timestamps follow :meth:`log_interaction`."""
        if id is None:
            id = new_id()
            if timestamp is None:
                timestamp = datetime.now(UTC)
        record = _present(
            id=id, interaction_id=interaction_id, signal=signal, value=value,
            timestamp=_iso(timestamp) if timestamp is not None else None,
            interaction_id_b=interaction_id_b,
            source=source if source != "end_user" else None, rater_id=rater_id,
            correction=correction, comment=comment, guideline_version=guideline_version)
        self._put("feedback", record, self._check("feedback", record))
        return id

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything queued and wait for it (at most ``timeout`` seconds); report
        what was settled since the previous flush. Records still unsent when the timeout
        runs out stay queued and are counted in ``pending``."""
        return self._batcher.flush(timeout)

    @property
    def rejected(self) -> list[RejectedRecord]:
        """Every record rejected so far (the newest 10,000), with field and reason."""
        return self._batcher.rejected

    @property
    def pending(self) -> int:
        """Records queued or in flight."""
        return self._batcher.pending

    def close(self, timeout: float | None = None) -> FlushResult:
        """Flush, stop the sender thread and release connections. Idempotent."""
        with self._close_lock:
            if self._closed:
                return FlushResult()
            self._closed = True
        atexit.unregister(self._at_exit)
        try:
            return self._batcher.close(timeout)
        finally:
            self._transport.close()

    def _at_exit(self) -> None:
        self.close(self._exit_timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------
    def _pages(self, fetch: Any, filters: dict[str, Any], limit: int | None) -> list[Any]:
        if limit is not None and limit < 0:
            raise InvalidInput("limit must be 0 or more", field="limit")
        self._batcher.drain()  # read your own writes
        out: list[Any] = []
        cursor: str | None = None
        while limit is None or len(out) < limit:
            size = _PAGE if limit is None else min(_PAGE, limit - len(out))
            items, cursor = fetch(filters, size, cursor)
            out.extend(items)
            if not cursor:
                break
        return out

    def interactions(self, *, model_version: str | None = None,
                     attributes: Mapping[str, Any] | None = None, signal: str | None = None,
                     source: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, experiment: str | None = None,
                     limit: int | None = None) -> list[InteractionRecord]:
        """Interactions newest first, all of them or the first ``limit``. ``attributes``
        keeps those whose attributes have every given value; ``signal`` and ``source``
        keep those with such feedback; ``since`` ≤ timestamp < ``until``."""
        filters = {"model_version": model_version, "attributes": attributes,
                   "signal": signal, "source": source, "since": since, "until": until,
                   "experiment": experiment}
        return self._pages(self._transport.page_interactions, filters, limit)

    def get_interaction(self, id: str) -> InteractionRecord:
        """One interaction by its id; :class:`~feedbackloop.errors.NotFound` otherwise."""
        self._batcher.drain()
        return self._transport.get_interaction(id)

    def feedback(self, *, interaction_id: str | None = None, signal: str | None = None,
                 source: str | None = None, since: datetime | None = None,
                 until: datetime | None = None,
                 limit: int | None = None) -> list[FeedbackRecord]:
        """Feedback newest first; ``interaction_id`` matches either side of a pair."""
        filters = {"interaction_id": interaction_id, "signal": signal, "source": source,
                   "since": since, "until": until}
        return self._pages(self._transport.page_feedback, filters, limit)

    def interactions_df(self, *, backend: str = "pandas", **filters: Any) -> Any:
        """:meth:`interactions` as a DataFrame (``backend="polars"`` for polars)."""
        from .sdk.frames import to_frame

        return to_frame(self.interactions(**filters), InteractionRecord, backend)

    def feedback_df(self, *, backend: str = "pandas", **filters: Any) -> Any:
        """:meth:`feedback` as a DataFrame (``backend="polars"`` for polars)."""
        from .sdk.frames import to_frame

        return to_frame(self.feedback(**filters), FeedbackRecord, backend)

    # -- the model registry ----------------------------------------------------------------
    def resolve(self, component: str, unit_id: str,
                attributes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Which version of ``component`` serves this unit (a user, a session…) with these
        cohort attributes: ``{"component", "version", "rule", "status", "bucket"}``
        (``rule`` None: the default, the live version). See docs/models.md."""
        _check_unit(component, unit_id)
        return self._transport.resolve(component, unit_id, attributes)

    def predict(self, component: str, item: dict[str, Any], *, unit_id: str | None = None,
                attributes: dict[str, Any] | None = None,
                version: str | None = None) -> Any:
        """Run a model version made by a built-in (or plug-in) trainer on ``item``, here in
        this process: the version that serves ``unit_id`` (see :meth:`resolve`), or
        ``version`` by name. Items: ``{"prompt", "response"}`` or ``{"prompt",
        "candidates"}`` for reward models, ``{"prompt", "candidates"}`` for rerankers,
        ``{"text"}`` for classifiers. The artifact is checked against its hash and the
        loaded model kept for the next call."""
        if version is None:
            if unit_id is None:
                raise InvalidInput("give unit_id (to resolve the version serving it) or "
                                   "version", field="unit_id")
            version = self.resolve(component, unit_id, attributes)["version"]
            if version is None:
                raise NotFound(f"no version of {component!r} is live: promote one first",
                               field="component")
        if not isinstance(item, dict):
            raise InvalidInput("item must be a dict of the model's inputs", field="item")
        return self._transport.load_model(component, version).predict(item)

    # -- experiments and bandits -----------------------------------------------------------
    def assign(self, experiment: str, unit_id: str, covariate: float | None = None
               ) -> dict[str, Any]:
        """The arm of a running experiment that serves this unit (a user, a session or an
        interaction id, as the experiment's design says), and its first exposure logged:
        ``{"experiment", "arm", "version", "propensity", "unit"}``. Deterministic: the same
        unit always gets the same arm. ``covariate``: the unit's pre-period value of the
        metric, for CUPED. Log the interaction with ``experiment=``, ``arm=`` and
        ``propensity=`` from the answer. See docs/experiments.md."""
        _check_unit(experiment, unit_id, "experiment")
        if covariate is not None and (isinstance(covariate, bool)
                                      or not isinstance(covariate, int | float)
                                      or not math.isfinite(covariate)):
            raise InvalidInput(f"covariate must be a finite number, not {covariate!r}",
                               field="covariate")
        return self._transport.assign(experiment, unit_id, covariate)

    def choose(self, bandit: str, unit_id: str | None = None,
               context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Let a running bandit choose an arm, logged with its propensity:
        ``{"decision_id", "arm", "version", "propensity", "probabilities"}``. Send the
        outcome later with :meth:`reward` and the ``decision_id``."""
        if not isinstance(bandit, str) or not bandit or len(bandit) > 100:
            raise InvalidInput("bandit must be a non-empty string of at most 100 "
                               "characters", field="bandit")
        if unit_id is not None:
            _check_unit(bandit, unit_id, "bandit")
        if context is not None and not isinstance(context, dict):
            raise InvalidInput("context must be a dict", field="context")
        return self._transport.choose(bandit, unit_id, context)

    def reward(self, bandit: str, decision_id: int, reward: float) -> dict[str, Any]:
        """Record the reward of a bandit decision: ``{"decision_id", "arm", "reward",
        "n", "mean"}``. Sending the same reward again changes nothing."""
        if not isinstance(bandit, str) or not bandit or len(bandit) > 100:
            raise InvalidInput("bandit must be a non-empty string of at most 100 "
                               "characters", field="bandit")
        if isinstance(decision_id, bool) or not isinstance(decision_id, int) \
                or decision_id < 1:
            raise InvalidInput("decision_id must be a positive integer", field="decision_id")
        if isinstance(reward, bool):
            reward = float(reward)
        if not isinstance(reward, int | float) or not math.isfinite(reward):
            raise InvalidInput(f"reward must be a finite number, not {reward!r}",
                               field="reward")
        return self._transport.reward(bandit, decision_id, float(reward))

    # -- the project ---------------------------------------------------------------------
    def project_info(self) -> dict[str, Any]:
        """The project's name, description, risk tier and redaction policy."""
        return self._transport.project_info()

    def signals(self) -> list[dict[str, Any]]:
        """The project's signals (name, type, scale, labels, description)."""
        return self._transport.signals()

    def create_signal(self, name: str, type: str, *, scale_min: float | None = None,
                      scale_max: float | None = None, labels: list[str] | None = None,
                      description: str = "") -> dict[str, Any]:
        """Define a signal so feedback can be logged for it."""
        spec: dict[str, Any] = {"name": name, "type": type, "description": description}
        if scale_min is not None:
            spec["scale_min"] = scale_min
        if scale_max is not None:
            spec["scale_max"] = scale_max
        if labels is not None:
            spec["labels"] = labels
        return self._transport.create_signal(spec)


def _check_unit(component: str, unit_id: str, what: str = "component") -> None:
    for field, value in ((what, component), ("unit_id", unit_id)):
        if not isinstance(value, str) or not value or len(value) > 200:
            raise InvalidInput(f"{field} must be a non-empty string of at most 200 "
                               "characters", field=field)
