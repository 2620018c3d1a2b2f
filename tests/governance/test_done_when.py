"""Issue #7's "done when", end to end through the services, on SQLite and PostgreSQL.

From a project with feedback, a maintainer sees a ranked backlog of themed findings, takes
one through a dataset, a model version and an experiment, and cannot release it until the
gate and the tier's sign-offs pass; ``trace`` explains the release from the original
feedback; tampering with the audit table is detected.

The project is medium risk: one maintainer's sign-off, and not the gate's creator's (a
second person); a plain promotion to live is refused. ``max`` (maintainer) does the work,
``ann`` (maintainer) signs. The data is in :mod:`.story`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from feedbackloop import experiments as ex
from feedbackloop.capture.projects import get_project
from feedbackloop.errors import Conflict, PermissionDenied
from feedbackloop.governance import audit, gates, policy, provenance, releases
from feedbackloop.improve import registry
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import audit_log, feedback, theme_members
from feedbackloop.triage import findings, themes
from feedbackloop.triage import service as triage

from ..cli.test_cli import Cli
from . import story


def _feedback_ids(store: Store, client_ids: list[str]) -> set[int]:
    with store.read() as conn:
        return set(conn.execute(select(feedback.c.id).where(
            feedback.c.client_id.in_(client_ids))).scalars())


def backlog(store: Store, settings: Settings) -> dict[str, Any]:
    """Feedback in, triaged and themed; findings out, ranked. Returns what later steps
    need: the finding that ranks first and the feedback behind it."""
    story.project(store, risk_tier="low")  # v1 went live before the project was governed
    said = story.feedback_log(store, settings)

    # -- triage: rules for what is known; the rest waits for a person ----------------
    triage.add_rule(store, story.PROJECT, "slow", "latency", {"text": "slow|waited"},
                    actor="max")
    triage.add_rule(store, story.PROJECT, "prices", "factuality", {"text": "price"},
                    actor="max")
    triage.add_rule(store, story.PROJECT, "personal data", "privacy",
                    {"text": "e-?mail|phone"}, actor="max")
    run = triage.run_triage(store, story.PROJECT, actor="max")
    assert run["items"] == 44  # every negative or commented item, the positives not
    assert run["by_route"] == {"factuality": 10, "latency": 8, "privacy": 2}
    assert run["by_status"]["queued"] == 24  # no rule, no classifier yet: a person routes
    assert run["by_status"]["escalated"] == 2
    with store.read() as conn:
        escalated = triage.list_items(conn, story.PROJECT, status="escalated")
        queued = triage.list_items(conn, story.PROJECT, status="queued")
    # privacy is escalated at once to the role on duty, never resolved by automation
    assert {i.feedback_client_id for i in escalated} == set(said["private"])
    assert {i.escalated_to for i in escalated} == {"maintainer"}
    assert {i.feedback_client_id for i in queued} == set(said["long"])
    for item in queued:
        triage.route_item(store, story.PROJECT, item.id, "generation_quality", actor="max")
    with store.read() as conn:
        assert triage.list_items(conn, story.PROJECT, status="queued") == []

    # -- themes, findings, the ranked backlog ---------------------------------------------
    run_ = themes.run_themes(store, story.PROJECT, method="tfidf", k=3, actor="max")
    long_ids = _feedback_ids(store, said["long"])
    by_theme = {}
    for theme in run_["themes"]:
        with store.read() as conn:
            members = set(conn.execute(select(theme_members.c.feedback_id).where(
                theme_members.c.theme_id == theme["id"])).scalars())
        by_theme[theme["id"]] = members
    rambling = next(t for t, m in by_theme.items() if m == long_ids)
    price = next(t for t, m in by_theme.items() if m == _feedback_ids(store, said["price"]))
    slow = next(t for t in by_theme if t not in (rambling, price))

    top = findings.create_finding(store, story.PROJECT, title="Answers ramble on",
                                  theme_id=rambling, route="generation_quality",
                                  component=story.COMPONENT, severity=3, effort=2, risk=2,
                                  confidence=0.8, actor="max")
    findings.create_finding(store, story.PROJECT, title="Wrong prices", theme_id=price,
                            route="factuality", severity=4, effort=5, risk=1,
                            confidence=0.6, actor="max")
    findings.create_finding(store, story.PROJECT, title="Slow answers", theme_id=slow,
                            route="latency", actor="max")  # not scored yet: ranks last
    with store.read() as conn:
        ranked = findings.ranked_backlog(conn, story.PROJECT)
    assert [r["title"] for r in ranked["items"]] == ["Answers ramble on", "Wrong prices",
                                                      "Slow answers"]
    assert "reach * severity * confidence / effort" in ranked["formula"]
    first = ranked["items"][0]
    # reach from the data: 24 distinct users; 24 * 3 * 0.8 / 2 * (1 - 1/8)
    assert first["reach"]["users"] == 24
    assert first["priority"] == pytest.approx(25.2)
    assert first["expected_benefit"]["value"] > 0 and first["expected_benefit"]["ci95"]
    assert ranked["items"][2]["priority"] is None and ranked["items"][2]["not_scored"]
    findings.set_status(store, story.PROJECT, top.id, "triaged", actor="max")
    findings.set_status(store, story.PROJECT, top.id, "in_progress", actor="max")
    findings.update_finding(store, story.PROJECT, top.id, owner="max", actor="max")
    return {"said": said, "finding": top, "long_ids": long_ids}


def build_and_test(store: Store, settings: Settings, finding_id: int) -> dict[str, Any]:
    """A dataset that addresses the finding, v2 trained on it, an experiment v1 vs v2 run
    to a decision. Returns the dataset and versions."""
    ds = story.dataset(store)
    findings.link_dataset(store, story.PROJECT, finding_id, ds.id, actor="max")
    v1, v2 = story.versions(store, ds)
    registry.promote(store, story.PROJECT, story.COMPONENT, "v1", to="live", actor="max")
    # from here on the project is governed: medium risk
    policy.set_policy(store, story.PROJECT, risk_tier="medium", actor="admin",
                      reason="the assistant now answers customers directly")
    with pytest.raises(Conflict, match="release promote"):
        registry.promote(store, story.PROJECT, story.COMPONENT, "v2", to="live",
                         actor="max")
    story.experiment(store)
    ex.start_experiment(store, story.PROJECT, story.EXPERIMENT, actor="max")
    story.experiment_traffic(store, settings)
    ex.decide(store, story.PROJECT, story.EXPERIMENT, "ship", "v2 gets more thumbs up",
              arm="treatment", decided_by="max")
    return {"dataset": ds, "v1": v1, "v2": v2}


def tamper_is_detected(store: Store, cli: Cli) -> None:
    """Edit one entry behind the application's back (the triggers dropped first, as only
    someone with the database owner's rights can): verify names it."""
    assert cli.json("audit", "verify")["ok"] is True
    with store.read() as conn:
        victim = conn.execute(select(audit_log.c.id).where(
            audit_log.c.action == "finding.create").order_by(audit_log.c.id)).scalar()
    assert victim is not None
    # the application's own connection cannot edit it
    with pytest.raises(DBAPIError, match="append-only"), store.transaction() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = :i"),
                     {"i": victim})
    on_pg = store.dialect == "postgresql"
    with store.transaction() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update" + (" ON audit_log" if on_pg
                                                                 else "")))
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE id = :i"),
                     {"i": victim})
    found = cli.json("audit", "verify", code=1)
    assert (found["ok"], found["first_bad"]) == (False, victim)
    assert "edited" in (audit.verify(store).reason or "")


