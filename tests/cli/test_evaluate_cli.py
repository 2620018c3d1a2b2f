"""``feedbackloop evaluate`` and ``feedbackloop discrepancies tag`` against SQLite and
PostgreSQL, on the simulated project with known truth."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import roc_auc_score

from feedbackloop.evaluation import knowledge_base
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from ..evaluation.simulation import TRUE_AUROC, simulate
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def test_evaluate_prints_and_saves_the_report(cli: Cli, store: Store,
                                              settings: Settings) -> None:
    sim = simulate(store, settings, n=1200, seed=5)
    report = cli.json("evaluate", "--project", "sim", "--human", "thumbs", "--metric",
                      "score", "--metric", "noise", "--seed", "3")
    assert report["id"] == 1 and report["metric_signals"] == ["score", "noise"]
    score = report["result"]["metrics"][0]
    assert score["n_paired"] == int(sim.labelled.sum())
    lab = sim.labelled
    assert score["classification"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(sim.approved[lab], sim.score[lab]))
    # about 300 labelled items: within a few standard errors of the population value
    assert abs(score["classification"]["auroc"]["value"] - TRUE_AUROC) < 0.1
    assert report["result"]["stacking"]["available"]

    text = cli("evaluate", "-p", "sim", "--human", "thumbs", "--metric", "score").stdout
    assert "Evaluation 2 of sim" in text and "score" in text
    auroc = score["classification"]["auroc"]["value"]
    assert f"{auroc:.3f}" in text

    filtered = cli.json("evaluate", "-p", "sim", "--human", "thumbs", "--metric", "score",
                        "--model-version", "v1", "--attribute", "locale=de",
                        "--since", "2025-03-03", "--until", "2025-03-04T00:00:00+00:00")
    assert filtered["filters"] == {"model_version": "v1", "attributes": {"locale": "de"},
                                   "since": "2025-03-03T00:00:00+00:00",
                                   "until": "2025-03-04T00:00:00+00:00"}
    # odd minutes (v1), a multiple of three (de), within the first 1,440 minutes
    assert filtered["result"]["metrics"][0]["n_items"] == len(
        [i for i in range(1200) if i % 2 and i % 3 == 0])


def test_evaluate_refuses_bad_input_with_exit_code_2(cli: Cli, store: Store,
                                                     settings: Settings) -> None:
    simulate(store, settings, n=200, seed=5)
    bad = cli("evaluate", "-p", "sim", "--human", "thumbs", "--metric", "missing", code=2)
    assert "no signal 'missing'" in bad.stderr
    bad = cli("evaluate", "-p", "sim", "--human", "thumbs", "--metric", "score",
              "--attribute", "nokey", code=2)
    assert "KEY=VALUE" in bad.stderr
    bad = cli("evaluate", "-p", "sim", "--human", "thumbs", "--metric", "score",
              "--since", "yesterday", code=2)
    assert "--since 'yesterday' is not an ISO 8601 date or time" in bad.stderr


def test_tag_a_discrepancy(cli: Cli, store: Store, settings: Settings) -> None:
    simulate(store, settings, n=200, seed=5)
    tagged = cli.json("discrepancies", "tag", "-p", "sim", "--interaction", "s00001",
                      "--interaction", "s00002", "--human", "thumbs", "--metric", "score",
                      "--cause", "metric_error", "--note", "misses sarcasm")
    assert len(tagged["tags"]) == 2
    assert "Tagged 1 interaction as rater_error" in cli(
        "discrepancies", "tag", "-p", "sim", "--interaction", "s00003", "--human", "thumbs",
        "--metric", "score", "--cause", "rater_error").stdout
    bad = cli("discrepancies", "tag", "-p", "sim", "--interaction", "s00003", "--human",
              "thumbs", "--metric", "score", "--cause", "luck", code=2)
    assert "cause must be one of metric_error" in bad.stderr
    kb = knowledge_base(store, "sim")
    assert kb["total"] == 3
    assert {c["cause"]: c["count"] for c in kb["causes"]}["metric_error"] == 2
