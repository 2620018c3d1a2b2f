"""The Improve stage's pages over HTTP on SQLite and PostgreSQL: the dataset list and a
version's card with its bars, sample rows and lineage links; the model list and a version's
page with metrics, baselines, run, history and toggle shares; promote, roll back and toggle
through the forms (CSRF, confirmation, permissions); escaping of hostile text; 404s; and
no server error on bad form input. The data come from the real services: pairwise feedback
through ingest, a preference dataset, reward models trained with TF-IDF features."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy import select

from feedbackloop.access import create_user, grant
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.improve import registry as reg
from feedbackloop.improve.datasets import Dataset, build_dataset
from feedbackloop.improve.registry import ModelVersion
from feedbackloop.improve.toggles import BUCKETS, bucket
from feedbackloop.improve.trainers import train
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import interactions
from feedbackloop.web.app import create_app
from feedbackloop.web.improve_pages import rule_shares

from ..improve.model_data import preference_rows
from .test_pages import PASSWORD, XSS, _client, _csrf, _sign_in

N_PAIRS = 40


@dataclass
class Shop:
    store: Store
    settings: Settings
    project: Project
    dataset: Dataset
    rm1: ModelVersion
    rm2: ModelVersion


def seed_shop(store: Store, settings: Settings, artifacts: Path, *,
              users: bool = True) -> Shop:
    """Project ``shop``: pairwise votes on ``N_PAIRS`` prompts (one with a hostile prompt),
    a preference dataset ``prefs`` and two reward models trained on it (rm-1 live, rm-2 a
    candidate with a hostile description); users vic (viewer) and max (maintainer)."""
    reg.clear_resolve_cache()
    project = create_project(store, "shop", risk_tier="low")  # plain promotion allowed
    create_signal(store, project, SignalIn(name="pref", type="pairwise"))
    ing = Ingestor(store, settings, project)
    pairs = preference_rows(N_PAIRS // 2, 2, seed=3)
    pairs[0] = {**pairs[0], "prompt": f"{pairs[0]['prompt']} {XSS}"}
    pairs[1] = {**pairs[1], "prompt": pairs[0]["prompt"]}
    records, votes = [], []
    for k, pair in enumerate(pairs):
        plan = "pro" if k % 2 else "free"
        records += [{"id": f"i/{k}a", "input": pair["prompt"], "output": pair["chosen"],
                     "consent": True, "user_id": f"u{k}", "attributes": {"plan": plan}},
                    {"id": f"i/{k}b", "input": pair["prompt"], "output": pair["rejected"],
                     "consent": True, "user_id": f"u{k}b", "attributes": {"plan": plan}}]
        votes.append({"id": f"vote-{k}", "interaction_id": f"i/{k}a",
                      "interaction_id_b": f"i/{k}b", "signal": "pref", "value": "a",
                      "source": "annotator", "rater_id": f"r{k % 3}"})
    assert ing.interactions(records).rejected == 0
    assert ing.feedback(votes).rejected == 0
    ds = build_dataset(store, project, "prefs", "preference",
                       {"signal": "pref", "near_duplicates": False}, created_by="max")
    _, rm1 = train(store, project, "reward-model", "prefs", params={"features": "tfidf"},
                   seed=0, name="rm-1", artifact_root=artifacts, created_by="max")
    reg.promote(store, project, "reward", "rm-1", actor="max")
    _, rm2 = train(store, project, "reward-model", "prefs", params={"features": "tfidf",
                                                                    "C": 4.0},
                   seed=1, name="rm-2", artifact_root=artifacts, created_by="max",
                   description=f"second try {XSS}")
    if users:
        create_user(store, "vic", PASSWORD)
        grant(store, "vic", project.id, "viewer")
        create_user(store, "max", PASSWORD)
        grant(store, "max", project.id, "maintainer")
    return Shop(store, settings, project, ds, rm1, rm2)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def shop(store: Store, settings: Settings, tmp_path: Path) -> Shop:
    return seed_shop(store, settings, tmp_path / "artifacts")


@pytest.fixture
def client(shop: Shop, portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(shop.settings, shop.store), portal) as c:
        yield c


def _post(client: httpx.Client, path: str, data: dict[str, str],
          csrf_from: str | None = None) -> httpx.Response:
    page = client.get(csrf_from or path.rsplit("/", 1)[0])
    return client.post(path, data={"csrf": _csrf(page.text), **data})


def test_the_dataset_pages_show_card_counts_lineage_and_models(
        client: httpx.Client, shop: Shop) -> None:
    _sign_in(client, "vic")
    text = client.get("/projects/shop/datasets").text
    assert re.search(r'href="/projects/shop/datasets"\s+class="current"', text)
    assert 'href="/projects/shop/datasets/prefs/1">prefs@1</a>' in text
    assert shop.dataset.content_hash[:12] in text

    page = client.get("/projects/shop/datasets/prefs")  # the newest version
    assert page.status_code == 200
    text = page.text
    ds = shop.dataset
    assert ds.content_hash in text
    assert f"{ds.counts['rows']} of {ds.counts['candidates']} candidate rows" in text
    # bars: one per split, with its count
    for split, n in ds.counts["splits"].items():
        assert f'data-label="{split}" data-count="{n}"' in text
    # lineage: each vote links to the interaction it judged; the pair's other side too
    for k in range(3):
        if f">vote-{k}</a>" in text:
            assert (f'<a class="id" href="/projects/shop/interactions/i%2F{k}a">vote-{k}</a>'
                    in text)
            assert f'href="/projects/shop/interactions/i%2F{k}b"' in text
    assert len(re.findall(r">vote-\d+</a>", text)) == sum(
        min(n, 10) for n in ds.counts["splits"].values())
    # the hostile prompt is text, not markup
    assert XSS not in text
    if "vote-0<" in text or "vote-1<" in text:
        assert html.escape(XSS) in text
    # models trained on it link to their pages
    trained = text.split('id="trained"', 1)[1].split("</table>", 1)[0]
    assert 'href="/projects/shop/models/reward/rm-1"' in trained
    assert 'href="/projects/shop/models/reward/rm-2"' in trained

    assert client.get("/projects/shop/datasets/prefs?version=1").text.count(ds.content_hash)
    test = client.get("/projects/shop/datasets/prefs/1", params={"split": "test"}).text
    assert test.count("<td>test</td>") == ds.counts["splits"]["test"]
    assert "<td>train</td>" not in test


def test_unknown_datasets_and_bad_queries_are_4xx(client: httpx.Client) -> None:
    _sign_in(client, "vic")
    assert client.get("/projects/shop/datasets/prefs/2").status_code == 404
    assert client.get("/projects/shop/datasets/nope").status_code == 404
    assert client.get("/projects/shop/datasets/" + "x" * 300).status_code == 404
    bad = client.get("/projects/shop/datasets/prefs", params={"version": "abc"})
    assert bad.status_code == 422 and "version must be a whole number" in bad.text
    assert client.get("/projects/shop/datasets/prefs",
                      params={"version": "99999999999"}).status_code == 422
    bad = client.get("/projects/shop/datasets/prefs", params={"split": "<b>x</b>"})
    assert bad.status_code == 422 and "<b>x</b>" not in bad.text
    assert client.get("/projects/shop/models/reward/nope").status_code == 404
    assert client.get("/projects/shop/models/nope/rm-1").status_code == 404
    assert client.get("/projects/shop/models/re%00ward/rm-1").status_code == 404
    assert client.get("/projects/shop/datasets/pr%00efs").status_code == 404


def test_the_model_pages_show_metrics_run_history_and_toggle(
        client: httpx.Client, shop: Shop) -> None:
    _sign_in(client, "vic")
    text = client.get("/projects/shop/models").text
    assert re.search(r'href="/projects/shop/models"\s+class="current"', text)
    assert 'class="live" href="/projects/shop/models/reward/rm-1"' in text
    held = shop.rm2.metrics["held_out"]["accuracy"]
    assert f"{held['value']:.3f}" in text and f"{held['ci95'][0]:.3f}" in text
    assert text.index("rm-2") < text.index('data-version="rm-1"')  # newest first

    text = client.get("/projects/shop/models/reward/rm-2").text
    assert XSS not in text and html.escape(XSS) in text  # the hostile description
    assert shop.rm2.artifact_hash in text and shop.dataset.content_hash in text
    assert 'href="/projects/shop/datasets/prefs/1">prefs@1</a>' in text
    baselines = text.split('id="baselines"', 1)[1].split("</table>", 1)[0]
    assert "longer wins" in baselines and "relevance only" in baselines
    assert "C" in text and '<dd id="seed">1</dd>' in text
    history = text.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert history.count("<tr data-kind") == 1 and "registered" in history
    # a viewer sees no buttons
    assert 'id="promote-form"' not in text and 'id="toggle-form"' not in text
    assert 'name="csrf"' in text  # only the sign-out form
    assert text.count('name="csrf"') == 1


def test_a_viewer_posting_gets_403_and_nothing_changes(client: httpx.Client,
                                                         shop: Shop) -> None:
    _sign_in(client, "vic")
    base = "/projects/shop/models/reward/rm-2"
    for action, data in (("promote", {"to": "live", "confirm": "yes"}),
                         ("rollback", {"confirm": "yes"}),
                         ("toggle", {"serve": "rm-2", "percent": "10", "confirm": "yes"})):
        r = _post(client, f"{base}/{action}", data, csrf_from=base)
        assert r.status_code == 403, action
    with shop.store.read() as conn:
        assert reg.get_version(conn, "shop", "reward", "rm-2").status == "candidate"
        assert reg.get_toggle(conn, "shop", "reward")["rules"] == []


def test_a_maintainer_toggles_promotes_and_rolls_back(client: httpx.Client,
                                                      shop: Shop) -> None:
    _sign_in(client, "max")
    base = "/projects/shop/models/reward/rm-2"
    page = client.get(base).text
    assert 'id="promote-form"' in page and 'id="toggle-form"' in page
    assert 'id="rollback-form"' not in page  # rm-2 is not live

    r = _post(client, f"{base}/toggle", {"serve": "rm-2", "percent": "10",
                                         "conditions": "plan=pro", "rule_name": "pro 10 %",
                                         "confirm": "yes"}, csrf_from=base)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=toggle#status")
    with shop.store.read() as conn:
        toggle = reg.get_toggle(conn, "shop", "reward")
    assert toggle["rules"] == [{"split": {"rm-2": 10.0}, "name": "pro 10 %",
                                "when": [{"attribute": "plan", "op": "eq", "value": "pro"}]}]
    page = client.get(base).text
    rules = page.split('id="rules"', 1)[1].split("</table>", 1)[0]
    assert "plan = pro" in rules and "rm-2</a> 10 %" in rules
    # the share each rule serves, over the project's 2 * N_PAIRS interactions: those with
    # plan=pro whose (pseudonymised) user id hashes into the rule's first 10 % of buckets
    with shop.store.read() as conn:
        stored = conn.execute(select(interactions.c.user_id, interactions.c.attributes)
                              .where(interactions.c.project_id == shop.project.id)).all()
        shares = rule_shares(conn, shop.project, "reward", toggle["rules"], "rm-1",
                             {"rm-1": "live", "rm-2": "candidate"})
    hits = sum(1 for user, attrs in stored
               if attrs["plan"] == "pro" and bucket("reward:0", user) < BUCKETS // 10)
    assert shares["n"] == 2 * N_PAIRS
    assert shares["rules"][0]["value"] == pytest.approx(hits / (2 * N_PAIRS))
    assert shares["default"]["value"] == pytest.approx(1 - hits / (2 * N_PAIRS))
    low, high = shares["rules"][0]["ci95"]
    assert low <= hits / (2 * N_PAIRS) <= high
    assert f"{100 * hits / (2 * N_PAIRS):.1f}%" in rules

    r = _post(client, f"{base}/promote", {"to": "live", "confirm": "yes"}, csrf_from=base)
    assert r.status_code == 303
    page = client.get(base).text
    assert 'class="status status-live"' in page.split('id="status-badge"', 1)[1][:80]
    assert "candidate → live" in page and "previous live: rm-1" in page
    assert 'id="rollback-form"' in page and "rm-1 is live again" in page

    r = _post(client, f"{base}/rollback", {"confirm": "yes"}, csrf_from=base)
    assert r.status_code == 303
    page = client.get(base).text
    history = page.split('id="history"', 1)[1].split("</table>", 1)[0]
    assert [m for m in re.findall(r'data-kind="(\w+)"', history)] == \
        ["registered", "promoted", "rolled_back"]
    assert "live → rolled back" in history and "max" in history
    with shop.store.read() as conn:
        assert reg.get_version(conn, "shop", "reward", "rm-1").status == "live"
    # the rolled-back version's rule is shown as not served
    assert "rolled back: not served" in page

    r = _post(client, f"{base}/toggle", {"clear": "yes", "confirm": "yes"}, csrf_from=base)
    assert r.status_code == 303
    with shop.store.read() as conn:
        assert reg.get_toggle(conn, "shop", "reward")["rules"] == []


PROMOTE_CASES = [
    ({"to": "live"}, 422, "tick the box"),
    ({"to": "sideways", "confirm": "yes"}, 422, "choose live, staged or retired"),
    ({"to": "staged", "confirm": "yes"}, 409, "cannot become staged"),
]
TOGGLE_CASES = [
    ({"serve": "rm-2", "percent": "ten"}, "percentage must be a number"),
    ({"serve": "rm-2", "percent": "150"}, "at most 100"),
    ({"serve": "rm-2", "percent": "nan"}, "above 0 and at most 100"),
    ({"serve": "rm-2", "percent": "-5"}, "above 0 and at most 100"),
    ({"serve": "", "percent": "10"}, "choose the version"),
    ({"serve": "rm-9", "percent": "10"}, "no version 'rm-9'"),
    ({"serve": XSS, "percent": "10"}, "no version"),
    ({"serve": "rm-2", "percent": "10", "conditions": "just words"}, "condition line 1"),
    ({"serve": "rm-2", "percent": "10", "conditions": "plan=pro\ntier in  "},
     "condition line 2"),
    ({"serve": "rm-2", "percent": "10", "conditions": "=x"}, "condition line 1"),
    ({"serve": "rm-2", "percent": "10", "conditions": "a\x00=b"}, "NUL"),
]


def test_bad_forms_are_messages_on_the_page_and_change_nothing(
        client: httpx.Client, shop: Shop) -> None:
    _sign_in(client, "max")
    live = "/projects/shop/models/reward/rm-1"  # live: it cannot be staged
    for data, status, message in PROMOTE_CASES:
        r = _post(client, f"{live}/promote", data, csrf_from=live)
        assert r.status_code == status and message in html.unescape(r.text), data
        assert 'id="errors"' in r.text
    base = "/projects/shop/models/reward/rm-2"
    for data, message in [*TOGGLE_CASES, ({"serve": "rm-2", "percent": "10"},
                                          "tick the box")]:
        confirm = {} if message == "tick the box" else {"confirm": "yes"}
        r = _post(client, f"{base}/toggle", {**data, **confirm}, csrf_from=base)
        assert 400 <= r.status_code < 500, (data, r.status_code)
        assert message in html.unescape(r.text), data
        assert XSS not in r.text
    with shop.store.read() as conn:
        assert reg.get_toggle(conn, "shop", "reward")["rules"] == []
        assert reg.get_version(conn, "shop", "reward", "rm-2").status == "candidate"
        assert reg.get_version(conn, "shop", "reward", "rm-1").status == "live"


def test_hostile_rule_text_is_shown_as_text(client: httpx.Client, shop: Shop) -> None:
    reg.set_toggle(shop.store, "shop", "reward",
                   [{"name": XSS, "when": [{"attribute": XSS, "op": "in", "value": [XSS]}],
                     "split": {"rm-2": 5}}], actor=XSS)
    _sign_in(client, "vic")
    page = client.get("/projects/shop/models/reward/rm-1").text
    assert XSS not in page
    rules = page.split('id="rules"', 1)[1].split("</table>", 1)[0]
    assert html.escape(XSS) in rules and "5 %" in rules


def test_forms_need_the_csrf_token_and_a_session(client: httpx.Client, shop: Shop) -> None:
    base = "/projects/shop/models/reward/rm-2"
    r = client.post(f"{base}/promote", data={"to": "live", "confirm": "yes"})
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
    _sign_in(client, "max")
    r = client.post(f"{base}/promote", data={"to": "live", "confirm": "yes",
                                             "csrf": "forged"})
    assert r.status_code == 403
    r = client.post("/projects/shop/models/reward/rm-9/promote",
                    data={"to": "live", "confirm": "yes",
                          "csrf": _csrf(client.get(base).text)})
    assert r.status_code == 404
    r = client.post("/projects/shop/models/reward/rm%002/promote",
                    data={"to": "live", "confirm": "yes",
                          "csrf": _csrf(client.get(base).text)})
    assert r.status_code == 404
    with shop.store.read() as conn:
        assert reg.get_version(conn, "shop", "reward", "rm-2").status == "candidate"


def test_outsiders_see_no_dataset_or_model(client: httpx.Client, shop: Shop) -> None:
    create_user(shop.store, "out", PASSWORD)
    _sign_in(client, "out")
    for path in ("/projects/shop/datasets", "/projects/shop/datasets/prefs",
                 "/projects/shop/models", "/projects/shop/models/reward/rm-1"):
        assert client.get(path).status_code == 404, path
