"""Rater reliability: pinned to published worked examples, the ``krippendorff`` package and
scikit-learn, plus invariants and a scale check."""

from __future__ import annotations

import tracemalloc
from typing import Any

import krippendorff
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import cohen_kappa_score

from feedbackloop.stats.agreement import (
    cohen_kappa_weighted,
    fleiss_kappa,
    gwet_ac1,
    gwet_ac2,
    icc,
    krippendorff_alpha,
    reliability_matrix,
)

NAN = np.nan
LEVELS = ["nominal", "ordinal", "interval", "ratio"]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers
# by 12 units, nominal values 1-5, missing ratings; unit 12 is not pairable.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


def _with_missing(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(float)
    out[rng.random(out.shape) < share] = NAN
    return out


def test_calibration_reliability_is_not_shadowed() -> None:
    # A submodule named stats/reliability.py would replace stats.reliability, the
    # calibration function; this module is stats/agreement.py for that reason.
    from feedbackloop import stats
    from feedbackloop.stats import calibration

    assert stats.reliability is calibration.reliability
    assert stats.krippendorff_alpha is krippendorff_alpha


# ---------------------------------------------------------------- reliability_matrix


def test_reliability_matrix_from_long_format() -> None:
    matrix, units, raters = reliability_matrix(
        ["u1", "u1", "u2", "u3"], ["a", "b", "a", "b"], [1, 2, 3, 4]
    )
    assert units == ["u1", "u2", "u3"]
    assert raters == ["a", "b"]
    np.testing.assert_array_equal(matrix, [[1, 3, NAN], [2, NAN, 4]])


def test_reliability_matrix_names_duplicates() -> None:
    with pytest.raises(ValueError, match=r"unit='u1', rater='a'"):
        reliability_matrix(["u1", "u1", "u2"], ["a", "a", "b"], [1, 2, 3])


def test_reliability_matrix_checks_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        reliability_matrix(["u1"], ["a", "b"], [1])


# ---------------------------------------------------------------- Krippendorff's alpha


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_krippendorff_2011_worked_example(level: str, published: float) -> None:
    # Krippendorff (2011), section C: alpha = .743 nominal, .815 ordinal, .849 interval,
    # .797 ratio; the package agrees to all digits.
    estimate = krippendorff_alpha(KRIPPENDORFF_2011, level)  # type: ignore[arg-type]
    assert estimate.value == pytest.approx(published, abs=5e-4)
    assert estimate.value == pytest.approx(
        krippendorff.alpha(KRIPPENDORFF_2011, level_of_measurement=level), abs=1e-12
    )
    assert estimate.n == 11
    assert estimate.ci is None


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(5))
def test_alpha_matches_package_on_discrete_data(level: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ratings = _with_missing(rng, rng.integers(0, 7, (6, 60)), 0.3)
    expected = krippendorff.alpha(ratings, level_of_measurement=level)
    assert krippendorff_alpha(ratings, level).value == pytest.approx(expected, abs=1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("seed", range(3))
def test_alpha_matches_package_on_continuous_data(level: str, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    truth = rng.gamma(4.0, 1.0, 50)
    ratings = _with_missing(rng, truth + rng.normal(0, 0.8, (4, 50)), 0.25)
    ratings = np.abs(ratings)
    expected = krippendorff.alpha(ratings, level_of_measurement=level)
    assert krippendorff_alpha(ratings, level).value == pytest.approx(expected, abs=1e-9)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", LEVELS)
def test_alpha_unit_multiplicities_match_repeated_units(level: str) -> None:
    # The bootstrap weights units instead of copying them: the two must agree.
    from feedbackloop.stats.agreement.krippendorff import _AlphaParts

    rng = np.random.default_rng(21)
    ratings = _with_missing(rng, rng.integers(1, 6, (5, 60)), 0.3)
    pairable = ratings[:, np.count_nonzero(~np.isnan(ratings), axis=0) >= 2]
    parts = _AlphaParts(pairable, level)
    for _ in range(5):
        index = rng.integers(0, pairable.shape[1], pairable.shape[1])
        weights = np.bincount(index, minlength=pairable.shape[1]).astype(float)
        expected = krippendorff.alpha(pairable[:, index], level_of_measurement=level)
        assert parts.alpha(weights) == pytest.approx(expected, abs=1e-9)


def test_alpha_identical_ratings_unavailable() -> None:
    estimate = krippendorff_alpha(np.full((3, 5), 2.0), "interval")
    assert not estimate.available
    assert estimate.reason == "all ratings are identical"


def test_alpha_needs_two_pairable_units() -> None:
    ratings = np.array([[1.0, 2.0, NAN], [1.0, NAN, 3.0]])
    estimate = krippendorff_alpha(ratings)
    assert not estimate.available
    assert estimate.n == 1
    assert "pairable" in (estimate.reason or "")


def test_alpha_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="nominal, ordinal, interval, ratio"):
        krippendorff_alpha(KRIPPENDORFF_2011, "circular")  # type: ignore[arg-type]


def test_alpha_bootstrap_interval_over_units() -> None:
    rng = np.random.default_rng(7)
    truth = rng.normal(size=80)
    ratings = _with_missing(rng, truth + rng.normal(0, 0.5, (4, 80)), 0.2)
    estimate = krippendorff_alpha(
        ratings, "interval", rng=np.random.default_rng(1), n_resamples=300
    )
    assert estimate.ci is not None
    lo, hi = estimate.ci
    assert lo < estimate.value < hi  # type: ignore[operator]
    again = krippendorff_alpha(ratings, "interval", rng=np.random.default_rng(1), n_resamples=300)
    assert again.ci == estimate.ci
    assert "bootstrap" in estimate.method


ratings_strategy = st.integers(2, 6).flatmap(
    lambda raters: st.integers(2, 12).flatmap(
        lambda units: st.lists(
            st.one_of(st.none(), st.integers(1, 5)),
            min_size=raters * units,
            max_size=raters * units,
        ).map(
            lambda cells: np.array([NAN if c is None else float(c) for c in cells]).reshape(
                raters, units
            )
        )
    )
)


def _same(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-9)


@settings(max_examples=60, deadline=None)
@given(ratings=ratings_strategy, data=st.data())
def test_alpha_invariant_to_rater_and_unit_order(ratings: np.ndarray, data: st.DataObject) -> None:
    level = data.draw(st.sampled_from(LEVELS))
    rater_order = data.draw(st.permutations(range(ratings.shape[0])))
    unit_order = data.draw(st.permutations(range(ratings.shape[1])))
    base = krippendorff_alpha(ratings, level).value
    shuffled = ratings[list(rater_order)][:, list(unit_order)]
    assert _same(base, krippendorff_alpha(shuffled, level).value)


@settings(max_examples=60, deadline=None)
@given(ratings=ratings_strategy, data=st.data())
def test_nominal_alpha_invariant_to_relabelling(ratings: np.ndarray, data: st.DataObject) -> None:
    new_labels = data.draw(st.lists(st.integers(-50, 50), min_size=5, max_size=5, unique=True))
    relabelled = ratings.copy()
    present = ~np.isnan(ratings)
    relabelled[present] = np.array(new_labels, dtype=float)[ratings[present].astype(int) - 1]
    assert _same(
        krippendorff_alpha(ratings, "nominal").value,
        krippendorff_alpha(relabelled, "nominal").value,
    )


def _direct_interval_alpha(ratings: np.ndarray) -> float:
    """Alpha from explicit pairs: within units and over all pairable values."""
    keep = np.count_nonzero(~np.isnan(ratings), axis=0) >= 2
    units = [col[~np.isnan(col)] for col in ratings[:, keep].T]
    observed = sum(float(np.sum(np.subtract.outer(u, u) ** 2)) / (u.size - 1) for u in units)
    values = np.concatenate(units)
    expected = float(np.sum(np.subtract.outer(values, values) ** 2))
    return 1.0 - (values.size - 1) * observed / expected


@pytest.mark.slow
def test_alpha_interval_scales_without_values_by_values_matrix() -> None:
    rng = np.random.default_rng(11)
    truth = rng.normal(size=100_000)
    ratings = _with_missing(rng, truth + rng.normal(0, 0.7, (10, 100_000)), 0.2)
    tracemalloc.start()
    try:
        estimate = krippendorff_alpha(ratings, "interval")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert estimate.available
    # ~800,000 distinct values: a values x values matrix would need terabytes.
    assert peak < 200 * 2**20
    subset = ratings[:, :400]
    assert krippendorff_alpha(subset, "interval").value == pytest.approx(
        _direct_interval_alpha(subset), abs=1e-9
    )
    # Ratings = truth + noise with noise variance 0.49: alpha is near 1 / 1.49.
    assert estimate.value == pytest.approx(1 / 1.49, abs=0.01)


# ---------------------------------------------------------------- Fleiss' kappa

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa", worked example): 10 subjects,
# 14 raters, 5 categories; rows are the counts n_ij; kappa = 0.210.
FLEISS_COUNTS = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def _ratings_from_counts(counts: np.ndarray) -> np.ndarray:
    columns = [np.repeat(np.arange(1, counts.shape[1] + 1), row) for row in counts]
    return np.array(columns, dtype=float).T


def test_fleiss_wikipedia_worked_example() -> None:
    estimate = fleiss_kappa(_ratings_from_counts(FLEISS_COUNTS))
    assert estimate.value == pytest.approx(0.210, abs=5e-4)
    assert estimate.n == 10


def test_fleiss_needs_complete_data() -> None:
    ratings = _ratings_from_counts(FLEISS_COUNTS)
    ratings[0, 3] = NAN
    estimate = fleiss_kappa(ratings)
    assert not estimate.available
    assert estimate.reason == "Fleiss' kappa needs complete data"


def test_fleiss_identical_ratings_unavailable() -> None:
    assert fleiss_kappa(np.ones((3, 4))).reason == "all ratings are identical"


# ---------------------------------------------------------------- Cohen's weighted kappa


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(4))
def test_cohen_weighted_matches_sklearn(weights: str | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 6, 70)
    b = np.clip(a + rng.integers(-2, 3, 70), 1, 5)
    expected = cohen_kappa_score(a, b, weights=weights)
    assert cohen_kappa_weighted(a, b, weights).value == pytest.approx(expected, abs=1e-12)  # type: ignore[arg-type]


def test_cohen_weighted_with_labels_matches_sklearn() -> None:
    a = np.array([1, 2, 2, 3, 3, 3])
    b = np.array([1, 2, 3, 3, 3, 2])
    labels = [1, 2, 3, 4, 5]
    expected = cohen_kappa_score(a, b, labels=labels, weights="quadratic")
    got = cohen_kappa_weighted(a, b, "quadratic", labels=labels).value
    assert got == pytest.approx(expected, abs=1e-12)


def test_cohen_weighted_single_category_unavailable() -> None:
    assert not cohen_kappa_weighted([1, 1, 1], [1, 1, 1], "linear").available


# ---------------------------------------------------------------- Gwet


def test_gwet_ac1_two_raters_by_hand() -> None:
    # A hand computation from Gwet (2008) eq. for AC1 (not a published table): 10 items,
    # agreement on 8, each rater says "1" 6 times. p_a = 0.8, pi_1 = 0.6, pi_0 = 0.4,
    # p_e = 0.6*0.4 + 0.4*0.6 = 0.48, AC1 = 0.32 / 0.52.
    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    estimate = gwet_ac1(np.array([a, b], dtype=float))
    assert estimate.value == pytest.approx(0.32 / 0.52, abs=1e-12)


def test_gwet_ac1_krippendorff_data_as_in_gwet_handbook() -> None:
    # Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed., analyses Krippendorff's
    # 4-rater data: AC1 = 0.77544 (p_a = 0.81818, p_e = 0.19032), as also printed by the
    # irrCAC package's documented example (afergadis/irrCAC, irrCAC/raw.py).
    assert gwet_ac1(KRIPPENDORFF_2011).value == pytest.approx(0.77544, abs=5e-6)


def test_gwet_ac1_with_missing_by_hand() -> None:
    # Three raters, one missing rating; units with one rating count only in pi_k.
    ratings = np.array([[1, 1, 2, 2, 1], [1, 2, 2, NAN, NAN], [1, 1, 2, 2, NAN]], dtype=float)
    p_a = (1 + 1 / 3 + 1 + 1) / 4
    pi_1 = (1 + 2 / 3 + 0 + 0 + 1) / 5
    p_e = 2 * pi_1 * (1 - pi_1)
    assert gwet_ac1(ratings).value == pytest.approx((p_a - p_e) / (1 - p_e), abs=1e-12)


def test_gwet_ac2_identity_limit_and_range() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, 40)
    ratings = _with_missing(rng, np.clip(truth + rng.integers(-1, 2, (4, 40)), 1, 5), 0.2)
    linear = gwet_ac2(ratings, "linear", categories=[1, 2, 3, 4, 5]).value
    quadratic = gwet_ac2(ratings, "quadratic", categories=[1, 2, 3, 4, 5]).value
    ac1 = gwet_ac1(ratings, categories=[1, 2, 3, 4, 5]).value
    assert linear is not None and quadratic is not None and ac1 is not None
    # Near-misses earn partial credit, so weighted agreement beats unweighted here.
    assert ac1 < linear < quadratic <= 1.0


