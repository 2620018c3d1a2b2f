"""Every state change of the earlier stages leaves an audit entry in its own transaction, on
SQLite and PostgreSQL: projects and signals, users, grants and tokens, datasets, training
runs, model versions (register, promote, rollback, toggle), guidelines, campaigns,
experiments (create, revise, supersede, start, stop, decide) and bandits. A change that fails
leaves no entry; the chain stays intact."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from feedbackloop.access import service as access
from feedbackloop.annotation.campaigns import close_campaign, create_campaign
from feedbackloop.annotation.guidelines import create_guideline
from feedbackloop.capture.projects import create_project
from feedbackloop.errors import Conflict, InvalidInput
from feedbackloop.experiments import bandits
from feedbackloop.experiments import service as experiments
from feedbackloop.governance import audit
from feedbackloop.improve import registry as reg
from feedbackloop.improve.datasets import build_dataset
from feedbackloop.improve.trainers.service import train
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .chain import build_chain


def _actions(store: Store, **kw: Any) -> list[tuple[str, str, str | None]]:
    """(action, actor, entity id) oldest first."""
    with store.read() as conn:
        return [(e.action, e.actor, e.entity_id)
                for e in reversed(audit.entries(conn, limit=1000, **kw))]


def test_projects_users_tokens_and_grants_are_audited(store: Store) -> None:
    p = create_project(store, "shop", risk_tier="high", actor="root")
    access.create_user(store, "ana", "long password", actor="root")
    access.grant(store, "ana", p.id, "annotator", actor="root")
    access.grant(store, "ana", p.id, "maintainer", actor="root")
    token = access.create_token(store, project_id=p.id, role="viewer", name="ci",
                                actor="root")
    access.revoke_token(store, token, actor="root")
    access.revoke_token(store, token, actor="root")  # already revoked: nothing changes
    access.sign_in(store, "ana", "long password")  # a session is not an audited change
    assert _actions(store) == [
        ("project.create", "root", str(p.id)), ("user.create", "root", "ana"),
        ("user.grant", "root", "ana"), ("user.grant", "root", "ana"),
        ("token.create", "root", token[:10]), ("token.revoke", "root", token[:10])]
    with store.read() as conn:
        newest = audit.entries(conn, entity_kind="user", entity_id="ana", limit=1)[0]
    assert (newest.before, newest.after) == ({"role": "annotator"}, {"role": "maintainer"})
    with pytest.raises(Conflict):
        create_project(store, "shop")
    assert len(_actions(store)) == 6  # the refused duplicate left nothing
    assert audit.verify(store).ok


def test_the_loop_from_signal_to_bandit_is_audited(store: Store, settings: Settings,
                                                   tmp_path: Path) -> None:
    c = build_chain(store, settings)
    pid = c.project.id
    acts = [a for a, _, _ in _actions(store, project_id=pid)]
    assert acts[:2] == ["project.create", "signal.create"]
    assert acts[2:] == ["provenance.link", "model.register", "model.promote", "model.register",
                        "experiment.create"]
    with store.read() as conn:
        promoted = audit.entries(conn, entity_kind="model_version", entity_id=str(c.v1_id),
                                 limit=1)[0]
    assert promoted.before == {"status": "candidate"}
    assert promoted.after == {"component": "ranking", "status": "live"}
    assert promoted.actor == "ana"

    design = {"arms": [{"name": "control", "version": "v1"},
                       {"name": "treatment", "version": "v2"}],
              "primary": {"metric": "thumbs"}, "mde": 0.1, "baseline": 0.3}
    experiments.update_design(store, c.project, "faster", design, created_by="ana")
    experiments.start_experiment(store, c.project, "faster", actor="bo")
    experiments.update_design(store, c.project, "faster", {**design, "mde": 0.2},
                              new_name="faster2", created_by="ana")
    experiments.stop_experiment(store, c.project, "faster2", "enough", actor="bo")
    experiments.decide(store, c.project, "faster2", "iterate", "no effect yet",
                       decided_by="cy")
    reg.set_toggle(store, c.project, "ranking", [{"name": "beta", "split": {"v2": 1.0}}],
                   actor="bo")
    reg.promote(store, c.project, "ranking", "v2", actor="bo")
    reg.rollback(store, c.project, "ranking", actor="bo")
    bandits.create_bandit(store, c.project, "arms", arms=["a", "b"], created_by="bo")
    create_guideline(store, c.project, "thumbs", "Thumbs up when the answer helps.",
                     created_by="ana")
    got = _actions(store, project_id=pid)[7:]
    assert [(a, who) for a, who, _ in got] == [
        ("experiment.revise", "ana"), ("experiment.start", "bo"),
        ("experiment.supersede", "ana"), ("experiment.create", "ana"),
        ("experiment.stop", "bo"), ("experiment.decide", "cy"),
        ("model.toggle", "bo"),
        ("model.retire", "bo"), ("model.promote", "bo"),  # v2 live, v1 retired
        ("model.rollback", "bo"), ("model.promote", "bo"),  # v2 rolled back, v1 live
        ("bandit.create", "bo"), ("guideline.add", "ana")]
    with store.read() as conn:
        decided = audit.entries(conn, project_id=pid, entity_kind="experiment", limit=10)
    decision = next(e for e in decided if e.action == "experiment.decide")
    assert decision.reason == "no effect yet" and decision.after["decision"] == "iterate"
    assert audit.verify(store).ok


def test_datasets_training_and_campaigns_are_audited(store: Store, settings: Settings,
                                                     tmp_path: Path) -> None:
    c = build_chain(store, settings)
    pid = c.project.id
    ds = build_dataset(store, c.project, "kto", "kto", {"signal": "thumbs"},
                       created_by="ana")
    script = tmp_path / "train.py"
    script.write_text("import os\nopen(os.environ['FEEDBACKLOOP_ARTIFACT'], 'w').write('w')\n")
    run, version = train(store, c.project, "external", ds.ref, created_by="ana",
                         params={"command": [sys.executable, str(script)]},
                         component="generation", artifact_root=tmp_path / "art")
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(InvalidInput, match="exit code 3"):
        train(store, c.project, "external", ds.ref, created_by="bo",
              params={"command": [sys.executable, str(crash)]}, artifact_root=tmp_path)
    create_guideline(store, c.project, "thumbs", "Up when it helps.", created_by="ana")
    for who in ("ana", "bo"):
        access.create_user(store, who, "long password")
        access.grant(store, who, pid, "annotator")
    camp = create_campaign(store, c.project, {"name": "check", "signals": ["thumbs"],
                                              "raters": ["ana", "bo"], "budget": 2,
                                              "overlap": 1, "policy": "random", "seed": 1},
                           created_by="ana")
    close_campaign(store, c.project, camp, actor="bo")
    got = [(a, who) for a, who, _ in _actions(store, project_id=pid)]
    assert got[7:] == [("dataset.build", "ana"), ("training.start", "ana"),
                       ("model.register", "ana"), ("training.finish", "ana"),
                       ("training.start", "bo"), ("training.fail", "bo"),
                       ("guideline.add", "ana"),
                       ("user.grant", "system"), ("user.grant", "system"),
                       ("campaign.create", "ana"), ("campaign.close", "bo")]
    with store.read() as conn:
        built = audit.entries(conn, entity_kind="dataset", entity_id=str(ds.id), limit=1)[0]
        finished = audit.entries(conn, entity_kind="training_run", entity_id=str(run.id),
                                 limit=1)[0]
    assert built.after["recipe"] == "kto" and built.after["feedback_used"] > 0
    assert finished.after["version"] == version.name
    assert audit.verify(store).ok
