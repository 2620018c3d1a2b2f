"""Label aggregation: majority vote, Dawid-Skene, Bradley-Terry, rater-bias-corrected means.

The Dawid and Skene (1979) anaesthesia data (45 patients, 5 clinicians) is not used as a
golden test: we could not check a transcription of the table against the paper, so every
Dawid-Skene test is a simulation with known truth and a fixed seed instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from feedbackloop.stats import (
    BradleyTerry,
    DawidSkene,
    MajorityVote,
    RaterBiasCorrectedMean,
)

# --- simulations ------------------------------------------------------------------------


def simulate_labels(
    rng: np.random.Generator, n_tasks: int, confusions: list[np.ndarray], per_task: int,
    priors: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each task labelled by ``per_task`` distinct workers drawn at random; worker j gives
    label l to a task of true class k with probability ``confusions[j][k, l]``."""
    n_workers, n_classes = len(confusions), priors.size
    truth = rng.choice(n_classes, size=n_tasks, p=priors)
    task, worker, label = [], [], []
    for i in range(n_tasks):
        for j in rng.choice(n_workers, size=per_task, replace=False):
            task.append(i)
            worker.append(int(j))
            label.append(int(rng.choice(n_classes, p=confusions[j][truth[i]])))
    return np.array(task), np.array(worker), np.array(label), truth


def accurate(k: int, accuracy: float) -> np.ndarray:
    off = (1 - accuracy) / (k - 1)
    return np.full((k, k), off) + np.eye(k) * (accuracy - off)


def spammer(k: int) -> np.ndarray:
    return np.full((k, k), 1 / k)


def adversary(k: int, accuracy: float) -> np.ndarray:
    """Mostly answers the *next* class: informative, but wrong on purpose."""
    return np.roll(accurate(k, accuracy), 1, axis=1)


def accuracy_of(labels: dict[int, int], truth: np.ndarray) -> float:
    return float(np.mean([labels[i] == truth[i] for i in range(truth.size)]))


# --- majority vote ----------------------------------------------------------------------


def test_majority_vote_hand_example() -> None:
    mv = MajorityVote().fit(
        task=["q1", "q1", "q1", "q2", "q2", "q3"],
        worker=["ann", "bob", "cy", "ann", "bob", "cy"],
        label=["good", "bad", "good", "bad", "bad", "good"],
    )
    assert mv.labels_ == {"q1": "good", "q2": "bad", "q3": "good"}
    assert mv.probas_["q1"] == pytest.approx({"bad": 1 / 3, "good": 2 / 3})
    assert mv.confidence_ == pytest.approx({"q1": 2 / 3, "q2": 1.0, "q3": 1.0})
    assert mv.classes_ == ["bad", "good"]


def test_majority_vote_ties_go_to_the_first_label_in_sorted_order() -> None:
    mv = MajorityVote().fit([1, 1, 2, 2], ["a", "b", "a", "b"], [3, 1, 1, 3])
    assert mv.labels_ == {1: 1, 2: 1}
    assert mv.confidence_ == {1: 0.5, 2: 0.5}


def test_fit_returns_self() -> None:
    mv = MajorityVote()
    assert mv.fit([1], ["a"], ["x"]) is mv
    ds = DawidSkene()
    assert ds.fit([1, 2], ["a", "a"], ["x", "y"]) is ds


