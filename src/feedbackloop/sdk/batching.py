"""The client's queue and the background thread that sends it in batches.

Both transports share this engine; a transport only knows how to send one batch of one
kind. The rules it enforces:

- Batches hold one kind and at most ``batch_size`` records. A full batch goes at once;
  a partial one goes every ``flush_interval`` seconds, on :meth:`Batcher.flush` and on
  close.
- Interactions go before feedback: a feedback batch is only formed when no interaction is
  queued. One thread sends, one batch at a time, so feedback can never overtake the
  interaction it judges (when it was logged after it).
- A batch that fails in transit (connection error, timeout, 429, 5xx) is sent again after
  an exponential back-off with jitter, or after the server's ``Retry-After``. Re-sending is
  safe because record ids are idempotency keys: what was stored already comes back as a
  ``duplicate``.
- A batch the destination refuses outright (4xx other than 429) is not retried; its
  records are reported as rejected. A 413 is split in halves first.
- ``inline`` (the embedded transport): a full batch is written by the thread that filled
  it and ``flush`` writes in the caller's thread. A local write is fast and holds the GIL
  most of the time; handing it to another thread made both threads wait on each other.
  The background thread then only sends partial batches every ``flush_interval``.
- ``start`` (the embedded transport with a writer process): a batch is handed to the
  transport to be written elsewhere. A full one is settled when the next one is full (or
  on a flush, a tick of the background thread, or before any other batch), so the caller
  goes on logging while it is written; a partial one (a flush, a tick) is waited for at
  once. Batches are still written one at a time and in the order taken.
- A tick of the background thread leaves alone a partial batch that the caller started
  filling less than ``flush_interval`` ago (inline only): while the caller logs in volume
  its own thread writes full batches, and a write from the background thread would only
  contend with it for the GIL.
- The queue is bounded; a full queue blocks the caller up to ``queue_timeout`` and then
  raises :class:`QueueFull`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import FeedbackloopError
from .results import FlushResult, QueueFull, RejectedRecord

__all__ = ["Batcher", "Outcome", "Refused", "Retryable"]

log = logging.getLogger("feedbackloop.client")

# (status, field, message); status is accepted | duplicate | rejected | undelivered
Outcome = tuple[str, str | None, str | None]
SendBatch = Callable[..., Sequence[Outcome]]
# Hands a batch to the transport to start writing elsewhere; returns a handle that
# ``send(kind, payloads, ahead=handle)`` accepts, or None to send the batch as usual.
StartBatch = Callable[[str, list[Any]], Any]

_RETRY_AFTER_CAP = 60.0  # seconds; a server asking for longer is waited on in steps
_KEEP_REJECTED = 10_000  # rejected records remembered on the client, newest kept
_LOG_PER_BATCH = 20  # rejected records logged one by one per batch; the rest are counted


class Retryable(Exception):
    """The batch may not have arrived; send it again later."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Refused(Exception):
    """The destination refused the whole batch; sending it again would not help."""

    def __init__(self, message: str, field: str | None = None, *,
                 too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.too_large = too_large


class Batcher:
    """A bounded two-kind queue drained by one daemon thread through ``send``.

    Thread-safe: any thread may :meth:`put`, :meth:`flush` or :meth:`close`.
    """

    def __init__(self, send: SendBatch, *, batch_size: int, flush_interval: float,
                 max_retries: int, max_queue: int, queue_timeout: float,
                 backoff: float, name: str, inline: bool = False,
                 start: StartBatch | None = None) -> None:
        if batch_size < 1:
            raise FeedbackloopError("batch_size must be at least 1", field="batch_size")
        if flush_interval <= 0:
            raise FeedbackloopError("flush_interval must be positive", field="flush_interval")
        if max_retries < 0:
            raise FeedbackloopError("max_retries must be 0 or more", field="max_retries")
        if max_queue < batch_size:
            raise FeedbackloopError("max_queue must be at least batch_size",
                                    field="max_queue")
        self._send = send
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.backoff = backoff
        self._name = name
        self.inline = inline
        self._start_batch = start if inline else None
        # Batches handed to ``start`` and not yet written (guarded by ``_send_lock``).
        self._started: deque[tuple[str, list[tuple[dict[str, Any], Any]], Any]] = deque()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition()
        self._interactions: deque[tuple[dict[str, Any], Any]] = deque()
        self._feedback: deque[tuple[dict[str, Any], Any]] = deque()
        self._queued = 0
        self._in_flight = 0
        self._flush_waiters = 0
        self._tick_drain = False
        # inline: when the records queued now began to wait (None: nothing queued), so
        # that a tick leaves alone a partial batch the caller is still filling.
        self._since: float | None = None
        self._closing = False
        self._closed = False
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self._settled = FlushResult()
        self._rejected: deque[RejectedRecord] = deque(maxlen=_KEEP_REJECTED)
        self.requests = 0  # batches attempted, retries included (for diagnostics)

    def after_fork_in_child(self) -> None:
        """Start afresh in a forked child: threads and locks do not survive a fork, and the
        records queued before it belong to the parent, whose thread sends them."""
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._abort = threading.Event()
        self._thread = None
        self._interactions.clear()
        self._feedback.clear()
        self._started.clear()
        self._queued = self._in_flight = self._flush_waiters = 0
        self._tick_drain = False
        self._since = None
        self._settled = FlushResult()

    # -- the caller's side -------------------------------------------------------------
    def put(self, kind: str, record: dict[str, Any], payload: Any) -> None:
        """Queue one checked record; blocks while the queue is full (see ``queue_timeout``)."""
        q = self._interactions if kind == "interaction" else self._feedback
        with self._cond:
            if self._closing:
                raise FeedbackloopError("the client is closed; create a new one to log more")
            if self._queued >= self.max_queue:
                self._wait_for_room(kind, record)
            if not self._queued and self.inline:
                self._since = time.monotonic()
            q.append((record, payload))
            self._queued += 1
            if self._thread is None:
                self._start()
            full = len(q) >= self.batch_size
            if full and not self.inline:
                self._cond.notify_all()
        if full and self.inline:
            self._send_next(False)

    def _wait_for_room(self, kind: str, record: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.queue_timeout
        self._cond.notify_all()  # a full queue is sent at once, whatever the interval
        while self._queued >= self.max_queue:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QueueFull(
                    f"the client queue has held {self.max_queue} records for "
                    f"{self.queue_timeout:g} s; {kind} {record.get('id')!r} was not queued "
                    "(is the destination down or slower than the caller?)",
                    id=record.get("id"), max_queue=self.max_queue)
            self._cond.wait(remaining)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._queued + self._in_flight

    @property
    def rejected(self) -> list[RejectedRecord]:
        """Every rejected record so far (the newest 10,000), oldest first."""
        with self._cond:
            return list(self._rejected)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is settled; False when ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.inline:
            while self._send_next(True):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        with self._cond:
            if self._thread is not None and not self._thread.is_alive() and self._queued:
                self._start()  # e.g. after fork, where threads do not survive
            self._flush_waiters += 1
            self._cond.notify_all()
            try:
                while self._queued or self._in_flight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def flush(self, timeout: float | None = None) -> FlushResult:
        """Send everything queued, wait for it, and report what was settled since the
        previous flush."""
        self.drain(timeout)
        with self._cond:
            result, self._settled = self._settled, FlushResult()
            result.pending = self._queued + self._in_flight
            return result

    def close(self, timeout: float | None = None) -> FlushResult:
        """Send what is queued, stop the thread, and report. After ``timeout`` the records
        still queued are given up as undelivered."""
        with self._cond:
            already = self._closed
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if not already and thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                self._abort.set()  # ends back-off sleeps: the batch in hand is given up
                thread.join(5.0)
        with self._cond:
            self._closed = True
            for kind, q in (("interaction", self._interactions), ("feedback", self._feedback)):
                while q:
                    record, _ = q.popleft()
                    self._queued -= 1
                    self._settled.undelivered_records.append(RejectedRecord(
                        kind, record.get("id"), None,
                        "not sent: the client was closed before it could be delivered",
                        record))
            result, self._settled = self._settled, FlushResult()
            result.pending = self._in_flight
        if result.undelivered:
            log.error("feedbackloop client closed with %d records undelivered",
                      result.undelivered)
        return result

    # -- the sender thread -------------------------------------------------------------
    def _take(self, draining: bool) -> tuple[str, list[tuple[dict[str, Any], Any]]] | None:
        iq, fq, size = self._interactions, self._feedback, self.batch_size
        if iq and (draining or len(iq) >= size or len(fq) >= size):
            kind, q = "interaction", iq
        elif fq and not iq and (draining or len(fq) >= size):
            kind, q = "feedback", fq
        else:
            return None
        n = min(size, len(q))
        return kind, [q.popleft() for _ in range(n)]

    def _ready(self, draining: bool) -> bool:
        iq, fq, size = self._interactions, self._feedback, self.batch_size
        if iq:
            return draining or len(iq) >= size or len(fq) >= size
        if draining and self._started:
            return True
        return bool(fq) and (draining or len(fq) >= size)

    def _send_next(self, draining: bool) -> bool:
        """Take one batch and send it; False when there was none to take. One sender at a
        time (``_send_lock``), which is what keeps interactions ahead of feedback."""
        with self._send_lock:
            with self._cond:
                batch = self._take(draining)
                if batch is not None:
                    kind, items = batch
                    self._queued -= len(items)
                    self._in_flight += len(items)
                    if not self._queued:
                        self._since = None
                    elif not draining and self.inline:
                        # What is left was queued while the batch filled: just now.
                        self._since = time.monotonic()
                    self._cond.notify_all()  # room in the queue for blocked callers
            if batch is None:
                if not (draining and self._started):
                    return False
                while self._started:
                    self._finish(*self._started.popleft())
                return True
            handle = None if self._start_batch is None else self._begin(kind, items)
            if handle is not None and not draining:
                self._started.append((kind, items, handle))
                if len(self._started) > 1:  # one batch is written while the next fills
                    self._finish(*self._started.popleft())
                return True
            while self._started:  # batches go out in the order they were taken
                self._finish(*self._started.popleft())
            self._finish(kind, items, handle)
            return True

    def _begin(self, kind: str, items: list[tuple[dict[str, Any], Any]]) -> Any:
        assert self._start_batch is not None
        try:
            return self._start_batch(kind, [payload for _, payload in items])
        except Exception:  # the batch is then sent as usual
            log.exception("feedbackloop client: unexpected error starting a batch")
            return None

    def _finish(self, kind: str, items: list[tuple[dict[str, Any], Any]],
                handle: Any) -> None:
        try:
            outcomes = self._deliver(kind, items, handle)
        except Exception as exc:  # a defect must not kill the sender and lose records
            log.exception("feedbackloop client: unexpected error sending a batch")
            outcomes = [("undelivered", None, f"unexpected error: {exc!r}")] * len(items)
        with self._cond:
            self._settle(kind, items, outcomes)
            self._in_flight -= len(items)
            self._cond.notify_all()

    def _run(self) -> None:
        next_tick = time.monotonic() + self.flush_interval
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if now >= next_tick:
                        since = self._since
                        if since is not None and now - since < self.flush_interval:
                            # The caller filled a batch since: what waits is younger than
                            # the interval. Come back when it is not.
                            next_tick = since + self.flush_interval
                        else:
                            self._tick_drain = True
                            next_tick = now + self.flush_interval
                    draining = (self._tick_drain or self._flush_waiters > 0 or self._closing
                                or self._queued >= self.max_queue)
                    if self._ready(draining):
                        break
                    if not self._queued:
                        self._tick_drain = False
                        if self._closing and not self._in_flight:
                            self._cond.notify_all()
                            return
                    self._cond.wait(max(0.0, next_tick - now))
            self._send_next(draining)

    def _deliver(self, kind: str, items: list[tuple[dict[str, Any], Any]],
                 handle: Any = None) -> list[Outcome]:
        attempt = 0
        while True:
            self.requests += 1
            try:
                payloads = [payload for _, payload in items]
                outcomes = list(self._send(kind, payloads) if handle is None
                                else self._send(kind, payloads, ahead=handle))
                if len(outcomes) != len(items):
                    raise Retryable(f"reply covered {len(outcomes)} of {len(items)} records")
                return outcomes
            except Refused as refused:
                if refused.too_large and len(items) > 1:
                    half = len(items) // 2
                    return self._deliver(kind, items[:half]) + self._deliver(kind, items[half:])
                return [("rejected", refused.field, refused.message)] * len(items)
            except Retryable as failure:
                attempt += 1
                if attempt > self.max_retries or self._abort.is_set():
                    message = (f"gave up after {attempt} attempts: {failure.reason}"
                               if not self._abort.is_set() else
                               f"client closed while retrying: {failure.reason}")
                    return [("undelivered", None, message)] * len(items)
                delay = self._delay(attempt, failure.retry_after)
                log.info("feedbackloop client: %s batch failed (%s); retry %d/%d in %.2f s",
                         kind, failure.reason, attempt, self.max_retries, delay)
                if self._abort.wait(delay):
                    continue  # closing: the next attempt is the last one

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), _RETRY_AFTER_CAP)
        # Exponential back-off with "equal jitter": half fixed, half random, so clients
        # that failed together do not retry together.
        step = min(self.backoff * 2 ** (attempt - 1), 30.0)
        return step / 2 + random.uniform(0, step / 2)

    def _settle(self, kind: str, items: list[tuple[dict[str, Any], Any]],
                outcomes: Sequence[Outcome]) -> None:
        acc = self._settled
        refused: list[RejectedRecord] = []
        lost: list[RejectedRecord] = []
        for (record, _), (status, field, message) in zip(items, outcomes, strict=True):
            if status == "accepted":
                acc.accepted += 1
            elif status == "duplicate":
                acc.duplicates += 1
            else:
                rec = RejectedRecord(kind, record.get("id"), field, message or status, record)
                if status == "rejected":
                    acc.rejected_records.append(rec)
                    self._rejected.append(rec)
                    refused.append(rec)
                else:
                    acc.undelivered_records.append(rec)
                    lost.append(rec)
        if lost:
            log.error("feedbackloop client: %d %s records undelivered (%s); they are in the "
                      "flush result's undelivered_records", len(lost), kind, lost[0].message)
        for rec in refused[:_LOG_PER_BATCH]:
            log.warning("feedbackloop client: rejected %s", rec)
        if len(refused) > _LOG_PER_BATCH:
            log.warning("feedbackloop client: ... and %d more %s records rejected",
                        len(refused) - _LOG_PER_BATCH, kind)
