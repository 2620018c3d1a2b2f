"""The SDK, embedded and remote, against real databases and a real server.

Remote tests run uvicorn serving ``create_app`` on a loopback port; faults (503, 429 with
Retry-After, dropped connections before and after the server committed) come from a small
real HTTP proxy in front of it, which also counts and records every batch it sees.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import feedbackloop
from feedbackloop.access import create_token
from feedbackloop.capture.browse import FeedbackRecord, InteractionRecord
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.client import Client, QueueFull
from feedbackloop.errors import FeedbackloopError, InvalidInput, NotFound
from feedbackloop.settings import Settings, load_settings
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, interactions

from .live_server import serve

SRC = str(Path(feedbackloop.__file__).resolve().parents[1])


# -- helpers -------------------------------------------------------------------------------
def count(store: Store, table: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def stored_ids(store: Store, table: Any) -> list[str]:
    with store.read() as conn:
        return sorted(conn.execute(select(table.c.client_id)).scalars())


@pytest.fixture
def project(store: Store) -> Project:
    p = create_project(store, "shop")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    create_signal(store, p, SignalIn(name="pref", type="pairwise"))
    return p


@pytest.fixture
def local(db_url: str, settings: Settings, project: Project) -> Iterator[Client]:
    client = Client.local(db_url, project="shop", settings=settings)
    yield client
    client.close()


@pytest.fixture
def server(settings: Settings, store: Store, project: Project) -> Iterator[str]:
    with serve(settings, store) as url:
        yield url


@pytest.fixture
def token(store: Store, project: Project) -> str:
    return create_token(store, project_id=project.id, role="maintainer", name="sdk tests")


@dataclass
class Seen:
    """One request the proxy saw: when, what path, which records, what it did."""

    at: float
    method: str
    path: str
    records: list[dict[str, Any]]
    action: str


@dataclass
class FaultProxy:
    """An HTTP proxy on loopback. ``plan`` lists actions for the next batch POSTs, in
    order: ``"503"``, ``"429"`` (with Retry-After: ``retry_after``), ``"drop"`` (close the
    connection without answering, before the server sees the request), ``"drop_after"``
    (forward, let the server commit, then close without answering). Afterwards, and for
    every other request, it forwards."""

    upstream: str
    plan: list[str] = field(default_factory=list)
    retry_after: str = "1"
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def batches(self, kind: str | None = None) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.endswith("/batch")
                    and (kind is None or f"/{kind}/" in s.path)]


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    host, port = upstream.removeprefix("http://").split(":")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep the test output quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            is_batch = self.command == "POST" and self.path.endswith("/batch")
            with proxy.lock:
                action = proxy.plan.pop(0) if is_batch and proxy.plan else "forward"
                records = json.loads(body)["records"] if is_batch else []
                proxy.seen.append(Seen(time.monotonic(), self.command, self.path, records,
                                       action))
            if action == "drop":
                self.close_connection = True
                return
            if action in ("503", "429"):
                payload = b'{"error": {"code": "busy", "message": "try later", "details": {}}}'
                self.send_response(int(action))
                if action == "429":
                    self.send_header("Retry-After", proxy.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "connection", "content-length")}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            if action == "drop_after":
                self.close_connection = True
                return
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("content-length", "connection", "transfer-encoding",
                                     "date", "server"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _handle

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def proxy(server: str) -> Iterator[FaultProxy]:
    with fault_proxy(server) as p:
        yield p


def remote(url: str, token: str, **options: Any) -> Client:
    options.setdefault("flush_interval", 60.0)  # batches leave on flush unless a test says
    options.setdefault("backoff", 0.01)
    return Client(url, token, "shop", **options)


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": SRC, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True, timeout=120)


# -- embedded, both databases ---------------------------------------------------------------
def test_embedded_logs_flushes_and_reads_back_typed_records(
        local: Client, store: Store) -> None:
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    iid = local.log_interaction(
        "where is my order?", "it ships tomorrow", model_version="v2",
        context={"order": "A-17"}, reference="tomorrow", attributes={"locale": "de"},
        user_id="alice", session_id="s1", latency_ms=120.5, experiment="exp1", arm="b",
        propensity=0.5, consent=True, metadata={"route": "faq"}, timestamp=when)
    other = local.log_interaction("hi", "hello", id="chat-2", model_version="v1")
    fid = local.log_feedback(iid, "rating", 4, source="annotator", rater_id="r7",
                             comment="good", guideline_version="g1")
    local.log_feedback(other, "thumbs", False)
    assert len(iid) == 32 and other == "chat-2"
    assert count(store, interactions) == 0  # queued, not yet written
    result = local.flush()
    assert result.summary() == {"accepted": 4, "duplicates": 0, "rejected": 0,
                                "undelivered": 0, "pending": 0}
    assert result.ok

    got = local.get_interaction(iid)
    assert isinstance(got, InteractionRecord)
    assert (got.input, got.output, got.model_version, got.timestamp) == (
        "where is my order?", "it ships tomorrow", "v2", when)
    assert (got.context, got.reference, got.attributes, got.metadata) == (
        {"order": "A-17"}, "tomorrow", {"locale": "de"}, {"route": "faq"})
    assert (got.latency_ms, got.experiment, got.arm, got.propensity, got.consent) == (
        120.5, "exp1", "b", 0.5, True)
    assert got.user_id is not None and got.user_id.startswith("p_")  # pseudonymised
    assert [r.id for r in local.interactions()] == [other, iid]  # newest first
    assert [r.id for r in local.interactions(model_version="v2")] == [iid]
    assert [r.id for r in local.interactions(attributes={"locale": "de"})] == [iid]
    assert [r.id for r in local.interactions(signal="thumbs")] == [other]
    assert [r.id for r in local.interactions(experiment="exp1")] == [iid]
    assert [r.id for r in local.interactions(until=when + timedelta(seconds=1))] == [iid]
    assert len(local.interactions(limit=1)) == 1

    fb = local.feedback(interaction_id=iid)
    assert len(fb) == 1 and isinstance(fb[0], FeedbackRecord)
    assert (fb[0].id, fb[0].signal, fb[0].value, fb[0].source, fb[0].rater_id,
            fb[0].comment) == (fid, "rating", 4, "annotator", "r7", "good")
    assert [f.signal for f in local.feedback(source="end_user")] == ["thumbs"]
    with pytest.raises(NotFound) as missing:
        local.get_interaction("no-such-id")
    assert missing.value.details["field"] == "id"


def test_embedded_dataframes(local: Client) -> None:
    pd = pytest.importorskip("pandas")
    for i in range(3):
        iid = local.log_interaction(f"q{i}", f"a{i}", id=f"i{i}", model_version="v1",
                                    attributes={"n": i})
        local.log_feedback(iid, "thumbs", i % 2 == 0)
    frame = local.interactions_df(model_version="v1")
    assert list(frame.columns)[:6] == ["id", "timestamp", "model_version", "input", "output",
                                       "context"]
    assert sorted(frame["id"]) == ["i0", "i1", "i2"]
    assert str(frame["timestamp"].dt.tz) == "UTC"
    assert dict(zip(frame["id"], frame["attributes"], strict=True))["i2"] == {"n": 2}
    fb = local.feedback_df(signal="thumbs")
    assert isinstance(fb, pd.DataFrame)
    assert dict(zip(fb["interaction_id"], fb["value"], strict=True)) == {
        "i0": True, "i1": False, "i2": True}


def test_relogging_the_same_record_is_a_duplicate_and_other_content_a_conflict(
        local: Client, store: Store) -> None:
    local.log_interaction("q", "a", id="x1", model_version="v1")
    assert local.flush().accepted == 1
    local.log_interaction("q", "a", id="x1", model_version="v1")
    again = local.flush()
    assert (again.accepted, again.duplicates, again.rejected) == (0, 1, 0)
    local.log_interaction("q", "something else", id="x1", model_version="v1")
    conflict = local.flush()
    assert conflict.rejected == 1
    assert (conflict.rejected_records[0].id, conflict.rejected_records[0].field) == ("x1", "id")
    assert "different content" in conflict.rejected_records[0].message
    assert stored_ids(store, interactions) == ["x1"]


def test_an_invalid_record_raises_at_once_naming_the_field_and_is_not_queued(
        local: Client, store: Store) -> None:
    with pytest.raises(InvalidInput) as bad:
        local.log_interaction("q", "a", id="neg", latency_ms=-5)
    assert bad.value.field == "latency_ms"
    assert "'neg'" in bad.value.message and "latency_ms" in bad.value.message
    with pytest.raises(InvalidInput) as bad_signal:
        local.log_feedback("any", "stars", 3, id="f1")
    assert bad_signal.value.field == "signal" and "stars" in bad_signal.value.message
    with pytest.raises(InvalidInput) as bad_value:
        local.log_feedback("any", "rating", 9, id="f2")
    assert bad_value.value.field == "value" and "'f2'" in bad_value.value.message
    with pytest.raises(InvalidInput) as bad_source:
        local.log_feedback("any", "thumbs", True, source="boss")
    assert bad_source.value.field == "source"
    assert local.pending == 0
    assert local.flush().summary()["accepted"] == 0
    assert count(store, interactions) == 0 and count(store, feedback) == 0


def test_a_signal_defined_after_the_client_started_is_accepted(
        local: Client, store: Store, project: Project) -> None:
    create_signal(store, project, SignalIn(name="late", type="text"))
    iid = local.log_interaction("q", "a")
    local.log_feedback(iid, "late", "fine answer")
    assert local.flush().accepted == 2
    assert {s["name"] for s in local.signals()} == {"thumbs", "rating", "pref", "late"}


def test_feedback_for_an_unknown_interaction_is_reported_rejected(
        local: Client, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    iid = local.log_interaction("q", "a")
    local.log_feedback(iid, "thumbs", True, id="ok")
    local.log_feedback("ghost", "thumbs", True, id="lost")
    with caplog.at_level(logging.WARNING, logger="feedbackloop.client"):
        result = local.flush()
    assert (result.accepted, result.rejected) == (2, 1)
    rej = result.rejected_records[0]
    assert (rej.kind, rej.id, rej.field) == ("feedback", "lost", "interaction_id")
    assert "ghost" in rej.message
    assert rej.record["interaction_id"] == "ghost" and rej.record["value"] is True
    assert [r.id for r in local.rejected] == ["lost"]
    assert any("lost" in r.getMessage() for r in caplog.records)
    assert stored_ids(store, feedback) == ["ok"]


def test_pages_are_followed_past_the_api_page_size(local: Client) -> None:
    for i in range(1005):
        local.log_interaction("q", "a", id=f"n{i:04d}")
    assert local.flush().accepted == 1005
    ids = [r.id for r in local.interactions()]
    assert len(ids) == 1005 and len(set(ids)) == 1005
    assert len(local.interactions(limit=1002)) == 1002


def test_batches_fill_and_write_without_a_flush(db_url: str, settings: Settings,
                                                project: Project, store: Store) -> None:
    with Client.local(db_url, project="shop", settings=settings, batch_size=10,
                      flush_interval=60) as client:
        for i in range(25):
            client.log_interaction("q", "a", id=f"b{i}")
        assert count(store, interactions) == 20  # two full batches; five wait
        assert client.pending == 5
        assert client.flush().accepted == 25
    assert count(store, interactions) == 25


def test_large_batches_go_through_the_writer_process_with_the_same_outcomes(
        db_url: str, settings: Settings, project: Project, store: Store) -> None:
    from feedbackloop.sdk.embedded import WRITER_MIN_BATCH

    n = WRITER_MIN_BATCH
    with Client.local(db_url, project="shop", settings=settings, batch_size=n,
                      flush_interval=60, writer_process=True) as client:
        client.log_interaction("q", "a", id="old", model_version="v1")
        assert client.flush().accepted == 1
        ids = []
        for i in range(3 * n + 7):
            ids.append(client.log_interaction(
                f"q{i} mail a@example.com", "tab\there \\ back", id=f"w{i}",
                context={"k": [i, "x"]}, attributes={"n": i}, user_id="alice",
                timestamp=datetime(2026, 3, 1, tzinfo=UTC) if i % 2 else None))
            if i == 5:
                client.log_interaction("q", "a", id="old", model_version="v1")  # duplicate
                client.log_interaction("q", "b", id="old", model_version="v1")  # conflict
            if i == n + 3:  # judged while its batch may still be in the writer
                client.log_feedback("w2", "thumbs", True, id="fb")
        if client._transport._pool_state != "ready":  # no fork here: written in-process
            assert client._transport._pool_state == "off"
        result = client.flush()
        assert (result.accepted, result.duplicates, result.rejected) == (3 * n + 8, 1, 1)
        assert result.rejected_records[0].id == "old"
        got = client.get_interaction("w1")
        assert got.input == "q1 mail <EMAIL>" and got.output == "tab\there \\ back"
        assert got.context == {"k": [1, "x"]} and got.attributes == {"n": 1}
        assert got.timestamp == datetime(2026, 3, 1, tzinfo=UTC)
        assert got.user_id is not None and got.user_id.startswith("p_")
        assert client.get_interaction("w2").timestamp > datetime(2026, 3, 2, tzinfo=UTC)
        assert [f.id for f in client.feedback(interaction_id="w2")] == ["fb"]
    assert count(store, interactions) == 3 * n + 8


def test_partial_batches_leave_after_the_flush_interval(
        db_url: str, settings: Settings, project: Project, store: Store) -> None:
    with Client.local(db_url, project="shop", settings=settings,
                      flush_interval=0.2) as client:
        client.log_interaction("q", "a", id="timed")
        deadline = time.monotonic() + 10
        while count(store, interactions) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stored_ids(store, interactions) == ["timed"]


def test_threads_logging_at_once_store_every_record_once(local: Client, store: Store) -> None:
    def work(t: int) -> None:
        for i in range(200):
            iid = local.log_interaction("q", "a", id=f"t{t}-{i}")
            local.log_feedback(iid, "thumbs", True, id=f"f{t}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    result = local.flush()
    assert (result.accepted, result.rejected) == (1600, 0)
    assert count(store, interactions) == 800 and count(store, feedback) == 800


def test_local_needs_an_existing_project_unless_asked_to_create_it(
        db_url: str, settings: Settings, store: Store) -> None:
    with pytest.raises(NotFound) as missing:
        Client.local(db_url, project="nowhere", settings=settings)
    assert "nowhere" in missing.value.message and missing.value.details["field"] == "project"
    with Client.local(db_url, project="nowhere", settings=settings,
                      create_project=True) as client:
        assert client.project_info()["name"] == "nowhere"
        client.log_interaction("q", "a", id="first")
    assert stored_ids(store, interactions) == ["first"]  # close() flushed


def test_local_defaults_to_the_embedded_sqlite_and_migrates_it(tmp_path: Path) -> None:
    settings = load_settings(data_dir=str(tmp_path / "data"))
    with Client.local(project="laptop", settings=settings, create_project=True) as client:
        client.log_interaction("q", "a", id="one")
        assert client.flush().accepted == 1
        assert [r.id for r in client.interactions()] == ["one"]
    assert (tmp_path / "data" / "feedbackloop.db").is_file()


def test_embedded_records_are_flushed_when_the_process_exits(
        db_url: str, settings: Settings, project: Project, store: Store,
        tmp_path: Path) -> None:
    proc = run_python(f"""
        from feedbackloop import Client
        c = Client.local({db_url!r}, project="shop", flush_interval=60)
        for i in range(7):
            c.log_interaction("q", "a", id=f"exit-{{i}}")
        print(c.pending)
    """, {"FEEDBACKLOOP_PSEUDONYM_KEY": "test-pseudonym-key",
          "FEEDBACKLOOP_DATA_DIR": str(tmp_path / "sub")})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "7"  # still queued when the script ended
    assert stored_ids(store, interactions) == sorted(f"exit-{i}" for i in range(7))


# -- the package surface ------------------------------------------------------------------
def test_importing_feedbackloop_is_cheap_and_exports_the_client_lazily() -> None:
    proc = run_python("""
        import sys, feedbackloop
        heavy = [m for m in ("httpx", "sqlalchemy", "pydantic", "feedbackloop.client")
                 if m in sys.modules]
        print(heavy)
        print(feedbackloop.Client.__module__, feedbackloop.__version__)
    """)
    assert proc.returncode == 0, proc.stderr
    first, second = proc.stdout.splitlines()
    assert first == "[]"
    from importlib.metadata import version

    assert second == f"feedbackloop.client {version('feedbackloop')}"
    assert feedbackloop.Client is Client
    with pytest.raises(AttributeError):
        feedbackloop.Nothing  # noqa: B018


def test_dataframes_without_pandas_name_the_extra_to_install(
        db_url: str, settings: Settings, project: Project) -> None:
    proc = run_python(f"""
        import sys
        sys.modules["pandas"] = None  # as if pandas were not installed
        from feedbackloop import Client
        with Client.local({db_url!r}, project="shop") as c:
            try:
                c.interactions_df()
            except ImportError as exc:
                print(exc)
    """, {"FEEDBACKLOOP_PSEUDONYM_KEY": "test-pseudonym-key"})
    assert proc.returncode == 0, proc.stderr
    assert "feedbackloop[pandas]" in proc.stdout


def test_polars_frames_or_a_clear_error_when_polars_is_missing(local: Client) -> None:
    local.log_interaction("q", "a", id="p1", attributes={"k": "v"})
    try:
        import polars  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="polars"):
            local.interactions_df(backend="polars")
    else:
        frame = local.interactions_df(backend="polars")
        assert frame["id"].to_list() == ["p1"]
    with pytest.raises(ValueError, match="backend"):
        local.interactions_df(backend="spark")


# -- remote, through the real server --------------------------------------------------------
def test_remote_batches_hold_at_most_batch_size_records(
        proxy: FaultProxy, token: str, store: Store) -> None:
    n, size = 1234, 100
    with remote(proxy.url, token, batch_size=size) as client:
        ids = [client.log_interaction("q", f"a{i}") for i in range(n)]
        result = client.flush()
    assert result.summary() == {"accepted": n, "duplicates": 0, "rejected": 0,
                                "undelivered": 0, "pending": 0}
    sizes = [len(s.records) for s in proxy.batches("interactions")]
    assert len(sizes) == math.ceil(n / size) == 13
    assert sizes == [100] * 12 + [34]
    assert stored_ids(store, interactions) == sorted(ids)


def test_remote_sends_interactions_before_the_feedback_that_judges_them(
        proxy: FaultProxy, token: str, store: Store) -> None:
    with remote(proxy.url, token, batch_size=7) as client:
        for i in range(40):
            iid = client.log_interaction("q", "a", id=f"o{i}")
            client.log_feedback(iid, "thumbs", i % 3 == 0, id=f"of{i}")
        result = client.flush()
    assert (result.accepted, result.rejected) == (80, 0)
    sent: set[str] = set()
    for s in proxy.batches():
        if "/interactions/" in s.path:
            sent.update(r["id"] for r in s.records)
        else:
            assert {r["interaction_id"] for r in s.records} <= sent
    assert count(store, feedback) == 40


def test_remote_retries_through_503s_and_stores_each_record_once(
        proxy: FaultProxy, token: str, store: Store) -> None:
    proxy.plan = ["503", "503"]
    with remote(proxy.url, token) as client:
        ids = [client.log_interaction("q", f"a{i}") for i in range(30)]
        result = client.flush()
    assert (result.accepted, result.duplicates, result.undelivered) == (30, 0, 0)
    assert [s.action for s in proxy.batches()] == ["503", "503", "forward"]
    assert all(len(s.records) == 30 for s in proxy.batches())
    assert stored_ids(store, interactions) == sorted(ids)


def test_remote_resends_after_a_lost_reply_and_the_store_reports_duplicates(
        proxy: FaultProxy, token: str, store: Store) -> None:
    proxy.plan = ["drop_after"]  # the server commits, the client never hears of it
    with remote(proxy.url, token) as client:
        ids = [client.log_interaction("q", f"a{i}") for i in range(12)]
        result = client.flush()
    assert (result.accepted, result.duplicates, result.rejected) == (0, 12, 0)
    assert [s.action for s in proxy.batches()] == ["drop_after", "forward"]
    assert stored_ids(store, interactions) == sorted(ids)


def test_remote_retries_a_connection_dropped_before_the_server_saw_it(
        proxy: FaultProxy, token: str, store: Store) -> None:
    proxy.plan = ["drop"]
    with remote(proxy.url, token) as client:
        client.log_interaction("q", "a", id="d1")
        result = client.flush()
    assert (result.accepted, result.duplicates) == (1, 0)
    assert [s.action for s in proxy.batches()] == ["drop", "forward"]
    assert stored_ids(store, interactions) == ["d1"]


def test_remote_honours_retry_after(proxy: FaultProxy, token: str, store: Store) -> None:
    proxy.plan = ["429"]
    proxy.retry_after = "1"
    with remote(proxy.url, token, backoff=0.001) as client:
        client.log_interaction("q", "a", id="slow")
        assert client.flush().accepted == 1
    first, second = proxy.batches()
    assert second.at - first.at >= 0.95  # the back-off alone would wait about 1 ms
    assert stored_ids(store, interactions) == ["slow"]


def test_remote_gives_up_after_max_retries_and_hands_the_records_back(
        proxy: FaultProxy, token: str, store: Store) -> None:
    proxy.plan = ["503"] * 10
    with remote(proxy.url, token, max_retries=2) as client:
        client.log_interaction("q", "a", id="u1")
        client.log_interaction("q", "b", id="u2")
        result = client.flush()
    assert len(proxy.batches()) == 3
    assert (result.accepted, result.undelivered) == (0, 2)
    assert [r.id for r in result.undelivered_records] == ["u1", "u2"]
    assert "gave up after 3 attempts" in result.undelivered_records[0].message
    assert result.undelivered_records[0].record["output"] == "a"
    assert count(store, interactions) == 0


def test_remote_record_rejects_are_reported_and_not_retried(
        proxy: FaultProxy, token: str, store: Store) -> None:
    with remote(proxy.url, token) as client:
        iid = client.log_interaction("q", "a", id="r1")
        client.log_feedback(iid, "rating", 9, id="too-high")  # the server knows the scale
        client.log_feedback(iid, "rating", 5, id="fine")
        result = client.flush()
        assert [r.id for r in client.rejected] == ["too-high"]
    assert (result.accepted, result.rejected) == (2, 1)
    rej = result.rejected_records[0]
    assert (rej.kind, rej.id, rej.field) == ("feedback", "too-high", "value")
    assert "scale" in rej.message
    assert len(proxy.batches("feedback")) == 1
    assert stored_ids(store, feedback) == ["fine"]


def test_remote_4xx_refusals_are_not_retried(proxy: FaultProxy, store: Store,
                                             project: Project) -> None:
    viewer = create_token(store, project_id=project.id, role="viewer")
    with remote(proxy.url, viewer, max_retries=5) as client:
        client.log_interaction("q", "a", id="v1")
        client.log_interaction("q", "b", id="v2")
        result = client.flush()
    assert len(proxy.batches()) == 1
    assert (result.accepted, result.rejected) == (0, 2)
    assert "403" in result.rejected_records[0].message
    assert count(store, interactions) == 0


def test_remote_local_validation_raises_before_anything_is_sent(
        proxy: FaultProxy, token: str) -> None:
    with remote(proxy.url, token) as client:
        with pytest.raises(InvalidInput) as bad:
            client.log_interaction("q", "a", id="p", propensity=1.5)
        assert bad.value.field == "propensity" and "'p'" in bad.value.message
        with pytest.raises(InvalidInput) as bad_fb:
            client.log_feedback("x", "thumbs", float("nan"), id="nan")
        assert bad_fb.value.field == "value"
        assert client.pending == 0
        assert client.flush().accepted == 0
    assert proxy.batches() == []


def test_remote_too_large_batches_are_split(settings: Settings, store: Store,
                                            project: Project, token: str) -> None:
    small = settings.model_copy(update={"max_batch_records": 10})
    with serve(small, store) as url, fault_proxy(url) as proxy, \
            remote(proxy.url, token, batch_size=25) as client:
        ids = [client.log_interaction("q", f"a{i}") for i in range(25)]
        result = client.flush()
    assert (result.accepted, result.rejected) == (25, 0)
    assert max(len(s.records) for s in proxy.batches() if s.action == "forward") <= 25
    assert stored_ids(store, interactions) == sorted(ids)


def test_remote_reads_return_the_same_typed_records_as_embedded(
        server: str, token: str, local: Client) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with remote(server, token) as client:
        for i in range(1003):
            client.log_interaction("q", f"a{i}", id=f"w{i:04d}", model_version="v9",
                                   attributes={"shard": str(i % 2)}, timestamp=when)
        client.log_feedback("w0001", "thumbs", True, id="fb1", comment="nice")
        client.log_feedback("w0001", "pref", "a", id="fb2", interaction_id_b="w0002")
        assert client.flush().accepted == 1005
        everything = client.interactions()
        assert len(everything) == 1003
        assert everything == local.interactions()
        assert [r.id for r in client.interactions(attributes={"shard": "1"}, limit=3)] == \
            [r.id for r in local.interactions(attributes={"shard": "1"}, limit=3)]
        assert [r.id for r in client.interactions(signal="pref")] == ["w0001"]
        one = client.get_interaction("w0001")
        assert one == local.get_interaction("w0001") and one.timestamp == when
        assert client.feedback(interaction_id="w0002") == local.feedback(
            interaction_id="w0002")
        assert [f.id for f in client.feedback(signal="thumbs")] == ["fb1"]
        with pytest.raises(NotFound):
            client.get_interaction("missing")
        frame = client.feedback_df()
        assert sorted(frame["id"]) == ["fb1", "fb2"]
        assert {s["name"] for s in client.signals()} == {"thumbs", "rating", "pref"}
        made = client.create_signal("helpful", "ordinal", scale_min=1, scale_max=3)
        assert made["scale_max"] == 3
        assert client.project_info()["name"] == "shop"


def test_remote_records_are_flushed_when_the_process_exits(
        server: str, token: str, store: Store) -> None:
    proc = run_python(f"""
        from feedbackloop import Client
        c = Client({server!r}, {token!r}, "shop", flush_interval=60)
        for i in range(5):
            iid = c.log_interaction("q", "a", id=f"bye-{{i}}")
            c.log_feedback(iid, "thumbs", True, id=f"fbye-{{i}}")
        print(c.pending)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "10"
    assert stored_ids(store, interactions) == [f"bye-{i}" for i in range(5)]
    assert stored_ids(store, feedback) == [f"fbye-{i}" for i in range(5)]


