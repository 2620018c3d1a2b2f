"""Per-rater reliability (stats.agreement.raters): leave-one-out consensus scores checked
against a direct count, and drift checked on simulations with known truth — a rater who
turns random halfway is flagged, steady good raters are not."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from feedbackloop.stats.agreement import consensus_scores, gold_scores, rater_reliability


def _naive_nominal(units: list[int], values: list[float]) -> list[float]:
    out = []
    for i, (u, v) in enumerate(zip(units, values, strict=True)):
        others = [values[j] for j in range(len(units)) if j != i and units[j] == u]
        if not others:
            out.append(np.nan)
            continue
        counts = Counter(others)
        top = max(counts.values())
        modes = [k for k, c in counts.items() if c == top]
        out.append(1 / len(modes) if v in modes else 0.0)
    return out


@pytest.mark.parametrize("seed", range(20))
def test_nominal_consensus_scores_match_a_direct_count(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 80))
    units = rng.integers(0, 10, n).tolist()
    values = rng.integers(0, int(rng.integers(1, 5)), n).astype(float).tolist()
    got = consensus_scores(units, values)
    np.testing.assert_allclose(got, _naive_nominal(units, values), equal_nan=True)


def test_nominal_ties_count_fractionally() -> None:
    # unit u: the others of "a" said 1 and 2 (a tie): "a" with 1 scores 1/2
    got = consensus_scores(["u", "u", "u", "v"], [1, 1, 2, 1])
    np.testing.assert_allclose(got, [0.5, 0.5, 0.0, np.nan], equal_nan=True)


def test_ordered_consensus_score_by_hand() -> None:
    # scale 1-5 (width 4): rater 0 gives 5, the others' mean is (1 + 3) / 2 = 2
    got = consensus_scores(["u"] * 3, [5.0, 1.0, 3.0], "interval", scale=(1, 5))
    np.testing.assert_allclose(got, [1 - 3 / 4, 1 - 3 / 4, 1 - 0 / 4])
    # without a scale the width is the range of the values (4 here too)
    np.testing.assert_allclose(consensus_scores(["u"] * 3, [5.0, 1.0, 3.0], "ordinal"), got)


def test_gold_scores() -> None:
    np.testing.assert_allclose(gold_scores([1, 2, 3], [1, np.nan, 2]), [1, np.nan, 0],
                               equal_nan=True)
    np.testing.assert_allclose(gold_scores([1.0, 5.0], [2.0, np.nan], "interval",
                                           scale=(1, 5)), [0.75, np.nan], equal_nan=True)


def simulate(n_items: int, accuracy: dict[str, float], seed: int, classes: int = 3,
             turns_random: dict[str, int] | None = None
             ) -> tuple[list[int], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every rater labels every item, items in time order; a rater is right with the given
    probability (else another label at random), or random from item ``turns_random``."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, n_items)
    units, raters, values, order = [], [], [], []
    for i, (name, acc) in itertools.product(range(n_items), accuracy.items()):
        start = (turns_random or {}).get(name)
        if start is not None and i >= start:
            v = int(rng.integers(0, classes))
        elif rng.random() < acc:
            v = int(truth[i])
        else:
            v = int((truth[i] + rng.integers(1, classes)) % classes)
        units.append(i)
        raters.append(name)
        values.append(v)
        order.append(i)
    return units, raters, np.array(values, dtype=float), np.array(order), truth


def test_a_rater_who_turns_random_halfway_is_flagged() -> None:
    accuracy = {"a": 0.9, "b": 0.9, "c": 0.9, "d": 0.9, "e": 0.9}
    units, raters, values, order, truth = simulate(600, accuracy, seed=1,
                                                   turns_random={"e": 300})
    gold = np.where(np.arange(len(units)) % 10 < 5, truth[units], np.nan)  # half the items
    result = {r.rater: r for r in rater_reliability(units, raters, values, order, gold=gold,
                                                    window=100, min_items=30, threshold=0.6)}
    assert [r for r, x in result.items() if x.drift] == ["e"]
    e = result["e"]
    assert len(e.windows) == 6 and [w.n for w in e.windows] == [100] * 6
    # first half: agreement with a 4-rater 0.9 majority is about 0.9; second half random
    assert all(w.consensus_agreement > 0.8 for w in e.windows[:3])  # type: ignore[operator]
    assert all(abs(w.consensus_agreement - 1 / 3) < 0.12  # type: ignore[operator]
               for w in e.windows[3:])
    assert e.latest.consensus_agreement == e.windows[-1].consensus_agreement
    assert e.latest.gold_accuracy == pytest.approx(1 / 3, abs=0.15)
    assert len(e.drift_reasons) == 2  # consensus and gold both below 0.6
    # the cumulative agreement falls slowly: half good, half random by the end
    assert e.windows[-1].cumulative_agreement == pytest.approx(
        np.mean([w.consensus_agreement for w in e.windows]), abs=1e-9)
    for steady in "abcd":
        r = result[steady]
        assert not r.drift and r.drift_reasons == []
        assert r.consensus_agreement > 0.85 and r.gold_accuracy > 0.85  # type: ignore[operator]
        assert r.n == 600 and r.n_compared == 600 and r.gold_n == 300


def test_too_few_recent_items_do_not_flag() -> None:
    units, raters, values, order, _ = simulate(60, {"a": 0.9, "b": 0.9, "c": 0.9,
                                                    "d": 1 / 3}, seed=2)
    flagged = rater_reliability(units, raters, values, order, window=50, min_items=20)
    assert [r.drift for r in flagged] == [False, False, False, True]
    cautious = rater_reliability(units, raters, values, order, window=50, min_items=51)
    assert not any(r.drift for r in cautious)


def test_ordinal_rater_turning_random_is_flagged() -> None:
    # 1-5 scale, good raters within ±1 of the truth; a rater answering uniformly at random
    # sits about 1.6 points from the others' mean (score ~0.6) against ~0.85 for good ones.
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, 400)
    units, raters, values, order = [], [], [], []
    for i in range(400):
        for name in "abcd":
            if name == "d" and i >= 200:
                v = rng.integers(1, 6)
            else:
                v = np.clip(truth[i] + rng.integers(-1, 2), 1, 5)
            units.append(i)
            raters.append(name)
            values.append(float(v))
            order.append(i)
    result = rater_reliability(units, raters, values, order, level="ordinal", scale=(1, 5),
                               window=100, min_items=50, threshold=0.75)
    assert [r.rater for r in result if r.drift] == ["d"]
    d = result[3]
    assert d.windows[0].consensus_agreement > 0.8  # type: ignore[operator]
    assert d.latest.consensus_agreement < 0.7  # type: ignore[operator]


def test_time_order_not_input_order_sets_the_windows() -> None:
    units, raters, values, order, _ = simulate(200, {"a": 0.9, "b": 0.9, "c": 0.9}, seed=4,
                                               turns_random={"c": 100})
    perm = np.random.default_rng(0).permutation(len(units))
    shuffled = rater_reliability([units[i] for i in perm], [raters[i] for i in perm],
                                 values[perm], order[perm], window=50)
    straight = rater_reliability(units, raters, values, order, window=50)
    assert {r.rater: r.to_dict() for r in shuffled} == {r.rater: r.to_dict() for r in straight}
    c = next(r for r in straight if r.rater == "c")
    assert (c.windows[0].start, c.windows[0].end, c.windows[-1].end) == (0, 49, 199)


def test_a_rater_without_overlap_has_no_agreement() -> None:
    result = rater_reliability(["u1", "u2", "u2"], ["a", "b", "c"], [1, 2, 2])
    a = result[0]
    assert a.n == 1 and a.n_compared == 0 and a.consensus_agreement is None and not a.drift
    assert a.windows[0].consensus_agreement is None
    assert result[1].consensus_agreement == 1.0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        rater_reliability([1], ["a"], [1], window=0)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        rater_reliability([1], ["a"], [1], threshold=2)
    with pytest.raises(ValueError, match="differ in length"):
        rater_reliability([1, 2], ["a"], [1])
    with pytest.raises(ValueError, match="values must be finite"):
        consensus_scores([1, 1], [1.0, np.nan])
    with pytest.raises(ValueError, match="level must be one of"):
        consensus_scores([1], [1.0], "circular")


def test_rates_carry_wilson_intervals() -> None:
    # Wilson (1927): 0/1 scores give exactly the Wilson interval of successes / n.
    from feedbackloop.stats.intervals import wilson_interval

    units, raters, values, order, truth = simulate(200, {"a": 0.9, "b": 0.9, "c": 0.9,
                                                         "d": 0.6}, seed=5)
    gold = truth[units].astype(float)
    result = rater_reliability(units, raters, values, order, gold=gold, window=50)
    d = result[3]
    correct = round(d.gold_accuracy * d.gold_n)  # type: ignore[operator]
    assert d.gold_ci95 == wilson_interval(correct, d.gold_n).ci
    lo, hi = d.consensus_ci95  # type: ignore[misc]
    assert lo < d.consensus_agreement < hi  # type: ignore[operator]
    w_lo, w_hi = d.windows[0].consensus_ci95  # type: ignore[misc]
    assert w_hi - w_lo > hi - lo  # 50 annotations are less certain than 200
    assert d.to_dict()["windows"][0]["consensus_ci95"] == [w_lo, w_hi]
    lonely = rater_reliability(["u1"], ["a"], [1])[0]
    assert lonely.consensus_ci95 is None and lonely.to_dict()["gold_ci95"] is None
