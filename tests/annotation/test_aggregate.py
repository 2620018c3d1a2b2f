"""Aggregated labels from stored ratings (SQLite and PostgreSQL), checked against simulations
with known truth: Dawid and Skene (1979) beat majority vote when spammers rate, the
rater-bias-corrected mean removes known biases, Bradley and Terry (1952) recover known
model-version strengths."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feedbackloop.annotation.aggregate import aggregate, get_aggregation, latest_aggregation
from feedbackloop.capture.projects import create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .test_reliability import CATEGORICAL, add_campaign, seed_project, simulate_labels


def _accuracy(result: dict, truth: np.ndarray) -> float:
    got = {x["interaction"]: x["value"] for x in result["labels"]}
    return float(np.mean([got[f"i{i:04d}"] == f"c{int(t)}" for i, t in enumerate(truth)]))


def test_dawid_skene_beats_majority_with_spammers(store: Store, settings: Settings) -> None:
    # Two careful raters (0.85) and three spammers who answer at random: majority vote
    # follows the spammers whenever they happen to agree; Dawid-Skene learns their
    # confusion matrices (rows near uniform) and weights them down.
    raters = {"good1": 0.85, "good2": 0.85, "spam1": 1 / 3, "spam2": 1 / 3, "spam3": 1 / 3}
    ratings, truth = simulate_labels(600, raters, seed=2)
    project = seed_project(store, settings, CATEGORICAL, ratings)
    mv = aggregate(store, project, "topic", "majority", created_by="t")
    ds = aggregate(store, project, "topic", "dawid-skene")
    acc_mv, acc_ds = _accuracy(mv, truth), _accuracy(ds, truth)
    assert acc_ds > acc_mv + 0.1, (acc_ds, acc_mv)
    assert acc_ds > 0.85
    assert mv["n_items"] == ds["n_items"] == 600
    assert mv["id"] == 1 and ds["id"] == 2 and mv["created_by"] == "t"
    # majority confidence is the vote share; Dawid-Skene's the posterior
    first = mv["labels"][0]
    assert first["n_ratings"] == 5 and first["confidence"] in (0.4, 0.6, 0.8, 1.0)
    assert all(0.3 < x["confidence"] <= 1.0 for x in ds["labels"])
    acc = ds["summary"]["rater_accuracy"]
    assert acc["good1"] > 0.75 and acc["spam1"] < 0.5
    confusion = np.array(ds["summary"]["confusion"]["good1"])
    assert confusion.shape == (3, 3)
    assert np.allclose(confusion.sum(axis=1), 1.0)
    assert ds["summary"]["classes"] == ["c0", "c1", "c2"] and ds["summary"]["converged"]

    with store.read() as conn:
        saved = get_aggregation(conn, project, ds["id"])
        newest = latest_aggregation(conn, project, "topic")
        only_mv = latest_aggregation(conn, project, "topic", method="majority")
    assert saved["labels"] == ds["labels"]
    assert saved["summary"] == ds["summary"]
    assert newest is not None and newest["id"] == ds["id"]
    assert only_mv is not None and only_mv["id"] == mv["id"]
    with store.read() as conn, pytest.raises(NotFound, match="no aggregation 99"):
        get_aggregation(conn, project, 99)


def test_majority_ties_and_typed_values(store: Store, settings: Settings) -> None:
    project = seed_project(store, settings, SignalIn(name="ok", type="binary"),
                           [(0, "a", True), (0, "b", False), (1, "a", True), (1, "b", True),
                            (1, "c", False)])
    result = aggregate(store, project, "ok", "majority", save=False)
    assert result["id"] is None
    labels = {x["interaction"]: x for x in result["labels"]}
    # a tie goes to the first value in the signal's order (false before true)
    assert labels["i0000"]["value"] is False and labels["i0000"]["confidence"] == 0.5
    assert labels["i0001"]["value"] is True
    assert labels["i0001"]["confidence"] == pytest.approx(2 / 3)
    assert result["summary"]["ties"] == 1
    with store.read() as conn:
        assert latest_aggregation(conn, project, "ok") is None


def test_mean_removes_known_rater_biases(store: Store, settings: Settings) -> None:
    rng = np.random.default_rng(5)
    n = 150
    truth = rng.uniform(2, 8, n)
    bias = {"lenient": 1.0, "neutral": 0.0, "severe": -1.0}
    ratings = []
    for i in range(n):
        # each item gets two of the three raters, so plain means carry the bias
        for rater in rng.choice(list(bias), 2, replace=False):
            value = float(np.clip(truth[i] + bias[rater] + rng.normal(0, 0.3), 0, 10))
            ratings.append((i, str(rater), round(value, 4)))
    project = seed_project(store, settings,
                           SignalIn(name="score", type="numeric", scale_min=0, scale_max=10),
                           ratings)
    result = aggregate(store, project, "score", "mean")
    biases = result["summary"]["biases"]
    assert biases["lenient"] == pytest.approx(1.0, abs=0.1)
    assert biases["severe"] == pytest.approx(-1.0, abs=0.1)
    means = np.array([x["value"] for x in sorted(result["labels"],
                                                 key=lambda x: x["interaction"])])
    plain = np.array([np.mean([v for j, _, v in ratings if j == i]) for i in range(n)])
    assert np.sqrt(np.mean((means - truth) ** 2)) < 0.5 * np.sqrt(np.mean((plain - truth) ** 2))
    # noise sd 0.3, two ratings per item: se about 0.3 / sqrt(2)
    assert result["summary"]["residual_sd"] == pytest.approx(0.3, abs=0.08)
    assert all(x["se"] == pytest.approx(result["summary"]["residual_sd"] / math.sqrt(2))
               for x in result["labels"])
    assert all(x["confidence"] is None for x in result["labels"])
    with store.read() as conn:
        saved = get_aggregation(conn, project, result["id"])
    assert saved["labels"][0]["se"] == pytest.approx(result["labels"][0]["se"])


def test_bradley_terry_recovers_model_version_strengths(store: Store,
                                                        settings: Settings) -> None:
    rng = np.random.default_rng(8)
    strength = {"v1": 0.0, "v2": 0.7, "v3": 1.4}
    versions, pairs, ratings = [], [], []
    names = list(strength)
    for k in range(900):
        a, b = rng.choice(names, 2, replace=False)
        versions += [str(a), str(b)]
        pairs.append((2 * k, 2 * k + 1))
        p_a = 1 / (1 + math.exp(-(strength[str(a)] - strength[str(b)])))
        u = rng.random()
        value = "tie" if u > 0.95 else ("a" if rng.random() < p_a else "b")
        ratings.append((k, "r1", value))
    # a few pairs from the same version are left out
    versions += ["v1", "v1"]
    pairs.append((1800, 1801))
    ratings.append((900, "r1", "a"))
    project = seed_project(store, settings, SignalIn(name="pref", type="pairwise"), ratings,
                           versions=versions, pairs=pairs)
    result = aggregate(store, project, "pref", "bradley-terry")
    ranking = result["summary"]["ranking"]
    assert [r["model_version"] for r in ranking] == ["v3", "v2", "v1"]
    scores = {r["model_version"]: r["score"] for r in ranking}
    # known strengths centred: -0.7, 0, 0.7; 900 comparisons give se about 0.07
    for version, truth in (("v1", -0.7), ("v2", 0.0), ("v3", 0.7)):
        assert scores[version] == pytest.approx(truth, abs=0.2)
        lo, hi = next(r["ci95"] for r in ranking if r["model_version"] == version)
        assert lo < scores[version] < hi and hi - lo < 0.5
    assert result["summary"]["dropped"] == {"same model version on both sides": 1}
    assert result["summary"]["n_comparisons"] == 900 and result["summary"]["ties"] == "half"
    assert sum(r["ties"] for r in ranking) % 2 == 0
    assert result["n_items"] == 901 and result["labels"][0]["interaction_b"] == "i0001"
    dropped = aggregate(store, project, "pref", "bradley-terry", ties="drop", save=False)
    ties = sum(1 for _, _, v in ratings[:900] if v == "tie")
    assert dropped["summary"]["n_comparisons"] == 900 - ties


def test_methods_that_do_not_fit_the_signal(store: Store, settings: Settings) -> None:
    project = seed_project(store, settings, CATEGORICAL, [(0, "a", "c1"), (0, "b", "c1")])
    create_signal(store, project, SignalIn(name="score", type="numeric"))
    create_signal(store, project, SignalIn(name="pref", type="pairwise"))
    with pytest.raises(InvalidInput, match="method 'mean' aggregates binary, ordinal, numeric "
                                           "signals; signal 'topic' is categorical"):
        aggregate(store, project, "topic", "mean")
    with pytest.raises(InvalidInput, match="for a numeric signal use mean"):
        aggregate(store, project, "score", "majority")
    with pytest.raises(InvalidInput, match="method must be one of majority"):
        aggregate(store, project, "topic", "median")
    with pytest.raises(InvalidInput, match="no ratings from annotators or experts"):
        aggregate(store, project, "pref", "bradley-terry")
    with pytest.raises(NotFound, match="no campaign 'x'"):
        aggregate(store, project, "topic", "majority", campaign="x")


def test_aggregate_one_campaign(store: Store, settings: Settings) -> None:
    ratings, _truth = simulate_labels(40, {"a": 0.9, "b": 0.9, "c": 0.9}, seed=1)
    project = seed_project(store, settings, CATEGORICAL, ratings)
    ids = [f"f{k:06d}" for k in range(len(ratings)) if ratings[k][0] < 10]
    add_campaign(store, project, "topic", name="first", feedback_ids=ids)
    result = aggregate(store, project, "topic", "majority", campaign="first")
    assert result["campaign"] == "first" and result["n_items"] == 10
    whole = aggregate(store, project, "topic", "majority")
    assert whole["n_items"] == 40
    with store.read() as conn:
        latest = latest_aggregation(conn, project, "topic", campaign="first")
    assert latest is not None and latest["id"] == result["id"]
    assert latest["campaign"] == "first"


def test_through_the_campaign_service(store: Store, settings: Settings) -> None:
    # Three raters work a campaign with overlap 3 and hidden gold through the assignment
    # service; "cat" answers "other" on everything: drift and gold accuracy expose her,
    # and majority vote still finds the truth (ann and bob agree).
    from datetime import timedelta

    from feedbackloop.annotation.assignment import next_item, submit
    from feedbackloop.annotation.campaigns import CampaignSpec, create_campaign
    from feedbackloop.annotation.reliability import project_agreement

    from .campaign_data import START, make_project

    project = make_project(store, settings, n=40, raters=("ann", "bob", "cat"))
    truth = {f"i{k:03d}": ("billing", "shipping", "other")[k % 3] for k in range(40)}
    gold = [{"interaction": f"i{k:03d}", "values": {"topic": truth[f"i{k:03d}"]}}
            for k in range(30, 40)]
    spec = CampaignSpec(name="round-1", signals=["topic"], raters=["ann", "bob", "cat"],
                        budget=30, overlap=3, gold_rate=0.25, options={"gold": gold},
                        drift_threshold=0.6)
    campaign = create_campaign(store, project, spec)
    now = START + timedelta(days=1)
    done = 0
    while True:
        progressed = False
        for rater in ("ann", "bob", "cat"):
            item = next_item(store, project, campaign, rater, now=now)
            if item is None:
                continue
            answer = "other" if rater == "cat" else truth[item.interaction["id"]]
            submit(store, project, campaign, rater, item.assignment_id, {"topic": answer},
                   now=now, settings=settings)
            now += timedelta(minutes=1)
            done += 1
            progressed = True
        if not progressed:
            break
    assert done >= 90
    result = project_agreement(store, project, "topic", campaign=campaign, n_boot=0,
                               window=20, min_items=10)
    by = {r["rater"]: r for r in result["raters"]}
    assert by["cat"]["drift"] and not by["ann"]["drift"] and not by["bob"]["drift"]
    # ann's others are bob (right) and cat ("other"): 1 on "other" items, a tie (1/2)
    # elsewhere, about 1/3 + 2/3 * 1/2 = 2/3; cat matches ann and bob on a third.
    assert by["ann"]["consensus_agreement"] == pytest.approx(2 / 3, abs=0.1)
    assert by["cat"]["consensus_agreement"] == pytest.approx(1 / 3, abs=0.15)
    assert by["ann"]["gold_n"] > 0 and by["ann"]["gold_accuracy"] == 1.0
    assert by["cat"]["gold_accuracy"] < 0.5
    labels = aggregate(store, project, "topic", "majority", campaign=campaign)
    assert labels["campaign"] == "round-1" and labels["n_items"] >= 30
    assert all(x["value"] == truth[x["interaction"]] for x in labels["labels"]
               if x["n_ratings"] == 3)
