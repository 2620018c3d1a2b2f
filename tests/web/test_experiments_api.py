"""The experiments API on SQLite and PostgreSQL: plan, start, assign (with an ingest
token), log, read the analysis, decide; roles; 4xx naming the field for bad input, never a
500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from anyio.from_thread import BlockingPortal

from feedbackloop.access import create_token
from feedbackloop.experiments import clear_assignment_cache
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

from ..experiments.stored import DESIGN, shop
from .test_api import _client, portal  # noqa: F401

API = "/api/v1/projects/shop"


@pytest.fixture
def clients(store: Store, settings: Settings, portal: BlockingPortal  # noqa: F811
            ) -> Iterator[dict[str, httpx.Client]]:
    clear_assignment_cache()
    p = shop(store)
    app = create_app(settings, store)
    tokens = {role: create_token(store, project_id=p.id, role=role, name=f"{role}-1")
              for role in ("viewer", "maintainer", "ingest")}
    with _client(app, portal, tokens["viewer"]) as v, \
            _client(app, portal, tokens["maintainer"]) as m, \
            _client(app, portal, tokens["ingest"]) as i:
        yield {"viewer": v, "maintainer": m, "ingest": i}


def _field(r: httpx.Response) -> Any:
    return r.json()["error"]["details"].get("field")


def test_plan_run_analyse_decide(clients: dict[str, httpx.Client]) -> None:
    viewer, maint, ingest = clients["viewer"], clients["maintainer"], clients["ingest"]
    body = {"name": "tone", "design": DESIGN, "hypothesis": "<b>warmer</b> is better"}
    assert viewer.post(f"{API}/experiments", json=body).status_code == 403
    made = maint.post(f"{API}/experiments", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["design"]["planned"]["per_arm"] == 1377
    assert made.json()["created_by"].startswith("token fl_")
    assert maint.post(f"{API}/experiments", json=body).status_code == 409
    assert ingest.post(f"{API}/experiments/tone/assign",
                       json={"unit_id": "u"}).status_code == 409  # a draft
    assert maint.post(f"{API}/experiments/tone/start").json()["status"] == "running"

    rng = np.random.default_rng(4)
    interactions, feedback = [], []
    for u in range(120):
        got = ingest.post(f"{API}/experiments/tone/assign",
                          json={"unit_id": f"user{u}", "covariate": 1.5})
        assert got.status_code == 200, got.text
        a = got.json()
        assert a["unit"].startswith("p_") and a["propensity"] == 0.5
        interactions.append({"id": f"i{u}", "input": "q", "output": "a",
                             "user_id": f"user{u}", "experiment": "tone", "arm": a["arm"],
                             "propensity": a["propensity"]})
        feedback.append({"id": f"f{u}", "interaction_id": f"i{u}", "signal": "thumbs",
                         "value": bool(rng.random() < 0.4)})
    again = ingest.post(f"{API}/experiments/tone/assign", json={"unit_id": "user7"})
    assert again.json()["arm"] == interactions[7]["arm"]
    for kind, rows in (("interactions", interactions), ("feedback", feedback)):
        r = ingest.post(f"{API}/{kind}/batch", json={"records": rows})
        assert r.status_code == 200, r.text

    analysis = viewer.get(f"{API}/experiments/tone/analysis")
    assert analysis.status_code == 200, analysis.text
    a = analysis.json()
    assert sum(arm["exposed"] for arm in a["arms"]) == 120
    assert sum(arm["n"] for arm in a["arms"]) == 120
    assert a["primary"]["comparisons"][0]["absolute"]["estimable"] is True
    assert a["experiment"]["hypothesis"] == "<b>warmer</b> is better"
    assert len(a["sequential_path"]) == 1

    listed = viewer.get(f"{API}/experiments", params={"status": "running"}).json()
    assert [e["name"] for e in listed["items"]] == ["tone"]
    assert viewer.get(f"{API}/experiments", params={"kind": "bandit"}).json()["items"] == []

    # frozen: a changed design is a 409 naming the field; a new name supersedes
    changed = {**DESIGN, "mde": 0.1}
    frozen = maint.post(f"{API}/experiments/tone/design", json={"design": changed})
    assert frozen.status_code == 409 and _field(frozen) == "design.mde"
    assert viewer.post(f"{API}/experiments/tone/decision",
                       json={"decision": "abandon", "rationale": "x"}).status_code == 403
    decided = maint.post(f"{API}/experiments/tone/decision",
                         json={"decision": "ship", "arm": "treatment",
                               "rationale": "more thumbs, rating held"})
    assert decided.status_code == 201, decided.text
    one = viewer.get(f"{API}/experiments/tone").json()
    assert one["status"] == "decided"
    assert one["decision"]["decided_by"] == made.json()["created_by"]
    assert viewer.get(f"{API}/experiments/tone/analysis").json()["decision"]["arm"] == \
        "treatment"
    revised = maint.post(f"{API}/experiments/tone/design",
                         json={"design": changed, "new_name": "tone-2"})
    assert revised.status_code == 409  # decided: nothing to supersede


def test_stop_and_supersede(clients: dict[str, httpx.Client]) -> None:
    maint = clients["maintainer"]
    maint.post(f"{API}/experiments", json={"name": "s", "design": DESIGN})
    assert maint.post(f"{API}/experiments/s/stop").status_code == 409
    draft = maint.post(f"{API}/experiments/s/design",
                       json={"design": {**DESIGN, "mde": 0.1}})
    assert draft.json()["design"]["mde"] == 0.1
    maint.post(f"{API}/experiments/s/start")
    new = maint.post(f"{API}/experiments/s/design",
                     json={"design": {**DESIGN, "mde": 0.2}, "new_name": "s-2"}).json()
    assert (new["name"], new["supersedes"], new["status"]) == ("s-2", "s", "running")
    stopped = maint.post(f"{API}/experiments/s-2/stop", json={"reason": "enough"})
    assert stopped.json()["stop_reason"] == "enough"


BAD: list[tuple[str, str, str, Any, int, Any]] = [
    ("maintainer", "post", "/experiments", {"name": "x", "design": DESIGN, "extra": 1},
     422, None),
    ("maintainer", "post", "/experiments", {"name": "x y", "design": DESIGN}, 422, "name"),
    ("maintainer", "post", "/experiments",
     {"name": "x", "design": {**DESIGN, "primary": {"metric": "note"}}}, 422,
     "primary.metric"),
    ("maintainer", "post", "/experiments",
     {"name": "x", "design": {**DESIGN, "arms": "two"}}, 422, "arms"),
    ("maintainer", "post", "/experiments",
     {"name": "x", "design": {**DESIGN, "hypothesis": "\x00"}}, 422, "design"),
    ("maintainer", "post", "/experiments", {"name": "x", "design": DESIGN,
                                            "hypothesis": "a\x00b"}, 422, "hypothesis"),
    ("maintainer", "post", "/experiments", {"name": "x", "design": []}, 422, None),
    ("maintainer", "post", "/experiments", "not json", 400, "body"),
    ("viewer", "get", "/experiments/nope", None, 404, "name"),
    ("viewer", "get", "/experiments/nope/analysis", None, 404, "name"),
    ("viewer", "get", "/experiments?colour=red", None, 422, "colour"),
    ("viewer", "get", "/experiments?status=paused", None, 422, None),
    ("viewer", "get", "/experiments/a%00b", None, 422, "name"),
    ("maintainer", "post", "/experiments/d/decision",
     {"decision": "launch", "rationale": "x"}, 422, None),
    ("maintainer", "post", "/experiments/d/decision", {"decision": "ship"}, 422, None),
    ("maintainer", "post", "/experiments/d/decision",
     {"decision": "ship", "rationale": "x"}, 422, "arm"),
    ("maintainer", "post", "/experiments/d/decision",
     {"decision": "abandon", "rationale": "x"}, 409, "name"),  # a draft
    ("maintainer", "post", "/experiments/d/stop", {"reason": 5}, 422, None),
    ("ingest", "post", "/experiments/d/assign", {"unit_id": ""}, 422, None),
    ("ingest", "post", "/experiments/d/assign", {"unit_id": "u", "covariate": "nan"}, 422,
     None),
    ("ingest", "post", "/experiments/nope/assign", {"unit_id": "u"}, 404, "name"),
    ("ingest", "post", "/experiments/d/assign", {"unit_id": "a\x00b"}, 422, "unit_id"),
    ("viewer", "post", "/experiments/d/assign", {"unit_id": "u"}, 403, None),
    ("ingest", "get", "/experiments", None, 403, None),
]


def test_bad_requests_are_4xx_naming_the_field(clients: dict[str, httpx.Client]) -> None:
    made = clients["maintainer"].post(f"{API}/experiments", json={"name": "d",
                                                                 "design": DESIGN})
    assert made.status_code == 201
    for role, method, path, body, status, field in BAD:
        c = clients[role]
        if method == "get":
            r = c.get(f"{API}{path}")
        elif isinstance(body, str):
            r = c.post(f"{API}{path}", content=body,
                       headers={"Content-Type": "application/json"})
        else:
            r = c.post(f"{API}{path}", json=body)
        assert r.status_code == status, (path, body, r.status_code, r.text)
        assert "error" in r.json(), r.text
        if field is not None:
            assert _field(r) == field, (path, body, r.text)
