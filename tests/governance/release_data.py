"""A project ready for a release: component ``assistant`` with v1 live (promoted while the
project was low risk, then the tier raised), v2 a candidate, users who may sign, and an
A/B experiment v1 vs v2 with logged thumbs whose true rates are known."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select

from feedbackloop.access.service import grant
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal, get_project
from feedbackloop.capture.schema import SignalIn
from feedbackloop.experiments import create_experiment, start_experiment
from feedbackloop.governance.policy import set_policy
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.store import Store, tables

DESIGN: dict[str, Any] = {
    "arms": [{"name": "control", "version": "v1", "weight": 0.5},
             {"name": "treatment", "version": "v2", "weight": 0.5}],
    "primary": {"metric": "thumbs"}, "mde": 0.1, "baseline": 0.3}
PASSWORD = "correct horse battery"
PEOPLE = {"mia": "maintainer", "max": "maintainer", "eva": "expert", "val": "viewer",
          "ann": "annotator"}


@functools.cache
def password_hash() -> str:
    """PASSWORD hashed once for every test user (hashing is deliberately slow)."""
    from feedbackloop.access.service import _hasher

    return str(_hasher.hash(PASSWORD))


def release_project(store: Store, tier: str = "medium", *, name: str = "shop") -> Project:
    p = create_project(store, name, risk_tier="low")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    for v in ("v1", "v2", "v3"):
        reg.register_version(store, p, "assistant", v, created_by="mia")
    reg.promote(store, p, "assistant", "v1", actor="mia")
    if tier != "low":
        set_policy(store, p, risk_tier=tier, actor="admin")
    for user, role in PEOPLE.items():
        with store.transaction() as conn:
            known = conn.execute(select(tables.users.c.id).where(
                tables.users.c.username == user)).first()
            if known is None:
                conn.execute(tables.users.insert().values(
                    username=user, password_hash=password_hash(), is_superuser=False,
                    created_at=datetime.now(UTC)))
        grant(store, user, p.id, role)
    with store.read() as conn:
        return get_project(conn, p.id)


def run_experiment(store: Store, settings: Settings, project: Project, *,
                   rates: tuple[float, float] = (0.3, 0.7), n: int = 160, seed: int = 1,
                   name: str = "tone", start: bool = True) -> None:
    """``n`` users split between v1 and v2, each with one thumbs of the arm's true rate;
    every user has a ``region`` (north/south)."""
    create_experiment(store, project, name, design=DESIGN, component="assistant",
                      created_by="mia")
    if not start:
        return
    start_experiment(store, project, name)
    rng = np.random.default_rng(seed)
    inter, fb = [], []
    for i in range(n):
        arm = i % 2
        inter.append({"id": f"{name}-i{i}", "input": "q", "output": "a", "user_id": f"u{i}",
                      "experiment": name, "arm": ("control", "treatment")[arm],
                      "model_version": ("v1", "v2")[arm],
                      "attributes": {"region": ("north", "south")[(i // 2) % 2]}})
        fb.append({"id": f"{name}-f{i}", "interaction_id": f"{name}-i{i}", "signal": "thumbs",
                   "value": bool(rng.random() < rates[arm])})
    ing = Ingestor(store, settings, project)
    assert ing.interactions(inter).rejected == 0
    assert ing.feedback(fb).rejected == 0
