"""The fairness page and API over HTTP on SQLite and PostgreSQL: the report and its plot,
cohort regressions, bad values as messages, access, escaping of cohort names, and the
JSON API."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from feedbackloop.access import create_token, create_user, grant
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project, create_signal, get_project
from feedbackloop.capture.schema import SignalIn
from feedbackloop.evaluation.fairness import cohort_regressions, fairness_report
from feedbackloop.settings import load_settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

from ..evaluation.fairness_simulation import FairnessSim, shared_simulation
from .test_pages import PASSWORD, XSS, _client, _sign_in


class World:
    def __init__(self, store: Store, sim: FairnessSim, app: object) -> None:
        self.store, self.sim, self.app = store, sim, app


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          pg_template: str | None) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("fairness-web")
    for url, store, sim in shared_simulation(request.param, tmp, pg_template):
        settings = load_settings(data_dir=str(tmp / "data"), database_url=url,
                                 pseudonym_key="test-pseudonym-key")
        for name, role in (("mia", "maintainer"), ("vic", "viewer")):
            create_user(store, name, PASSWORD)
            grant(store, name, sim.project.id, role)
        create_user(store, "out", PASSWORD)
        # a second project whose cohort names are hostile markup
        xss = create_project(store, "xss")
        create_signal(store, xss, SignalIn(name="thumbs", type="binary"))
        grant(store, "mia", xss.id, "viewer")
        ing = Ingestor(store, settings, xss)
        ing.interactions([{"id": f"x{i}", "input": "q", "output": "a",
                           "attributes": {"grp": XSS if i % 2 else "plain"}}
                          for i in range(6)])
        ing.feedback([{"id": f"t{i}", "interaction_id": f"x{i}", "signal": "thumbs",
                       "value": bool(i % 3), "source": "end_user"} for i in range(6)])
        yield World(store, sim, create_app(settings, store))


@pytest.fixture
def client(world: World, portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(world.app, portal) as c:  # type: ignore[arg-type]
        yield c


def test_the_page_shows_the_report_with_its_plot(client: httpx.Client, world: World) -> None:
    _sign_in(client, "vic")
    empty = client.get("/projects/fair/fairness")
    assert empty.status_code == 200 and 'id="fairness-form"' in empty.text
    assert 'href="/projects/fair/fairness"' in empty.text and 'id="check"' not in empty.text
    page = client.get("/projects/fair/fairness", params={
        "attribute": "locale", "signal": "thumbs", "version": "v2", "metric": "judge"})
    assert page.status_code == 200
    text = page.text
    report = fairness_report(world.store, "fair", attribute="locale", signal="thumbs",
                             version="v2", prediction="judge")
    assert 'id="check-status">failed' in text
    assert '<svg class="chart cohorts"' in text and 'class="threshold"' in text
    for c in report["cohorts"]:
        assert f'data-cohort="{c["cohort"]}" data-value="{c["value"]:.6g}"' in text
    de = next(r for r in report["impact_ratios"]["rows"] if r["cohort"] == "de")
    assert f'{de["ratio"]["value"]:.3f}' in text and "below 0.8" in text
    assert 'id="classifier"' in text and 'id="representation"' in text
    assert 'data-criterion="equalized_odds_ratio"' in text
    ok = client.get("/projects/fair/fairness", params={
        "attribute": "locale", "signal": "thumbs", "version": "v1"})
    assert 'id="check-status">passed' in ok.text
    rating = client.get("/projects/fair/fairness", params={
        "attribute": "locale", "signal": "rating"})
    assert rating.status_code == 200 and "Mean" in rating.text


def test_cohort_regressions_on_the_page(client: httpx.Client, world: World) -> None:
    _sign_in(client, "mia")
    page = client.get("/projects/fair/fairness", params={
        "attribute": "locale", "signal": "thumbs", "version": "v2", "baseline": "v1",
        "tolerance": "0.05"})
    assert page.status_code == 200
    assert 'id="regressions-status">failed' in page.text
    expected = cohort_regressions(world.store, "fair", attribute="locale", signal="thumbs",
                                  baseline_version="v1", candidate_version="v2",
                                  tolerance=0.05)
    de = next(c for c in expected["cohorts"] if c["cohort"] == "de")
    assert f'{de["difference"]:+.3f}' in page.text


BAD = [
    ({"attribute": "locale", "signal": "nope"}, "no signal"),
    ({"attribute": "lo'cale", "signal": "thumbs"}, "cohort attribute"),
    ({"attribute": "locale", "signal": "thumbs", "min_ratio": "abc"}, "must be a number"),
    ({"attribute": "locale", "signal": "thumbs", "min_ratio": "7"}, "min_ratio"),
    ({"attribute": "locale", "signal": "thumbs", "baseline": "v1"}, "name the version"),
    ({"attribute": "locale", "signal": "thumbs", "baseline": "v1", "version": "v2",
      "tolerance": "-1"}, "tolerance"),
    ({"attribute": "locale"}, "both a cohort attribute and a signal"),
    ({"attribute": "id", "signal": "thumbs"}, "at most 50 cohorts"),
]


def test_bad_values_are_messages(client: httpx.Client) -> None:
    _sign_in(client, "vic")
    for params, message in BAD:
        page = client.get("/projects/fair/fairness", params=params)
        assert page.status_code == 422, params
        assert 'id="errors"' in page.text and message in html.unescape(page.text), params


def test_access_and_escaping(client: httpx.Client, world: World) -> None:
    anonymous = client.get("/projects/fair/fairness")
    assert anonymous.status_code == 303
    _sign_in(client, "out")
    assert client.get("/projects/fair/fairness").status_code == 404
    client.cookies.clear()
    _sign_in(client, "mia")
    page = client.get("/projects/xss/fairness", params={"attribute": "grp",
                                                        "signal": "thumbs"})
    assert page.status_code == 200
    assert "<script>alert(1)" not in page.text
    assert "&lt;script&gt;alert(1)" in page.text
    attr = client.get("/projects/fair/fairness", params={"attribute": XSS,
                                                         "signal": "thumbs"})
    assert attr.status_code == 422 and "<script>alert(1)" not in attr.text


def test_the_json_api(world: World, portal: BlockingPortal) -> None:
    def client(role: str, project_id: int) -> httpx.Client:
        c = _client(world.app, portal)  # type: ignore[arg-type]
        token = create_token(world.store, project_id=project_id, role=role)
        c.headers["Authorization"] = f"Bearer {token}"
        return c

    viewer = client("viewer", world.sim.project.id)
    r = viewer.get("/api/v1/projects/fair/fairness", params={
        "attribute": "locale", "signal": "thumbs", "version": "v2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["check"]["passed"] is False and body["attribute"] == "locale"
    assert body == fairness_report(world.store, "fair", attribute="locale", signal="thumbs",
                                   version="v2")
    reg = viewer.get("/api/v1/projects/fair/fairness/regressions", params={
        "attribute": "locale", "signal": "thumbs", "baseline": "v1", "candidate": "v2",
        "tolerance": 0.05})
    assert reg.status_code == 200 and reg.json()["regressed"] == ["de"]
    for params, field in (({"attribute": "locale"}, None),
                          ({"attribute": "locale", "signal": "thumbs", "extra": "1"},
                           "extra"),
                          ({"attribute": "locale", "signal": "thumbs", "min_ratio": "2"},
                           None),
                          ({"attribute": "a\x00", "signal": "thumbs"}, "attribute"),
                          ({"attribute": "locale", "signal": "topic"}, "signal")):
        bad = viewer.get("/api/v1/projects/fair/fairness", params=params)
        assert bad.status_code == 422, (params, bad.text)
        if field:
            assert bad.json()["error"]["details"]["field"] == field
    same = viewer.get("/api/v1/projects/fair/fairness/regressions", params={
        "attribute": "locale", "signal": "thumbs", "baseline": "v1", "candidate": "v1"})
    assert same.status_code == 422
    with world.store.read() as conn:
        xss_id = get_project(conn, "xss").id
    elsewhere = client("viewer", xss_id).get("/api/v1/projects/fair/fairness", params={
        "attribute": "locale", "signal": "thumbs"})
    assert elsewhere.status_code == 403
    stranger = _client(world.app, portal)  # type: ignore[arg-type]
    assert stranger.get("/api/v1/projects/fair/fairness",
                        params={"attribute": "locale", "signal": "thumbs"}).status_code == 401
