"""A small provenance chain for the audit, provenance and case-study tests: feedback → a
finding → a dataset (with row lineage) → model version v2 → an experiment v1 vs v2 → a gate
→ a release of v2.

Findings, gates and releases are written straight into their tables (their services belong
to other modules), in the shapes those services store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal, get_project
from feedbackloop.capture.schema import SignalIn
from feedbackloop.experiments.service import create_experiment
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import (
    dataset_lineage,
    datasets,
    feedback,
    finding_feedback,
    findings,
    gates,
    releases,
)


@dataclass
class Chain:
    project: Project
    feedback_ids: list[int]
    finding_id: int
    dataset_id: int
    v1_id: int
    v2_id: int
    experiment_id: int
    gate_id: int
    release_id: int


def build_chain(store: Store, settings: Settings, *, name: str = "shop",
                comment: str = "too slow") -> Chain:
    p = create_project(store, name, risk_tier="low")  # v1 goes live by a plain promotion
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    ing = Ingestor(store, settings, p)
    res = ing.interactions([{"id": f"i{i}", "input": f"q{i}", "output": f"a{i}",
                             "user_id": f"u{i}", "model_version": "v1", "consent": True}
                            for i in range(4)])
    assert res.rejected == 0, res.errors
    res = ing.feedback([{"id": f"f{i}", "interaction_id": f"i{i}", "signal": "thumbs",
                         "value": i % 2 == 1, "comment": comment if i == 0 else None}
                        for i in range(4)])
    assert res.rejected == 0, res.errors
    now = utcnow()
    with store.transaction() as conn:
        fb = [int(r.id) for r in conn.execute(select(feedback.c.id).where(
            feedback.c.project_id == p.id).order_by(feedback.c.id))]
        finding_id = int(conn.execute(findings.insert().values(
            project_id=p.id, title="Answers are slow", description="", status="in_progress",
            created_by="ana", created_at=now, updated_at=now, severity=3, effort=2.0,
            risk=2, confidence=0.8, priority=1.2, reach_users=2,
            reach_interactions=2)).inserted_primary_key[0])  # type: ignore[index]
        conn.execute(finding_feedback.insert(), [{"finding_id": finding_id, "feedback_id": f}
                                                 for f in fb[:2]])
        dataset_id = int(conn.execute(datasets.insert().values(
            project_id=p.id, name="prefs", version=1, recipe="preference", params={},
            content_hash="0" * 64, counts={"rows": 2}, card={}, created_by="ana",
            created_at=now)).inserted_primary_key[0])  # type: ignore[index]
        conn.execute(dataset_lineage.insert(), [{"dataset_id": dataset_id, "feedback_id": f}
                                                for f in fb[:3]])
    from feedbackloop.governance.provenance import link

    with store.transaction() as conn:
        link(conn, p.id, "finding", finding_id, "dataset", dataset_id, "addresses", "ana")
    v1 = reg.register_version(store, p, "ranking", "v1", metrics={"ndcg": 0.61},
                              created_by="ana")
    reg.promote(store, p, "ranking", "v1", actor="ana")
    v2 = reg.register_version(store, p, "ranking", "v2", dataset_ids=[dataset_id],
                              metrics={"ndcg": 0.66}, parent="v1", created_by="ana")
    design: dict[str, Any] = {
        "arms": [{"name": "control", "version": "v1"}, {"name": "treatment", "version": "v2"}],
        "primary": {"metric": "thumbs"}, "mde": 0.05, "baseline": 0.3}
    exp = create_experiment(store, p, "faster", design=design, component="ranking",
                            created_by="ana")
    with store.transaction() as conn:
        gate_id = int(conn.execute(gates.insert().values(
            project_id=p.id, component="ranking", model_version_id=v2.id,
            experiment_id=exp.id, criteria=[{"name": "primary_metric"}],
            result=[{"name": "primary_metric", "passed": True,
                     "evidence": "+4.0 pp [1.0, 7.0]"}],
            status="passed", risk_tier="medium", created_by="ana", created_at=now,
            evaluated_at=now)).inserted_primary_key[0])  # type: ignore[index]
        release_id = int(conn.execute(releases.insert().values(
            project_id=p.id, component="ranking", model_version_id=v2.id, gate_id=gate_id,
            rollback_to_id=v1.id, status="released", case_study={}, released_by="bo",
            released_at=now)).inserted_primary_key[0])  # type: ignore[index]
    with store.read() as conn:
        p = get_project(conn, p.id)
    return Chain(p, fb, finding_id, dataset_id, v1.id, v2.id, exp.id, gate_id, release_id)
