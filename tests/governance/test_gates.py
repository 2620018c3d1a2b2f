"""Release gates on SQLite and PostgreSQL: criteria fixed at creation, each evaluated with
its evidence from the experiment's analysis and the cohort and fairness checks; sign-offs
by capacity and role, no self-approval, refusals recorded in the audit log."""

from __future__ import annotations

import pytest

from feedbackloop.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feedbackloop.experiments import start_experiment
from feedbackloop.governance import audit
from feedbackloop.governance.gates import (
    check_gate,
    create_gate,
    get_gate,
    list_gates,
    role_of_user,
    sign_gate,
)
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .release_data import release_project, run_experiment


def _by_name(gate: dict) -> dict:  # type: ignore[type-arg]
    return {r["name"]: r for r in gate["result"]}


def test_a_gate_passes_on_a_real_improvement_with_its_evidence(store: Store,
                                                              settings: Settings) -> None:
    p = release_project(store, "medium")
    run_experiment(store, settings, p)
    gate = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone",
                       cohort_attribute="region", cohort_tolerance=0.1,
                       fairness_attribute="region", fairness_min_ratio=0.5)
    assert gate["status"] == "pending" and gate["risk_tier"] == "medium"
    assert [c["name"] for c in gate["criteria"]] == \
        ["primary_metric", "guardrails", "cohort_regressions", "fairness"]
    assert gate["criteria"][2]["baseline_version"] == "v1"  # the control arm's version
    checked = check_gate(store, p, gate["id"], actor="mia")
    results = _by_name(checked)
    assert checked["status"] == "passed", [r["summary"] for r in checked["result"]]
    primary = results["primary_metric"]["evidence"]
    lo, hi = primary["ci"]
    assert 0 < lo < 0.4 < hi  # the true difference 0.4 lies inside, zero outside
    assert primary["method"].startswith("always-valid") and primary["n"] == 160
    assert results["guardrails"]["summary"] == "the design has no guardrails"
    cohorts = results["cohort_regressions"]["evidence"]["cohorts"]
    assert sorted(c["cohort"] for c in cohorts) == ["north", "south"]
    assert "Holm" in results["cohort_regressions"]["evidence"]["method"]
    assert results["fairness"]["evidence"]["criteria"][0]["name"] == "four_fifths"
    with store.read() as conn:
        assert [g["id"] for g in list_gates(conn, p)] == [gate["id"]]
        log = audit.entries(conn, entity_kind="gate", entity_id=str(gate["id"]))
    assert [e.action for e in log] == ["gate.check", "gate.create"]
    assert log[0].after["status"] == "passed" and log[0].before == {"status": "pending"}


def test_no_improvement_fails_and_says_which_criterion(store: Store,
                                                       settings: Settings) -> None:
    p = release_project(store, "medium")
    run_experiment(store, settings, p, rates=(0.5, 0.5), n=120)
    gate = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone")
    checked = check_gate(store, p, gate["id"], actor="mia")
    assert checked["status"] == "failed"
    primary = _by_name(checked)["primary_metric"]
    assert (primary["status"], primary["passed"]) == ("fail", False)
    assert "does not exclude 0" in primary["summary"]


def test_criteria_that_cannot_be_evaluated_fail_honestly(store: Store,
                                                         settings: Settings) -> None:
    p = release_project(store, "high")
    run_experiment(store, settings, p, start=False)  # a draft: no data at all
    gate = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone",
                       cohort_attribute="plan", fairness_attribute="plan")
    assert gate["criteria"][-1]["name"] == "safety_review"  # the high tier asks for it
    checked = check_gate(store, p, gate["id"], actor="mia")
    results = _by_name(checked)
    assert checked["status"] == "failed"
    assert results["primary_metric"]["status"] == "fail"
    assert results["primary_metric"]["summary"].startswith("not estimable")
    assert results["cohort_regressions"]["status"] == "fail"
    assert results["safety_review"]["summary"].startswith("no safety review signed")


def test_bad_gates_are_refused_naming_the_field(store: Store, settings: Settings) -> None:
    p = release_project(store, "medium")
    run_experiment(store, settings, p, start=False)
    cases = [
        (dict(version="v9"), NotFound, "version"),
        (dict(version="v1"), Conflict, "version"),  # live already
        (dict(version="v2"), InvalidInput, "experiment"),  # medium tier: an experiment
        (dict(version="v3", experiment="tone"), InvalidInput, "experiment"),  # no arm
        (dict(version="v2", experiment="nope"), NotFound, "experiment"),
        (dict(version="v2", experiment="tone", cohort_signal="thumbs"), InvalidInput,
         "cohort_attribute"),
        (dict(version="v2", experiment="tone", cohort_attribute="region",
              cohort_tolerance=float("nan")), InvalidInput, "cohort_tolerance"),
        (dict(version="v2", experiment="tone", fairness_attribute="region",
              fairness_min_ratio=1.5), InvalidInput, "fairness_min_ratio"),
    ]
    for kw, error, field in cases:
        version = kw.pop("version")
        with pytest.raises(error) as err:
            create_gate(store, p, "assistant", version, actor="mia", **kw)  # type: ignore[arg-type]
        assert err.value.details.get("field") == field, (kw, err.value)
    with store.read() as conn, pytest.raises(NotFound):
        get_gate(conn, p, 99)
    with store.read() as conn, pytest.raises(InvalidInput):
        get_gate(conn, p, -1)


