"""Issue #7's "bad input and abuse" list in one place, on SQLite and PostgreSQL.

A sign-off by a role that may not give it, a self-approval where the tier requires a
second person, promotion of a version with a failing gate, an edit to a closed audit
entry: each refused with a clear reason *and recorded* in the audit log (the refusal
survives the refused change's rollback). Priority inputs out of range are rejected before
anything is written. Each is tried through the service, and where a person would try it,
through the API or the command line too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from feedbackloop.access import create_token
from feedbackloop.capture.projects import Project, get_project
from feedbackloop.errors import Conflict, InvalidInput, PermissionDenied
from feedbackloop.governance import audit, gates, releases
from feedbackloop.governance.audit import AuditEntry
from feedbackloop.improve import registry
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import audit_log, findings, signoffs
from feedbackloop.store.tables import releases as releases_table
from feedbackloop.triage.findings import create_finding, update_finding
from feedbackloop.web.app import create_app

from ..cli.test_cli import Cli
from ..web.test_api import _client, portal  # noqa: F401
from .release_data import release_project, run_experiment

C = "assistant"


def _project(store: Store) -> Project:
    with store.read() as conn:
        return get_project(conn, "shop")


def _refusals(store: Store, action: str) -> list[AuditEntry]:
    with store.read() as conn:
        return [e for e in audit.entries(conn, limit=10_000) if e.action == action]


def _count(store: Store, table: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)


def _gate(store: Store, settings: Settings, tier: str = "medium", *,
          rates: tuple[float, float] = (0.3, 0.7), check: bool = True) -> int:
    """A project of ``tier`` with an experiment v1 vs v2 and a gate for v2 made by mia."""
    p = release_project(store, tier)
    # the high tier lets no experiment expose v2 before an expert approved its gate
    run_experiment(store, settings, p, rates=rates, start=tier != "high")
    gate = gates.create_gate(store, p, C, "v2", actor="mia", experiment="tone")
    if check and tier != "high":
        gates.check_gate(store, p, gate["id"], actor="mia")
    return int(gate["id"])


# -- a sign-off by a role that may not give it ----------------------------------------------

REFUSED_CAPACITIES = [("viewer", "maintainer"), ("annotator", "maintainer"),
                      ("ingest", "maintainer"), ("maintainer", "expert"),
                      ("maintainer", "admin"), ("maintainer", "safety"),
                      ("expert", "maintainer"), ("expert", "admin")]


def test_a_sign_off_the_role_may_not_give_is_refused_and_recorded(
        store: Store, settings: Settings) -> None:
    gid = _gate(store, settings)
    for role, capacity in REFUSED_CAPACITIES:
        with pytest.raises(PermissionDenied) as refused:
            gates.sign_gate(store, "shop", gid, actor=f"{role}-person", role=role,
                            capacity=capacity)
        assert f"role {role!r} may not sign off as {capacity}" in refused.value.message
        entry = _refusals(store, "gate.sign.refused")[0]  # newest first
        assert (entry.actor, entry.entity_id, entry.reason) == (
            f"{role}-person", str(gid), refused.value.message)
        assert entry.after == {"capacity": capacity, "decision": "approve", "role": role}
    assert len(_refusals(store, "gate.sign.refused")) == len(REFUSED_CAPACITIES)
    assert _count(store, signoffs) == 0
    assert audit.verify(store).ok


@pytest.fixture
def api(store: Store, settings: Settings, portal: BlockingPortal  # noqa: F811
        ) -> Iterator[dict[str, httpx.Client]]:
    gid = _gate(store, settings)
    p = _project(store)
    app = create_app(settings, store)
    tokens = {role: create_token(store, project_id=p.id, role=role, name=role)
              for role in ("viewer", "expert", "maintainer")}
    with _client(app, portal, tokens["viewer"]) as v, \
            _client(app, portal, tokens["expert"]) as e, \
            _client(app, portal, tokens["maintainer"]) as m:
        yield {"viewer": v, "expert": e, "maintainer": m, "gate": gid}  # type: ignore[dict-item]


def test_the_api_signs_in_the_callers_own_role(api: dict[str, Any], store: Store) -> None:
    url = f"/api/v1/projects/shop/gates/{api['gate']}/signoffs"
    for who, capacity in (("viewer", "maintainer"), ("expert", "maintainer"),
                          ("maintainer", "expert")):
        r = api[who].post(url, json={"capacity": capacity})
        assert r.status_code == 403, r.text
        assert f"may not sign off as {capacity}" in r.json()["error"]["message"]
    assert [e.after["role"] for e in _refusals(store, "gate.sign.refused")] == \
        ["maintainer", "expert", "viewer"]  # newest first
    # a body cannot claim another role or signer
    r = api["expert"].post(url, json={"capacity": "expert", "role": "maintainer"})
    assert r.status_code == 422
    r = api["expert"].post(url, json={"capacity": "expert", "actor": "mia"})
    assert r.status_code == 422
    assert _count(store, signoffs) == 0


def test_the_cli_signs_in_the_members_own_role(store: Store, settings: Settings,
                                                db_url: str, tmp_path: Path) -> None:
    gid = _gate(store, settings)
    cli = Cli(db_url, tmp_path)
    out = cli("gate", "sign", str(gid), "-p", "shop", "--user", "val", "--as", "maintainer",
              code=2)
    assert "may not sign off" in out.stderr
    out = cli("gate", "sign", str(gid), "-p", "shop", "--user", "eva", "--as", "maintainer",
              code=2)
    assert "'expert' may not sign off as maintainer" in out.stderr
    assert [e.actor for e in _refusals(store, "gate.sign.refused")] == ["eva", "val"]
    assert _count(store, signoffs) == 0


# -- self-approval where the tier requires a second person ------------------------------------

@pytest.mark.parametrize("tier", ["medium", "high"])
def test_self_approval_is_refused_under_second_person(store: Store, settings: Settings,
                                                      tier: str) -> None:
    gid = _gate(store, settings, tier)
    with pytest.raises(PermissionDenied, match="second person") as refused:
        gates.sign_gate(store, "shop", gid, actor="mia", role="maintainer",
                        capacity="maintainer")
    assert "mia created gate" in refused.value.message
    [entry] = _refusals(store, "gate.sign.refused")
    assert (entry.actor, entry.reason) == ("mia", refused.value.message)
    assert _count(store, signoffs) == 0


def test_the_release_author_cannot_count_their_own_approval(store: Store,
                                                             settings: Settings) -> None:
    """max approves mia's gate, then releases it himself: his approval does not count for
    his own release (the gate's creator, mia, may release it)."""
    gid = _gate(store, settings)
    gates.sign_gate(store, "shop", gid, actor="max", role="maintainer", capacity="maintainer")
    with pytest.raises(Conflict, match="release's author do not count") as refused:
        releases.promote(store, "shop", C, "v2", gate_id=gid, actor="max")
    [entry] = _refusals(store, "release.promote.refused")
    assert (entry.actor, entry.reason) == ("max", refused.value.message)
    assert _count(store, releases_table) == 0
    done = releases.promote(store, "shop", C, "v2", gate_id=gid, actor="mia")
    assert (done["version"], done["rollback_to"]) == ("v2", "v1")


def test_the_low_tier_lets_one_person_do_it_all(store: Store, settings: Settings) -> None:
    gid = _gate(store, settings, "low")
    gates.sign_gate(store, "shop", gid, actor="mia", role="maintainer", capacity="maintainer")
    assert releases.promote(store, "shop", C, "v2", gate_id=gid, actor="mia")["version"] \
        == "v2"
    assert _refusals(store, "gate.sign.refused") == []


# -- promotion of a version with a failing gate --------------------------------------------------

def test_promotion_on_a_failing_gate_is_refused_and_recorded(store: Store,
                                                             settings: Settings) -> None:
    gid = _gate(store, settings, rates=(0.5, 0.5))  # no difference: the CI includes zero
    with store.read() as conn:
        gate = gates.get_gate(conn, "shop", gid)
    assert gate["status"] == "failed"
    # no maintainer approves a failed gate, so no sign-off can be collected for it ...
    with pytest.raises(Conflict, match="is failed"):
        gates.sign_gate(store, "shop", gid, actor="max", role="maintainer",
                        capacity="maintainer")
    # ... and the release is refused naming the failing criterion
    with pytest.raises(Conflict, match=r"failing: primary_metric") as refused:
        releases.promote(store, "shop", C, "v2", gate_id=gid, actor="max")
    [entry] = _refusals(store, "release.promote.refused")
    assert (entry.actor, entry.entity_id, entry.reason) == ("max", f"{C}:v2",
                                                            refused.value.message)
    assert [e.actor for e in _refusals(store, "gate.sign.refused")] == ["max"]
    with store.read() as conn:
        assert registry.get_version(conn, "shop", C, "v2").status == "candidate"
    assert _count(store, releases_table) == 0


def test_an_unchecked_gate_or_a_rejection_blocks_the_release(store: Store,
                                                              settings: Settings) -> None:
    gid = _gate(store, settings, check=False)
    with pytest.raises(Conflict, match="not checked yet"):
        releases.promote(store, "shop", C, "v2", gate_id=gid, actor="max")
    gates.check_gate(store, "shop", gid, actor="mia")
    gates.sign_gate(store, "shop", gid, actor="max", role="maintainer", capacity="maintainer")
    gates.sign_gate(store, "shop", gid, actor="eva", role="expert", capacity="expert",
                    decision="reject", comment="answers to minors need review")
    with pytest.raises(Conflict, match="eva rejected it"):
        releases.promote(store, "shop", C, "v2", gate_id=gid, actor="mia")
    assert len(_refusals(store, "release.promote.refused")) == 2
    assert _count(store, releases_table) == 0


def test_a_gate_releases_once_and_only_its_own_version(store: Store,
                                                       settings: Settings) -> None:
    gid = _gate(store, settings)
    gates.sign_gate(store, "shop", gid, actor="max", role="maintainer", capacity="maintainer")
    with pytest.raises(Conflict, match="not a gate of version 'v3'"):
        releases.promote(store, "shop", C, "v3", gate_id=gid, actor="mia")
    assert len(_refusals(store, "release.promote.refused")) == 1  # recorded
    releases.promote(store, "shop", C, "v2", gate_id=gid, actor="mia")
    with pytest.raises(Conflict, match="a new release needs a new gate"):
        releases.promote(store, "shop", C, "v2", gate_id=gid, actor="mia")
    with pytest.raises(Conflict, match="sign-offs are closed"):
        gates.sign_gate(store, "shop", gid, actor="eva", role="expert", capacity="expert")
    with pytest.raises(Conflict, match="evidence is frozen"):
        gates.check_gate(store, "shop", gid, actor="mia")
    assert _count(store, releases_table) == 1


def test_a_plain_promotion_around_the_gate_is_refused_and_recorded(
        store: Store, settings: Settings, db_url: str, tmp_path: Path) -> None:
    _gate(store, settings)
    with pytest.raises(Conflict, match="release promote"):
        registry.promote(store, "shop", C, "v2", to="live", actor="mia")
    out = Cli(db_url, tmp_path)("models", "promote", "-p", "shop", C, "v2", "--to", "live",
                                code=2)
    assert "release promote" in out.stderr
    assert len(_refusals(store, "model.promote.refused")) == 2
    with store.read() as conn:
        assert registry.get_version(conn, "shop", C, "v2").status == "candidate"


# -- an edit to a closed audit entry ---------------------------------------------------------------

@pytest.fixture
def maintainer(store: Store, settings: Settings, portal: BlockingPortal  # noqa: F811
               ) -> Iterator[httpx.Client]:
    p = release_project(store, "medium")
    token = create_token(store, project_id=p.id, role="maintainer", name="m")
    with _client(create_app(settings, store), portal, token) as client:
        yield client


def test_an_audit_entry_cannot_be_edited_or_deleted(maintainer: httpx.Client,
                                                    store: Store) -> None:
    with store.read() as conn:
        first = conn.execute(select(audit_log).order_by(audit_log.c.id).limit(1)).one()
        n = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    # the database refuses it, even through the application's own connection
    for statement in ("UPDATE audit_log SET actor = 'mallory' WHERE id = :i",
                      "DELETE FROM audit_log WHERE id = :i"):
        with pytest.raises(DBAPIError, match="append-only"), store.transaction() as conn:
            conn.execute(text(statement), {"i": first.id})
    # the API refuses it with its reason, and records the attempt
    url = f"/api/v1/projects/shop/audit/{first.id}"
    edit = maintainer.patch(url, json={"actor": "mallory"})
    delete = maintainer.delete(url)
    for r, change in ((edit, "edit"), (delete, "delete")):
        assert r.status_code == 409, r.text
        assert f"append-only, so it cannot be changed ({change} refused" in \
            r.json()["error"]["message"]
        [entry] = _refusals(store, f"audit.{change}.refused")
        assert entry.entity_id == str(first.id) and entry.actor.startswith("token fl_")
    with store.read() as conn:
        again = conn.execute(select(audit_log).where(audit_log.c.id == first.id)).one()
        assert conn.execute(select(func.count()).select_from(audit_log)).scalar_one() == n + 2
    assert again == first
    assert audit.verify(store).ok


# -- priority inputs out of range ---------------------------------------------------------------

OUT_OF_RANGE = [("severity", 0), ("severity", 6), ("severity", 2.5), ("severity", True),
                ("severity", "3"), ("risk", 0), ("risk", 6), ("risk", float("nan")),
                ("effort", 0), ("effort", -1.0), ("effort", float("inf")), ("effort", 1e9),
                ("confidence", -0.01), ("confidence", 1.01), ("confidence", float("nan"))]


@pytest.fixture
def feedback_ids(store: Store, settings: Settings) -> list[int]:
    from feedbackloop.capture.ingest import Ingestor
    from feedbackloop.store.tables import feedback

    from . import story

    p = story.project(store)
    ing = Ingestor(store, settings, p)
    assert ing.interactions([story.interaction(k, f"u{k}") for k in range(3)]).rejected == 0
    assert ing.feedback([{"id": f"f{k}", "interaction_id": f"i{k}", "signal": "thumbs",
                          "value": False, "comment": "too long"}
                         for k in range(3)]).rejected == 0
    with store.read() as conn:
        return list(conn.execute(select(feedback.c.id).order_by(feedback.c.id)).scalars())


def test_priority_inputs_out_of_range_are_rejected(store: Store,
                                                   feedback_ids: list[int]) -> None:
    made = create_finding(store, "shop", title="Answers ramble", feedback_ids=feedback_ids,
                          severity=3, effort=2, risk=2, confidence=0.5, actor="max")
    entries = _count(store, audit_log)
    for field, value in OUT_OF_RANGE:
        with pytest.raises(InvalidInput) as bad:
            create_finding(store, "shop", title="Answers ramble", feedback_ids=feedback_ids,
                           actor="max", **{field: value})
        assert bad.value.field == field and field in bad.value.message, (field, value)
        with pytest.raises(InvalidInput) as bad:
            update_finding(store, "shop", made.id, actor="max", **{field: value})
        assert bad.value.field == field, (field, value)
    assert _count(store, findings) == 1
    with store.read() as conn:
        row = conn.execute(select(findings).where(findings.c.id == made.id)).one()
    assert (row.severity, row.effort, row.risk, row.confidence) == (3, 2.0, 2, 0.5)
    assert _count(store, audit_log) == entries  # nothing written, nothing recorded


def test_priority_inputs_out_of_range_through_the_api_and_cli(
        store: Store, settings: Settings, feedback_ids: list[int], portal: BlockingPortal,  # noqa: F811
        db_url: str, tmp_path: Path) -> None:
    p = _project(store)
    app = create_app(settings, store)
    token = create_token(store, project_id=p.id, role="maintainer", name="m")
    url = "/api/v1/projects/shop/findings"
    with _client(app, portal, token) as client:
        for field, value in [("severity", 6), ("risk", 0), ("effort", 0),
                             ("confidence", 1.5)]:
            r = client.post(url, json={"title": "t", "feedback": feedback_ids,
                                       field: value})
            assert r.status_code == 422, (field, value, r.text)
            assert r.json()["error"]["details"]["field"].endswith(field)
    cli = Cli(db_url, tmp_path)
    ids = ["--feedback", ",".join(str(i) for i in feedback_ids)]
    for option, value in [("--effort", "0"), ("--confidence", "2")]:
        out = cli("findings", "create", "-p", "shop", "--title", "t", *ids, option, value,
                  code=2)
        assert option.strip("-") in out.stderr
    assert _count(store, findings) == 0