def test_gwet_ac2_by_hand() -> None:
    # Two raters, scale 1-3, quadratic weights: w = 1 - (d/2)^2 -> [[1, .75, 0], ...].
    ratings = np.array([[1, 2, 3, 3], [1, 3, 3, 2]], dtype=float)
    w = np.array([[1, 0.75, 0], [0.75, 1, 0.75], [0, 0.75, 1]])
    counts = np.array([[2, 0, 0], [0, 1, 1], [0, 0, 2], [0, 1, 1]], dtype=float)
    p_a = np.mean(np.sum(counts * (counts @ w.T - 1), axis=1) / 2)
    pi = counts.mean(axis=0) / 2
    p_e = w.sum() / 6 * np.sum(pi * (1 - pi))
    got = gwet_ac2(ratings, "quadratic").value
    assert got == pytest.approx((p_a - p_e) / (1 - p_e), abs=1e-12)


def test_gwet_rejects_ratings_outside_categories() -> None:
    with pytest.raises(ValueError, match="outside categories"):
        gwet_ac1(np.array([[1.0, 2.0], [1.0, 7.0]]), categories=[1, 2, 3])


# ---------------------------------------------------------------- ICC

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges (rows here are judges).
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
).T


@pytest.mark.parametrize(
    ("kind", "published"),
    [
        ("ICC(1,1)", 0.17),
        ("ICC(2,1)", 0.29),
        ("ICC(3,1)", 0.71),
        ("ICC(1,k)", 0.44),
        ("ICC(2,k)", 0.62),
        ("ICC(3,k)", 0.91),
    ],
)
def test_icc_shrout_fleiss_table(kind: str, published: float) -> None:
    # Shrout & Fleiss (1979), Table 4 (values for the Table 2 data, two decimals).
    estimate = icc(SHROUT_FLEISS, kind)  # type: ignore[arg-type]
    assert estimate.value == pytest.approx(published, abs=5e-3)
    assert estimate.n == 6


