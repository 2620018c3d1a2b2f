"""Bradley-Terry strengths from pairwise preferences, with Wald intervals.

Bradley, R. A. and Terry, M. E. (1952). Rank analysis of incomplete block designs: I. The
method of paired comparisons. Biometrika, 39(3/4), 324-345.
Hunter, D. R. (2004). MM algorithms for generalized Bradley-Terry models. Annals of
Statistics, 32(1), 384-406.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
from scipy.special import expit, log_expit
from scipy.stats import norm

from ._long_format import check_lengths, encode, to_list

__all__ = ["BradleyTerry"]


class BradleyTerry:
    """Bradley-Terry model: item i beats item j with probability

        P(i ≻ j) = sigmoid(θ_i - θ_j) = exp θ_i / (exp θ_i + exp θ_j),

    θ the log-strengths. With w_ij the wins of i over j (a tie counts half a win to each
    side), the fit maximises the penalised log-likelihood

        L(θ) = Σ_{i<j} [w_ij log sigmoid(θ_i - θ_j) + w_ji log sigmoid(θ_j - θ_i)]
               - (prior / 2) ‖θ‖²

    by Newton-Raphson with step halving from θ = 0, stopping when no θ moves more than
    ``tol`` (``converged_``); L is strictly concave, so the maximum is unique. (Newton
    rather than Hunter's MM: the information matrix is needed for the intervals anyway, and
    Newton converges quadratically where MM is linear.) The ridge term (a N(0, 1/prior)
    prior on each θ, default prior = 1e-3) keeps θ finite when the maximum-likelihood
    estimate does not exist: an item that never lost, or a comparison graph that is not
    connected (Hunter 2004, assumption 1; Ford 1957). Because L without the ridge does not
    change when all θ shift together, the ridge's stationarity condition forces Σ θ = 0:
    the scores are identified with mean zero. On a connected design with a few comparisons
    per item the ridge moves θ by about prior / (comparisons per item).

    Intervals: Wald intervals θ_i ± z se_i with se² the diagonal of the inverse Fisher
    information H = Σ n_ij s_ij (1 - s_ij)(e_i - e_j)(e_i - e_j)ᵀ + prior · I, projected
    onto the mean-zero scores: Cov = C (H + 11ᵀ/m)⁻¹ C with C = I - 11ᵀ/m, where
    s_ij = sigmoid(θ_i - θ_j) and n_ij is the number of comparisons of i and j.

    Fitted attributes: ``scores_`` (item → θ), ``se_`` (item → standard error), ``ci_`` (item →
    (low, high) at ``confidence``), ``ranking_`` (items by θ, highest first; equal scores
    in item order), ``items_``, ``n_iter_``, ``converged_``. The dense m x m information
    matrix limits it to a few thousand items.
    """

    scores_: dict[Hashable, float]
    se_: dict[Hashable, float]
    ci_: dict[Hashable, tuple[float, float]]
    ranking_: list[Hashable]
    items_: list[Hashable]
    n_iter_: int
    converged_: bool

    def __init__(self, n_iter: int = 100, tol: float = 1e-9, prior: float = 1e-3,
                 confidence: float = 0.95) -> None:
        if prior <= 0:
            raise ValueError(f"prior must be positive so that scores stay finite, got {prior}")
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        if n_iter < 1:
            raise ValueError(f"n_iter must be at least 1, got {n_iter}")
        self.n_iter = n_iter
        self.tol = tol
        self.prior = prior
        self.confidence = confidence

    def fit(self, winner: Any, loser: Any, ties: Any = None) -> BradleyTerry:
        """``winner[k]`` was preferred to ``loser[k]``; where ``ties[k]`` is true the
        comparison was a tie and the two count half a win each."""
        columns: dict[str, list[Any]] = {"winner": to_list("winner", winner),
                                         "loser": to_list("loser", loser)}
        if ties is not None:
            columns["ties"] = to_list("ties", ties)
        n = check_lengths(columns)
        tie = np.zeros(n, dtype=bool)
        if ties is not None:
            if not all(isinstance(x, bool | np.bool_) or x in (0, 1) for x in columns["ties"]):
                raise ValueError("ties must hold booleans (true where the comparison was a tie)")
            tie = np.asarray(columns["ties"], dtype=bool)
        items, codes = encode("winner/loser", columns["winner"] + columns["loser"])
        win, lose = codes[:n], codes[n:]
        same = np.flatnonzero(win == lose)
        if same.size:
            raise ValueError(f"comparison {int(same[0])} has the same item as winner and loser")
        m = len(items)
        a, b = np.minimum(win, lose), np.maximum(win, lose)
        pair, pair_index = np.unique(a * m + b, return_inverse=True)
        credit_a = np.where(tie, 0.5, (win == a).astype(float))
        wins_a = np.bincount(pair_index, weights=credit_a, minlength=pair.size)
        total = np.bincount(pair_index, minlength=pair.size).astype(float)
        first, second = pair // m, pair % m
        prior = self.prior

        def objective(theta: np.ndarray) -> float:
            d = theta[first] - theta[second]
            ll = wins_a @ log_expit(d) + (total - wins_a) @ log_expit(-d)
            return float(-ll + 0.5 * prior * theta @ theta)

        def gradient(theta: np.ndarray) -> np.ndarray:
            d = theta[first] - theta[second]
            g = total * expit(d) - wins_a
            return np.asarray(np.bincount(first, g, minlength=m)
                              - np.bincount(second, g, minlength=m) + prior * theta)

        def hessian(theta: np.ndarray) -> np.ndarray:
            return _information(theta, first, second, total, prior)

        theta = np.zeros(m)
        value = objective(theta)
        converged = False
        iteration = 0
        while iteration < self.n_iter:
            iteration += 1
            step = np.linalg.solve(hessian(theta), gradient(theta))
            # Step halving keeps every iteration an ascent step of the concave objective.
            scale = 1.0
            while objective(theta - scale * step) > value and scale > 1e-10:
                scale /= 2
            theta = theta - scale * step
            value = objective(theta)
            if np.abs(scale * step).max() <= self.tol:
                converged = True
                break
        theta = theta - theta.mean()
        centre = np.eye(m) - 1.0 / m
        info = _information(theta, first, second, total, prior) + 1.0 / m
        cov = centre @ np.linalg.inv(info) @ centre
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        z = float(norm.ppf(0.5 + self.confidence / 2))
        self.items_ = items
        self.n_iter_ = iteration
        self.converged_ = converged
        self.scores_ = dict(zip(items, theta.tolist(), strict=True))
        self.se_ = dict(zip(items, se.tolist(), strict=True))
        self.ci_ = {item: (s - z * e, s + z * e)
                    for item, s, e in zip(items, theta.tolist(), se.tolist(), strict=True)}
        order = np.argsort(-theta, kind="stable")
        self.ranking_ = [items[i] for i in order.tolist()]
        return self


def _information(theta: np.ndarray, first: np.ndarray, second: np.ndarray,
                 total: np.ndarray, prior: float) -> np.ndarray:
    """Observed (= expected) information of the penalised log-likelihood."""
    m = theta.size
    p = expit(theta[first] - theta[second])
    h = total * p * (1 - p)
    info = prior * np.eye(m)
    np.add.at(info, (first, first), h)
    np.add.at(info, (second, second), h)
    np.add.at(info, (first, second), -h)
    np.add.at(info, (second, first), -h)
    return info
