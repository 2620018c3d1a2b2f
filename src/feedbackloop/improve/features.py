"""Text features for the built-in trainers: sentence embeddings or TF-IDF, plus relevance.

Two kinds, chosen by the trainers' ``features`` parameter:

* ``embeddings``: all-MiniLM-L6-v2 vectors (384 numbers, unit length) from the embedding
  scorers' cached encoder (:mod:`feedbackloop.scoring.embeddings`), so a text encoded once
  — by a scorer or an earlier training run sharing the ``cache_dir`` — is never encoded
  again. Needs the ``embeddings`` extra; nothing is downloaded.
* ``tfidf``: scikit-learn's TF-IDF (word 1-2 grams, sublinear term frequency, rows of unit
  length) with the vocabulary and IDF weights learnt on the training texts and stored in
  the model artifact as plain lists, so a loaded model rebuilds exactly the same vectors.

``auto`` (the default) takes embeddings when the extra is importable and TF-IDF otherwise.

A (prompt, response) pair is described by :func:`pair_features`: the response's vector,
the *relevance* (cosine of the prompt's and the response's vectors) and the response's
log length, ``[r, cos(p, r), log(1 + chars)]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from ..errors import InvalidInput

__all__ = ["KINDS", "TextFeatures", "embeddings_available", "pair_features", "preference_features",
           "resolve_kind"]

KINDS = ("auto", "embeddings", "tfidf")
TOKEN_PATTERN = r"(?u)\b\w+\b"

Matrix = Any  # np.ndarray or a scipy CSR matrix


def embeddings_available() -> bool:
    from ..scoring.embeddings import _missing_backend

    return _missing_backend() is None


def resolve_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"features must be one of {', '.join(KINDS)}, not {kind!r}",
                           field="features")
    if kind == "auto":
        return "embeddings" if embeddings_available() else "tfidf"
    return kind


class TextFeatures:
    """Vectors of texts (rows of unit length). Build with :meth:`fit`, save with
    :meth:`to_dict`, rebuild with :meth:`from_dict`."""

    def __init__(self, kind: str, *, vocabulary: list[str] | None = None,
                 idf: list[float] | None = None, ngram_max: int = 2,
                 cache_dir: str | None = None, batch_size: int = 64) -> None:
        self.kind = kind
        self.vocabulary = vocabulary or []
        self.idf = np.asarray(idf or [], dtype=np.float64)
        self.ngram_max = ngram_max
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self._counter: Any = None
        self._encoder: Any = None

    @property
    def dim(self) -> int:
        if self.kind == "tfidf":
            return len(self.vocabulary)
        from ..scoring.embeddings import DIMENSIONS

        return DIMENSIONS

    @classmethod
    def fit(cls, kind: str, texts: Sequence[str], *, max_features: int = 20_000,
            ngram_max: int = 2, cache_dir: str | None = None,
            batch_size: int = 64) -> TextFeatures:
        kind = resolve_kind(kind)
        if kind == "embeddings":
            from ..scoring.embeddings import _require_backend

            _require_backend()
            return cls("embeddings", cache_dir=cache_dir, batch_size=batch_size)
        from sklearn.feature_extraction.text import TfidfVectorizer

        if isinstance(max_features, bool) or not isinstance(max_features, int) \
                or max_features < 1:
            raise InvalidInput(f"max_features must be a positive integer, not "
                               f"{max_features!r}", field="max_features")
        vec = TfidfVectorizer(token_pattern=TOKEN_PATTERN, ngram_range=(1, ngram_max),
                              sublinear_tf=True, max_features=max_features, dtype=np.float64)
        try:
            vec.fit(list(texts))
        except ValueError as exc:  # an empty vocabulary
            raise InvalidInput(f"no words to learn TF-IDF features from: {exc}",
                               field="features") from exc
        vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
        return cls("tfidf", vocabulary=vocab, idf=[float(x) for x in vec.idf_],
                   ngram_max=ngram_max)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "tfidf":
            return {"kind": "tfidf", "ngram_max": self.ngram_max,
                    "token_pattern": TOKEN_PATTERN, "vocabulary": self.vocabulary,
                    "idf": [float(x) for x in self.idf]}
        from ..scoring.embeddings import DIMENSIONS, MODEL_NAME

        return {"kind": "embeddings", "model": MODEL_NAME, "dim": DIMENSIONS}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, cache_dir: str | None = None) -> TextFeatures:
        if data.get("kind") == "tfidf":
            return cls("tfidf", vocabulary=list(data["vocabulary"]), idf=list(data["idf"]),
                       ngram_max=int(data["ngram_max"]))
        if data.get("kind") == "embeddings":
            return cls("embeddings", cache_dir=cache_dir)
        raise InvalidInput(f"unknown feature kind {data.get('kind')!r} in the artifact",
                           field="features")

    def transform(self, texts: Sequence[str]) -> Matrix:
        """One unit-length row per text (CSR for TF-IDF, float32 for embeddings)."""
        if self.kind == "embeddings":
            if self._encoder is None:
                from ..scoring.embeddings import SemanticRelevance

                self._encoder = SemanticRelevance(batch_size=self.batch_size,
                                                  cache_dir=self.cache_dir)
            return _embed(self._encoder, list(texts))
        if self._counter is None:
            from sklearn.feature_extraction.text import CountVectorizer

            self._counter = CountVectorizer(
                token_pattern=TOKEN_PATTERN, ngram_range=(1, self.ngram_max),
                vocabulary={t: i for i, t in enumerate(self.vocabulary)}, dtype=np.float64)
        counts = self._counter.transform(list(texts)).tocsr()
        counts.data = np.log(counts.data) + 1.0  # sublinear tf, as TfidfVectorizer
        x = counts.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sparse.csr_matrix(sparse.diags(1.0 / norms) @ x)

    def close(self) -> None:
        if self._encoder is not None:
            self._encoder.close()


BULK_READ_MIN = 5_000
"""From this many distinct texts on, cached vectors are read in bulk (see _read_cache)."""


def _read_cache(path: Path, keys: list[bytes], dim: int) -> dict[bytes, np.ndarray]:
    """Vectors of ``keys`` from an embedding disk cache file, read in bulk.

    The cache's own look-up queries keys in request order, 900 at a time, which on a
    training set (hundreds of thousands of random keys) touches the file's pages at random.
    Here the keys are sorted first, so successive queries walk the B-tree in order; and
    when the keys are a large share of the file (a quarter or more), one sequential scan
    of the table is cheaper still."""
    import sqlite3

    found: dict[bytes, np.ndarray] = {}
    if not path.exists():
        return found
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        total = conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        wanted = set(keys)
        if len(wanted) * 4 >= total:
            rows = conn.execute("SELECT key, vector FROM embeddings")
            pairs = ((bytes(k), v) for k, v in rows if bytes(k) in wanted)
            for key, blob in pairs:
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (dim,):
                    found[key] = vec
            return found
        ordered = sorted(wanted)
        for start in range(0, len(ordered), 900):
            chunk = ordered[start:start + 900]
            marks = ",".join("?" * len(chunk))
            for key, blob in conn.execute(
                    f"SELECT key, vector FROM embeddings WHERE key IN ({marks})", chunk):
                vec = np.frombuffer(blob, dtype=np.float32)
                if vec.shape == (dim,):
                    found[bytes(key)] = vec
        return found
    except sqlite3.Error:
        return {}  # an unreadable cache is only a slower path: the encoder fills the gap
    finally:
        conn.close()


def _embed(encoder: Any, texts: list[str]) -> np.ndarray:
    """float32 unit vectors of ``texts`` through the scorers' cached encoder, many cached
    vectors read in bulk first; only texts in no cache reach the model."""
    from ..scoring._embedding_cache import text_key
    from ..scoring.embeddings import DIMENSIONS

    keys = [text_key(t) for t in texts]
    unique = dict(zip(keys, texts, strict=True))
    found: dict[bytes, np.ndarray] = {}
    if encoder.disk is not None and len(unique) >= BULK_READ_MIN:
        found = _read_cache(encoder.disk.path, list(unique), DIMENSIONS)
    missing = [k for k in unique if k not in found]
    if missing:
        vectors = encoder.embed([unique[k] for k in missing])
        found.update(zip(missing, vectors, strict=True))
    if not keys:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


def _unique_rows(features: TextFeatures, texts: Sequence[str],
                 progress: Callable[[int], None] | None = None) -> tuple[Matrix, np.ndarray]:
    """Vectors of the distinct texts and, per input text, the row of its vector."""
    index: dict[str, int] = {}
    positions = np.fromiter((index.setdefault(t, len(index)) for t in texts),
                            dtype=np.int64, count=len(texts))
    return features.transform(list(index)), positions


def rowwise_cosine(a: Matrix, b: Matrix) -> np.ndarray:
    """Row-by-row dot products of two matrices of unit rows (the cosine)."""
    if sparse.issparse(a):
        return np.asarray(a.multiply(b).sum(axis=1), dtype=np.float64).ravel()
    return np.einsum("ij,ij->i", a, b).astype(np.float64)


def pair_features(features: TextFeatures, prompts: Sequence[str],
                  responses: Sequence[str]) -> tuple[Matrix, np.ndarray]:
    """phi(prompt, response) = [response vector, relevance, log(1 + chars)] per pair, and
    the relevance column on its own (the relevance-only baseline)."""
    if len(prompts) != len(responses):
        raise ValueError("prompts and responses differ in length")
    vectors, rows = _unique_rows(features, [*prompts, *responses])
    n = len(prompts)
    p_rows, r_rows = rows[:n], rows[n:]
    p, r = vectors[p_rows], vectors[r_rows]
    relevance = rowwise_cosine(p, r)
    log_len = np.fromiter((math.log1p(len(t)) for t in responses), dtype=np.float64, count=n)
    extra = np.column_stack([relevance, log_len])
    if sparse.issparse(r):
        return sparse.hstack([r, sparse.csr_matrix(extra)], format="csr"), relevance
    return np.hstack([np.asarray(r, dtype=np.float64), extra]), relevance


def preference_features(features: TextFeatures, prompts: Sequence[str],
                        chosen: Sequence[str], rejected: Sequence[str]
                        ) -> tuple[Matrix, np.ndarray, np.ndarray]:
    """phi(prompt, chosen) - phi(prompt, rejected) per pair (the Bradley-Terry design
    matrix), with the relevance of the chosen and of the rejected response. Every distinct
    text is vectorised once."""
    n = len(prompts)
    if not len(chosen) == len(rejected) == n:
        raise ValueError("prompts, chosen and rejected differ in length")
    vectors, rows = _unique_rows(features, [*prompts, *chosen, *rejected])
    p = vectors[rows[:n]]
    c, r = vectors[rows[n:2 * n]], vectors[rows[2 * n:]]
    rel_c, rel_r = rowwise_cosine(p, c), rowwise_cosine(p, r)
    del p
    len_c = np.fromiter((math.log1p(len(t)) for t in chosen), dtype=np.float64, count=n)
    len_r = np.fromiter((math.log1p(len(t)) for t in rejected), dtype=np.float64, count=n)
    extra = np.column_stack([rel_c - rel_r, len_c - len_r])
    if sparse.issparse(c):
        diff: Matrix = sparse.hstack([c - r, sparse.csr_matrix(extra)], format="csr")
    else:
        diff = np.hstack([np.subtract(c, r, dtype=np.float64), extra])
    return diff, rel_c, rel_r


def feature_names(features: TextFeatures) -> list[str]:
    return [f"v{i}" for i in range(features.dim)] + ["relevance", "log_chars"]
