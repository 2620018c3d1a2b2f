"""``reward-model``: a Bradley-Terry reward model on text features.

The reward of a response to a prompt is linear in its features, r(p, y) = w · phi(p, y)
with phi = [response vector, relevance, log length] (:mod:`..features`). Bradley-Terry
(1952) says the chosen response beats the rejected one with probability
sigma(r(p, chosen) - r(p, rejected)) = sigma(w · (phi_c - phi_r)), so w is a logistic
regression *without intercept* on the feature differences. Each pair enters once, with its
difference's sign flipped at random (seeded), which gives the regression both classes
without doubling the data; the likelihood is unchanged by the flip.

Metrics: pairwise accuracy on the dataset's held-out ``test`` split (``validation`` when
there is no test split) with the Wilson 95 % interval, beside two zero-label baselines
measured on the same pairs: *longer answer wins* and *relevance only* (the response whose
vector is closer to the prompt's wins). Ties are broken by a seeded coin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from ...errors import InvalidInput
from ...stats.intervals import wilson_interval
from ..features import TextFeatures, pair_features, preference_features, resolve_kind
from .base import TrainContext, TrainOutput, canonical_json, floats, texts

__all__ = ["RewardModel", "RewardModelTrainer", "fit_bradley_terry", "pairwise_accuracy"]

FORMAT = "feedbackloop/reward-model"


def _param(params: Mapping[str, Any], key: str, kind: type, *, low: float | None = None,
           choices: Sequence[Any] | None = None) -> Any:
    value: Any = params[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise InvalidInput(f"parameter {key!r} must be {kind.__name__}, not {value!r}",
                           field=key)
    number: Any = value
    if low is not None and number < low:
        raise InvalidInput(f"parameter {key!r} must be at least {low}, not {value!r}",
                           field=key)
    if choices is not None and value not in choices:
        raise InvalidInput(f"parameter {key!r} must be one of "
                           f"{', '.join(map(str, choices))}, not {value!r}", field=key)
    return value


def _sign_flip(x: Any, seed: int) -> tuple[Any, np.ndarray]:
    """Each row's sign flipped by a seeded coin; y = 1 where it was kept. Both classes are
    always present (row 0 is flipped the other way if the coin gave one class)."""
    n = x.shape[0]
    keep = np.random.default_rng(seed).random(n) < 0.5
    if n >= 2 and (keep.all() or not keep.any()):
        keep[0] = not keep[0]
    sign = np.where(keep, 1.0, -1.0)
    flipped = sparse.diags(sign) @ x if sparse.issparse(x) else x * sign[:, None]
    return flipped, keep.astype(np.int64)


def fit_bradley_terry(diff: Any, *, C: float, seed: int, max_iter: int = 1000) -> np.ndarray:
    """w of the Bradley-Terry model from the rows phi(chosen) - phi(rejected)."""
    from sklearn.linear_model import LogisticRegression

    if diff.shape[0] < 2:
        raise InvalidInput("a reward model needs at least 2 training pairs",
                           field="dataset")
    x, y = _sign_flip(diff, seed)
    model = LogisticRegression(fit_intercept=False, C=C, max_iter=max_iter, solver="lbfgs",
                               tol=1e-6)
    model.fit(x, y)
    return np.asarray(model.coef_, dtype=np.float64).ravel()


def pairwise_accuracy(margin: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """How often the chosen response wins (margin > 0; a tie by a coin), Wilson 95 %."""
    wins = margin > 0
    ties = margin == 0
    coin = rng.random(margin.shape[0]) < 0.5
    successes = int((wins | (ties & coin)).sum())
    est = wilson_interval(successes, int(margin.shape[0]))
    return {"value": est.value, "ci95": list(est.ci) if est.ci else None, "n": est.n,
            "method": "wilson", "ties": int(ties.sum())}


class RewardModel:
    """A loaded reward model: ``score`` a response, ``choose`` the best of candidates."""

    kind = "reward-model"

    def __init__(self, features: TextFeatures, weights: np.ndarray) -> None:
        self.features = features
        self.weights = weights

    @classmethod
    def from_artifact(cls, data: dict[str, Any]) -> RewardModel:
        if data.get("format") != FORMAT:
            raise InvalidInput(f"not a reward-model artifact (format {data.get('format')!r})",
                               field="artifact")
        return cls(TextFeatures.from_dict(data["features"]),
                   np.asarray(data["weights"], dtype=np.float64))

    def score_many(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        phi, _ = pair_features(self.features, prompts, responses)
        return np.asarray(phi @ self.weights, dtype=np.float64).ravel()

    def score(self, prompt: str, response: str) -> float:
        return float(self.score_many([prompt], [response])[0])

    def choose(self, prompt: str, candidates: Sequence[str]) -> int:
        """Index of the highest-reward candidate (the first of equals)."""
        if not candidates:
            raise InvalidInput("choose needs at least one candidate", field="candidates")
        scores = self.score_many([prompt] * len(candidates), list(candidates))
        return int(np.argmax(scores))

    def predict(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``{"prompt", "response"}`` → ``{"score"}``; ``{"prompt", "candidates"}`` →
        ``{"choice", "scores"}``."""
        prompt = item.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidInput("predict needs a text 'prompt'", field="prompt")
        if "candidates" in item:
            cands = item["candidates"]
            if not isinstance(cands, list) or not cands \
                    or not all(isinstance(c, str) for c in cands):
                raise InvalidInput("'candidates' must be a non-empty list of texts",
                                   field="candidates")
            scores = self.score_many([prompt] * len(cands), cands)
            return {"choice": int(np.argmax(scores)), "scores": floats(scores)}
        response = item.get("response")
        if not isinstance(response, str):
            raise InvalidInput("predict needs a text 'response' or a list 'candidates'",
                               field="response")
        return {"score": self.score(prompt, response)}


