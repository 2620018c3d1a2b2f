"""The Improve stage's JSON API on SQLite and PostgreSQL: datasets with counts and rows
with lineage, model versions with their run and events, promote, rollback, toggles and
resolve; roles; and 4xx answers naming the field for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from feedbackloop.access import create_token
from feedbackloop.improve import registry as reg
from feedbackloop.improve.datasets import iter_rows
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

from .test_api import _client
from .test_improve_pages import Shop, portal, seed_shop  # noqa: F401

API = "/api/v1/projects/shop"


@pytest.fixture
def shop(store: Store, settings: Settings, tmp_path: Path) -> Shop:
    return seed_shop(store, settings, tmp_path / "artifacts", users=False)


@pytest.fixture
def clients(shop: Shop, portal: BlockingPortal  # noqa: F811
            ) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """(a viewer's client, a maintainer's client)."""
    app = create_app(shop.settings, shop.store)
    viewer = create_token(shop.store, project_id=shop.project.id, role="viewer")
    maintainer = create_token(shop.store, project_id=shop.project.id, role="maintainer",
                              name="max")
    with _client(app, portal, viewer) as v, _client(app, portal, maintainer) as m:
        yield v, m


def _field(r: httpx.Response) -> str:
    return str(r.json()["error"]["details"].get("field"))


def test_datasets_list_get_and_rows_with_lineage(clients: tuple[httpx.Client, httpx.Client],
                                                 shop: Shop) -> None:
    viewer, _ = clients
    items = viewer.get(f"{API}/datasets").json()["items"]
    assert [(d["name"], d["version"]) for d in items] == [("prefs", 1)]
    one = viewer.get(f"{API}/datasets/prefs").json()
    assert one["content_hash"] == shop.dataset.content_hash
    assert one["counts"]["rows"] == shop.dataset.counts["rows"]
    assert [m["name"] for m in one["models"]] == ["rm-1", "rm-2"]
    assert viewer.get(f"{API}/datasets/prefs", params={"version": 1}).json()["id"] == one["id"]

    # page through every row: same rows as the service, each naming its feedback
    with shop.store.read() as conn:
        expected = list(iter_rows(conn, shop.dataset))
    got, start = [], 0
    while start is not None:
        page = viewer.get(f"{API}/datasets/prefs/rows",
                          params={"start": start, "limit": 7}).json()
        got += page["items"]
        start = page["next_start"]
    assert [(r["position"], r["data"], r["feedback_ids"]) for r in got] == \
        [(r["position"], r["data"], r["feedback_ids"]) for r in expected]
    for r in got:
        (lin,) = r["lineage"]
        k = lin["feedback"].removeprefix("vote-")
        assert (lin["interaction"], lin["interaction_b"]) == (f"i/{k}a", f"i/{k}b")
    test = viewer.get(f"{API}/datasets/prefs/rows", params={"split": "test"}).json()
    assert {r["split"] for r in test["items"]} == {"test"}
    assert len(test["items"]) == shop.dataset.counts["splits"]["test"]


BAD_READS = [
    ("/datasets/nope", {}, 404, "name"),
    ("/datasets/prefs", {"version": 2}, 404, "name"),
    ("/datasets/prefs", {"version": 0}, 422, "version"),
    ("/datasets/prefs", {"version": "x"}, 422, "version"),
    ("/datasets/prefs", {"verison": 1}, 422, "verison"),
    ("/datasets/prefs/rows", {"split": "nope"}, 422, "split"),
    ("/datasets/prefs/rows", {"limit": 501}, 422, "limit"),
    ("/datasets/prefs/rows", {"start": -1}, 422, "start"),
    ("/models/reward/versions/nope", {}, 404, "name"),
    ("/models/nope", {}, 404, "component"),
    ("/models/reward/resolve", {}, 422, "unit_id"),
    ("/models/reward/resolve", {"unit_id": "u", "plan": "pro"}, 422, "plan"),
    ("/models/reward/resolve", {"unit_id": "u", "attr.": "x"}, 422, "attr."),
    ("/models/nope/resolve", {"unit_id": "u"}, 404, "component"),
    ("/models/reward/versions/a%00b", {}, 422, "name"),
]


def test_bad_reads_are_4xx_naming_the_field(
        clients: tuple[httpx.Client, httpx.Client]) -> None:
    viewer, _ = clients
    for path, params, status, field in BAD_READS:
        r = viewer.get(API + path, params=params)  # type: ignore[arg-type]
        assert (r.status_code, _field(r)) == (status, field), (path, params, r.text)


def test_models_versions_events_and_resolve(clients: tuple[httpx.Client, httpx.Client],
                                            shop: Shop) -> None:
    viewer, _ = clients
    items = viewer.get(f"{API}/models").json()["items"]
    assert [(v["name"], v["status"]) for v in items] == [("rm-1", "live"),
                                                         ("rm-2", "candidate")]
    key = items[1]["key_metric"]
    assert key["estimate"]["value"] == shop.rm2.metrics["held_out"]["accuracy"]["value"]
    assert viewer.get(f"{API}/models", params={"component": "other"}).json() == {"items": []}
    comp = viewer.get(f"{API}/models/reward").json()
    assert comp["live"] == "rm-1" and comp["toggle"]["rules"] == []
    one = viewer.get(f"{API}/models/reward/versions/rm-2").json()
    assert one["datasets"] == ["prefs@1"]
    assert one["training_run"]["seed"] == 1
    assert one["training_run"]["params"]["dataset_hash"] == shop.dataset.content_hash
    assert "numpy" in one["training_run"]["environment"]
    assert [e["kind"] for e in one["events"]] == ["registered"]
    events = viewer.get(f"{API}/models/reward/events").json()["items"]
    assert [(e["version"], e["kind"]) for e in events] == [
        ("rm-1", "registered"), ("rm-1", "promoted"), ("rm-2", "registered")]
    r = viewer.get(f"{API}/models/reward/resolve", params={"unit_id": "u1",
                                                           "attr.plan": "pro"}).json()
    assert r == {"component": "reward", "version": "rm-1", "rule": None, "status": "live",
                 "bucket": None}


def test_a_maintainer_toggles_promotes_and_rolls_back(
        clients: tuple[httpx.Client, httpx.Client], shop: Shop) -> None:
    viewer, maintainer = clients
    rules = [{"name": "pro 10 %", "when": [{"attribute": "plan", "op": "eq",
                                            "value": "pro"}], "split": {"rm-2": 10}}]
    r = maintainer.put(f"{API}/models/reward/toggle", json={"rules": rules})
    assert r.status_code == 200 and r.json()["rules"] == rules
    assert viewer.get(f"{API}/models/reward/toggle").json()["rules"] == rules
    # 10 % of the pro cohort: count over 400 units, within 4 binomial standard errors
    served = sum(viewer.get(f"{API}/models/reward/resolve",
                            params={"unit_id": f"user-{k}", "attr.plan": "pro"}
                            ).json()["version"] == "rm-2" for k in range(400))
    assert abs(served / 400 - 0.10) < 4 * (0.1 * 0.9 / 400) ** 0.5
    free = viewer.get(f"{API}/models/reward/resolve",
                      params={"unit_id": "user-1", "attr.plan": "free"}).json()
    assert free["version"] == "rm-1" and free["rule"] is None

    r = maintainer.post(f"{API}/models/reward/versions/rm-2/promote", json={"to": "live"})
    assert r.status_code == 200 and r.json()["status"] == "live"
    r = maintainer.post(f"{API}/models/reward/rollback")
    assert r.status_code == 200 and r.json()["live"]["name"] == "rm-1"
    events = viewer.get(f"{API}/models/reward/versions/rm-2").json()["events"]
    assert [(e["kind"], e["to_status"]) for e in events] == [
        ("registered", "candidate"), ("promoted", "live"), ("rolled_back", "rolled_back")]
    assert events[0]["actor"] == "max"  # the trainer's user; then the token acted
    assert all(e["actor"].startswith("token fl_") for e in events[1:])
    # a rolled-back version is never served, whatever the toggle says
    assert all(viewer.get(f"{API}/models/reward/resolve",
                          params={"unit_id": f"user-{k}", "attr.plan": "pro"}
                          ).json()["version"] == "rm-1" for k in range(50))
    r = maintainer.post(f"{API}/models/reward/rollback")
    assert r.status_code == 409 and _field(r) == "component"


def test_viewers_may_not_change_anything(clients: tuple[httpx.Client, httpx.Client],
                                         shop: Shop) -> None:
    viewer, _ = clients
    for r in (viewer.post(f"{API}/models/reward/versions/rm-2/promote", json={}),
              viewer.post(f"{API}/models/reward/rollback"),
              viewer.put(f"{API}/models/reward/toggle", json={"rules": []})):
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"
    with shop.store.read() as conn:
        assert reg.get_version(conn, "shop", "reward", "rm-2").status == "candidate"
        assert reg.get_toggle(conn, "shop", "reward")["updated_at"] is None


BAD_TOGGLES = [
    ({"rules": [{"split": {"rm-2": 60}}, {"split": {"rm-1": 30, "rm-2": 80}}]}, 422,
     "rules[1].split"),
    ({"rules": [{"split": {"rm-9": 10}}]}, 422, "rules[0].split"),
    ({"rules": [{"split": {"rm-2": "ten"}}]}, 422, "rules[0].split"),
    ({"rules": [{"when": [{"attribute": "plan", "op": "like", "value": "p"}],
                 "split": {"rm-2": 10}}]}, 422, "rules[0].when[0].op"),
    ({"rules": [{"split": {"rm-2": 10}, "extra": 1}]}, 422, "rules[0]"),
    ({"rules": [{"split": {"rm-2": 10}, "name": "a\x00b"}]}, 422, "rules"),
    ({"rules": "all"}, 422, "rules"),
    ({"rules": [], "more": 1}, 422, "more"),
]


def test_bad_toggles_are_refused_naming_the_field(
        clients: tuple[httpx.Client, httpx.Client], shop: Shop) -> None:
    _, maintainer = clients
    for body, status, field in BAD_TOGGLES:
        r = maintainer.put(f"{API}/models/reward/toggle", json=body)
        assert (r.status_code, _field(r)) == (status, field), (body, r.text)
    with shop.store.read() as conn:
        assert reg.get_toggle(conn, "shop", "reward")["rules"] == []


def test_bad_promotions_are_refused(clients: tuple[httpx.Client, httpx.Client]) -> None:
    _, maintainer = clients
    r = maintainer.post(f"{API}/models/reward/versions/rm-2/promote", json={"to": "gone"})
    assert r.status_code == 422 and _field(r) == "to"
    r = maintainer.post(f"{API}/models/reward/versions/rm-1/promote", json={"to": "staged"})
    assert r.status_code == 409 and _field(r) == "to"
    r = maintainer.post(f"{API}/models/reward/versions/rm-9/promote", json={})
    assert r.status_code == 404 and _field(r) == "name"
    r = maintainer.post(f"{API}/models/reward/versions/rm-2/promote", content=b"{",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400
