"""The SDK's model calls: ``Client.resolve`` and ``Client.predict``, embedded and over
HTTP, give the same answers as the registry itself, and refuse a tampered artifact."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedbackloop import Client
from feedbackloop.access import create_token
from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.improve import registry as reg
from feedbackloop.improve.trainers import train
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .improve.model_data import insert_dataset, preference_rows, project
from .live_server import serve


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    reg.clear_resolve_cache()
    reg.clear_model_cache()  # same seed and data give the same artifact in every test


@pytest.fixture
def models(store: Store, settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Two trained reward models: rm-1 live, rm-2 served to 10 % of the pro plan."""
    project(store, "shop")
    insert_dataset(store, "shop", "prefs", "preference", preference_rows(120, 2, seed=3))
    paths = {}
    for name, seed in (("rm-1", 1), ("rm-2", 2)):
        _run, version = train(store, "shop", "reward-model", "prefs",
                              params={"features": "tfidf"}, seed=seed, name=name,
                              artifact_root=tmp_path / "art")
        assert version.artifact_uri is not None
        paths[name] = version.artifact_uri
    component = version.component
    reg.promote(store, "shop", component, "rm-1")
    reg.set_toggle(store, "shop", component,
                   [{"when": [{"attribute": "plan", "op": "eq", "value": "pro"}],
                     "split": {"rm-2": 10}}])
    return {"component": component, **paths}


@pytest.fixture
def server(settings: Settings, store: Store) -> Iterator[str]:
    with serve(settings, store) as url:
        yield url


ITEM = {"prompt": "How do I reset my password?",
        "candidates": ["Open settings, choose security and press reset password.",
                       "I like turtles."]}


def _clients(db_url: str, settings: Settings, url: str, store: Store) -> list[Client]:
    pid = project(store, "shop").id
    token = create_token(store, project_id=pid, role="viewer", name="sdk models")
    return [Client.local(db_url, project="shop", settings=settings),
            Client(url, token, "shop")]


def test_resolve_and_predict_match_the_registry_embedded_and_remote(
        db_url: str, settings: Settings, store: Store, server: str,
        models: dict[str, str]) -> None:
    component = models["component"]
    expected = {u: reg.resolve(store, "shop", component, f"u{u}", {"plan": "pro"})
                for u in range(400)}
    served = sum(r["version"] == "rm-2" for r in expected.values())
    assert abs(served - 40) <= 4 * math.sqrt(400 * 0.1 * 0.9)
    direct = {name: reg.load_model(store, "shop", component, name).predict(ITEM)
              for name in ("rm-1", "rm-2")}
    assert direct["rm-1"]["choice"] == 0  # the relevant answer wins
    for client in _clients(db_url, settings, server, store):
        with client:
            for u, want in expected.items():
                got = client.resolve(component, f"u{u}", {"plan": "pro"})
                assert (got["version"], got["rule"]) == (want["version"], want["rule"])
            assert client.resolve(component, "u1", {"plan": "free"})["version"] == "rm-1"
            for u in (next(u for u, r in expected.items() if r["version"] == "rm-2"),
                      next(u for u, r in expected.items() if r["version"] == "rm-1")):
                name = expected[u]["version"]
                got = client.predict(component, ITEM, unit_id=f"u{u}",
                                     attributes={"plan": "pro"})
                assert got["choice"] == direct[name]["choice"]
                assert got["scores"] == pytest.approx(direct[name]["scores"], abs=1e-12)
            by_name = client.predict(component, {"prompt": ITEM["prompt"],
                                                 "response": ITEM["candidates"][0]},
                                     version="rm-2")
            assert by_name["score"] == pytest.approx(direct["rm-2"]["scores"][0], abs=1e-12)
            with pytest.raises(InvalidInput, match="unit_id"):
                client.predict(component, ITEM)
            with pytest.raises(NotFound):
                client.predict(component, ITEM, version="rm-9")
            with pytest.raises(NotFound, match="component 'other' has no versions"):
                client.predict("other", ITEM, unit_id="u1")


def test_a_tampered_artifact_is_refused(db_url: str, settings: Settings, store: Store,
                                        server: str, models: dict[str, str]) -> None:
    path = Path(models["rm-2"].removeprefix("file://"))
    path.write_bytes(path.read_bytes() + b" ")
    for client in _clients(db_url, settings, server, store):
        with client, pytest.raises(Conflict, match="hash"):
            client.predict(models["component"], ITEM, version="rm-2")