def gate_and_release(store: Store, ids: dict[str, Any]) -> dict[str, Any]:
    """The gate with its pre-set criteria, the refusals until it passes and is signed by a
    second person, then the release naming its rollback target."""
    p, c = story.PROJECT, story.COMPONENT
    gate = gates.create_gate(store, p, c, "v2", actor="max", experiment=story.EXPERIMENT,
                             cohort_attribute="locale", fairness_attribute="locale")
    assert [k["name"] for k in gate["criteria"]] == ["primary_metric", "guardrails",
                                                     "cohort_regressions", "fairness"]
    gid = gate["id"]

    def refused_release(actor: str, match: str) -> None:
        with pytest.raises(Conflict, match=match):
            releases.promote(store, p, c, "v2", gate_id=gid, actor=actor)

    # not checked yet: neither a release nor a maintainer's approval
    refused_release("max", "pending")
    with pytest.raises(Conflict, match="passed checks"):
        gates.sign_gate(store, p, gid, actor="ann", role="maintainer", capacity="maintainer")
    checked = gates.check_gate(store, p, gid, actor="max")
    assert checked["status"] == "passed", checked["result"]
    for criterion in checked["result"]:
        assert criterion["passed"] and criterion["status"] == "pass"
        assert criterion["evidence"], criterion  # each shown with its evidence
    primary = next(r for r in checked["result"] if r["name"] == "primary_metric")
    assert primary["evidence"]["ci"][0] > 0  # the interval excludes zero

    # passed, but not signed: still refused; the creator may not approve his own gate; a
    # maintainer may not sign as an expert
    refused_release("max", "sign-offs")
    with pytest.raises(PermissionDenied, match="second person"):
        gates.sign_gate(store, p, gid, actor="max", role="maintainer", capacity="maintainer")
    with pytest.raises(PermissionDenied, match="may not sign off as expert"):
        gates.sign_gate(store, p, gid, actor="ann", role="maintainer", capacity="expert")
    gates.sign_gate(store, p, gid, actor="ann", role="maintainer", capacity="maintainer",
                    comment="the evidence holds in both locales")
    with store.read() as conn:
        assert registry.get_version(conn, p, c, "v2").status == "candidate"

    release = releases.promote(store, p, c, "v2", gate_id=gid, actor="max",
                               reason="shorter answers")
    assert release["status"] == "released"
    assert release["rollback_to"] == "v1"
    with store.read() as conn:
        assert registry.get_version(conn, p, c, "v2").status == "live"
    study = release["case_study"]
    assert "Answers ramble on" in str(study)

    # every refusal above is in the audit log, with its reason
    with store.read() as conn:
        log = audit.entries(conn, project_id=ids["project_id"], limit=1000)
    refused = [(e.action, e.actor) for e in log if e.action.endswith(".refused")]
    assert sorted(refused) == sorted([
        ("model.promote.refused", "max"), ("release.promote.refused", "max"),
        ("gate.sign.refused", "ann"), ("release.promote.refused", "max"),
        ("gate.sign.refused", "max"), ("gate.sign.refused", "ann")])
    assert all(e.reason for e in log if e.action.endswith(".refused"))
    return release


