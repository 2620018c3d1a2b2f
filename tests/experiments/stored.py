"""Fixtures for the stored-experiment tests: a project with one signal of every type, and
logging of interactions and feedback through the real ingest path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal, get_project
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store

DESIGN: dict[str, Any] = {
    "arms": [{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
    "primary": {"metric": "thumbs"},
    "guardrails": [{"metric": "rating", "allowed_change": 0.5}],
    "mde": 0.05, "baseline": 0.3}


def shop(store: Store) -> Project:
    """Project ``shop`` with thumbs (binary), rating (ordinal 1-5), issue (categorical),
    note (text) and pref (pairwise)."""
    p = create_project(store, "shop")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1,
                                     scale_max=5))
    create_signal(store, p, SignalIn(name="issue", type="categorical",
                                     labels=["solved", "unsolved", "rude"]))
    create_signal(store, p, SignalIn(name="note", type="text"))
    create_signal(store, p, SignalIn(name="pref", type="pairwise"))
    return p


def log(store: Store, settings: Settings, interactions: Sequence[dict[str, Any]],
        feedback: Sequence[dict[str, Any]] = ()) -> None:
    """Store records through the Ingestor (validated, pseudonymised), failing on any
    rejection."""
    with store.read() as conn:
        p = get_project(conn, "shop")
    ing = Ingestor(store, settings, p)
    if interactions:
        res = ing.interactions(list(interactions))
        assert res.rejected == 0, res.errors
    if feedback:
        res = ing.feedback(list(feedback))
        assert res.rejected == 0, res.errors
