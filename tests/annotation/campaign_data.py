"""Builders shared by the campaign tests: a project with signals, guidelines, raters
(users with memberships) and interactions with known properties."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from feedbackloop.access.service import create_user, grant
from feedbackloop.annotation.guidelines import create_guideline
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store

START = datetime(2025, 6, 2, tzinfo=UTC)
RATERS = ("ann", "bob", "cat", "dan")


def make_project(store: Store, settings: Settings, *, n: int = 40, name: str = "shop",
                 raters: Sequence[str] = RATERS, role: str = "annotator",
                 versions: Sequence[str] = ("v1", "v2")) -> Project:
    """A project with signals ``quality`` (ordinal 1-5), ``thumbs`` (binary), ``topic``
    (categorical), ``note`` (text), ``pref`` (pairwise), ``score`` (numeric metric), a
    guideline on each, and ``n`` interactions ``i000``... alternating model versions,
    locale ``de`` on every third."""
    project = create_project(store, name)
    for spec in (SignalIn(name="quality", type="ordinal", scale_min=1, scale_max=5),
                 SignalIn(name="thumbs", type="binary"),
                 SignalIn(name="topic", type="categorical", labels=["billing", "shipping",
                                                                     "other"]),
                 SignalIn(name="note", type="text"),
                 SignalIn(name="pref", type="pairwise"),
                 SignalIn(name="score", type="numeric", scale_min=0, scale_max=1)):
        create_signal(store, project, spec)
        create_guideline(store, project, spec.name, f"# How to judge {spec.name}")
    for r in raters:
        create_user(store, r, "password-123")
        grant(store, r, project.id, role)
    if n:
        add_interactions(store, settings, project, n, versions=versions)
    return project


def add_interactions(store: Store, settings: Settings, project: Project, n: int, *,
                     start: int = 0, versions: Sequence[str] = ("v1", "v2"),
                     same_input: bool = False) -> None:
    records = [{"id": f"i{k:03d}", "timestamp": (START + timedelta(minutes=k)).isoformat(),
                "input": f"question {k // len(versions) if same_input else k}",
                "output": f"answer {k}", "model_version": versions[k % len(versions)],
                "attributes": {"locale": "de" if k % 3 == 0 else "en"}}
               for k in range(start, start + n)]
    assert Ingestor(store, settings, project).interactions(records).rejected == 0


def add_feedback(store: Store, settings: Settings, project: Project,
                 records: list[dict[str, Any]]) -> None:
    result = Ingestor(store, settings, project).feedback(records)
    assert result.rejected == 0, result.errors()
