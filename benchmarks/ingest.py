"""Ingest throughput with redaction on, beside the database driver's bulk path.

Four ways in (file import through the CLI, the embedded SDK, the Ingestor the others share,
the HTTP batch API) against ``sqlite3.executemany`` / psycopg ``COPY`` of the same rows
into the same table. See the README's "What is measured".
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.sample import generate_interactions
from feedbackloop.store import Store
from feedbackloop.store.tables import interactions

from .databases import BenchDatabase, database
from .report import Result

GROUP = "ingest"
N = 100_000
API_BATCH = 5_000
DRIVER_CHUNK = 10_000
COLUMNS = ("project_id", "client_id", "timestamp", "model_version", "input", "output",
           "context", "reference", "attributes", "user_id", "session_id", "latency_ms",
           "error", "experiment", "arm", "propensity", "consent", "meta", "content_hash",
           "ingested_at")
TARGET_SHARE = {"file": 0.30, "sdk": 0.30, "api": 0.20}
TARGET_FILE_RATE = 20_000


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def driver_rows(records: Iterable[dict[str, Any]], project_id: int,
                kind: str) -> Iterator[tuple[Any, ...]]:
    """The same records as rows of our table, converted as cheaply as a loader can: JSON
    columns serialised, timestamps parsed (SQLite keeps naive UTC text, as SQLAlchemy
    writes it)."""
    now = datetime.now(UTC)
    now_db: Any = now.strftime("%Y-%m-%d %H:%M:%S.%f") if kind == "sqlite" else now
    for r in records:
        ts: Any = datetime.fromisoformat(r["timestamp"]).astimezone(UTC)
        if kind == "sqlite":
            ts = ts.strftime("%Y-%m-%d %H:%M:%S.%f")
        yield (project_id, r["id"], ts, r.get("model_version"), r["input"], r["output"],
               _json(r.get("context")), r.get("reference"), _json(r.get("attributes")),
               r.get("user_id"), r.get("session_id"), r.get("latency_ms"), r.get("error"),
               r.get("experiment"), r.get("arm"), r.get("propensity"),
               bool(r.get("consent")), _json(r.get("metadata")), "", now_db)


def _chunks(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def bulk_insert(db: BenchDatabase, rows: Iterable[tuple[Any, ...]],
                chunk: int = DRIVER_CHUNK) -> None:
    """The driver's own bulk path into ``interactions``, committing every ``chunk`` rows."""
    cols = ", ".join(COLUMNS)
    conn = db.driver_connection()
    try:
        if db.kind == "sqlite":
            sql = f"INSERT INTO interactions ({cols}) VALUES ({', '.join('?' * len(COLUMNS))})"
            for part in _chunks(rows, chunk):
                conn.execute("BEGIN")
                conn.executemany(sql, part)
                conn.execute("COMMIT")
        else:
            for part in _chunks(rows, chunk):
                with conn.cursor() as cur, cur.copy(
                        f"COPY interactions ({cols}) FROM STDIN") as copy:
                    for row in part:
                        copy.write_row(row)
                conn.commit()
    finally:
        conn.close()


def _count(db: BenchDatabase) -> int:
    store = Store.from_url(db.url)
    try:
        with store.read() as conn:
            return int(conn.execute(select(func.count()).select_from(interactions).where(
                interactions.c.project_id == db.project.id)).scalar_one())
    finally:
        store.dispose()


def _timed(db: BenchDatabase, work: Callable[[], None], n: int) -> float:
    """Rows per second of ``work``, checked to have stored all ``n`` rows."""
    t0 = time.perf_counter()
    work()
    seconds = time.perf_counter() - t0
    stored = _count(db)
    if stored != n:
        raise RuntimeError(f"expected {n} stored interactions, found {stored}")
    return n / seconds


# -- the ways in ---------------------------------------------------------------------------
def run_driver(db: BenchDatabase, records: list[dict[str, Any]]) -> float:
    return _timed(db, lambda: bulk_insert(db, driver_rows(records, db.project.id, db.kind)),
                  len(records))


def run_ingestor(db: BenchDatabase, records: list[dict[str, Any]]) -> float:
    store = Store.from_url(db.url)
    ing = Ingestor(store, db.settings(), db.project)

    def work() -> None:
        for i in range(0, len(records), API_BATCH):
            res = ing.interactions(records[i : i + API_BATCH], start=i)
            if res.rejected:
                raise RuntimeError(f"rejected: {res.errors()[:3]}")

    try:
        return _timed(db, work, len(records))
    finally:
        store.dispose()


def sdk_available() -> bool:
    try:
        from feedbackloop.client import Client
    except ImportError:
        return False
    return hasattr(Client, "local")


def run_sdk(db: BenchDatabase, records: list[dict[str, Any]], *,
            writer_process: bool = False) -> float:
    from feedbackloop.client import Client

    client = Client.local(db.url, project=db.project.name, settings=db.settings(),
                          writer_process=writer_process)
    try:
        def work() -> None:
            for r in records:
                client.log_interaction(**r)
            client.flush()

        return _timed(db, work, len(records))
    finally:
        client.close()


def _cli() -> str | None:
    here = Path(sys.executable).parent / "feedbackloop"
    return str(here) if here.exists() else shutil.which("feedbackloop")