def _pairs(rows: list[dict[str, Any]], where: str) -> tuple[list[str], list[str], list[str]]:
    return (texts(rows, "prompt", where), texts(rows, "chosen", where),
            texts(rows, "rejected", where))


def held_out_report(features: TextFeatures, weights: np.ndarray, ctx: TrainContext
                    ) -> dict[str, Any]:
    """Accuracy of the model and of the zero-label baselines on the held-out pairs."""
    split = "test" if ctx.split("test") else "validation" if ctx.split("validation") else None
    if split is None:
        return {"split": None, "reason": "the dataset has no test or validation rows"}
    prompts, chosen, rejected = _pairs(ctx.split(split), f"{ctx.dataset.label} {split}")
    diff, rel_c, rel_r = preference_features(features, prompts, chosen, rejected)
    margin = np.asarray(diff @ weights, dtype=np.float64).ravel()
    rng = np.random.default_rng(ctx.seed + 1)
    length = np.array([len(c) - len(r) for c, r in zip(chosen, rejected, strict=True)],
                      dtype=np.float64)
    model = pairwise_accuracy(margin, rng)
    baselines = {"longer_wins": pairwise_accuracy(length, rng),
                 "relevance_only": pairwise_accuracy(rel_c - rel_r, rng)}
    best = max(float(b["value"]) for b in baselines.values())
    return {"split": split, "pairs": len(prompts), "prompts": len(set(prompts)),
            "accuracy": model, "baselines": baselines,
            "beats_baselines": bool(model["value"] > best)}


class RewardModelTrainer:
    name = "reward-model"
    tasks = ("preference",)
    component = "reward"
    params: dict[str, Any] = {"features": "auto", "C": 1.0, "max_features": 20_000,
                              "max_iter": 1000, "cache_dir": None, "batch_size": 64}

    def fit_weights(self, ctx: TrainContext) -> tuple[TextFeatures, np.ndarray, dict[str, Any]]:
        p = ctx.params
        kind = resolve_kind(_param(p, "features", str))
        c_value = _param(p, "C", float)
        if c_value <= 0:
            raise InvalidInput(f"parameter 'C' must be positive, not {c_value!r}", field="C")
        max_features = _param(p, "max_features", int, low=1)
        max_iter = _param(p, "max_iter", int, low=1)
        batch_size = _param(p, "batch_size", int, low=1)
        cache_dir = p["cache_dir"]
        if cache_dir is not None and not isinstance(cache_dir, str):
            raise InvalidInput("parameter 'cache_dir' must be a folder path", field="cache_dir")
        rows = ctx.split("train")
        if len(rows) < 2:
            raise InvalidInput(f"dataset {ctx.dataset.label} has {len(rows)} training "
                               "pair(s); a reward model needs at least 2", field="dataset")
        prompts, chosen, rejected = _pairs(rows, f"{ctx.dataset.label} train")
        ctx.progress("features", 0, 3)
        features = TextFeatures.fit(kind, [*prompts, *chosen, *rejected],
                                    max_features=max_features, cache_dir=cache_dir,
                                    batch_size=batch_size)
        diff, _, _ = preference_features(features, prompts, chosen, rejected)
        ctx.progress("fit", 1, 3)
        weights = fit_bradley_terry(diff, C=c_value, seed=ctx.seed, max_iter=max_iter)
        train_margin = np.asarray(diff @ weights).ravel()
        ctx.progress("evaluate", 2, 3)
        metrics = {"features": kind, "dim": int(diff.shape[1]), "train_pairs": len(rows),
                   "train_accuracy": float(np.mean(train_margin > 0)),
                   "held_out": held_out_report(features, weights, ctx),
                   "weights": {"relevance": float(weights[-2]),
                               "log_chars": float(weights[-1])}}
        ctx.progress("evaluate", 3, 3)
        return features, weights, metrics

    def artifact(self, features: TextFeatures, weights: np.ndarray, ctx: TrainContext
                 ) -> bytes:
        return canonical_json({"format": FORMAT, "format_version": 1,
                               "features": features.to_dict(), "weights": floats(weights),
                               "seed": ctx.seed, "C": float(ctx.params["C"])})

    def fit(self, ctx: TrainContext) -> TrainOutput:
        features, weights, metrics = self.fit_weights(ctx)
        try:
            data = self.artifact(features, weights, ctx)
        finally:
            features.close()
        held = metrics["held_out"]
        acc = held.get("accuracy", {}).get("value")
        text = f"held-out pairwise accuracy {acc:.3f}" if acc is not None else "no held-out"
        return TrainOutput(data, metrics, description=f"Bradley-Terry reward model "
                                                      f"({metrics['features']}); {text}")

    def load(self, data: bytes) -> RewardModel:
        import orjson

        return RewardModel.from_artifact(orjson.loads(data))
