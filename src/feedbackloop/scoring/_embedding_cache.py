"""Caches of sentence embeddings, keyed by the SHA-256 of the text.

Encoding is the whole cost of an embedding scorer (a few hundred short texts a second on
two cores), and the same texts come back again and again: one question answered by several
model versions, the same reference for many outputs, a re-run after a scorer was added. So
each text is encoded once: :class:`MemoryCache` holds recent vectors in the process, and
:class:`DiskCache` keeps every vector in an SQLite file so that a new process (a re-run of
scoring) needs neither the encoder nor the model.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigurationError

__all__ = ["DiskCache", "MemoryCache", "text_key"]

# SQLite's default limit on host parameters is 32,766 since 3.32; stay well below older ones.
_IN_CHUNK = 900


def text_key(text: str) -> bytes:
    """The cache key of a text: SHA-256 of its UTF-8 bytes (32 bytes)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class MemoryCache:
    """A thread-safe least-recently-used map from text key to a float32 vector."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Iterable[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for key in keys:
                vec = self._items.get(key)
                if vec is not None:
                    self._items.move_to_end(key)
                    found[key] = vec
        return found

    def put_many(self, pairs: Iterable[tuple[bytes, np.ndarray]]) -> None:
        if self.max_items <= 0:
            return
        with self._lock:
            for key, vec in pairs:
                self._items[key] = vec
                self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)


class DiskCache:
    """Vectors of one model in an SQLite file ``<folder>/<model>.sqlite`` (WAL mode, so
    several scoring processes can share it). Rows are (sha256 of text, float32 bytes).

    The file is opened on first use, not at construction, so that a scorer can be built
    (and pickled to a worker process) without touching the disk.
    """

    def __init__(self, folder: Path, model_name: str, dim: int) -> None:
        self.path = Path(folder) / f"{model_name}.sqlite"
        self.dim = dim
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                       isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("CREATE TABLE IF NOT EXISTS embeddings "
                             "(key BLOB PRIMARY KEY, vector BLOB NOT NULL) WITHOUT ROWID")
            except (OSError, sqlite3.Error) as exc:
                raise ConfigurationError(
                    f"cannot open the embedding cache {self.path}: {exc}", option="cache_dir"
                ) from exc
            self._conn = conn
        return self._conn

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            conn = self._connect()
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk
                )
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    # A vector of another length is from a different model build: ignore it
                    # and let the encoder overwrite it.
                    if vec.shape == (self.dim,):
                        found[bytes(key)] = vec
        return found

    def put_many(self, pairs: Sequence[tuple[bytes, np.ndarray]]) -> None:
        if not pairs:
            return
        rows = [(key, np.ascontiguousarray(vec, dtype=np.float32).tobytes())
                for key, vec in pairs]
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO embeddings (key, vector) VALUES (?, ?)", rows
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