def trace_explains(store: Store, cli: Cli, release: dict[str, Any],
                   said: dict[str, list[str]], finding_id: int) -> None:
    """From the release back to the feedback that started it, and the other way."""
    up = cli.json("trace", "--release", str(release["id"]), "-p", story.PROJECT)
    assert up == provenance.trace(store, story.PROJECT, "release", release["id"])
    nodes = {(n["kind"], n["entity_id"]) for n in up["nodes"]}
    with store.read() as conn:
        first = conn.execute(select(feedback.c.id).where(
            feedback.c.client_id == said["long"][0])).scalar_one()
    assert ("finding", finding_id) in nodes
    assert ("feedback", first) in nodes
    assert {"feedback", "finding", "dataset", "model_version", "experiment",
            "release"} <= {k for k, _ in nodes}
    down = cli.json("trace", "--feedback", said["long"][0], "-p", story.PROJECT)
    assert ("release", release["id"]) in {(n["kind"], n["entity_id"]) for n in down["nodes"]}
    md = cli("trace", "--release", str(release["id"]), "-p", story.PROJECT, "--format",
             "md").stdout
    assert "Answers ramble on" in md


def test_done_when(store: Store, settings: Settings, db_url: str, tmp_path: Path) -> None:
    cli = Cli(db_url, tmp_path)
    state = backlog(store, settings)
    build_and_test(store, settings, state["finding"].id)
    with store.read() as conn:
        state["project_id"] = get_project(conn, story.PROJECT).id
    release = gate_and_release(store, state)
    findings.set_status(store, story.PROJECT, state["finding"].id, "fixed", actor="max")
    trace_explains(store, cli, release, state["said"], state["finding"].id)

    # rollback is one call, back to the target the release named
    back = releases.rollback(store, story.PROJECT, story.COMPONENT, actor="max",
                             reason="checking the way back")
    assert back["live"] == "v1" and back["release"]["status"] == "rolled_back"
    tamper_is_detected(store, cli)
