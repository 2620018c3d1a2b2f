"""Off-policy estimators on synthetic logs whose target-policy value is known exactly
(fixed seeds): IPS and DR unbiased (DR even with a wrong reward model), DM biased by its
model, SNIPS consistent; the effective sample size formula; bootstrap coverage near 95 %;
a log worked by hand; and bad rows named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from feedbackloop.stats.offpolicy import (
    OffPolicyInputError,
    OffPolicyLog,
    effective_sample_size,
    evaluate,
)

# Two context types (probability 0.4 / 0.6), three actions. θ = P(reward 1 | x, a).
P_X = np.array([0.4, 0.6])
THETA = np.array([[0.2, 0.5, 0.7],
                  [0.6, 0.3, 0.4]])
LOGGING = np.array([[0.5, 0.3, 0.2],     # μ(a | x)
                    [0.2, 0.2, 0.6]])
TARGET = np.array([[0.0, 0.2, 0.8],      # π(a | x): better than the logging policy
                   [0.9, 0.1, 0.0]])
TRUE_VALUE = float(P_X @ (TARGET * THETA).sum(axis=1))  # 0.4·0.66 + 0.6·0.57 = 0.606
WRONG_MODEL = np.array([[0.9, 0.9, 0.1],  # q̂(x, a): far from θ on purpose
                        [0.1, 0.9, 0.9]])


def _log(rng: np.random.Generator, n: int, model: np.ndarray | None = THETA) -> OffPolicyLog:
    x = (rng.random(n) < P_X[1]).astype(int)
    u = rng.random(n)
    a = (u[:, None] > np.cumsum(LOGGING[x], axis=1)).sum(axis=1)
    r = (rng.random(n) < THETA[x, a]).astype(float)
    return OffPolicyLog.of(a, r, LOGGING[x, a], TARGET[x],
                           None if model is None else model[x])


def test_the_true_value() -> None:
    assert abs(TRUE_VALUE - (0.4 * (0.1 + 0.56) + 0.6 * (0.54 + 0.03))) < 1e-12


def _many(n_logs: int, n: int, model: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {k: [] for k in ("ips", "snips", "dm", "dr")}
    for _ in range(n_logs):
        res = evaluate(_log(rng, n, model), rng=rng, bootstrap=0)
        for k in out:
            out[k].append(res[k]["estimate"])
    return {k: np.array(v) for k, v in out.items()}


def test_ips_and_dr_are_unbiased_and_dm_is_biased_by_a_wrong_model() -> None:
    # 2,000 logs of 50 rows: the mean of each unbiased estimator lies within 4 Monte-Carlo
    # standard errors of the true value; DM with the wrong model lies far outside.
    est = _many(2000, 50, WRONG_MODEL, seed=1)
    for key in ("ips", "dr"):
        se = est[key].std(ddof=1) / math.sqrt(est[key].size)
        assert abs(est[key].mean() - TRUE_VALUE) < 4 * se, (key, est[key].mean(), se)
    dm_bias = est["dm"].mean() - TRUE_VALUE
    wrong_value = float(P_X @ (TARGET * WRONG_MODEL).sum(axis=1))
    dm_se = est["dm"].std(ddof=1) / math.sqrt(est["dm"].size)  # noise: the context mix
    assert abs(est["dm"].mean() - wrong_value) < 4 * dm_se  # DM estimates its model's value
    assert abs(dm_bias) > 0.1
    # with the true reward model DM is exact and DR beats IPS on variance
    good = _many(500, 50, THETA, seed=2)
    assert good["dr"].std() < good["ips"].std()
    assert abs(good["dr"].mean() - TRUE_VALUE) < 4 * good["dr"].std(ddof=1) / math.sqrt(500)


def test_snips_is_consistent() -> None:
    # Small logs: SNIPS's bias is O(1/n), visible but small; one large log: close.
    est = _many(2000, 50, THETA, seed=3)["snips"]
    assert abs(est.mean() - TRUE_VALUE) < 0.02
    assert est.std() < _many(2000, 50, THETA, seed=3)["ips"].std()
    big = evaluate(_log(np.random.default_rng(4), 200_000), rng=np.random.default_rng(0),
                   bootstrap=0)
    assert big["snips"]["estimate"] == pytest.approx(TRUE_VALUE, abs=0.005)
    assert big["ips"]["estimate"] == pytest.approx(TRUE_VALUE, abs=0.01)


def test_bootstrap_intervals_cover_about_95_percent() -> None:
    rng = np.random.default_rng(5)
    logs = 300
    hits = {"ips": 0, "snips": 0, "dr": 0}
    for _ in range(logs):
        res = evaluate(_log(rng, 300, WRONG_MODEL), rng=rng, bootstrap=300)
        for key in hits:
            lo, hi = res[key]["ci95"]
            hits[key] += lo <= TRUE_VALUE <= hi
    for key, h in hits.items():
        # nominal 0.95; 300 logs give an MC standard error of 0.0126; percentile intervals
        # run a little short at n = 300
        assert 0.89 <= h / logs <= 0.99, (key, h / logs)


def test_effective_sample_size_formula() -> None:
    # Kish: (Σw)² / Σw²
    assert effective_sample_size([1, 1, 2, 0]) == pytest.approx(16 / 6)
    assert effective_sample_size(np.full(50, 0.3)) == pytest.approx(50)
    assert effective_sample_size([0, 0]) == 0.0
    log = _log(np.random.default_rng(6), 1000)
    w = log.weights
    assert evaluate(log, rng=np.random.default_rng(), bootstrap=0)[
        "effective_sample_size"] == pytest.approx(w.sum() ** 2 / (w**2).sum())


def test_a_log_worked_by_hand() -> None:
    # 4 rows, 2 actions.  w = π(a)/μ: 0.8/0.5, 0.2/0.5, 0.8/0.4, 0.8/0.5 = 1.6, 0.4, 2, 1.6
    log = OffPolicyLog.of(actions=[0, 1, 0, 0], rewards=[1, 0, 0, 1],
                          propensities=[0.5, 0.5, 0.4, 0.5],
                          target=[[0.8, 0.2]] * 4,
                          predicted=[[0.5, 0.25]] * 4)
    res = evaluate(log, rng=np.random.default_rng(0), bootstrap=200)
    assert res["n"] == 4
    assert res["ips"]["estimate"] == pytest.approx((1.6 + 1.6) / 4)
    assert res["snips"]["estimate"] == pytest.approx(3.2 / 5.6)
    dm = 0.8 * 0.5 + 0.2 * 0.25
    assert res["dm"]["estimate"] == pytest.approx(dm)
    corr = (1.6 * 0.5 + 0.4 * -0.25 + 2 * -0.5 + 1.6 * 0.5) / 4
    assert res["dr"]["estimate"] == pytest.approx(dm + corr)
    assert res["logged"]["estimate"] == pytest.approx(0.5)
    assert res["effective_sample_size"] == pytest.approx(5.6**2 / (1.6**2 * 2 + 0.16 + 4))
    assert res["max_weight"] == pytest.approx(2.0)
    for key in ("ips", "snips", "dm", "dr"):
        lo, hi = res[key]["ci95"]
        assert lo <= res[key]["estimate"] <= hi
    assert res["dm"]["ci95"] == pytest.approx([dm, dm])  # a constant model: no spread


def test_without_predictions_dm_and_dr_are_skipped_with_a_reason() -> None:
    res = evaluate(_log(np.random.default_rng(7), 100, None), rng=np.random.default_rng(),
                   bootstrap=50)
    for key in ("dm", "dr"):
        assert res[key]["estimable"] is False
        assert "predicted" in res[key]["reason"]
    assert res["ips"]["estimable"] is True
    assert any("DM and DR skipped" in n for n in res["notes"])


def test_snips_not_estimable_when_the_target_never_takes_a_logged_action() -> None:
    log = OffPolicyLog.of([0, 0, 0], [1, 0, 1], [0.5, 0.5, 0.5], [[0.0, 1.0]] * 3)
    res = evaluate(log, rng=np.random.default_rng(), bootstrap=100)
    assert res["ips"]["estimate"] == 0.0
    assert res["snips"]["estimable"] is False and "sum to 0" in res["snips"]["reason"]
    assert res["effective_sample_size"] == 0.0


@pytest.mark.parametrize(("kwargs", "row", "field", "message"), [
    ({"propensities": [0.5, 0.0]}, 1, "propensity", "propensity must be in (0, 1], got 0"),
    ({"propensities": [1.5, 0.5]}, 0, "propensity", "got 1.5"),
    ({"target": [[0.5, 0.5], [0.5, 0.4]]}, 1, "target", "sum to 1, got 0.9"),
    ({"target": [[1.5, -0.5], [0.5, 0.5]]}, 0, "target", "finite and >= 0"),
    ({"actions": [0, 2]}, 1, "action", "out of range"),
    ({"actions": [0.5, 1]}, 0, "action", "integer"),
    ({"rewards": [float("nan"), 1]}, 0, "reward", "finite"),
    ({"predicted": [[0.1, 0.2], [0.1, float("inf")]]}, 1, "predicted", "finite"),
])
def test_bad_rows_are_named(kwargs: dict, row: int, field: str, message: str) -> None:
    base = {"actions": [0, 1], "rewards": [1.0, 0.0], "propensities": [0.5, 0.5],
            "target": [[0.5, 0.5], [0.5, 0.5]]}
    with pytest.raises(OffPolicyInputError) as info:
        OffPolicyLog.of(**{**base, **kwargs})
    assert (info.value.row, info.value.field) == (row, field)
    assert str(info.value).startswith(f"row {row}: ")
    assert message in str(info.value)


def test_unequal_lengths_are_refused() -> None:
    with pytest.raises(OffPolicyInputError, match="unequal lengths: actions 2, rewards 3"):
        OffPolicyLog.of([0, 1], [1, 0, 1], [0.5, 0.5], [[0.5, 0.5]] * 2)
    with pytest.raises(OffPolicyInputError, match="no rows"):
        OffPolicyLog.of([], [], [], np.zeros((0, 2)))
