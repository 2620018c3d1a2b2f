"""A simulated project with known truth, for the evaluation tests and the demo of the page.

Every interaction has a latent human approval (true rate ``APPROVAL``); the metric
``score`` is normal with mean ``SHIFT`` on approved items and 0 on the others, so its
AUROC is Φ(SHIFT/√2); ``noise`` is unrelated to approval. A random ``LABELLED`` share of
the items carries a human thumbs judgement (some twice, by two raters who agree), so the
labelled subset is a random sample of the traffic. A numeric pair (``quality`` from a
human and ``judge`` from a metric) is bivariate normal with correlation ``RHO``, whose
Spearman and Kendall correlations are known in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store

APPROVAL = 0.3
SHIFT = 1.0
RHO = 0.6
LABELLED = 0.25
START = datetime(2025, 3, 3, tzinfo=UTC)

TRUE_AUROC = 0.5 * (1 + math.erf(SHIFT / math.sqrt(2) / math.sqrt(2)))  # Φ(SHIFT/√2)
TRUE_SPEARMAN = 6 / math.pi * math.asin(RHO / 2)
TRUE_KENDALL = 2 / math.pi * math.asin(RHO)


@dataclass
class Simulated:
    project: Project
    n: int
    approved: np.ndarray  # the truth for every interaction
    labelled: np.ndarray  # which interactions carry a human judgement
    score: np.ndarray  # the metric's value on every interaction


def simulate(store: Store, settings: Settings, n: int = 4000, seed: int = 7,
             name: str = "sim") -> Simulated:
    rng = np.random.default_rng(seed)
    project = create_project(store, name)
    for spec in (SignalIn(name="thumbs", type="binary"),
                 SignalIn(name="score", type="numeric"),
                 SignalIn(name="noise", type="numeric"),
                 SignalIn(name="quality", type="numeric"),
                 SignalIn(name="judge", type="numeric")):
        create_signal(store, project, spec)
    approved = rng.random(n) < APPROVAL
    score = rng.normal(size=n) + SHIFT * approved
    noise = rng.normal(size=n)
    quality = rng.normal(size=n)
    judge = RHO * quality + math.sqrt(1 - RHO**2) * rng.normal(size=n)
    labelled = rng.random(n) < LABELLED
    ing = Ingestor(store, settings, project)
    records = [{"id": f"s{i:05d}", "timestamp": (START + timedelta(minutes=i)).isoformat(),
                "input": f"question {i}", "output": f"answer {i}",
                "model_version": "v1" if i % 2 else "v2",
                "attributes": {"locale": "de" if i % 3 == 0 else "en"}}
               for i in range(n)]
    assert ing.interactions(records).rejected == 0
    fb = []
    for i in range(n):
        cid = f"s{i:05d}"
        fb += [{"id": f"score-{i}", "interaction_id": cid, "signal": "score",
                "value": float(score[i]), "source": "automated"},
               {"id": f"noise-{i}", "interaction_id": cid, "signal": "noise",
                "value": float(noise[i]), "source": "automated"},
               {"id": f"judge-{i}", "interaction_id": cid, "signal": "judge",
                "value": float(judge[i]), "source": "automated"}]
        if labelled[i]:
            fb.append({"id": f"thumbs-{i}", "interaction_id": cid, "signal": "thumbs",
                       "value": bool(approved[i]), "source": "annotator", "rater_id": "r1"})
            fb.append({"id": f"quality-{i}", "interaction_id": cid, "signal": "quality",
                       "value": float(quality[i]), "source": "expert"})
            if i % 5 == 0:
                fb.append({"id": f"thumbs2-{i}", "interaction_id": cid, "signal": "thumbs",
                           "value": bool(approved[i]), "source": "annotator",
                           "rater_id": "r2"})
    for start in range(0, len(fb), 5000):
        assert ing.feedback(fb[start:start + 5000]).rejected == 0
    return Simulated(project, n, approved, labelled, score)
