"""The model registry on SQLite and PostgreSQL: statuses and their events, promote and
rollback, toggles and resolve, content-addressed artifacts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.improve import registry as reg
from feedbackloop.improve.artifacts import ArtifactStore, fetch, sha256_bytes
from feedbackloop.store import Store, utcnow
from feedbackloop.store.tables import model_events, toggles

from .model_data import insert_dataset, preference_rows, project


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    reg.clear_resolve_cache()


def _register(store: Store, tmp_path: Path, *names: str, component: str = "ranking",
              **kw: Any) -> list[reg.ModelVersion]:
    project(store)
    return [reg.register_version(store, "shop", component, n, artifact=f"model {n}".encode(),
                                 artifact_root=tmp_path / "art", **kw) for n in names]


def _statuses(store: Store, component: str = "ranking") -> dict[str, str]:
    with store.read() as conn:
        return {v.name: v.status for v in reg.list_versions(conn, "shop", component)}


def _events(store: Store) -> list[tuple[str | None, str, str | None, str | None]]:
    with store.read() as conn:
        return [(e["version"], e["kind"], e["from_status"], e["to_status"])
                for e in reg.list_events(conn, "shop")]


def test_register_stores_the_artifact_and_lineage(store: Store, tmp_path: Path) -> None:
    project(store)
    ds = insert_dataset(store, "shop", "prefs", "preference", preference_rows(10, 2))
    (v1,) = _register(store, tmp_path, "v1")
    v2 = reg.register_version(store, "shop", "ranking", "v2", artifact=b"weights",
                              artifact_root=tmp_path / "art", parent="v1", dataset_ids=[ds],
                              metrics={"accuracy": 0.8}, description="second",
                              created_by="ana")
    assert v1.status == "candidate" and v1.artifact_hash == sha256_bytes(b"model v1")
    assert v2.parent == "v1" and v2.datasets == ["prefs@1"] and v2.metrics == {
        "accuracy": 0.8}
    assert v2.artifact_uri is not None and v2.artifact_uri.endswith(
        f"/sha256/{v2.artifact_hash[:2]}/{v2.artifact_hash}")
    assert fetch(v2.artifact_uri, sha256_bytes(b"weights")) == b"weights"
    assert _events(store) == [("v1", "registered", None, "candidate"),
                              ("v2", "registered", None, "candidate")]
    with store.read() as conn:
        assert reg.get_version(conn, "shop", "ranking", "v2").to_dict()["created_by"] == "ana"

    with pytest.raises(Conflict, match="version 'v2' of component 'ranking' exists"):
        _register(store, tmp_path, "v2")
    with pytest.raises(NotFound, match="no version 'v9'"):
        reg.register_version(store, "shop", "ranking", "v3", parent="v9")
    with pytest.raises(NotFound, match="no dataset with id 999"):
        reg.register_version(store, "shop", "ranking", "v3", dataset_ids=[999])
    with pytest.raises(InvalidInput, match="component must be") as bad:
        reg.register_version(store, "shop", "bad component", "v3")
    assert bad.value.field == "component"
    with pytest.raises(InvalidInput, match="version name"):
        reg.register_version(store, "shop", "ranking", "")
    assert sorted(_statuses(store)) == ["v1", "v2"]  # nothing half-written


def test_promote_keeps_one_live_version_and_records_events(store: Store,
                                                           tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2", "v3")
    reg.promote(store, "shop", "ranking", "v1", actor="ana")
    staged = reg.promote(store, "shop", "ranking", "v2", to="staged")
    assert staged.status == "staged"
    live = reg.promote(store, "shop", "ranking", "v2", actor="bo")
    assert live.status == "live"
    assert _statuses(store) == {"v1": "retired", "v2": "live", "v3": "candidate"}
    assert _events(store)[3:] == [
        ("v1", "promoted", "candidate", "live"),
        ("v2", "promoted", "candidate", "staged"),
        ("v1", "retired", "live", "retired"),
        ("v2", "promoted", "staged", "live")]
    with store.read() as conn:
        last = reg.list_events(conn, "shop", "ranking")[-1]
    assert last["detail"] == {"previous_live": "v1"} and last["actor"] == "bo"

    with pytest.raises(Conflict, match="'v2' of 'ranking' is live"):
        reg.promote(store, "shop", "ranking", "v2")
    with pytest.raises(NotFound, match="no version 'v9'"):
        reg.promote(store, "shop", "ranking", "v9")
    with pytest.raises(InvalidInput, match="not 'gold'"):
        reg.promote(store, "shop", "ranking", "v3", to="gold")
    with pytest.raises(Conflict, match="cannot become staged"):
        reg.promote(store, "shop", "ranking", "v1", to="staged")
    retired = reg.promote(store, "shop", "ranking", "v3", to="retired")
    assert retired.status == "retired"
    assert list(_statuses(store).values()).count("live") == 1


def test_rollback_restores_the_previous_live_version(store: Store, tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2", "v3")
    for name in ("v1", "v2", "v3"):
        reg.promote(store, "shop", "ranking", name)
    back = reg.rollback(store, "shop", "ranking", actor="ana")
    assert back.name == "v2" and back.status == "live"
    assert _statuses(store) == {"v1": "retired", "v2": "live", "v3": "rolled_back"}
    assert _events(store)[-2:] == [("v3", "rolled_back", "live", "rolled_back"),
                                   ("v2", "promoted", "retired", "live")]
    # again: v3 was rolled back, so v1 (live before v2) returns, never v3
    assert reg.rollback(store, "shop", "ranking").name == "v1"
    assert _statuses(store) == {"v1": "live", "v2": "rolled_back", "v3": "rolled_back"}


def test_rollback_without_a_previous_live_version_changes_nothing(store: Store,
                                                                  tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2")
    with pytest.raises(Conflict, match="no live version to roll back"):
        reg.rollback(store, "shop", "ranking")
    reg.promote(store, "shop", "ranking", "v1")
    before_status, before_events = _statuses(store), _events(store)
    with pytest.raises(Conflict, match="no version was live before 'v1'") as exc:
        reg.rollback(store, "shop", "ranking")
    assert exc.value.details == {"field": "component", "live": "v1"}
    assert _statuses(store) == before_status == {"v1": "live", "v2": "candidate"}
    assert _events(store) == before_events
    with pytest.raises(NotFound, match="component 'search' has no versions"):
        reg.rollback(store, "shop", "search")


BETA = [{"name": "beta 10%", "when": [{"attribute": "tier", "op": "eq", "value": "beta"}],
         "split": {"v2": 10}}]


def test_toggle_errors_name_the_rule_and_change_nothing(store: Store, tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2")
    reg.set_toggle(store, "shop", "ranking", BETA, actor="ana")
    events = _events(store)
    over = [{"split": {"v1": 60, "v2": 50}}]
    with pytest.raises(InvalidInput, match=r"rules\[0\]: percentages add up to 110 %"):
        reg.set_toggle(store, "shop", "ranking", over)
    unknown = [*BETA, {"name": "all", "split": {"v9": 5}}]
    with pytest.raises(InvalidInput, match=r"rules\[1\] \(all\): no version 'v9'") as exc:
        reg.set_toggle(store, "shop", "ranking", unknown)
    assert exc.value.field == "rules[1].split"
    with pytest.raises(InvalidInput, match="rules must be a list"):
        reg.set_toggle(store, "shop", "ranking", "v2")  # type: ignore[arg-type]
    with store.read() as conn:
        toggle = reg.get_toggle(conn, "shop", "ranking")
    assert toggle["rules"] == BETA and toggle["updated_by"] == "ana"
    assert _events(store) == events


def test_set_toggle_updates_one_row_and_records_the_change(store: Store,
                                                           tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2")
    reg.promote(store, "shop", "ranking", "v1")
    first = reg.set_toggle(store, "shop", "ranking", BETA, actor="ana")
    assert first["default"] == "v1" and first["rules"] == BETA
    cleared = reg.set_toggle(store, "shop", "ranking", [], actor="bo")
    assert cleared["rules"] == [] and cleared["updated_by"] == "bo"
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(toggles)).scalar() == 1
        kinds = [e for e in reg.list_events(conn, "shop") if e["kind"] == "toggle"]
    assert [e["detail"]["rules"] for e in kinds] == [BETA, []]
    assert kinds[1]["detail"]["previous"] == BETA


def test_resolve_serves_ten_percent_of_one_cohort(store: Store, tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2")
    reg.promote(store, "shop", "ranking", "v1")
    reg.set_toggle(store, "shop", "ranking", BETA)
    n = 4000
    answers = [reg.resolve(store, "shop", "ranking", f"user-{i}", {"tier": "beta"})
               for i in range(n)]
    served = sum(a["version"] == "v2" for a in answers)
    # Binomial(4000, 0.1): sd = sqrt(n p (1 - p)) = 19; four sd either side
    assert abs(served - 0.1 * n) <= 4 * math.sqrt(n * 0.1 * 0.9)
    for a in answers:
        if a["version"] == "v2":
            assert (a["rule"], a["status"]) == (0, "candidate") and a["bucket"] < 1000
        else:
            assert (a["version"], a["rule"], a["status"]) == ("v1", None, "live")
    # the same unit keeps its version; other cohorts get the live version
    again = reg.resolve(store, "shop", "ranking", "user-1", {"tier": "beta"})
    assert again == answers[1]
    others = {reg.resolve(store, "shop", "ranking", f"user-{i}", {"tier": "free"})["version"]
              for i in range(500)}
    assert others == {"v1"}

    # promote v2 and roll it back: a rolled-back version is served to nobody
    reg.promote(store, "shop", "ranking", "v2")
    assert reg.resolve(store, "shop", "ranking", "user-1", {"tier": "free"})["version"] == "v2"
    reg.rollback(store, "shop", "ranking")
    after = [reg.resolve(store, "shop", "ranking", f"user-{i}", {"tier": "beta"})
             for i in range(n)]
    assert {(a["version"], a["rule"], a["status"]) for a in after} == {("v1", None, "live")}


def test_resolve_cache_sees_changes_made_elsewhere_after_its_ttl(store: Store,
                                                                 tmp_path: Path) -> None:
    _register(store, tmp_path, "v1", "v2")
    reg.promote(store, "shop", "ranking", "v1")
    reg.set_toggle(store, "shop", "ranking", [{"split": {"v2": 100}}])
    assert reg.resolve(store, "shop", "ranking", "u")["version"] == "v2"
    # another process clears the rules: it writes the row and its event
    with store.transaction() as conn:
        pid = conn.execute(select(toggles.c.project_id)).scalar()
        conn.execute(toggles.update().values(rules=[], updated_at=utcnow()))
        conn.execute(model_events.insert().values(
            project_id=pid, component="ranking", kind="toggle", detail={}, actor="other",
            created_at=utcnow()))
    assert reg.resolve(store, "shop", "ranking", "u", ttl=3600)["version"] == "v2"  # cached
    fresh = reg.resolve(store, "shop", "ranking", "u", ttl=0)
    assert (fresh["version"], fresh["rule"]) == ("v1", None)


def test_resolve_errors(store: Store, tmp_path: Path) -> None:
    _register(store, tmp_path, "v1")
    with pytest.raises(NotFound, match="component 'search' has no versions"):
        reg.resolve(store, "shop", "search", "u")
    with pytest.raises(InvalidInput, match="unit_id"):
        reg.resolve(store, "shop", "ranking", "")
    with pytest.raises(NotFound, match="no project 'nope'"):
        reg.resolve(store, "nope", "ranking", "u")
    # no live version and no rules: nothing to serve, said plainly
    assert reg.resolve(store, "shop", "ranking", "u") == {
        "component": "ranking", "version": None, "rule": None, "status": None,
        "bucket": None}


def test_artifacts_are_content_addressed_and_checked(store: Store, tmp_path: Path) -> None:
    arts = ArtifactStore(tmp_path / "art")
    a, b = arts.put(b"abc"), arts.put(b"abc")
    assert a == b and a.sha256 == sha256_bytes(b"abc") and a.size == 3
    for folder in ("m1", "m2"):  # same files written at other times: same tar, same hash
        (tmp_path / folder / "sub").mkdir(parents=True)
        (tmp_path / folder / "sub" / "w.bin").write_bytes(b"\x00\x01")
        (tmp_path / folder / "config.json").write_text("{}")
    assert arts.put(tmp_path / "m1").sha256 == arts.put(tmp_path / "m2").sha256
    with pytest.raises(NotFound, match="no artifact file or folder"):
        arts.put(tmp_path / "missing")
    memory = ArtifactStore("memory://fl-test-artifacts")
    kept = memory.put(b"in memory")
    assert kept.uri.startswith("memory://") and fetch(kept.uri, kept.sha256) == b"in memory"


def test_a_missing_or_altered_artifact_is_an_error_naming_version_and_hash(
        store: Store, tmp_path: Path) -> None:
    (v1,) = _register(store, tmp_path, "v1")
    assert v1.artifact_uri is not None and v1.artifact_hash is not None
    path = Path(v1.artifact_uri.removeprefix("file://"))
    path.write_bytes(b"tampered")
    with pytest.raises(Conflict, match=f"ranking/v1 .* expected sha256 {v1.artifact_hash}"):
        fetch(v1.artifact_uri, v1.artifact_hash, version="ranking/v1")
    path.unlink()
    with pytest.raises(NotFound, match=f"ranking/v1 is missing.*{v1.artifact_hash}"):
        fetch(v1.artifact_uri, v1.artifact_hash, version="ranking/v1")
    with pytest.raises(InvalidInput, match="not made by a trainer"):
        reg.load_model(store, "shop", "ranking", "v1")


def test_concurrent_promotions_leave_one_live_version(store: Store, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.exc import OperationalError

    names = [f"v{i}" for i in range(8)]
    _register(store, tmp_path, *names)

    def go(name: str) -> str:
        try:
            return reg.promote(store, "shop", "ranking", name).name
        except OperationalError:  # SQLite: a writer that lost the race may be refused
            return ""

    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            done = [n for n in pool.map(go, names) if n]
        assert done
        statuses = _statuses(store)
        assert list(statuses.values()).count("live") == 1
        assert statuses[done[-1]] in ("live", "retired")
    # every go-live after the first retired exactly the version live before it
    with store.read() as conn:
        events = reg.list_events(conn, "shop", "ranking")
    live = None
    for e in events:
        if e["kind"] == "retired" and e["from_status"] == "live":
            assert e["version"] == live
        if e["to_status"] == "live":
            live = e["version"]
