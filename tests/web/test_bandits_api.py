"""The bandits API on SQLite and PostgreSQL: create (maintainers), choose and reward (the
ingest role too), status (viewers), off-policy estimates on posted rows and stored logs;
roles; and 4xx answers naming the field for bad input, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select

from feedbackloop.access import create_token
from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.capture.projects import Project, create_project
from feedbackloop.experiments.bandits import clear_bandit_cache
from feedbackloop.settings import Settings
from feedbackloop.stats.offpolicy import OffPolicyLog, evaluate
from feedbackloop.store import Store
from feedbackloop.store.tables import bandit_decisions
from feedbackloop.web.app import create_app

from .test_api import _client, portal  # noqa: F401

API = "/api/v1/projects/shop"
Clients = dict[str, httpx.Client]


@pytest.fixture
def shop(store: Store) -> Project:
    clear_bandit_cache()
    return create_project(store, "shop", risk_tier="low")


@pytest.fixture
def clients(shop: Project, store: Store, settings: Settings,
            portal: BlockingPortal) -> Iterator[Clients]:  # noqa: F811
    app = create_app(settings, store)
    tokens = {role: create_token(store, project_id=shop.id, role=role, name=f"{role}-bot")
              for role in ("viewer", "maintainer", "ingest")}
    other = create_project(store, "other")
    tokens["stranger"] = create_token(store, project_id=other.id, role="admin")
    with _client(app, portal, tokens["viewer"]) as v, \
            _client(app, portal, tokens["maintainer"]) as m, \
            _client(app, portal, tokens["ingest"]) as i, \
            _client(app, portal, tokens["stranger"]) as s:
        yield {"viewer": v, "maintainer": m, "ingest": i, "stranger": s}


def _field(r: httpx.Response) -> str:
    return str(r.json()["error"]["details"].get("field"))


BANDIT = {"name": "greeting", "arms": [{"name": "short", "version": "v1"},
                                       {"name": "long", "version": "v2"}],
          "policy": "thompson", "reward_kind": "binary", "hypothesis": "<b>long</b> wins"}


def test_create_choose_reward_status(clients: Clients, store: Store, settings: Settings) -> None:
    m, ingest, viewer = clients["maintainer"], clients["ingest"], clients["viewer"]
    made = m.post(f"{API}/bandits", json=BANDIT)
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["floor"], body["status"], body["kind"]) == (0.01, "running", "bandit")
    assert body["hypothesis"] == "<b>long</b> wins" and body["created_by"].startswith("token")
    assert m.post(f"{API}/bandits", json=BANDIT).status_code == 409
    for role in ("viewer", "ingest"):
        denied = clients[role].post(f"{API}/bandits", json={**BANDIT, "name": "x"})
        assert denied.status_code == 403
    assert clients["stranger"].post(f"{API}/bandits/greeting/choose", json={}).status_code \
        == 403

    chosen = ingest.post(f"{API}/bandits/greeting/choose",
                         json={"unit_id": "user-7", "context": {"page": "home"}})
    assert chosen.status_code == 200, chosen.text
    d = chosen.json()
    assert set(d) == {"decision_id", "arm", "version", "propensity", "probabilities"}
    assert d["propensity"] == d["probabilities"][d["arm"]]
    assert d["version"] == {"short": "v1", "long": "v2"}[d["arm"]]
    assert sum(d["probabilities"].values()) == pytest.approx(1.0)
    with store.read() as conn:
        row = conn.execute(select(bandit_decisions).where(
            bandit_decisions.c.id == d["decision_id"])).one()
    assert row.unit == pseudonymise(settings.pseudonym_key_bytes(), "user-7")
    assert row.propensity == d["propensity"] and row.context == {"page": "home"}
    assert ingest.post(f"{API}/bandits/greeting/choose").status_code == 200  # no body at all

    paid = ingest.post(f"{API}/bandits/greeting/reward",
                       json={"decision_id": d["decision_id"], "reward": 1})
    assert paid.status_code == 200, paid.text
    assert paid.json() == {"decision_id": d["decision_id"], "arm": d["arm"], "reward": 1.0,
                           "n": 1, "mean": 1.0}
    assert ingest.post(f"{API}/bandits/greeting/reward",
                       json={"decision_id": d["decision_id"], "reward": 0}).status_code == 409
    assert viewer.post(f"{API}/bandits/greeting/reward",
                       json={"decision_id": d["decision_id"], "reward": 1}).status_code == 403

    status = viewer.get(f"{API}/bandits/greeting")
    assert status.status_code == 200
    s = status.json()
    assert s["decisions"] == 2 and s["rewarded"] == 1
    arm = next(a for a in s["arms"] if a["name"] == d["arm"])
    assert arm["n"] == 1 and arm["mean"]["method"] == "Wilson score interval"
    assert ingest.get(f"{API}/bandits/greeting").status_code == 403  # ingest cannot read


BAD = [
    ("post", "/bandits", {**BANDIT, "arms": [{"name": "a"}]}, 422, None),
    ("post", "/bandits", {**BANDIT, "floor": 0.001}, 422, "floor"),
    ("post", "/bandits", {**BANDIT, "floor": 0.9}, 422, None),
    ("post", "/bandits", {**BANDIT, "policy": "greedy"}, 422, None),
    ("post", "/bandits", {**BANDIT, "extra": 1}, 422, None),
    ("post", "/bandits", {**BANDIT, "name": "bad name"}, 422, "name"),
    ("post", "/bandits", {**BANDIT, "hypothesis": "a\x00b"}, 422, "hypothesis"),
    ("post", "/bandits", {**BANDIT, "arms": [{"name": "a"}, {"name": "a"}]}, 422,
     "arms[1].name"),
    ("post", "/bandits", {**BANDIT, "reward_signal": "nope"}, 404, "reward_signal"),
    ("post", "/bandits/greeting/choose", {"unit_id": ""}, 422, None),
    ("post", "/bandits/greeting/choose", {"unit": "x"}, 422, None),
    ("post", "/bandits/greeting/choose", {"context": [1]}, 422, None),
    ("post", "/bandits/greeting/choose", {"unit_id": "a\x00"}, 422, "unit_id"),
    ("post", "/bandits/nope/choose", {}, 404, "name"),
    ("post", "/bandits/greeting/reward", {"decision_id": 99, "reward": 1}, 404,
     "decision_id"),
    ("post", "/bandits/greeting/reward", {"decision_id": 1, "reward": 0.5}, 422, "reward"),
    ("post", "/bandits/greeting/reward", {"decision_id": 0, "reward": 1}, 422, None),
    ("post", "/bandits/greeting/reward", {"decision_id": 1}, 422, None),
    ("get", "/bandits/nope", None, 404, "name"),
    ("get", "/bandits/greeting?verbose=1", None, 422, "verbose"),
    ("post", "/offpolicy", {}, 422, "rows"),
    ("post", "/offpolicy", {"rows": [{"action": 0, "reward": 1, "propensity": 0,
                                      "target": [1.0]}]}, 422, None),
    ("post", "/offpolicy", {"rows": [{"action": 0, "reward": 1, "propensity": 0.5,
                                      "target": [0.5, 0.4]}]}, 422, "rows[0].target"),
    ("post", "/offpolicy", {"rows": [{"action": 3, "reward": 1, "propensity": 0.5,
                                      "target": [0.5, 0.5]}]}, 422, "rows[0].action"),
    ("post", "/offpolicy", {"rows": [{"action": 0, "reward": 1, "propensity": 0.5,
                                      "target": [0.5, 0.5]},
                                     {"action": 0, "reward": 1, "propensity": 0.5,
                                      "target": [1.0]}]}, 422, "rows[1].target"),
    ("post", "/offpolicy", {"experiment": "greeting"}, 422, "target"),
    ("post", "/offpolicy", {"experiment": "greeting", "target": {"zz": 1.0}}, 422,
     "target"),
    ("post", "/offpolicy", {"experiment": "nope", "target": {"a": 1.0}}, 404, "experiment"),
]


def test_bad_input_is_a_4xx_naming_the_field(clients: Clients) -> None:
    m = clients["maintainer"]
    assert m.post(f"{API}/bandits", json=BANDIT).status_code == 201
    d = m.post(f"{API}/bandits/greeting/choose", json={}).json()
    assert d["decision_id"] == 1
    for method, path, body, status, field in BAD:
        r = m.request(method, f"{API}{path}", json=body)
        assert r.status_code == status, (path, body, r.text)
        assert "error" in r.json()
        if field is not None:
            assert _field(r) == field, (path, body, r.json())


def test_offpolicy_on_rows_and_on_a_stored_log(clients: Clients) -> None:
    viewer, m = clients["viewer"], clients["maintainer"]
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(200):
        a = int(rng.integers(2))
        rows.append({"action": a, "reward": float(rng.random() < (0.3, 0.6)[a]),
                     "propensity": 0.5, "target": [0.2, 0.8], "predicted": [0.3, 0.5]})
    got = viewer.post(f"{API}/offpolicy", json={"rows": rows, "bootstrap": 200, "seed": 4})
    assert got.status_code == 200, got.text
    log = OffPolicyLog.of([r["action"] for r in rows], [r["reward"] for r in rows],
                          [0.5] * 200, [r["target"] for r in rows],
                          [r["predicted"] for r in rows])
    want = evaluate(log, rng=np.random.default_rng(4), bootstrap=200)
    for key in ("ips", "snips", "dm", "dr"):
        assert got.json()[key]["estimate"] == pytest.approx(want[key]["estimate"])
        assert got.json()[key]["ci95"] == pytest.approx(want[key]["ci95"])
    assert m.post(f"{API}/bandits", json=BANDIT).status_code == 201
    for _ in range(6):
        d = m.post(f"{API}/bandits/greeting/choose", json={}).json()
        m.post(f"{API}/bandits/greeting/reward",
               json={"decision_id": d["decision_id"], "reward": int(d["arm"] == "long")})
    stored = viewer.post(f"{API}/offpolicy", json={"experiment": "greeting",
                                                   "target": {"long": 1.0}, "bootstrap": 50})
    assert stored.status_code == 200, stored.text
    s = stored.json()
    assert s["n"] == 6 and s["kind"] == "bandit" and s["target"] == {"short": 0.0,
                                                                      "long": 1.0}
    assert s["snips"]["estimate"] == pytest.approx(1.0)