@pytest.mark.parametrize("make", [MajorityVote, DawidSkene])
def test_mismatched_lengths_name_the_column(make: type) -> None:
    with pytest.raises(ValueError, match="label has 2 entries but task has 3"):
        make().fit([1, 2, 3], ["a", "b", "c"], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        make().fit([], [], [])
    with pytest.raises(ValueError, match="label has a missing value"):
        make().fit([1, 2], ["a", "b"], ["x", None])
    with pytest.raises(ValueError, match="single string"):
        make().fit("ab", ["a", "b"], ["x", "y"])


# --- Dawid-Skene ------------------------------------------------------------------------


def test_dawid_skene_beats_majority_vote_with_spammers_and_adversaries() -> None:
    rng = np.random.default_rng(20261123)
    k = 3
    confusions = ([accurate(k, 0.75)] * 3 + [spammer(k)] * 3 + [adversary(k, 0.8)] * 2)
    task, worker, label, truth = simulate_labels(
        rng, 600, confusions, per_task=5, priors=np.array([0.5, 0.3, 0.2]))
    mv = MajorityVote().fit(task, worker, label)
    ds = DawidSkene().fit(task, worker, label)
    assert ds.converged_
    mv_acc, ds_acc = accuracy_of(mv.labels_, truth), accuracy_of(ds.labels_, truth)
    assert ds_acc > mv_acc + 0.1, (mv_acc, ds_acc)
    assert ds_acc > 0.8  # 0.85-0.89 over seeds 0-9


def test_dawid_skene_recovers_confusion_matrices_and_priors() -> None:
    rng = np.random.default_rng(7)
    k = 2
    confusions = [np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([[0.7, 0.3], [0.1, 0.9]]),
                  np.array([[0.8, 0.2], [0.3, 0.7]]), spammer(k), accurate(k, 0.85)]
    priors = np.array([0.6, 0.4])
    task, worker, label, _ = simulate_labels(rng, 2000, confusions, per_task=4, priors=priors)
    ds = DawidSkene().fit(task, worker, label)
    for j, true in enumerate(confusions):
        # Each row rests on ~1,600 x 0.4-0.6 labels: standard error <= 0.02, so 4 SE.
        np.testing.assert_allclose(ds.errors_[j], true, atol=0.08)
        np.testing.assert_allclose(ds.errors_[j].sum(axis=1), 1.0)
    assert ds.priors_[0] == pytest.approx(0.6, abs=0.04)
    assert ds.priors_[1] == pytest.approx(0.4, abs=0.04)


def test_dawid_skene_on_unanimous_labels_is_confident_and_finite() -> None:
    ds = DawidSkene().fit([1, 1, 2, 2], ["a", "b", "a", "b"], ["x", "x", "y", "y"])
    assert ds.labels_ == {1: "x", 2: "y"}
    assert ds.probas_[1]["x"] > 0.9
    assert all(np.isfinite(m).all() for m in ds.errors_.values())
    assert math.isfinite(ds.log_likelihood_)


def test_dawid_skene_checks_its_options() -> None:
    with pytest.raises(ValueError, match="smoothing"):
        DawidSkene(smoothing=0)
    with pytest.raises(ValueError, match="n_iter"):
        DawidSkene(n_iter=0)


annotations = st.lists(
    st.tuples(st.integers(0, 6), st.sampled_from("abcd"), st.sampled_from(["x", "y", "z"])),
    min_size=1, max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(annotations)
def test_probabilities_sum_to_one(rows: list[tuple[int, str, str]]) -> None:
    task, worker, label = zip(*rows, strict=True)
    for model in (MajorityVote().fit(task, worker, label),
                  DawidSkene(n_iter=20).fit(task, worker, label)):
        assert set(model.probas_) == set(task)
        for shares in model.probas_.values():
            assert sum(shares.values()) == pytest.approx(1.0)
            assert all(0.0 <= p <= 1.0 for p in shares.values())
    ds = DawidSkene(n_iter=20).fit(task, worker, label)
    assert sum(ds.priors_.values()) == pytest.approx(1.0)
    for matrix in ds.errors_.values():
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0)


@settings(max_examples=40, deadline=None)
@given(annotations, st.randoms(use_true_random=False))
def test_majority_vote_ignores_the_order_of_annotations(
    rows: list[tuple[int, str, str]], random: object
) -> None:
    shuffled = list(rows)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    a = MajorityVote().fit(*zip(*rows, strict=True))
    b = MajorityVote().fit(*zip(*shuffled, strict=True))
    assert a.labels_ == b.labels_


# --- Bradley-Terry ----------------------------------------------------------------------


def simulate_comparisons(
    rng: np.random.Generator, theta: np.ndarray, per_pair: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair compared ``per_pair`` times; i wins with probability sigmoid(θ_i - θ_j)."""
    m = theta.size
    a, b = np.triu_indices(m, k=1)
    a, b = np.repeat(a, per_pair), np.repeat(b, per_pair)
    a_wins = rng.random(a.size) < 1 / (1 + np.exp(-(theta[a] - theta[b])))
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def test_bradley_terry_recovers_known_strengths() -> None:
    rng = np.random.default_rng(11)
    theta = rng.normal(0, 1, 20)
    winner, loser = simulate_comparisons(rng, theta, per_pair=30)
    bt = BradleyTerry().fit(winner, loser)
    est = np.array([bt.scores_[i] for i in range(20)])
    assert scipy_stats.spearmanr(est, theta).statistic > 0.95
    np.testing.assert_allclose(est, theta - theta.mean(), atol=0.3)
    assert abs(est.mean()) < 1e-9
    assert bt.ranking_[0] == int(np.argmax(est))
    assert bt.converged_


def test_bradley_terry_intervals_cover_at_the_nominal_rate() -> None:
    # 200 simulated data sets x 8 items: 1,600 intervals, nominal 95 %; the binomial
    # standard error of the coverage is 0.005, so [0.93, 0.97] is about +/- 4 SE.
    rng = np.random.default_rng(2004)
    covered = total = 0
    for _ in range(200):
        theta = rng.normal(0, 0.8, 8)
        theta -= theta.mean()
        winner, loser = simulate_comparisons(rng, theta, per_pair=15)
        bt = BradleyTerry().fit(winner, loser)
        for i in range(8):
            lo, hi = bt.ci_[i]
            covered += lo <= theta[i] <= hi
            total += 1
    assert 0.93 <= covered / total <= 0.97, covered / total


def test_bradley_terry_ignores_the_order_of_comparisons() -> None:
    rng = np.random.default_rng(3)
    winner, loser = simulate_comparisons(rng, rng.normal(0, 1, 6), per_pair=5)
    ties = rng.random(winner.size) < 0.1
    order = rng.permutation(winner.size)
    a = BradleyTerry().fit(winner, loser, ties=ties)
    b = BradleyTerry().fit(winner[order], loser[order], ties=ties[order])
    for item in a.scores_:
        assert a.scores_[item] == pytest.approx(b.scores_[item], abs=1e-8)
        assert a.se_[item] == pytest.approx(b.se_[item], rel=1e-6)
    assert a.ranking_ == b.ranking_


def test_bradley_terry_ties_count_as_half_wins() -> None:
    # One tie between a and b, no other evidence: equal scores.
    bt = BradleyTerry().fit(["a"], ["b"], ties=[True])
    assert bt.scores_["a"] == pytest.approx(bt.scores_["b"])
    # a beats b twice, b beats a once, plus two ties: a wins 3 of 5, so with a negligible
    # ridge θ_a - θ_b = log(3/2) (the two-item MLE is the log-odds of the win share).
    bt = BradleyTerry(prior=1e-9).fit(["a", "a", "b", "a", "b"], ["b", "b", "a", "b", "a"],
                                      ties=[False, False, False, True, True])
    assert bt.scores_["a"] - bt.scores_["b"] == pytest.approx(math.log(1.5), abs=1e-5)


def test_bradley_terry_stays_finite_on_undefeated_items_and_disconnected_graphs() -> None:
    # a always beats b; c and d never meet a or b.
    bt = BradleyTerry().fit(["a", "a", "c"], ["b", "b", "d"])
    values = list(bt.scores_.values()) + [x for ci in bt.ci_.values() for x in ci]
    assert all(math.isfinite(v) for v in values)
    assert bt.scores_["a"] > bt.scores_["b"]
    assert bt.scores_["c"] > bt.scores_["d"]
    assert sum(bt.scores_.values()) == pytest.approx(0.0, abs=1e-9)


def test_bradley_terry_input_errors() -> None:
    with pytest.raises(ValueError, match="loser has 1 entries but winner has 2"):
        BradleyTerry().fit(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="same item"):
        BradleyTerry().fit(["a", "b"], ["b", "b"])
    with pytest.raises(ValueError, match="ties has 1 entries"):
        BradleyTerry().fit(["a", "b"], ["b", "a"], ties=[True])
    with pytest.raises(ValueError, match="prior"):
        BradleyTerry(prior=0)


# --- rater-bias-corrected mean ----------------------------------------------------------


def test_bias_corrected_mean_beats_the_plain_mean_with_biased_workers() -> None:
    rng = np.random.default_rng(5)
    n_tasks, n_workers = 300, 12
    quality = rng.normal(3.0, 1.0, n_tasks)
    bias = rng.normal(0, 1.0, n_workers)
    bias -= bias.mean()
    task, worker = [], []
    for i in range(n_tasks):
        for j in rng.choice(n_workers, size=3, replace=False):
            task.append(i)
            worker.append(int(j))
    t, w = np.array(task), np.array(worker)
    value = quality[t] + bias[w] + rng.normal(0, 0.3, t.size)
    fitted = RaterBiasCorrectedMean().fit(t, w, value)
    assert fitted.converged_
    corrected = np.array([fitted.means_[i] for i in range(n_tasks)])
    plain = np.bincount(t, weights=value) / np.bincount(t)
    rmse_corrected = np.sqrt(np.mean((corrected - quality) ** 2))
    rmse_plain = np.sqrt(np.mean((plain - quality) ** 2))
    assert rmse_corrected < 0.5 * rmse_plain, (rmse_corrected, rmse_plain)
    est_bias = np.array([fitted.biases_[j] for j in range(n_workers)])
    assert sum(est_bias) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(est_bias, bias, atol=0.15)


def test_bias_corrected_mean_hand_example() -> None:
    # Two workers rate the same two tasks; "hard" is one point above "easy" on everything.
    fitted = RaterBiasCorrectedMean().fit(["t1", "t1", "t2", "t2"], ["easy", "hard"] * 2,
                                          [3.0, 4.0, 1.0, 2.0])
    assert fitted.biases_ == pytest.approx({"easy": -0.5, "hard": 0.5})
    assert fitted.means_ == pytest.approx({"t1": 3.5, "t2": 1.5})


def test_bias_corrected_mean_input_errors() -> None:
    with pytest.raises(ValueError, match="value has a non-finite value at position 1"):
        RaterBiasCorrectedMean().fit([1, 2], ["a", "b"], [1.0, float("nan")])
    with pytest.raises(ValueError, match="value must hold numbers"):
        RaterBiasCorrectedMean().fit([1, 2], ["a", "b"], [1.0, "high"])
    with pytest.raises(ValueError, match="worker has 1 entries"):
        RaterBiasCorrectedMean().fit([1, 2], ["a"], [1.0, 2.0])


# --- surface ----------------------------------------------------------------------------


def test_aggregation_api_is_pinned() -> None:
    import feedbackloop.stats as stats
    import feedbackloop.stats.aggregation as aggregation

    names = {"BradleyTerry", "DawidSkene", "MajorityVote", "RaterBiasCorrectedMean"}
    assert set(aggregation.__all__) == names
    assert names <= set(stats.__all__)


def test_labels_that_cannot_be_sorted_keep_their_first_appearance_order() -> None:
    mv = MajorityVote().fit([1, 1, 2], ["a", "b", "a"], ["yes", 0, 0])
    assert mv.classes_ == ["yes", 0]
    assert mv.labels_ == {1: "yes", 2: 0}


def test_dawid_skene_ignores_the_order_of_annotations() -> None:
    rng = np.random.default_rng(9)
    confusions = [accurate(3, 0.7)] * 4 + [spammer(3)]
    task, worker, label, _ = simulate_labels(rng, 200, confusions, 3, np.full(3, 1 / 3))
    order = rng.permutation(task.size)
    a = DawidSkene().fit(task, worker, label)
    b = DawidSkene().fit(task[order], worker[order], label[order])
    assert a.labels_ == b.labels_
    for i in a.probas_:
        assert a.probas_[i] == pytest.approx(b.probas_[i], abs=1e-9)


def test_aggregation_imports_nothing_but_numpy_scipy_and_the_standard_library() -> None:
    import ast
    import sys
    from pathlib import Path

    import feedbackloop.stats.aggregation as aggregation

    allowed = set(sys.stdlib_module_names) | {"numpy", "scipy"}
    for path in Path(aggregation.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= allowed, (path.name, roots)