def test_a_full_queue_blocks_then_raises_and_close_hands_back_the_rest(
        token: str) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = remote(dead, token, batch_size=2, max_queue=2, queue_timeout=0.3,
                    max_retries=100, backoff=5.0)
    try:
        for i in range(4):  # two go in flight (and fail), two fill the queue
            client.log_interaction("q", "a", id=f"q{i}")
        started = time.monotonic()
        with pytest.raises(QueueFull) as full:
            client.log_interaction("q", "a", id="q4")
        assert time.monotonic() - started >= 0.25
        assert "'q4'" in full.value.message
    finally:
        result = client.close(timeout=0.2)
    assert result.accepted == 0
    assert sorted(r.id for r in result.undelivered_records) == ["q0", "q1", "q2", "q3"]
    with pytest.raises(FeedbackloopError, match="closed"):
        client.log_interaction("q", "a")


@pytest.mark.parametrize("transport", ["embedded", "remote"])
def test_a_forked_child_logs_on_its_own_and_leaves_the_parents_queue_alone(
        transport: str, db_url: str, server: str, token: str, store: Store) -> None:
    make = (f"Client.local({db_url!r}, project='shop', flush_interval=60)"
            if transport == "embedded" else
            f"Client({server!r}, {token!r}, 'shop', flush_interval=60)")
    proc = run_python(f"""
        import os
        from feedbackloop import Client
        c = {make}
        c.log_interaction("q", "a", id="parent-before")   # queued when the fork happens
        pid = os.fork()
        if pid == 0:
            c.log_interaction("q", "a", id="child")
            print("child", c.flush().accepted, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        c.log_interaction("q", "a", id="parent-after")
        print("parent", c.flush().accepted, flush=True)
    """, {"FEEDBACKLOOP_PSEUDONYM_KEY": "test-pseudonym-key"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["child 1", "parent 2"]
    assert stored_ids(store, interactions) == ["child", "parent-after", "parent-before"]
