"""The agreement statistics' bootstrap from unit multiplicities: each resample's value is
the statistic recomputed on the resampled units, and the interval is the one the
one-resample-at-a-time bootstrap gives from the same random draws."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from feedbackloop.stats.agreement import (
    cohen_kappa_weighted,
    fleiss_kappa,
    gwet_ac1,
    gwet_ac2,
    icc,
    krippendorff_alpha,
)
from feedbackloop.stats.agreement.matrix import (
    resample_weights,
    unit_bootstrap,
    weighted_bootstrap,
)

# ``stats.agreement.icc`` is the function; the modules are reached by name.
gwet_module = importlib.import_module("feedbackloop.stats.agreement.gwet")
icc_module = importlib.import_module("feedbackloop.stats.agreement.icc")
kappa_module = importlib.import_module("feedbackloop.stats.agreement.kappa")
krippendorff_module = importlib.import_module("feedbackloop.stats.agreement.krippendorff")
matrix_module = importlib.import_module("feedbackloop.stats.agreement.matrix")

N_UNITS = 40
ICC_KINDS = ["ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)"]


def _ordinal(seed: int, raters: int = 3, units: int = N_UNITS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, units)
    return np.clip(truth + rng.integers(-1, 2, (raters, units)), 1, 5).astype(float)


def _continuous(seed: int, raters: int = 4, units: int = N_UNITS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 50.0 + rng.normal(size=units) + rng.normal(0.0, 0.7, (raters, units))


def _indices(n: int) -> list[np.ndarray]:
    """A handful of explicit resamples: identity, reversed, random, one unit, two units."""
    rng = np.random.default_rng(99)
    return [
        np.arange(n),
        np.arange(n)[::-1],
        rng.integers(0, n, n),
        rng.integers(0, n, n),
        np.sort(rng.integers(0, n, n)),
        np.zeros(n, dtype=int),
        np.r_[np.zeros(n - 1, dtype=int), [n - 1]],
    ]


def _weights(indices: list[np.ndarray], n: int) -> np.ndarray:
    return np.stack([np.bincount(i, minlength=n) for i in indices]).astype(float)


def _as_float(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _assert_same(weighted: np.ndarray, recomputed: list[float | None]) -> None:
    expected = np.array([_as_float(v) for v in recomputed])
    np.testing.assert_array_equal(np.isnan(weighted), np.isnan(expected))
    both = ~np.isnan(expected)
    np.testing.assert_allclose(weighted[both], expected[both], rtol=0.0, atol=1e-12)


# ---------------------------------------------------------------- weighted = recomputed


@pytest.mark.parametrize("seed", range(3))
def test_fleiss_weighted_equals_recomputed(seed: int) -> None:
    ratings = _ordinal(seed, raters=4)
    _, codes = np.unique(ratings, return_inverse=True)
    codes = codes.reshape(ratings.shape)
    counts = np.stack([np.sum(codes == c, axis=0) for c in range(codes.max() + 1)], axis=1)
    indices = _indices(N_UNITS)
    with np.errstate(all="ignore"):
        weighted = kappa_module._fleiss_terms(counts.astype(float), 4.0)(_weights(indices, N_UNITS))
    _assert_same(weighted, [fleiss_kappa(ratings[:, i]).value for i in indices])


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(3))
def test_gwet_weighted_equals_recomputed(weights: str | None, seed: int) -> None:
    ratings = _ordinal(seed)
    ratings[0, :5] = np.nan  # missing ratings; units 0-4 keep two
    ratings[1, 3] = np.nan  # unit 3 keeps one rating: rated, not pairable
    scale = np.arange(1.0, 6.0)
    counts = np.stack([np.sum(ratings == c, axis=0) for c in scale], axis=1).astype(float)
    if weights is None:
        w = np.eye(5)
        recompute: Callable[[np.ndarray], Any] = lambda r: gwet_ac1(r, scale)  # noqa: E731
    else:
        d = np.abs(np.subtract.outer(scale, scale)) / 4.0
        w = 1.0 - d if weights == "linear" else 1.0 - d * d
        recompute = lambda r: gwet_ac2(r, weights, scale)  # type: ignore[arg-type]  # noqa: E731
    indices = _indices(N_UNITS)
    with np.errstate(all="ignore"):
        weighted = gwet_module._gwet_terms(counts, w)(_weights(indices, N_UNITS))
    _assert_same(weighted, [recompute(ratings[:, i]).value for i in indices])


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", range(3))
def test_cohen_weighted_equals_recomputed(weights: str | None, seed: int) -> None:
    ratings = _ordinal(seed, raters=2)
    labels = np.arange(0.0, 7.0)  # labels 0 and 6 never used
    ia, ib = ratings[0].astype(int), ratings[1].astype(int)
    grid = np.subtract.outer(np.arange(7), np.arange(7)).astype(float)
    w = {None: (grid != 0).astype(float), "linear": np.abs(grid), "quadratic": grid * grid}[weights]
    indices = _indices(N_UNITS)
    with np.errstate(all="ignore"):
        weighted = kappa_module._weighted_kappa_terms(ia, ib, w)(_weights(indices, N_UNITS))
    recomputed = [
        cohen_kappa_weighted(ratings[0, i], ratings[1, i], weights, labels).value  # type: ignore[arg-type]
        for i in indices
    ]
    _assert_same(weighted, recomputed)


def test_cohen_weighted_with_many_labels_uses_sparse_terms(monkeypatch: Any) -> None:
    monkeypatch.setattr(kappa_module, "DENSE_CELLS", 0)
    ratings = _ordinal(4, raters=2)
    ia, ib = ratings[0].astype(int), ratings[1].astype(int)
    w = np.subtract.outer(np.arange(6), np.arange(6)).astype(float) ** 2
    indices = _indices(N_UNITS)
    with np.errstate(all="ignore"):
        weighted = kappa_module._weighted_kappa_terms(ia, ib, w)(_weights(indices, N_UNITS))
    recomputed = [kappa_module._weighted_kappa(ia[i], ib[i], w) for i in indices]
    _assert_same(weighted, recomputed)


@pytest.mark.parametrize("kind", ICC_KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_icc_weighted_equals_recomputed(kind: str, seed: int) -> None:
    ratings = _continuous(seed)
    indices = _indices(N_UNITS)[:5]  # one-target resamples: both sides are rounding noise
    with np.errstate(all="ignore"):
        weighted = icc_module._icc_terms(ratings, kind)(_weights(indices, N_UNITS))
    _assert_same(weighted, [icc(ratings[:, i], kind).value for i in indices])  # type: ignore[arg-type]


def test_icc_weighted_single_target_resample_is_zero_or_undefined() -> None:
    # All weight on one target: BMS = 0, so ICC(1,1) = -1/(k-1) and ICC(3,k) undefined.
    ratings = _continuous(0)
    weights = _weights([np.zeros(N_UNITS, dtype=int)], N_UNITS)
    with np.errstate(all="ignore"):
        assert icc_module._icc_terms(ratings, "ICC(1,1)")(weights)[0] == pytest.approx(-1 / 3)
        assert np.isnan(icc_module._icc_terms(ratings, "ICC(3,k)")(weights)[0])


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
@pytest.mark.parametrize("data", ["discrete", "continuous"])
def test_alpha_weighted_rows_equal_recomputed(level: str, data: str, monkeypatch: Any) -> None:
    rng = np.random.default_rng(3)
    if data == "discrete":
        ratings = rng.integers(1, 6, (5, N_UNITS)).astype(float)
    else:
        ratings = np.abs(rng.gamma(4.0, 1.0, N_UNITS) + rng.normal(0, 0.8, (5, N_UNITS)))
        # Blocks of ratio δ and of resamples, as with many distinct values.
        monkeypatch.setattr(krippendorff_module, "_RATIO_BLOCK", 16)
        monkeypatch.setattr(krippendorff_module, "_BLOCK_CELLS", 300)
        monkeypatch.setattr(krippendorff_module, "DENSE_CELLS", 0)
    ratings[rng.random(ratings.shape) < 0.3] = np.nan
    ratings[:2, np.count_nonzero(~np.isnan(ratings), axis=0) < 2] = 1.0  # all pairable
    parts = krippendorff_module._AlphaParts(ratings, level)
    indices = _indices(N_UNITS)
    weights = _weights(indices, N_UNITS)
    with np.errstate(all="ignore"):
        weighted = parts.alphas(weights)
    recomputed = [krippendorff_alpha(ratings[:, i], level).value for i in indices]  # type: ignore[arg-type]
    _assert_same(weighted, recomputed)
    _assert_same(weighted, [parts.alpha(w) for w in weights])


# ---------------------------------------------------------------- same interval as before


def _old_interval(
    recompute: Callable[[np.ndarray], float | None], n: int, seed: int, n_resamples: int
) -> tuple[float, float] | None:
    """The interval of the statistic recomputed on each resample's copied units."""
    return unit_bootstrap(recompute, n, np.random.default_rng(seed), n_resamples, 0.95)