def test_icc_needs_complete_data() -> None:
    ratings = SHROUT_FLEISS.copy()
    ratings[0, 0] = NAN
    assert not icc(ratings).available


def test_icc_unknown_kind_lists_valid() -> None:
    with pytest.raises(ValueError, match=r"ICC\(3,1\)"):
        icc(SHROUT_FLEISS, "ICC(4,1)")  # type: ignore[arg-type]


# ---------------------------------------------------------------- bootstrap intervals


@pytest.mark.parametrize(
    "compute",
    [
        lambda r, rng: fleiss_kappa(r, rng=rng, n_resamples=300),
        lambda r, rng: gwet_ac1(r, rng=rng, n_resamples=300),
        lambda r, rng: gwet_ac2(r, "linear", rng=rng, n_resamples=300),
        lambda r, rng: icc(r, "ICC(2,1)", rng=rng, n_resamples=300),
        lambda r, rng: cohen_kappa_weighted(r[0], r[1], "quadratic", rng=rng, n_resamples=300),
        lambda r, rng: krippendorff_alpha(r, "ordinal", rng=rng, n_resamples=300),
    ],
)
def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible(compute: Any) -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 6, 80)
    ratings = np.clip(truth + rng.integers(-1, 2, (3, 80)), 1, 5).astype(float)
    first = compute(ratings, np.random.default_rng(2))
    assert first.ci is not None
    assert first.ci[0] <= first.value <= first.ci[1]
    assert compute(ratings, np.random.default_rng(2)).ci == first.ci
    assert "bootstrap" in first.method
    assert compute(ratings, None).ci is None