def cli_available() -> bool:
    exe = _cli()
    if exe is None:
        return False
    res = subprocess.run([exe, "ingest", "--help"], capture_output=True, text=True)
    return res.returncode == 0


def run_cli(db: BenchDatabase, path: Path, n: int) -> float:
    exe = _cli()
    assert exe is not None
    cmd = [exe, "ingest", str(path), "--project", db.project.name, "--kind", "interactions",
           "--json"]

    def work() -> None:
        res = subprocess.run(cmd, env=db.env(), capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"feedbackloop ingest failed ({res.returncode}): "
                               f"{res.stderr[-2000:] or res.stdout[-2000:]}")

    return _timed(db, work, n)


_SERVER = """
import sys, uvicorn
from feedbackloop.settings import load_settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app
settings = load_settings()
app = create_app(settings, Store.from_url(settings.resolved_database_url))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api_available() -> bool:
    try:
        from feedbackloop.web.app import create_app
    except ImportError:
        return False
    return callable(create_app)


def run_api(db: BenchDatabase, records: list[dict[str, Any]], threads: int = 2) -> float:
    import httpx

    from feedbackloop.access import create_token

    store = Store.from_url(db.url)
    try:
        token = create_token(store, project_id=db.project.id, role="ingest", name="bench")
    finally:
        store.dispose()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)], env=db.env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(server, base)
        url = f"{base}/api/v1/projects/{db.project.name}/interactions/batch"
        bodies = [orjson.dumps({"records": records[i : i + API_BATCH]})
                  for i in range(0, len(records), API_BATCH)]
        failures: list[str] = []

        def post(mine: list[bytes]) -> None:
            with httpx.Client(timeout=600, headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json"}) as http:
                for body in mine:
                    resp = http.post(url, content=body)
                    if resp.status_code >= 300:
                        failures.append(f"{resp.status_code}: {resp.text[:500]}")

        def work() -> None:
            workers = [threading.Thread(target=post, args=(bodies[k::threads],))
                       for k in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if failures:
                raise RuntimeError(f"API batch failed: {failures[0]}")

        return _timed(db, work, len(records))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for(server: subprocess.Popen[bytes], base: str) -> None:
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode() if server.stderr else ""
            raise RuntimeError(f"API server exited: {err[-2000:]}")
        try:
            httpx.get(base + "/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError("API server did not start within 60 s")


# -- the group -----------------------------------------------------------------------------
def _share(name: str, kind: str, ours: float, base: float, share: float, note: str = "",
           order: int = 0) -> Result:
    return Result(GROUP, name, kind, ours, base, "rows/s", f"≥ {share:.0%} of driver",
                  ours / base >= share, note, extra={"order": order})


def run(kinds: list[str], n: int = N) -> list[Result]:
    print(f"ingest: generating {n:,} sample interactions")
    records = list(generate_interactions(n, seed=0))
    results: list[Result] = []

    def add(r: Result) -> None:
        results.append(r)
        print(r.line(), flush=True)

    with database("sqlite") as scratch:
        jsonl = scratch.workdir / "interactions.jsonl"
        with jsonl.open("wb") as fh:
            for r in records:
                fh.write(orjson.dumps(r) + b"\n")
        has_cli, has_sdk, has_api = cli_available(), sdk_available(), api_available()
        for kind in kinds:
            with database(kind) as db:
                base = run_driver(db, records)
            driver = "sqlite3 executemany" if kind == "sqlite" else "psycopg COPY"
            add(Result(GROUP, f"driver bulk path ({driver})", kind, base, base,
                                  "rows/s", note="the baseline of every ingest row",
                                  extra={"order": 0}))
            if has_cli:
                with database(kind) as db:
                    ours = run_cli(db, jsonl, n)
                add(_share("file import, CLI whole process", kind, ours, base,
                                      TARGET_SHARE["file"], order=1))
                add(Result(
                    GROUP, "file import, CLI whole process (absolute)", kind, ours, base,
                    "rows/s", f"≥ {TARGET_FILE_RATE:,}/s", ours >= TARGET_FILE_RATE,
                    extra={"order": 2}))
            else:
                print("  note: `feedbackloop ingest` is not available yet; file import "
                      "skipped")
            if has_sdk:
                with database(kind) as db:
                    ours = run_sdk(db, records)
                add(_share("embedded SDK (Client.local)", kind, ours, base,
                                      TARGET_SHARE["sdk"], "default batching", order=3))
                with database(kind) as db:
                    ours = run_sdk(db, records, writer_process=True)
                add(_share("embedded SDK, writer_process=True", kind, ours, base,
                                      TARGET_SHARE["sdk"], "opt-in forked writer (bulk loads)",
                                      order=3))
            else:
                print("  note: feedbackloop.Client.local is not available yet; SDK skipped")
            with database(kind) as db:
                ours = run_ingestor(db, records)
            add(_share("Ingestor direct, batches of 5,000", kind, ours, base,
                                  TARGET_SHARE["sdk"],
                                  "the engine under SDK, API and importer", order=4))
            if has_api:
                with database(kind) as db:
                    try:
                        ours = run_api(db, records)
                    except RuntimeError as exc:
                        print(f"  note: HTTP batch API failed, skipped: {exc}")
                        ours = None
                if ours is not None:
                    add(_share("HTTP batch API, 2 client threads", kind, ours,
                                          base, TARGET_SHARE["api"], order=5))
    return results
