"""The Understand stage over HTTP on SQLite and PostgreSQL: the evaluation list and the
form that runs one, the evaluation page with its plots, tagging through the form (CSRF,
roles), the knowledge base, escaping of user text in notes, and the JSON API."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import orjson
import pytest
from anyio.from_thread import BlockingPortal

from feedbackloop.access import create_token, create_user, grant
from feedbackloop.evaluation import evaluate, knowledge_base
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

from ..evaluation.simulation import Simulated, simulate
from .test_pages import PASSWORD, XSS, _client, _csrf, _sign_in


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def sim(store: Store, settings: Settings) -> Simulated:
    sim = simulate(store, settings, n=800, seed=2)
    for name, role in (("mia", "maintainer"), ("vic", "viewer")):
        create_user(store, name, PASSWORD)
        grant(store, name, sim.project.id, role)
    return sim


@pytest.fixture
def app_client(sim: Simulated, store: Store, settings: Settings,
               portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(settings, store), portal) as c:
        yield c


def _run(client: httpx.Client, **form: object) -> httpx.Response:
    page = client.get("/projects/sim/evaluations")
    assert page.status_code == 200
    data = {"csrf": _csrf(page.text), **form}
    return client.post("/projects/sim/evaluations", data=data)  # type: ignore[arg-type]


def test_a_maintainer_runs_an_evaluation_and_reads_it(app_client: httpx.Client,
                                                      sim: Simulated) -> None:
    _sign_in(app_client, "mia")
    page = app_client.get("/projects/sim/evaluations")
    assert 'id="run-evaluation"' in page.text and "No evaluations yet." in page.text
    assert re.search(r'href="/projects/sim/evaluations"\s+class="current"', page.text)
    r = _run(app_client, human="thumbs", metric=["score", "noise"])
    assert r.status_code == 303
    assert r.headers["location"] == "/projects/sim/evaluations/1"
    page = app_client.get("/projects/sim/evaluations/1")
    assert page.status_code == 200
    text = page.text
    # the numbers on the page are those of the saved report
    report = evaluate(sim_store(app_client), "sim", "thumbs", ["score", "noise"], save=False)
    auroc = report.metric("score")["classification"]["auroc"]
    assert f"{auroc['value']:.3f}" in text
    assert f"{auroc['ci95'][0]:.3f}, {auroc['ci95'][1]:.3f}" in text
    ppi = report.metric("score")["approval_rate"]["ppi"]["value"]
    assert f"{ppi * 100:.1f}%" in text
    assert text.count('class="chart box-plot"') == 2
    assert text.count('class="chart reliability"') == 2
    assert 'class="isotonic"' in text and 'class="diagonal"' in text
    assert 'id="weights"' in text
    first = report.metric("score")["discrepancies"][0]["interaction"]
    assert f'href="/projects/sim/interactions/{first}"' in text
    listing = app_client.get("/projects/sim/evaluations").text
    assert 'href="/projects/sim/evaluations/1"' in listing and "mia" in listing


def sim_store(client: httpx.Client) -> Store:
    transport = client._transport
    return transport.asgi.app.state.store  # type: ignore[attr-defined, no-any-return]


def test_bad_evaluation_forms_are_explained(app_client: httpx.Client) -> None:
    _sign_in(app_client, "mia")
    for form, words in (({"human": "thumbs"}, "name at least one metric signal"),
                        ({"human": "thumbs", "metric": "nope"}, "no signal &#39;nope&#39;"),
                        ({"human": "thumbs", "metric": "score", "since": "soon"},
                         "since must be a date"),
                        ({"human": "thumbs", "metric": "score", "attribute": "x"},
                         "KEY=VALUE"),
                        ({"human": "thumbs", "metric": "score", "human_threshold": "high"},
                         "must be a number"),
                        ({"human": "thumbs\x00", "metric": "score"}, "without NUL")):
        r = _run(app_client, **form)
        assert r.status_code == 422, (form, r.text[:300])
        assert words in r.text, form
    r = app_client.post("/projects/sim/evaluations",
                        data={"csrf": "forged", "human": "thumbs", "metric": "score"})
    assert r.status_code == 403
    for path in ("/projects/sim/evaluations/99", "/projects/sim/evaluations/99999999999999",
                 "/projects/sim/evaluations/0", "/projects/nope/evaluations"):
        assert app_client.get(path).status_code == 404, path


def test_tagging_through_the_form_and_the_knowledge_base(
        app_client: httpx.Client, sim: Simulated, store: Store) -> None:
    report = evaluate(store, "sim", "thumbs", ["score"], created_by="setup")
    worst = [d["interaction"] for d in report.metric("score")["discrepancies"][:2]]
    _sign_in(app_client, "mia")
    page = app_client.get(f"/projects/sim/evaluations/{report.id}")
    r = app_client.post(f"/projects/sim/evaluations/{report.id}/tags", data={
        "csrf": _csrf(page.text), "metric": "score", "interaction": worst,
        "cause": "metric_error", "note": XSS})
    assert r.status_code == 303
    assert r.headers["location"] == f"/projects/sim/evaluations/{report.id}#discrepancies"
    page = app_client.get(f"/projects/sim/evaluations/{report.id}").text
    row = page.split(f'data-interaction="{worst[0]}"', 1)[1].split("</tr>", 1)[0]
    assert "metric error" in row
    kb = app_client.get("/projects/sim/knowledge-base")
    assert kb.status_code == 200
    assert re.search(r'data-cause="metric_error">.*?<td class="num">2</td>', kb.text, re.S)
    assert XSS not in kb.text and html.escape(XSS, quote=False) in kb.text.replace(
        "&#39;", "'").replace("&#34;", '"')
    assert "<script>alert" not in kb.text
    # bad tags: an unknown cause, a metric not in the evaluation, a forged token
    for data, status in (({"cause": "luck", "metric": "score"}, 422),
                         ({"cause": "other", "metric": "noise"}, 422),
                         ({"cause": "other", "metric": "score", "csrf": "forged"}, 403)):
        form = {"csrf": _csrf(page), "interaction": worst[:1], **data}
        assert app_client.post(f"/projects/sim/evaluations/{report.id}/tags",
                               data=form).status_code == status, data
    assert knowledge_base(store, "sim")["total"] == 2


def test_a_viewer_reads_but_may_not_run_or_tag(app_client: httpx.Client, store: Store) -> None:
    report = evaluate(store, "sim", "thumbs", ["score"])
    _sign_in(app_client, "vic")
    listing = app_client.get("/projects/sim/evaluations").text
    assert 'id="run-evaluation"' not in listing
    page = app_client.get(f"/projects/sim/evaluations/{report.id}")
    assert page.status_code == 200 and 'class="tag"' not in page.text
    assert _run(app_client, human="thumbs", metric="score").status_code == 403
    r = app_client.post(f"/projects/sim/evaluations/{report.id}/tags", data={
        "csrf": _csrf(page.text), "metric": "score", "interaction": "s00001",
        "cause": "other"})
    assert r.status_code == 403
    assert app_client.get("/projects/sim/knowledge-base").status_code == 200


def test_the_json_api(sim: Simulated, store: Store, settings: Settings,
                      portal: BlockingPortal) -> None:
    app = create_app(settings, store)

    def client(role: str) -> httpx.Client:
        token = create_token(store, project_id=sim.project.id, role=role)
        c = _client(app, portal)
        c.headers["Authorization"] = f"Bearer {token}"
        return c

    maintainer, viewer = client("maintainer"), client("viewer")
    body = {"human": "thumbs", "metrics": ["score"], "filters": {"model_version": "v1"},
            "seed": 4}
    r = maintainer.post("/api/v1/projects/sim/evaluations", json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    expected = evaluate(store, "sim", "thumbs", ["score"], save=False, seed=4,
                        filters=__import__("feedbackloop.evaluation").evaluation
                        .EvaluationFilters(model_version="v1"))
    assert made["result"]["metrics"][0]["spearman"] == \
        expected.result["metrics"][0]["spearman"]
    got = viewer.get(f"/api/v1/projects/sim/evaluations/{made['id']}")
    assert got.status_code == 200 and got.json()["result"] == made["result"]
    assert viewer.get("/api/v1/projects/sim/evaluations").json()["items"][0]["id"] == made["id"]
    assert viewer.post("/api/v1/projects/sim/evaluations", json=body).status_code == 403

    bad = maintainer.post("/api/v1/projects/sim/evaluations",
                          json={"human": "thumbs", "metrics": ["thumbs"]})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "metric"
    assert maintainer.post("/api/v1/projects/sim/evaluations",
                           json={"human": "thumbs", "metrics": []}).status_code == 422
    assert viewer.get("/api/v1/projects/sim/evaluations/123456").status_code == 404
    assert viewer.get("/api/v1/projects/sim/evaluations/99999999999999").status_code == 422

    tag = {"interactions": ["s00001", "s00002"], "human": "thumbs", "metric": "score",
           "cause": "data_gap", "note": "no context passed", "evaluation_id": made["id"]}
    r = maintainer.post("/api/v1/projects/sim/discrepancy-tags", json=tag)
    assert r.status_code == 201 and len(r.json()["ids"]) == 2
    assert viewer.post("/api/v1/projects/sim/discrepancy-tags", json=tag).status_code == 403
    bad = maintainer.post("/api/v1/projects/sim/discrepancy-tags", json={**tag, "cause": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["details"]["field"] == "cause"
    bad = maintainer.post("/api/v1/projects/sim/discrepancy-tags",
                          content=orjson.dumps({**tag, "interactions": ["a\x00"]}),
                          headers={"content-type": "application/json"})
    assert bad.status_code == 422
    kb = viewer.get("/api/v1/projects/sim/knowledge-base").json()
    assert {c["cause"]: c["count"] for c in kb["causes"]}["data_gap"] == 2
    assert kb["causes"][3]["tags"][0]["note"] == "no context passed"