SCALE = np.arange(1.0, 6.0)
CASES: dict[str, tuple[Callable[..., Any], Callable[[np.ndarray, np.ndarray], Any]]] = {
    "fleiss": (
        lambda r, rng: fleiss_kappa(r, rng=rng, n_resamples=200),
        lambda r, i: fleiss_kappa(r[:, i]).value,
    ),
    "ac1": (
        lambda r, rng: gwet_ac1(r, SCALE, rng=rng, n_resamples=200),
        lambda r, i: gwet_ac1(r[:, i], SCALE).value,
    ),
    "ac2": (
        lambda r, rng: gwet_ac2(r, "quadratic", SCALE, rng=rng, n_resamples=200),
        lambda r, i: gwet_ac2(r[:, i], "quadratic", SCALE).value,
    ),
    "cohen": (
        lambda r, rng: cohen_kappa_weighted(r[0], r[1], "linear", SCALE, rng=rng, n_resamples=200),
        lambda r, i: cohen_kappa_weighted(r[0, i], r[1, i], "linear", SCALE).value,
    ),
    "icc": (
        lambda r, rng: icc(r, "ICC(2,1)", rng=rng, n_resamples=200),
        lambda r, i: icc(r[:, i], "ICC(2,1)").value,
    ),
    "alpha nominal": (
        lambda r, rng: krippendorff_alpha(r, "nominal", rng=rng, n_resamples=200),
        lambda r, i: krippendorff_alpha(r[:, i], "nominal").value,
    ),
    "alpha ordinal": (
        lambda r, rng: krippendorff_alpha(r, "ordinal", rng=rng, n_resamples=200),
        lambda r, i: krippendorff_alpha(r[:, i], "ordinal").value,
    ),
    "alpha ratio": (
        lambda r, rng: krippendorff_alpha(r, "ratio", rng=rng, n_resamples=200),
        lambda r, i: krippendorff_alpha(r[:, i], "ratio").value,
    ),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("units", [5, 60])
def test_interval_equals_recomputing_each_resample(name: str, units: int) -> None:
    # Same draws, same statistic per resample, same dropping of undefined resamples: the
    # interval of the old one-resample-at-a-time bootstrap to rounding.
    compute, recompute = CASES[name]
    ratings = _ordinal(11, raters=2 if name == "cohen" else 3, units=units)
    estimate = compute(ratings, np.random.default_rng(4))
    expected = _old_interval(lambda i: recompute(ratings, i), units, 4, 200)
    assert estimate.value is not None
    if expected is None:
        assert estimate.ci is None
    else:
        assert estimate.ci == pytest.approx(expected, abs=1e-12)


def test_interval_drops_undefined_resamples_like_before() -> None:
    # Two units, one agreeing on category 1 and one on 2: a resample of one unit twice has
    # p_e = 1 (kappa undefined), which is half of the resamples on average.
    ratings = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    for seed in range(20):
        estimate = fleiss_kappa(ratings, rng=np.random.default_rng(seed), n_resamples=7)
        expected = _old_interval(lambda i: fleiss_kappa(ratings[:, i]).value, 2, seed, 7)
        assert estimate.ci == expected


# ---------------------------------------------------------------- weights


def test_resample_weights_are_the_unit_bootstrap_draws(monkeypatch: Any) -> None:
    monkeypatch.setattr(matrix_module, "_CHUNK_CELLS", 7 * 13)  # chunks of 7 resamples
    blocks = list(resample_weights(13, np.random.default_rng(5), 30))
    assert [b.shape for b in blocks] == [(7, 13)] * 4 + [(2, 13)]
    weights = np.concatenate(blocks)
    rng = np.random.default_rng(5)
    expected = [np.bincount(rng.integers(0, 13, 13), minlength=13) for _ in range(30)]
    np.testing.assert_array_equal(weights, expected)
    assert (weights.sum(axis=1) == 13).all()


def test_chunk_size_does_not_change_the_interval(monkeypatch: Any) -> None:
    ratings = _ordinal(2, units=50)
    whole = gwet_ac1(ratings, rng=np.random.default_rng(8), n_resamples=300)
    monkeypatch.setattr(matrix_module, "_CHUNK_CELLS", 50 * 17)
    chunked = gwet_ac1(ratings, rng=np.random.default_rng(8), n_resamples=300)
    assert chunked.ci == whole.ci


def test_weighted_bootstrap_none_when_most_resamples_undefined() -> None:
    def statistic(w: np.ndarray) -> np.ndarray:
        return np.where(np.arange(w.shape[0]) % 3 == 0, 0.5, np.nan)

    assert weighted_bootstrap(statistic, 10, np.random.default_rng(0), 30, 0.95) is None
    assert weighted_bootstrap(statistic, 1, np.random.default_rng(0), 30, 0.95) is None
    with pytest.raises(ValueError, match="confidence"):
        weighted_bootstrap(statistic, 10, np.random.default_rng(0), 30, 1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        weighted_bootstrap(statistic, 10, np.random.default_rng(0), 0, 0.95)


def test_blas_threads_limited_during_the_bootstrap_and_restored_after() -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    seen: list[list[int]] = []

    def statistic(w: np.ndarray) -> np.ndarray:
        seen.append(blas_threads())
        return w[:, 0]

    assert weighted_bootstrap(statistic, 10, np.random.default_rng(0), 30, 0.95) is not None
    assert all(threads == [1] * len(before) for threads in seen)
    assert blas_threads() == before
