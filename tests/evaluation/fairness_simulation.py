"""A project with known cohort truth, for the fairness tests (service, CLI, pages).

Interactions carry ``locale`` (en 50%, de 30%, fr 20%; every 50th has none) and come from
version ``v1`` or ``v2`` (half each). End users give a thumbs (``thumbs``, binary) on a
share of them — 60% in en and fr, 30% in de — approving with probability 0.7, except
``v2`` in ``de`` at 0.5: a regression of 0.2 in one cohort, and an impact ratio of
0.5 / 0.7 ≈ 0.71 there. A 1-5 ``rating`` (ordinal) on the same items has mean 4 (3.4 for v2
in de). An automated ``judge`` (binary) predicts the thumbs, right 85% of the time (65% in
fr). Every interaction is its own user, so the giving rate per cohort is the thumbs share.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings, load_settings
from feedbackloop.store import Store

from ..conftest import _pg_database

START = datetime(2026, 1, 5, tzinfo=UTC)
LOCALES = np.array(["en", "de", "fr"])
SHARES = {"en": 0.5, "de": 0.3, "fr": 0.2}
GIVING = {"en": 0.6, "de": 0.3, "fr": 0.6}
APPROVE = 0.7
APPROVE_V2_DE = 0.5


@dataclass
class FairnessSim:
    project: Project
    locale: np.ndarray  # "" when the interaction has no locale
    version: np.ndarray
    rated: np.ndarray
    approved: np.ndarray
    judge: np.ndarray


def simulate_fairness(store: Store, settings: Settings, *, n: int = 2400, seed: int = 17,
                      name: str = "fair") -> FairnessSim:
    rng = np.random.default_rng(seed)
    project = create_project(store, name)
    for spec in (SignalIn(name="thumbs", type="binary"),
                 SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5),
                 SignalIn(name="judge", type="binary"),
                 SignalIn(name="topic", type="categorical", labels=["a", "b"])):
        create_signal(store, project, spec)
    locale = rng.choice(LOCALES, size=n, p=[SHARES[c] for c in LOCALES])
    locale[::50] = ""
    version = np.where(np.arange(n) % 2 == 0, "v1", "v2")
    drop = (version == "v2") & (locale == "de")
    giving = np.array([GIVING.get(c, 0.6) for c in locale])
    rated = rng.random(n) < giving
    approved = rng.random(n) < np.where(drop, APPROVE_V2_DE, APPROVE)
    rating = np.clip(np.rint(rng.normal(np.where(drop, 3.4, 4.0), 0.8)), 1, 5)
    right = rng.random(n) < np.where(locale == "fr", 0.65, 0.85)
    judge = np.where(right, approved, ~approved)
    records = []
    for i in range(n):
        rec = {"id": f"f{i:05d}", "timestamp": (START + timedelta(minutes=i)).isoformat(),
               "input": f"q {i}", "output": f"a {i}", "model_version": str(version[i]),
               "user_id": f"user-{i}"}
        if locale[i]:
            rec["attributes"] = {"locale": str(locale[i]), "tier": int(i % 3),
                                 "beta": bool(i % 2), "id": f"x{i}"}
        records.append(rec)
    ing = Ingestor(store, settings, project)
    assert ing.interactions(records).rejected == 0
    fb = []
    for i in np.flatnonzero(rated):
        cid = f"f{i:05d}"
        fb += [{"id": f"t-{i}", "interaction_id": cid, "signal": "thumbs",
                "value": bool(approved[i]), "source": "end_user", "rater_id": f"user-{i}"},
               {"id": f"r-{i}", "interaction_id": cid, "signal": "rating",
                "value": float(rating[i]), "source": "end_user", "rater_id": f"user-{i}"},
               {"id": f"j-{i}", "interaction_id": cid, "signal": "judge",
                "value": bool(judge[i]), "source": "automated"}]
    assert ing.feedback(fb).rejected == 0
    return FairnessSim(project, locale, version, rated, approved, judge)


def shared_simulation(kind: str, tmp: Path, pg_template: str | None
                      ) -> Iterator[tuple[str, Store, FairnessSim]]:
    """One simulated project in a fresh database (``kind`` sqlite or postgres) for a whole
    test module that only reads it: yields (url, store, sim)."""
    urls: Iterator[str] | None = None
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'fl.db'}"
    else:
        urls = _pg_database(pg_template)
        url = next(urls)
    store = Store.from_url(url)
    if kind == "sqlite":
        store.migrate()
    settings = load_settings(data_dir=str(tmp / "data"), database_url=url,
                             pseudonym_key="test-pseudonym-key")
    try:
        yield url, store, simulate_fairness(store, settings)
    finally:
        store.dispose()
        if urls is not None:
            for _ in urls:  # drops the database
                pass
