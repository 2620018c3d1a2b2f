"""Case studies on SQLite and PostgreSQL: what changed, why (linked findings with their
feedback counts), the evidence (gate, sign-offs, the experiment's decision) and what
happened after (feedback on the new version vs the old, Wilson intervals; monitoring
stated as not available yet)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.errors import NotFound
from feedbackloop.governance.case_study import (
    MONITORING_NOTE,
    build_case_study,
    case_study_markdown,
)
from feedbackloop.settings import Settings
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import experiment_decisions, releases, signoffs

from .chain import build_chain


def test_case_study_of_a_release(store: Store, settings: Settings) -> None:
    c = build_chain(store, settings)
    now = utcnow()
    with store.transaction() as conn:
        conn.execute(signoffs.insert().values(gate_id=c.gate_id, actor="bo", role="maintainer",
                                              capacity="maintainer", decision="approve",
                                              comment="<b>ok</b>", created_at=now))
        conn.execute(experiment_decisions.insert().values(
            experiment_id=c.experiment_id, decision="ship", arm="treatment",
            rationale="faster, no guardrail moved", decided_by="ana", created_at=now,
            analysis={"primary": {"metric": "thumbs", "comparisons": [
                {"arm": "treatment", "control": "control", "n": 400, "method": "Welch t",
                 "absolute": {"estimable": True, "estimate": 0.04, "ci95": [0.01, 0.07],
                              "p_value": 0.008},
                 "sequential": {"estimable": True, "method": "asymptotic-cs",
                                "ci95": [0.0, 0.08], "p_value": 0.04}}]}}))
        # Released an hour ago; v1 served the hour before, v2 the hour since.
        conn.execute(update(releases).where(releases.c.id == c.release_id)
                     .values(released_at=now - timedelta(hours=1)))
    ing = Ingestor(store, settings, c.project)
    stamp = now - timedelta(minutes=30)
    res = ing.interactions([{"id": f"n{i}", "input": "q", "output": "a", "model_version": "v2",
                             "timestamp": stamp.isoformat()} for i in range(10)])
    assert res.rejected == 0, res.errors
    res = ing.feedback([{"id": f"nf{i}", "interaction_id": f"n{i}", "signal": "thumbs",
                         "value": i != 0} for i in range(4)])
    assert res.rejected == 0, res.errors

    with store.read() as conn:
        study = build_case_study(conn, c.project.id, c.release_id)
    rel = study["release"]
    assert (rel["version"], rel["rollback_to"], rel["status"]) == ("v2", "v1", "released")
    changed = study["what_changed"]
    assert changed["version"]["datasets"] == ["prefs@1"]
    assert changed["metric_changes"] == [{"metric": "ndcg", "before": 0.61, "after": 0.66,
                                          "change": pytest.approx(0.05)}]
    (finding,) = study["why"]["findings"]
    assert (finding["id"], finding["feedback_count"]) == (c.finding_id, 2)
    ev = study["evidence"]
    assert ev["gate"]["status"] == "passed" and ev["signoffs"][0]["actor"] == "bo"
    assert ev["experiment"]["decision"]["arm"] == "treatment"
    assert ev["experiment"]["primary"][0]["ci95"] == [0.01, 0.07]
    after = study["after"]
    assert after["monitoring"] == {"available": False, "reason": MONITORING_NOTE}
    new = after["new_since_release"]
    assert new["interactions"] == 10 and new["feedback_rate"]["n"] == 10
    assert new["feedback_rate"]["value"] == pytest.approx(0.4)
    # Wilson's score interval for 4/10 at 95 %: (0.1682, 0.6873) from the closed form
    # (centre (x + z²/2)/(n + z²), z = 1.95996).
    lo, hi = new["feedback_rate"]["ci95"]
    assert lo == pytest.approx(0.1682, abs=1e-4) and hi == pytest.approx(0.6873, abs=1e-4)
    assert new["negative_share"]["value"] == pytest.approx(0.25)
    before = after["previous_before_release"]
    assert before["version"] == "v1" and before["interactions"] == 0
    assert before["feedback_rate"]["value"] is None
    assert "not estimable" in before["feedback_rate"]["reason"]

    md = case_study_markdown(study)
    for part in ("## What changed", "## Why", "## Evidence", "## What happened after",
                 "| ndcg | 0.61 | 0.66 | 0.05 |", "Answers are slow", "**ship** treatment",
                 "0.04 (95 % CI [0.01, 0.07]", "40.0% (95 % CI [16.8%, 68.7%], Wilson, n = 10)",
                 "issue #8", "not estimable"):
        assert part in md, part
    assert "<b>" not in md and "\\<b\\>ok\\</b\\>" in md


def test_case_study_without_gate_findings_or_traffic(store: Store, settings: Settings) -> None:
    c = build_chain(store, settings)
    with store.transaction() as conn:
        conn.execute(update(releases).where(releases.c.id == c.release_id)
                     .values(gate_id=None, rollback_to_id=None))
        study = build_case_study(conn, c.project.id, c.release_id)
    assert study["evidence"]["gate"] is None and study["evidence"]["experiment"] is None
    assert study["what_changed"]["previous"] is None
    assert "previous_before_release" not in study["after"]
    # The finding still explains it: it addresses the version's dataset.
    assert [f["id"] for f in study["why"]["findings"]] == [c.finding_id]
    md = case_study_markdown(study)
    assert "not gated" in md and "replaces nothing" in md
    with store.read() as conn, pytest.raises(NotFound, match="no release 999"):
        build_case_study(conn, c.project.id, 999)
