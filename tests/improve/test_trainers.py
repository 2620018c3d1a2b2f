"""Trainers on SQLite and PostgreSQL: the reward model beats the zero-label baselines on
held-out prompts of a simulation with known truth, the reranker serves its choice, runs
are recorded and reproducible, and the plug-in registry refuses what it must."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from sqlalchemy import func, select

from feedbackloop.errors import (
    ConfigurationError,
    Conflict,
    FeedbackloopError,
    InvalidInput,
    NotFound,
)
from feedbackloop.improve import registry as reg
from feedbackloop.improve.trainers import (
    available_trainers,
    clear_trainer_cache,
    get_trainer,
    get_training_run,
    list_training_runs,
    train,
)
from feedbackloop.store import Store
from feedbackloop.store.tables import datasets, model_versions

from .model_data import GOOD, insert_dataset, preference_rows, project

TFIDF = {"features": "tfidf"}


@pytest.fixture
def prefs(store: Store) -> int:
    project(store)
    return insert_dataset(store, "shop", "prefs", "preference", preference_rows(400, 3))


def test_reward_model_beats_the_zero_label_baselines_on_held_out_prompts(
        store: Store, prefs: int, tmp_path: Path) -> None:
    stages: list[str] = []
    run, version = train(store, "shop", "reward-model", "prefs", params=TFIDF, seed=3,
                         artifact_root=tmp_path / "art", created_by="ana",
                         progress=lambda stage, done, total: stages.append(stage))
    assert stages[0] == "features" and stages[-1] == "done"
    assert (version.component, version.status, version.trainer) == ("reward", "candidate",
                                                                    "reward-model")
    assert version.name == f"reward-model-{run.id}" and version.datasets == ["prefs@1"]
    held = version.metrics["held_out"]
    assert held["split"] == "test" and held["pairs"] >= 90 and held["prompts"] >= 30
    acc, base = held["accuracy"], held["baselines"]
    # Known truth (model_data): length is independent of preference, relevance decides
    # only the relevance-contrast pairs (about 2 in 3 here), tone decides the rest.
    assert acc["value"] >= 0.9 and acc["method"] == "wilson" and acc["n"] == held["pairs"]
    assert acc["ci95"][0] < acc["value"] < acc["ci95"][1]
    assert abs(base["longer_wins"]["value"] - 0.5) < 0.15
    assert 0.55 < base["relevance_only"]["value"] < 0.9
    # better than every baseline beyond its interval, on the same held-out pairs
    assert acc["ci95"][0] > max(b["value"] for b in base.values())
    assert held["beats_baselines"] is True
    assert version.metrics["weights"]["relevance"] > 0

    # the run: seed, parameters, dataset hash, environment, metrics, artifact hash
    with store.read() as conn:
        recorded = get_training_run(conn, "shop", run.id)
        ds_hash = conn.execute(select(datasets.c.content_hash)).scalar()
    assert recorded.status == "succeeded" and recorded.seed == 3
    assert recorded.artifact_hash == version.artifact_hash and recorded.dataset_id == prefs
    assert recorded.params["features"] == "tfidf" and recorded.params["dataset"] == "prefs@1"
    assert recorded.params["dataset_hash"] == ds_hash
    assert {"python", "numpy", "scikit-learn", "scipy"} <= set(recorded.environment)
    assert recorded.metrics == version.metrics and recorded.created_by == "ana"
    assert recorded.finished_at is not None and recorded.finished_at >= recorded.started_at

    # the loaded predictor scores and chooses the way the metrics say
    model = reg.load_model(store, "shop", "reward", version.name)
    prompt = "how do i t3w1 t3w2 t3w5 q-new"
    candidates = ["t9w1 t9w2 t9w4 first check the", "t3w1 t3w2 t3w3 first check the",
                  "t3w1 t3w2 t3w3 dunno whatever the"]
    assert model.choose(prompt, candidates) == 1
    scored = model.predict({"prompt": prompt, "candidates": candidates})
    assert scored["choice"] == 1 and len(scored["scores"]) == 3
    assert model.predict({"prompt": prompt, "response": candidates[1]})["score"] == \
        pytest.approx(scored["scores"][1])
    with pytest.raises(InvalidInput, match="'response' or a list 'candidates'"):
        model.predict({"prompt": prompt})


def test_same_seed_and_data_reproduce_the_artifact_hash(store: Store, prefs: int,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "art"
    _, a = train(store, "shop", "reward-model", "prefs@1", params=TFIDF, seed=7,
                 artifact_root=root)
    _, b = train(store, "shop", "reward-model", prefs, params=TFIDF, seed=7,
                 artifact_root=root, name="again")
    _, c = train(store, "shop", "reward-model", "prefs", params=TFIDF, seed=8,
                 artifact_root=root)
    assert a.artifact_hash == b.artifact_hash != c.artifact_hash
    assert a.artifact_uri == b.artifact_uri  # stored once
    doc = orjson.loads(Path(str(a.artifact_uri).removeprefix("file://")).read_bytes())
    assert doc["format"] == "feedbackloop/reward-model" and doc["features"]["kind"] == "tfidf"
    assert len(doc["weights"]) == len(doc["features"]["vocabulary"]) + 2


def test_reranker_serves_the_reward_models_choice(store: Store, prefs: int,
                                                  tmp_path: Path) -> None:
    root = tmp_path / "art"
    _, reward = train(store, "shop", "reward-model", "prefs", params=TFIDF,
                      artifact_root=root, name="rm-1")
    _, ranker = train(store, "shop", "reranker", "prefs",
                      params={**TFIDF, "reward_model": "rm-1"}, artifact_root=root)
    assert (ranker.component, ranker.status) == ("ranking", "candidate")
    assert ranker.metrics["reward_model"] == "rm-1"
    assert ranker.metrics["held_out"]["accuracy"] == reward.metrics["held_out"]["accuracy"]
    assert ranker.metrics["best_of_n_never_rejected"]["n"] > 0
    assert ranker.metrics["best_of_n_never_rejected"]["value"] >= 0.8
    rm = reg.load_model(store, "shop", "reward", "rm-1")
    picker = reg.load_model(store, "shop", "ranking", ranker.name)
    rng = np.random.default_rng(0)
    for row in preference_rows(20, 2, seed=99):
        cands = [row["chosen"], row["rejected"], f"{' '.join(rng.choice(GOOD, 3))} the"]
        assert picker.choose(row["prompt"], cands) == rm.choose(row["prompt"], cands)
    with pytest.raises(InvalidInput, match="'prompt' and its 'candidates'"):
        picker.predict({"prompt": "x", "response": "y"})
    # trained on its own when no reward model is named
    _, own = train(store, "shop", "reranker", "prefs", params=TFIDF, artifact_root=root)
    assert own.metrics["held_out"]["beats_baselines"] is True
    with pytest.raises(NotFound, match="no version 'rm-9'"):
        train(store, "shop", "reranker", "prefs", params={**TFIDF, "reward_model": "rm-9"},
              artifact_root=root)


def test_bad_input_is_refused_and_a_failed_run_registers_nothing(
        store: Store, prefs: int, tmp_path: Path) -> None:
    root = tmp_path / "art"
    with pytest.raises(InvalidInput, match="unknown trainer 'dpo'; valid names: classifier"):
        train(store, "shop", "dpo", "prefs", artifact_root=root)
    with pytest.raises(InvalidInput, match="has no parameter 'lr'; parameters: C,") as exc:
        train(store, "shop", "reward-model", "prefs", params={"lr": 1}, artifact_root=root)
    assert exc.value.field == "lr"
    with pytest.raises(NotFound, match="no dataset 'nope'"):
        train(store, "shop", "reward-model", "nope", artifact_root=root)
    with pytest.raises(NotFound, match="no dataset 'prefs' version 4"):
        train(store, "shop", "reward-model", "prefs@4", artifact_root=root)
    with pytest.raises(InvalidInput, match="seed"):
        train(store, "shop", "reward-model", "prefs", seed=-1, artifact_root=root)
    labels = insert_dataset(store, "shop", "spam", "labels",
                            [{"text": f"t{i}", "label": "a", "confidence": 1.0}
                             for i in range(5)], group_field="text")
    with pytest.raises(InvalidInput, match="trains on preference datasets; spam@1 is a "
                                           "labels dataset"):
        train(store, "shop", "reward-model", labels, artifact_root=root)
    # failures inside the trainer: the run is recorded as failed, nothing registered
    with pytest.raises(InvalidInput, match="features must be one of"):
        train(store, "shop", "reward-model", "prefs", params={"features": "bert"},
              artifact_root=root)
    with pytest.raises(InvalidInput, match="parameter 'C' must be positive"):
        train(store, "shop", "reward-model", "prefs", params={**TFIDF, "C": 0},
              artifact_root=root)
    bad = insert_dataset(store, "shop", "broken", "preference",
                         [{"prompt": "p", "chosen": "a", "rejected": 3},
                          {"prompt": "q", "chosen": "a", "rejected": "b"}],
                         splits=["train", "train"])
    with pytest.raises(InvalidInput, match=r"broken@1 train row 0: 'rejected' must be text"):
        train(store, "shop", "reward-model", bad, params=TFIDF, artifact_root=root)
    with store.read() as conn:
        runs = list_training_runs(conn, "shop")
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 0
    assert [r.status for r in runs] == ["failed"] * 3
    assert "features must be one of" in str(runs[0].error)
    assert "row 0: 'rejected' must be text" in str(runs[2].error)
    # a name already taken is refused before any work
    train(store, "shop", "reward-model", "prefs", params=TFIDF, name="rm",
          artifact_root=root)
    with pytest.raises(Conflict, match="version 'rm' of component 'reward' exists"):
        train(store, "shop", "reward-model", "prefs", params=TFIDF, name="rm",
              artifact_root=root)


# -- the plug-in registry -----------------------------------------------------------------

PLUGIN = '''
import json

class MeanLength:
    """Predicts the mean completion length of an sft dataset."""
    name = "mean-length"
    tasks = ("sft",)
    component = "generation"
    params = {"scale": 1.0}

    def fit(self, ctx):
        from feedbackloop.improve.trainers import TrainOutput
        rows = ctx.split("train")
        mean = sum(len(r["completion"]) for r in rows) / len(rows) * ctx.params["scale"]
        return TrainOutput(json.dumps({"mean": mean}).encode(), {"mean": mean})

    def load(self, data):
        mean = json.loads(data)["mean"]
        class Predictor:
            kind = "mean-length"
            def predict(self, item):
                return mean
        return Predictor()

class Misnamed(MeanLength):
    name = "other"

class NotATrainer:
    name = "not-a-trainer"
'''


def _distribution(root: Path, name: str, entries: dict[str, str]) -> None:
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[feedbackloop.trainers]\n{lines}")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    module = f"trainer_plugin_{tmp_path.name.replace('-', '_')}"
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / f"{module}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    clear_trainer_cache()
    yield folder, module
    clear_trainer_cache()
    sys.modules.pop(module, None)


def test_builtins_are_registered_as_entry_points() -> None:
    clear_trainer_cache()
    table = available_trainers()
    assert {"reward-model", "reranker", "classifier", "external"} <= set(table)
    assert {getattr(table[n].dist, "name", None) for n in
            ("reward-model", "reranker", "classifier", "external")} == {"feedbackloop"}
    assert get_trainer("classifier").tasks == ("labels",)


def test_a_plugin_trainer_trains_like_a_builtin(store: Store, site: tuple[Path, str],
                                                tmp_path: Path) -> None:
    root, module = site
    _distribution(root, "acme_trainers", {"mean-length": f"{module}:MeanLength"})
    project(store)
    ds = insert_dataset(store, "shop", "sft", "sft",
                        [{"prompt": f"p{i}", "completion": "x" * (i + 1)} for i in range(10)],
                        splits=["train"] * 10)
    run, version = train(store, "shop", "mean-length", ds, params={"scale": 2.0},
                         artifact_root=tmp_path / "art")
    assert version.component == "generation" and version.metrics == {"mean": 11.0}
    assert reg.load_model(store, "shop", "generation", version.name).predict({}) == 11.0
    assert run.params["scale"] == 2.0
    # a plug-in's own bug (no training rows: a division by zero) fails its run, named
    empty = insert_dataset(store, "shop", "sft", "sft", [{"prompt": "p", "completion": "c"}],
                           splits=["test"])
    with pytest.raises(FeedbackloopError, match=r"training run 2 \(mean-length\) failed: "
                                                "ZeroDivisionError"):
        train(store, "shop", "mean-length", empty, artifact_root=tmp_path / "art")
    with store.read() as conn:
        failed = get_training_run(conn, "shop", 2)
    assert failed.status == "failed" and str(failed.error).startswith("ZeroDivisionError")


def test_plugin_registry_errors(site: tuple[Path, str]) -> None:
    root, module = site
    _distribution(root, "acme_trainers", {"other-name": f"{module}:Misnamed",
                                          "not-a-trainer": f"{module}:NotATrainer",
                                          "broken": "no_such_module_xyz:Trainer"})
    with pytest.raises(InvalidInput) as unknown:
        get_trainer("sft")
    assert unknown.value.details["valid"] == sorted(available_trainers())
    assert "reward-model" in unknown.value.message
    with pytest.raises(ConfigurationError, match="registered as 'other-name' calls itself "
                                                 "'other'"):
        get_trainer("other-name")
    with pytest.raises(ConfigurationError, match=r"is not a Trainer \(missing fit, load"):
        get_trainer("not-a-trainer")
    with pytest.raises(ConfigurationError, match=r"'broken' cannot be loaded.*acme_trainers"):
        get_trainer("broken")
    _distribution(root, "rival_trainers", {"reward-model": f"{module}:MeanLength"})
    clear_trainer_cache()
    with pytest.raises(ConfigurationError) as twice:
        available_trainers()
    assert "'reward-model' is registered twice" in twice.value.message
    assert "feedbackloop 0.1.0" in twice.value.message
    assert "rival_trainers 1.0" in twice.value.message
