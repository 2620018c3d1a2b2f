"""A file import killed with SIGKILL half-way, then run again: no partial record, no
duplicate, every record stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from feedbackloop.capture.importer import import_file
from feedbackloop.capture.projects import create_project, get_project
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import interactions

N = 100_000

# The child runs the same service the CLI runs, in a process of its own that we can kill.
CHILD = """
import sys
from feedbackloop.capture.importer import import_file
from feedbackloop.capture.projects import get_project
from feedbackloop.settings import load_settings
from feedbackloop.store import Store
s = load_settings(database_url=sys.argv[1], data_dir=sys.argv[3],
                  pseudonym_key="test-pseudonym-key")
st = Store.from_url(s.resolved_database_url)
with st.read() as conn:
    p = get_project(conn, "big")
import_file(st, s, p, "interactions", sys.argv[2], workers=2, progress=False)
"""


def _record(i: int) -> dict[str, object]:
    return {"id": f"r{i:06d}", "input": f"question {i} from a@b.org", "output": f"answer {i}",
            "attributes": {"locale": ("en", "de", "fr")[i % 3]}, "latency_ms": i % 977,
            "user_id": f"user-{i % 500}"}


def _count(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(interactions)).scalar_one())


@pytest.mark.slow
def test_killed_import_resumes_without_partial_or_duplicate_records(
        store: Store, settings: Settings, db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as fh:
        for i in range(N):
            fh.write(orjson.dumps(_record(i)) + b"\n")
    create_project(store, "big")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, str(path), str(settings.data_dir)],
        start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        stored = 0
        while time.monotonic() < deadline and child.poll() is None:
            stored = _count(store)
            if stored >= 2_000:
                break
            time.sleep(0.02)
        assert child.poll() is None, child.stderr.read().decode()  # type: ignore[union-attr]
        # The whole process group: the importer and its worker processes.
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        if child.stderr is not None:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL

    before = _count(store)
    assert 0 < before < N, before
    # Every stored row is whole: its content is what the file says, redacted.
    with store.read() as conn:
        rows = conn.execute(select(interactions.c.client_id, interactions.c.input,
                                   interactions.c.output, interactions.c.attributes,
                                   interactions.c.latency_ms, interactions.c.content_hash,
                                   interactions.c.user_id)).all()
    for cid, inp, out, attrs, latency, chash, user in rows:
        i = int(cid[1:])
        assert inp == f"question {i} from <EMAIL>" and out == f"answer {i}"
        assert attrs == {"locale": ("en", "de", "fr")[i % 3]} and latency == i % 977
        assert chash and user and user.startswith("p_")

    with store.read() as conn:
        project = get_project(conn, "big")
    again = import_file(store, settings, project, "interactions", path, workers=2,
                        progress=False)
    assert again.rejected == 0 and again.errors == []
    assert again.accepted + again.duplicates == N
    assert again.duplicates == before
    assert _count(store) == N
    with store.read() as conn:
        distinct = conn.execute(select(func.count(func.distinct(interactions.c.client_id))))
        assert distinct.scalar_one() == N
