"""The Improve stage's dataset pages over HTTP on SQLite and PostgreSQL: the list, a
version's card with sample rows whose feedback links to the interactions, split filters,
escaping of stored text, and who may read."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from feedbackloop.access import create_user, grant
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.web.app import create_app

from ..improve.test_recipes import World
from .test_pages import PASSWORD, XSS, _client, _sign_in


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    from anyio.from_thread import start_blocking_portal

    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def world(store: Store, settings: Settings) -> World:
    w = World(store, settings)
    for k in range(6):
        w.interaction(f"i/{k}", f"question {k}", f"good answer {k}")
        w.interaction(f"j{k}", f"question {k}", f"bad answer {k} {XSS}")
        w.fb(f"i/{k}", "pref", "a", b=f"j{k}", rater="r", fid=f"vote{k}")
    w.build("preference", {"signal": "pref", "splits": {"train": 0.5, "test": 0.5}},
            name="prefs")
    w.build("preference", {"signal": "pref", "splits": {"train": 1.0}}, name="prefs")
    create_user(store, "vic", PASSWORD)
    grant(store, "vic", w.project.id, "viewer")
    create_user(store, "out", PASSWORD)
    return w


@pytest.fixture
def client(world: World, store: Store, settings: Settings,
           portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(settings, store), portal) as c:
        yield c


def test_a_viewer_reads_the_list_and_a_version(client: httpx.Client, world: World) -> None:
    _sign_in(client, "vic")
    page = client.get("/projects/shop/datasets")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'href="/projects/shop/datasets"\s+class="current"', text)  # Improve
    # newest version first
    assert text.index("prefs@2") < text.index("prefs@1")
    assert 'href="/projects/shop/datasets/prefs/1"' in text

    page = client.get("/projects/shop/datasets/prefs/1")
    assert page.status_code == 200
    text = page.text
    with world.store.read() as conn:
        from feedbackloop.improve.datasets import get_dataset

        ds = get_dataset(conn, "shop", "prefs", 1)
    assert ds.content_hash in text
    assert "6 of 6 candidate rows" in text
    # every row's feedback links to the interaction it judged (ids quoted as one segment)
    for k in range(6):
        assert f'href="/projects/shop/interactions/i%2F{k}">vote{k}</a>' in text
    assert XSS not in text and html.escape(XSS) in text
    assert 'href="/projects/shop/datasets/prefs/2"' in text  # the other version

    train = client.get("/projects/shop/datasets/prefs/1", params={"split": "train"}).text
    n_train = ds.counts["splits"]["train"]
    assert train.count("<td>train</td>") == n_train and "<td>test</td>" not in train
    bad = client.get("/projects/shop/datasets/prefs/1", params={"split": "nope"})
    assert bad.status_code == 422 and "has no split" in bad.text
    assert client.get("/projects/shop/datasets/prefs/9").status_code == 404
    assert client.get("/projects/shop/datasets/other/1").status_code == 404


def test_others_are_kept_out(client: httpx.Client) -> None:
    r = client.get("/projects/shop/datasets")
    assert r.status_code == 303  # sign in first
    _sign_in(client, "out")
    assert client.get("/projects/shop/datasets").status_code == 404
    assert client.get("/projects/shop/datasets/prefs/1").status_code == 404
