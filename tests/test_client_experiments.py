"""The SDK's experiment calls, embedded and over HTTP (a live server): ``Client.assign``
gives the service's own (deterministic) answer and logs the exposure, the logged
interactions and feedback flow into the analysis; ``Client.choose`` and
``Client.reward`` run a bandit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from feedbackloop import Client
from feedbackloop import experiments as ex
from feedbackloop.access import create_token
from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.experiments.bandits import bandit_status, create_bandit
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .experiments.stored import DESIGN, shop
from .live_server import serve


@pytest.fixture
def server(settings: Settings, store: Store) -> Iterator[str]:
    ex.clear_assignment_cache()
    shop(store)
    with serve(settings, store) as url:
        yield url


def _clients(db_url: str, settings: Settings, url: str, store: Store) -> dict[str, Client]:
    with store.read() as conn:
        from feedbackloop.capture.projects import get_project

        pid = get_project(conn, "shop").id
    token = create_token(store, project_id=pid, role="ingest", name="sdk experiments")
    return {"embedded": Client.local(db_url, project="shop", settings=settings),
            "remote": Client(url, token, "shop")}


def test_assign_round_trip_embedded_and_remote(db_url: str, settings: Settings,
                                               store: Store, server: str) -> None:
    ex.create_experiment(store, "shop", "tone", design=DESIGN)
    clients = _clients(db_url, settings, server, store)
    with pytest.raises(Conflict):
        clients["remote"].assign("tone", "u0")
    with pytest.raises(Conflict):
        clients["embedded"].assign("tone", "u0")
    ex.start_experiment(store, "shop", "tone")
    key = settings.pseudonym_key_bytes()
    try:
        for where, client in clients.items():
            with pytest.raises(NotFound):
                client.assign("nope", "u0")
            with pytest.raises(InvalidInput) as bad:
                client.assign("tone", "")
            assert bad.value.details["field"] == "unit_id"
            with pytest.raises(InvalidInput):
                client.assign("tone", "u", covariate=float("nan"))
            for u in range(15):
                unit = f"{where}-{u}"
                got = client.assign("tone", unit, covariate=float(u))
                # the service's own answer (log=False: nothing more is written)
                assert got == ex.assign(store, "shop", "tone", unit, pseudonym_key=key,
                                        log=False)
                client.log_interaction("q", "a", id=f"i-{unit}", user_id=unit,
                                       experiment="tone", arm=got["arm"],
                                       propensity=got["propensity"])
                client.log_feedback(f"i-{unit}", "thumbs", u % 3 == 0, id=f"f-{unit}")
            # the same unit again: the same arm, from either transport
            first = client.assign("tone", f"{where}-0")
            other = clients["remote" if where == "embedded" else "embedded"]
            assert other.assign("tone", f"{where}-0") == first
            assert client.flush().rejected == 0
    finally:
        for client in clients.values():
            client.close()
    ex.refresh(store, "shop", "tone")
    analysis = ex.analyze(store, "shop", "tone")
    assert sum(a["exposed"] for a in analysis["arms"]) == 30
    assert sum(a["n"] for a in analysis["arms"]) == 30


def test_bandit_choose_and_reward_embedded_and_remote(db_url: str, settings: Settings,
                                                      store: Store, server: str) -> None:
    create_bandit(store, "shop", "greeting", arms=["hi", "hello", "hey"])
    clients = _clients(db_url, settings, server, store)
    try:
        for client in clients.values():
            for k in range(10):
                choice = client.choose("greeting", unit_id=f"u{k}", context={"k": k})
                assert choice["arm"] in ("hi", "hello", "hey")
                assert choice["propensity"] == pytest.approx(
                    choice["probabilities"][choice["arm"]])
                done = client.reward("greeting", choice["decision_id"], k % 2)
                assert (done["decision_id"], done["arm"]) == (choice["decision_id"],
                                                              choice["arm"])
            with pytest.raises(InvalidInput):
                client.reward("greeting", choice["decision_id"], float("inf"))
            with pytest.raises(NotFound):
                client.choose("nope")
            with pytest.raises(InvalidInput):
                client.reward("greeting", 0, 1.0)
    finally:
        for client in clients.values():
            client.close()
    status = bandit_status(store, "shop", "greeting")
    assert sum(a["decisions"] for a in status["arms"]) == 20
    assert sum(a["rewarded"] for a in status["arms"]) == 20
