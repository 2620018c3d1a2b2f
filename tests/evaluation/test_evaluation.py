"""Two-channel evaluation on SQLite and PostgreSQL: a simulation with known truth for the
end-to-end report, the degenerate cases (too few pairs, one class, mismatched types), the
filters, aggregation of several labels, and the saved report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.evaluation import (
    EvaluationFilters,
    evaluate,
    get_evaluation,
    list_evaluations,
)
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .simulation import (
    APPROVAL,
    START,
    TRUE_AUROC,
    TRUE_KENDALL,
    TRUE_SPEARMAN,
    simulate,
)


def _inside(estimate: dict, truth: float) -> bool:
    lo, hi = estimate["ci95"]
    return lo <= truth <= hi


def test_simulation_recovers_the_known_truth(store: Store, settings: Settings) -> None:
    sim = simulate(store, settings)
    report = evaluate(store, "sim", "thumbs", ["score", "noise"], seed=1, created_by="ann")
    human = report.result["human"]
    assert human["n_items"] == int(sim.labelled.sum())
    # every fifth labelled item was judged twice
    assert human["n_labels"] == int(sim.labelled.sum()) + sum(
        1 for i in range(sim.n) if sim.labelled[i] and i % 5 == 0)

    score = report.metric("score")
    assert score["n_paired"] == int(sim.labelled.sum())
    assert score["n_unlabelled"] == sim.n - int(sim.labelled.sum())
    cls = score["classification"]
    assert abs(cls["auroc"]["value"] - TRUE_AUROC) < 0.04
    assert _inside(cls["auroc"], TRUE_AUROC)
    assert cls["positives"] == int((sim.approved & sim.labelled).sum())
    # Youden's threshold for two unit normals SHIFT apart lies near SHIFT / 2
    assert 0.0 < cls["threshold"] < 1.0
    assert 0.6 < cls["tpr"]["value"] < 0.85 and 0.55 < cls["tnr"]["value"] < 0.8
    assert cls["tpr"]["ci95"][0] < cls["tpr"]["value"] < cls["tpr"]["ci95"][1]

    rate = score["approval_rate"]
    truth = float(sim.approved.mean())
    assert abs(truth - APPROVAL) < 0.03
    assert _inside(rate["ppi"], truth) and _inside(rate["classical"], truth)
    # the metric alone, at its threshold, overstates approval (about 0.42 in theory)
    assert rate["naive"]["value"] > truth + 0.06 and not _inside(rate["naive"], truth)
    ppi_width = rate["ppi"]["ci95"][1] - rate["ppi"]["ci95"][0]
    assert ppi_width < 0.1

    cal = score["calibration"]
    assert cal["available"] and len(cal["bins"]) >= 5
    assert cal["ece_calibrated"] < cal["ece_face_value"]
    probs = [p for _, p in cal["isotonic"]]
    assert probs == sorted(probs) and probs[0] < 0.15 and probs[-1] > 0.6

    noise = report.metric("noise")
    assert _inside(noise["spearman"], 0.0) and _inside(noise["classification"]["auroc"], 0.5)

    # the worst discrepancies: approved items the metric scored lowest, and vice versa
    top = score["discrepancies"]
    assert len(top) == 25 and top[0]["score"] >= top[-1]["score"]
    first = int(top[0]["interaction"][1:])
    assert sim.labelled[first]
    assert (top[0]["human"] == 1.0) == bool(sim.approved[first])
    assert score["plot"]["kind"] == "box"
    assert [b["level"] for b in score["plot"]["boxes"]] == [0.0, 1.0]
    assert score["plot"]["boxes"][1]["median"] > score["plot"]["boxes"][0]["median"] + 0.5

    stack = report.result["stacking"]
    assert stack["available"] and stack["feature_names"] == ["score", "noise"]
    assert stack["weights"]["score"] > 0.5 and abs(stack["weights"]["noise"]) < 0.2
    assert _inside(stack["cv_auroc"], TRUE_AUROC)

    assert report.id is not None
    with store.read() as conn:
        saved = get_evaluation(conn, sim.project, report.id)
        listed = list_evaluations(conn, sim.project)
    assert saved.result == report.result and saved.created_by == "ann"
    assert listed[0]["id"] == report.id
    assert listed[0]["n_paired"] == {"score": score["n_paired"], "noise": score["n_paired"]}


def test_numeric_pair_has_the_closed_form_rank_correlations(
        store: Store, settings: Settings) -> None:
    simulate(store, settings, n=3000, seed=11)
    report = evaluate(store, "sim", "quality", ["judge"], save=False)
    assert report.id is None
    judge = report.metric("judge")
    assert _inside(judge["spearman"], TRUE_SPEARMAN)
    assert _inside(judge["kendall"], TRUE_KENDALL)
    assert abs(judge["spearman"]["value"] - TRUE_SPEARMAN) < 0.06
    assert judge["plot"]["kind"] == "scatter" and judge["plot"]["shown"] == judge["n_paired"]
    # a numeric signal without a scale has no default approval threshold
    assert judge["classification"] == {
        "available": False,
        "reason": "signal 'quality' has no scale, so approval needs a threshold "
                  "(human_threshold)"}
    with_threshold = evaluate(store, "sim", "quality", ["judge"], human_threshold=0.0,
                              save=False).metric("judge")
    assert with_threshold["classification"]["available"]
    assert with_threshold["approval_rate"]["ppi"]["value"] == pytest.approx(0.5, abs=0.05)


def _small(store: Store, settings: Settings) -> Ingestor:
    project = create_project(store, "tiny")
    for spec in (SignalIn(name="thumbs", type="binary"),
                 SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5),
                 SignalIn(name="score", type="numeric", scale_min=0, scale_max=1),
                 SignalIn(name="topic", type="categorical", labels=["billing", "bug", "other"]),
                 SignalIn(name="topic_guess", type="categorical",
                          labels=["other", "bug", "billing"]),
                 SignalIn(name="colour", type="categorical", labels=["red", "blue"]),
                 SignalIn(name="comment", type="text")):
        create_signal(store, project, spec)
    ing = Ingestor(store, settings, project)
    ing.interactions([{"id": f"t{i}", "input": "q", "output": "a",
                       "timestamp": (START + timedelta(days=i)).isoformat(),
                       "model_version": "v1" if i < 3 else "v2"} for i in range(6)])
    return ing


def test_too_few_pairs_gives_reasons_not_numbers(store: Store, settings: Settings) -> None:
    ing = _small(store, settings)
    assert ing.feedback([
        {"id": "h0", "interaction_id": "t0", "signal": "thumbs", "value": True},
        {"id": "h1", "interaction_id": "t1", "signal": "thumbs", "value": True},
        {"id": "m0", "interaction_id": "t0", "signal": "score", "value": 0.9},
        {"id": "m1", "interaction_id": "t1", "signal": "score", "value": 0.2},
        {"id": "m2", "interaction_id": "t2", "signal": "score", "value": 0.4},
    ]).rejected == 0
    m = evaluate(store, "tiny", "thumbs", ["score"]).metric("score")
    assert m["n_paired"] == 2
    assert m["spearman"]["value"] is None
    assert m["spearman"]["reason"] == "needs at least 3 pairs, got 2"
    assert m["classification"]["available"] is False
    assert m["classification"]["reason"] == "no negative labels: both classes are needed"
    assert m["calibration"]["reason"] == "needs at least 10 labelled pairs, got 2"
    assert m["approval_rate"]["available"] is False
    assert m["approval_rate"]["classical"]["value"] == 1.0

    # no pairs at all: still a report, every statistic unavailable
    empty = evaluate(store, "tiny", "rating", ["score"]).metric("score")
    assert empty["n_paired"] == 0 and empty["discrepancies"] == []
    assert empty["spearman"]["value"] is None and empty["plot"] == {"kind": "none"}


def test_mismatched_types_are_refused_with_the_field(store: Store, settings: Settings) -> None:
    _small(store, settings)
    cases = [
        ("rating", ["topic"], "metric", "is categorical and 'rating' is ordinal"),
        ("topic", ["score"], "metric", "is categorical and 'score' is numeric"),
        ("topic", ["colour"], "metric", "have different labels"),
        ("comment", ["score"], "human", "is text"),
        ("thumbs", ["comment"], "metric", "is text"),
        ("thumbs", [], "metric", "at least one metric"),
        ("thumbs", ["thumbs"], "metric", "both the human and a metric"),
        ("thumbs", ["score", "score"], "metric", "named twice"),
    ]
    for human, metrics, field, words in cases:
        with pytest.raises(InvalidInput) as caught:
            evaluate(store, "tiny", human, metrics)
        assert caught.value.field == field and words in caught.value.message, (human, metrics)
    with pytest.raises(NotFound) as missing:
        evaluate(store, "tiny", "thumbs", ["nope"])
    assert missing.value.details["field"] == "metric"
    with pytest.raises(NotFound):
        evaluate(store, "nowhere", "thumbs", ["score"])
    with pytest.raises(InvalidInput) as bad:
        evaluate(store, "tiny", "topic", ["topic_guess"], human_threshold=1.0)
    assert bad.value.field == "human_threshold"


def test_categorical_pair_gives_kappa_with_majority_labels(
        store: Store, settings: Settings) -> None:
    ing = _small(store, settings)
    human = ["billing", "bug", "other", "billing", "bug", "bug"]
    guess = ["billing", "bug", "other", "bug", "bug", "other"]
    fb = [{"id": f"h{i}", "interaction_id": f"t{i}", "signal": "topic", "value": v}
          for i, v in enumerate(human)]
    # t0: two more raters say "bug": the majority of three is "bug"
    fb += [{"id": "h0b", "interaction_id": "t0", "signal": "topic", "value": "bug"},
           {"id": "h0c", "interaction_id": "t0", "signal": "topic", "value": "bug"}]
    fb += [{"id": f"g{i}", "interaction_id": f"t{i}", "signal": "topic_guess", "value": v,
            "source": "automated"} for i, v in enumerate(guess)]
    assert ing.feedback(fb).rejected == 0
    m = evaluate(store, "tiny", "topic", ["topic_guess"]).metric("topic_guess")
    # majority: bug, bug, other, billing, bug, bug; guess agrees on items 1, 2, 4
    from sklearn.metrics import cohen_kappa_score

    majority = ["bug", "bug", "other", "billing", "bug", "bug"]
    assert m["kappa"]["value"] == pytest.approx(cohen_kappa_score(majority, guess))
    assert m["agreement_share"] == pytest.approx(3 / 6)
    assert m["confusion"]["labels"] == ["billing", "bug", "other"]
    assert m["confusion"]["counts"] == [[0, 1, 0], [1, 2, 1], [0, 0, 1]]
    assert sorted(d["interaction"] for d in m["discrepancies"]) == ["t0", "t3", "t5"]


def test_latest_metric_value_and_mean_of_labels_and_filters(
        store: Store, settings: Settings) -> None:
    ing = _small(store, settings)
    later = datetime(2025, 6, 1, tzinfo=UTC)
    fb = []
    for i in range(6):
        fb.append({"id": f"r{i}", "interaction_id": f"t{i}", "signal": "rating",
                   "value": i % 5 + 1})
        fb.append({"id": f"s{i}", "interaction_id": f"t{i}", "signal": "score",
                   "value": 0.5, "source": "automated",
                   "timestamp": (later - timedelta(days=1)).isoformat()})
        # a rescoring, written earlier in the table's order but later in time
        fb.append({"id": f"s{i}-new", "interaction_id": f"t{i}", "signal": "score",
                   "value": (i % 5 + 1) / 5, "source": "automated",
                   "timestamp": later.isoformat()})
    fb.append({"id": "r0b", "interaction_id": "t0", "signal": "rating", "value": 3})
    assert ing.feedback(fb).rejected == 0
    report = evaluate(store, "tiny", "rating", ["score"], save=False)
    m = report.metric("score")
    assert report.result["human"]["n_labels"] == 7
    assert report.result["human"]["approval_threshold"] == 4.0
    # ratings 2 (mean of 1 and 3), 2, 3, 4, 5, 1 against scores .2 .4 .6 .8 1 .2
    assert m["spearman"]["value"] == pytest.approx(
        __import__("scipy").stats.spearmanr([2, 2, 3, 4, 5, 1],
                                            [.2, .4, .6, .8, 1, .2]).statistic)
    assert m["plot"]["kind"] == "box"
    assert [b["level"] for b in m["plot"]["boxes"]] == [1.0, 2.0, 3.0, 4.0, 5.0]

    v2 = evaluate(store, "tiny", "rating", ["score"], save=False,
                  filters=EvaluationFilters(model_version="v2")).metric("score")
    assert v2["n_paired"] == 3
    dated = evaluate(store, "tiny", "rating", ["score"], save=False, filters=EvaluationFilters(
        since=START + timedelta(days=1), until=START + timedelta(days=4))).metric("score")
    assert dated["n_paired"] == 3 and dated["n_unlabelled"] == 0
    with pytest.raises(InvalidInput) as bad:
        EvaluationFilters(since=START, until=START)
    assert bad.value.field == "since"


def test_cohort_attribute_filter(store: Store, settings: Settings) -> None:
    simulate(store, settings, n=600, seed=3)
    report = evaluate(store, "sim", "thumbs", ["score"], save=False,
                      filters=EvaluationFilters(attributes={"locale": "de"}))
    assert report.metric("score")["n_items"] == 200
    assert report.filters["attributes"] == {"locale": "de"}
