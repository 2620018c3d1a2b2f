"""``reranker``: best-of-n selection served as a version of the ``ranking`` component.

Given a prompt and n candidate outputs, the reranker serves the candidate with the highest
reward (its predictor's ``choose`` returns that index). The reward comes from a
Bradley-Terry reward model: trained here on the preference dataset (the same model as
``reward-model``), or, with ``reward_model=NAME``, taken from that version of the
``reward`` component (its artifact, checked against its hash) so that an already
evaluated reward model is put into service unchanged.

Metrics: the held-out report of the reward model (pairwise accuracy, i.e. best-of-2
choices, beside the zero-label baselines) and, on held-out prompts with at least three
distinct candidates, how often the choice is a response that was never rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from ...errors import InvalidInput
from ..artifacts import fetch
from ..features import TextFeatures
from ..registry import get_version
from .base import TrainContext, TrainOutput, canonical_json
from .reward import FORMAT as REWARD_FORMAT
from .reward import RewardModel, RewardModelTrainer, held_out_report

__all__ = ["Reranker", "RerankerTrainer"]

FORMAT = "feedbackloop/reranker"


class Reranker:
    kind = "reranker"

    def __init__(self, reward: RewardModel, source: str | None) -> None:
        self.reward = reward
        self.source = source

    def choose(self, prompt: str, candidates: Sequence[str]) -> int:
        return self.reward.choose(prompt, candidates)

    def score(self, prompt: str, response: str) -> float:
        return self.reward.score(prompt, response)

    def predict(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """``{"prompt", "candidates"}`` → ``{"choice", "scores"}``."""
        if "candidates" not in item:
            raise InvalidInput("a reranker predicts from a 'prompt' and its 'candidates'",
                               field="candidates")
        return self.reward.predict(item)


def _never_rejected_rate(reward: RewardModel, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from ...stats.intervals import wilson_interval

    by_prompt: dict[str, tuple[dict[str, None], set[str]]] = {}
    for row in rows:
        cands, rejected = by_prompt.setdefault(row["prompt"], ({}, set()))
        cands[row["chosen"]] = None
        cands[row["rejected"]] = None
        rejected.add(row["rejected"])
    hits = n = 0
    for prompt, (cands, rejected) in by_prompt.items():
        if len(cands) < 3:
            continue
        listed = list(cands)
        pick = listed[reward.choose(prompt, listed)]
        n += 1
        hits += pick not in rejected
    est = wilson_interval(hits, n)
    return {"value": est.value, "ci95": list(est.ci) if est.ci else None, "n": n,
            "method": "wilson", "reason": est.reason}


class RerankerTrainer(RewardModelTrainer):
    name = "reranker"
    tasks = ("preference",)
    component = "ranking"
    params: dict[str, Any] = {**RewardModelTrainer.params, "reward_model": None}

    def fit(self, ctx: TrainContext) -> TrainOutput:
        source = ctx.params.get("reward_model")
        if source is not None:
            if not isinstance(source, str):
                raise InvalidInput("parameter 'reward_model' is the name of a version of the "
                                   "'reward' component", field="reward_model")
            with ctx.store.read() as conn:
                version = get_version(conn, ctx.project, "reward", source)
            if version.artifact_uri is None or version.artifact_hash is None:
                raise InvalidInput(f"reward model {source!r} has no artifact",
                                   field="reward_model")
            inner = orjson.loads(fetch(version.artifact_uri, version.artifact_hash,
                                       version=f"reward/{source}"))
            if inner.get("format") != REWARD_FORMAT:
                raise InvalidInput(f"version {source!r} of 'reward' is not a reward model",
                                   field="reward_model")
            features = TextFeatures.from_dict(inner["features"],
                                              cache_dir=ctx.params.get("cache_dir"))
            weights = np.asarray(inner["weights"], dtype=np.float64)
            metrics: dict[str, Any] = {"reward_model": source,
                                       "held_out": held_out_report(features, weights, ctx)}
        else:
            features, weights, metrics = self.fit_weights(ctx)
            inner = orjson.loads(self.artifact(features, weights, ctx))
        held = ctx.split("test") or ctx.split("validation")
        metrics["best_of_n_never_rejected"] = _never_rejected_rate(
            RewardModel(features, weights), held)
        features.close()
        data = canonical_json({"format": FORMAT, "format_version": 1, "reward_model": source,
                               "reward": inner})
        return TrainOutput(data, metrics, description="best-of-n reranker over a "
                                                      "Bradley-Terry reward model")

    def load(self, data: bytes) -> Reranker:  # type: ignore[override]
        doc = orjson.loads(data)
        if doc.get("format") != FORMAT:
            raise InvalidInput(f"not a reranker artifact (format {doc.get('format')!r})",
                               field="artifact")
        return Reranker(RewardModel.from_artifact(doc["reward"]), doc.get("reward_model"))
