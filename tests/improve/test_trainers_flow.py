"""The issue's "done when", end to end on SQLite and PostgreSQL: from a project with
pairwise feedback, build a preference dataset (improve.datasets), train a reward model
that beats the zero-label baselines on held-out prompts, serve it to 10 % of one cohort,
roll it back; the version names its dataset and every dataset row names its feedback."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.improve import registry as reg
from feedbackloop.improve.datasets import build_dataset, get_dataset, iter_rows
from feedbackloop.improve.trainers import train
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .model_data import preference_rows


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    reg.clear_resolve_cache()


def test_from_pairwise_feedback_to_a_served_and_rolled_back_reward_model(
        store: Store, settings: Settings, tmp_path: Path) -> None:
    project = create_project(store, "shop", risk_tier="low")  # plain promotion allowed
    create_signal(store, project, SignalIn(name="pref", type="pairwise"))
    ingest = Ingestor(store, settings, project)
    pairs = preference_rows(300, 3, seed=4)
    interactions, feedback = [], []
    for i, pair in enumerate(pairs):
        # the preferred output is shown second half of the time
        first, second = (pair["chosen"], pair["rejected"]) if i % 2 else \
            (pair["rejected"], pair["chosen"])
        interactions += [{"id": f"i{i}a", "input": pair["prompt"], "output": first,
                          "consent": True},
                         {"id": f"i{i}b", "input": pair["prompt"], "output": second,
                          "consent": True}]
        feedback.append({"id": f"f{i}", "interaction_id": f"i{i}a",
                         "interaction_id_b": f"i{i}b", "signal": "pref",
                         "value": "a" if i % 2 else "b", "rater_id": f"r{i % 7}",
                         "source": "annotator"})
    assert ingest.interactions(interactions).rejected == 0
    assert ingest.feedback(feedback).rejected == 0

    dataset = build_dataset(store, project, "prefs", "preference",
                            {"signal": "pref", "near_duplicates": False})
    assert dataset.counts["rows"] == len(pairs)
    run, version = train(store, project, "reward-model", "prefs", params={"features":
                                                                          "tfidf"},
                         seed=1, artifact_root=tmp_path / "art", name="rm-2")
    held = version.metrics["held_out"]
    assert held["beats_baselines"] is True
    assert held["accuracy"]["ci95"][0] > max(b["value"] for b in held["baselines"].values())
    assert run.params["dataset_hash"] == dataset.content_hash

    # lineage: version → dataset → the feedback behind every row
    assert version.datasets == ["prefs@1"]
    with store.read() as conn:
        rows = list(iter_rows(conn, get_dataset(conn, project, "prefs", 1)))
    assert all(len(r["feedback_ids"]) == 1 for r in rows)
    by_text = {(p["prompt"], p["chosen"], p["rejected"]): f"f{i}"
               for i, p in enumerate(pairs)}
    for r in rows:
        d = r["data"]
        assert r["feedback_ids"] == [by_text[(d["prompt"], d["chosen"], d["rejected"])]]

    # serve it to 10 % of one cohort, then promote and roll it back
    reg.register_version(store, project, "reward", "rm-1", artifact=b"old",
                         artifact_root=tmp_path / "art")
    reg.promote(store, project, "reward", "rm-1")
    reg.set_toggle(store, project, "reward",
                   [{"when": [{"attribute": "plan", "op": "eq", "value": "pro"}],
                     "split": {"rm-2": 10}}], actor="ana")
    n = 3000
    served = sum(reg.resolve(store, project, "reward", f"u{i}", {"plan": "pro"})["version"]
                 == "rm-2" for i in range(n))
    assert abs(served - 0.1 * n) <= 4 * math.sqrt(n * 0.1 * 0.9)
    assert all(reg.resolve(store, project, "reward", f"u{i}", {"plan": "free"})["version"]
               == "rm-1" for i in range(300))
    reg.promote(store, project, "reward", "rm-2")
    assert reg.rollback(store, project, "reward").name == "rm-1"
    assert {reg.resolve(store, project, "reward", f"u{i}", {"plan": "pro"})["version"]
            for i in range(n)} == {"rm-1"}
