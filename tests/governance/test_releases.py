"""Releases on SQLite and PostgreSQL: refused (and recorded) until the gate passed and the
tier's sign-offs are there, then one transaction puts the version live (or serves it to a
cohort), names the rollback target, writes the case study and the provenance link; one
call rolls it back. A plain promotion is refused above the low tier."""

from __future__ import annotations

import pytest

from feedbackloop.errors import Conflict, InvalidInput, PermissionDenied
from feedbackloop.experiments import start_experiment
from feedbackloop.governance import audit
from feedbackloop.governance.gates import check_gate, create_gate, sign_gate
from feedbackloop.governance.provenance import links_of
from feedbackloop.governance.releases import get_release, list_releases, promote, rollback
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .release_data import release_project, run_experiment


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    reg.clear_resolve_cache()


def _live(store: Store, project: object) -> str:
    with store.read() as conn:
        return next(v.name for v in reg.list_versions(conn, project, "assistant")  # type: ignore[arg-type]
                    if v.status == "live")


def test_cannot_release_until_gate_and_signoffs_pass(store: Store,
                                                     settings: Settings) -> None:
    p = release_project(store, "high")
    run_experiment(store, settings, p, start=False)
    gate = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone",
                       cohort_attribute="region", cohort_tolerance=0.15)
    gid = gate["id"]
    sign_gate(store, p, gid, actor="eva", role="expert", capacity="expert")
    start_experiment(store, p, "tone")  # the expert's approval allows the exposure
    _log(store, settings, p)
    # the data is in; the gate is not checked yet
    with pytest.raises(Conflict, match="not checked yet"):
        promote(store, p, "assistant", "v2", gate_id=gid, actor="max")
    failed = check_gate(store, p, gid, actor="mia")
    assert failed["status"] == "failed"  # the high tier's safety review is missing
    with pytest.raises(Conflict, match="failing: safety_review"):
        promote(store, p, "assistant", "v2", gate_id=gid, actor="max")
    sign_gate(store, p, gid, actor="eva", role="expert", capacity="safety")
    assert check_gate(store, p, gid, actor="mia")["status"] == "passed"
    with pytest.raises(Conflict, match="1 maintainer approval"):
        promote(store, p, "assistant", "v2", gate_id=gid, actor="max")
    sign_gate(store, p, gid, actor="max", role="maintainer", capacity="maintainer")
    # max approved it, so max may not also be the one who releases it (second person)
    with pytest.raises(Conflict, match="lacks its sign-offs"):
        promote(store, p, "assistant", "v2", gate_id=gid, actor="max")
    assert _live(store, p) == "v1"

    release = promote(store, p, "assistant", "v2", gate_id=gid, actor="mia",
                      reason="better answers")
    assert (release["version"], release["rollback_to"], release["status"]) == \
        ("v2", "v1", "released")
    assert _live(store, p) == "v2"
    study = release["case_study"]
    assert study["release"]["id"] == release["id"]
    assert study["evidence"]["gate"]["status"] == "passed"
    with store.read() as conn:
        assert [r["id"] for r in list_releases(conn, p)] == [release["id"]]
        links = links_of(conn, "release", release["id"])
        log = audit.entries(conn, project_id=p.id)
    assert any(link["relation"] == "released_as" for link in links)
    actions = [e.action for e in reversed(log)]
    assert actions.count("release.promote.refused") == 4
    assert actions[-1] == "release.promote"
    refusals = [e for e in log if e.action == "release.promote.refused"]
    assert all(e.reason for e in refusals)
    with pytest.raises(Conflict, match="used by release"):
        promote(store, p, "assistant", "v2", gate_id=gid, actor="mia")

    back = rollback(store, p, "assistant", actor="mia", reason="complaints")
    assert back["live"] == "v1" and back["release"]["status"] == "rolled_back"
    assert _live(store, p) == "v1"
    with store.read() as conn:
        assert get_release(conn, p, release["id"])["rolled_back_at"] is not None
        last = audit.entries(conn, project_id=p.id, limit=1)[0]
    assert (last.action, last.reason, last.after["live"]) == \
        ("release.rollback", "complaints", "v1")
    assert audit.verify(store).ok