def test_sign_offs_by_role_capacity_and_person(store: Store, settings: Settings) -> None:
    p = release_project(store, "medium")
    run_experiment(store, settings, p)
    gate = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone")
    gid = gate["id"]
    with store.read() as conn:
        assert role_of_user(conn, "eva", p) == "expert"
        with pytest.raises(NotFound):
            role_of_user(conn, "nobody-here", p)
    refusals = [
        # a maintainer's approval needs passed checks
        (dict(actor="max", role="maintainer", capacity="maintainer"), Conflict, "pending"),
        # a role that may not give this sign-off
        (dict(actor="val", role="viewer", capacity="maintainer"), PermissionDenied,
         "may not sign off at all"),
        (dict(actor="max", role="maintainer", capacity="expert"), PermissionDenied,
         "may sign as maintainer"),
    ]
    for kw, error, words in refusals:
        with pytest.raises(error, match=words):
            sign_gate(store, p, gid, **kw)  # type: ignore[arg-type]
    check_gate(store, p, gid, actor="mia")
    # self-approval under the medium tier's second-person rule
    with pytest.raises(PermissionDenied, match="second person"):
        sign_gate(store, p, gid, actor="mia", role="maintainer", capacity="maintainer")
    signed = sign_gate(store, p, gid, actor="max", role="maintainer", capacity="maintainer",
                       comment="looks good")
    assert signed["signoff_status"]["met"] is True
    assert signed["signoff_status"]["required"] == \
        [{"capacity": "maintainer", "count": 1, "have": 1, "signers": ["max"]}]
    with pytest.raises(Conflict, match="already"):
        sign_gate(store, p, gid, actor="max", role="maintainer", capacity="maintainer")
    # the approval stands on the evidence it saw: no re-check behind it
    with pytest.raises(Conflict, match="approved by max on its evidence"):
        check_gate(store, p, gid, actor="mia")
    with pytest.raises(InvalidInput) as err:
        sign_gate(store, p, gid, actor="eva", role="expert", capacity="expert",
                  decision="reject")
    assert err.value.field == "comment"
    rejected = sign_gate(store, p, gid, actor="eva", role="expert", capacity="expert",
                         decision="reject", comment="tone is off for <b>legal</b> questions")
    assert rejected["signoff_status"]["met"] is False
    assert "eva rejected it" in rejected["signoff_status"]["reasons"][0]
    with store.read() as conn:
        log = audit.entries(conn, entity_kind="gate", entity_id=str(gid))
    actions = [e.action for e in reversed(log)]
    assert actions == ["gate.create", "gate.sign.refused", "gate.sign.refused",
                       "gate.sign.refused", "gate.check", "gate.sign.refused", "gate.sign",
                       "gate.sign.refused", "gate.sign"]
    refused = [e for e in reversed(log) if e.action == "gate.sign.refused"]
    assert refused[0].reason is not None and "run gate check" in refused[0].reason
    assert refused[1].after == {"capacity": "maintainer", "decision": "approve",
                                "role": "viewer"}
    assert audit.verify(store).ok


def test_low_tier_allows_self_approval(store: Store, settings: Settings) -> None:
    p = release_project(store, "low")
    gate = create_gate(store, p, "assistant", "v2", actor="mia")  # low: no experiment needed
    assert gate["criteria"] == []
    assert check_gate(store, p, gate["id"], actor="mia")["status"] == "passed"
    signed = sign_gate(store, p, gate["id"], actor="mia", role="maintainer",
                       capacity="maintainer")
    assert signed["signoff_status"]["met"] is True


def test_the_high_tier_needs_an_expert_before_any_exposure(store: Store,
                                                           settings: Settings) -> None:
    p = release_project(store, "high")
    run_experiment(store, settings, p, start=False)
    with pytest.raises(Conflict, match="expert's sign-off before any exposure") as err:
        start_experiment(store, p, "tone")
    assert err.value.details["version"] == "v2"
    gate = create_gate(store, p, "assistant", "v2", actor="mia", experiment="tone")
    # an expert's review may come before the checks; an admin may not sign as expert
    with pytest.raises(PermissionDenied):
        sign_gate(store, p, gate["id"], actor="root", role="admin", capacity="expert")
    sign_gate(store, p, gate["id"], actor="eva", role="expert", capacity="expert",
              comment="safe to test on 50 %")
    assert start_experiment(store, p, "tone").status == "running"