def _log(store: Store, settings: Settings, p: object) -> None:
    import numpy as np

    from feedbackloop.capture.ingest import Ingestor

    rng = np.random.default_rng(3)
    inter, fb = [], []
    for i in range(160):
        arm = i % 2
        inter.append({"id": f"i{i}", "input": "q", "output": "a", "user_id": f"u{i}",
                      "experiment": "tone", "arm": ("control", "treatment")[arm],
                      "model_version": ("v1", "v2")[arm],
                      "attributes": {"region": ("north", "south")[(i // 2) % 2]}})
        fb.append({"id": f"f{i}", "interaction_id": f"i{i}", "signal": "thumbs",
                   "value": bool(rng.random() < (0.3, 0.7)[arm])})
    ing = Ingestor(store, settings, p)  # type: ignore[arg-type]
    assert ing.interactions(inter).rejected == 0
    assert ing.feedback(fb).rejected == 0


def test_a_cohort_release_serves_the_cohort_and_rolls_back(store: Store,
                                                           settings: Settings) -> None:
    p = release_project(store, "medium")
    run_experiment(store, settings, p)
    gid = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone")["id"]
    check_gate(store, p, gid, actor="mia")
    sign_gate(store, p, gid, actor="max", role="maintainer", capacity="maintainer")
    with pytest.raises(InvalidInput) as err:
        promote(store, p, "assistant", "v2", gate_id=gid, actor="mia",
                cohort={"when": [{"attribute": "plan", "op": "like", "value": "x"}]})
    assert err.value.field == "cohort.when"
    cohort = {"when": [{"attribute": "plan", "op": "eq", "value": "pro"}]}
    release = promote(store, p, "assistant", "v2", gate_id=gid, actor="mia", cohort=cohort)
    assert release["cohort"] == {**cohort, "percent": 100.0}
    assert release["rollback_to"] == "v1" and _live(store, p) == "v1"
    pro = reg.resolve(store, p, "assistant", "u1", {"plan": "pro"})
    free = reg.resolve(store, p, "assistant", "u1", {"plan": "free"})
    assert (pro["version"], free["version"]) == ("v2", "v1")
    back = rollback(store, p, "assistant", actor="mia")
    assert back["cohort_rule_removed"] and back["live"] == "v1"
    assert reg.resolve(store, p, "assistant", "u1", {"plan": "pro"})["version"] == "v1"
    # nothing more to roll back: v1 was the first live version
    with pytest.raises(Conflict):
        rollback(store, p, "assistant", actor="mia")


def test_a_plain_promotion_is_refused_above_the_low_tier(store: Store) -> None:
    p = release_project(store, "medium")
    with pytest.raises(Conflict, match="release promote"):
        reg.promote(store, p, "assistant", "v2", actor="max")
    assert reg.promote(store, p, "assistant", "v2", to="staged").status == "staged"
    assert _live(store, p) == "v1"
    with store.read() as conn:
        refused = audit.entries(conn, project_id=p.id, limit=2)
    assert refused[1].action == "model.promote.refused"
    assert refused[1].entity_id == "assistant:v2" and refused[1].actor == "max"


def test_bad_promotions_name_the_field(store: Store, settings: Settings) -> None:
    p = release_project(store, "low")
    gid = create_gate(store, p, "assistant", "v2", actor="mia")["id"]
    with pytest.raises(Conflict) as refused:  # a refusal, recorded (test_abuse.py)
        promote(store, p, "assistant", "v3", gate_id=gid, actor="mia")
    assert refused.value.details["field"] == "gate_id"
    for bad in ("", "x" * 101):
        with pytest.raises(InvalidInput) as err:
            promote(store, p, "assistant", "v2", gate_id=gid, actor=bad)
        assert err.value.field == "actor"
    with pytest.raises(InvalidInput) as err:
        promote(store, p, "assistant", "v2", gate_id=gid, actor="mia", cohort={"when": []})
    assert err.value.field == "cohort"
    with pytest.raises(PermissionDenied):
        sign_gate(store, p, gid, actor="ann", role="annotator", capacity="maintainer")



def test_a_toggle_is_an_exposure_too(store: Store, settings: Settings) -> None:
    p = release_project(store, "high")
    beta = [{"name": "beta", "when": [{"attribute": "plan", "op": "eq", "value": "pro"}],
             "split": {"v2": 10}}]
    with pytest.raises(Conflict, match="expert's sign-off before any exposure"):
        reg.set_toggle(store, p, "assistant", beta, actor="max")
    run_experiment(store, settings, p, start=False)
    gid = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone")["id"]
    sign_gate(store, p, gid, actor="eva", role="expert", capacity="expert")
    assert reg.set_toggle(store, p, "assistant", beta, actor="max")["rules"] == beta
    # rules that served v2 before may be saved again; v3 is new and refused
    reg.set_toggle(store, p, "assistant", [{**beta[0], "split": {"v2": 20}}], actor="max")
    with pytest.raises(Conflict, match="'v3'"):
        reg.set_toggle(store, p, "assistant", [{**beta[0], "split": {"v3": 20}}])
