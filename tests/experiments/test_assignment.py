"""Assignment: deterministic, allocated as designed, independent between salts, logged once
per unit with its propensity, pseudonymised like capture; only running experiments
assign."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sqlalchemy import select

from feedbackloop import experiments as ex
from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.errors import Conflict, InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import experiment_exposures, interactions

from .stored import DESIGN, log, shop

KEY = b"assignment-test-key"


@pytest.fixture(autouse=True)
def _fresh() -> None:
    ex.clear_assignment_cache()


def test_allocation_within_binomial_bounds_over_100k_units() -> None:
    weights = [0.5, 0.3, 0.2]
    cumulative = list(np.cumsum(weights))
    n = 100_000
    arms = np.array([ex.arm_index("salt-a", f"unit-{i}", cumulative) for i in range(n)])
    counts = np.bincount(arms, minlength=3)
    for w, c in zip(weights, counts, strict=True):
        sd = math.sqrt(n * w * (1 - w))
        assert abs(c - n * w) < 4 * sd, (w, c)
    # deterministic: the same unit gets the same arm on every call
    again = [ex.arm_index("salt-a", f"unit-{i}", cumulative) for i in range(1000)]
    assert again == list(arms[:1000])
    # a uniform hash: the positions pass a Kolmogorov-Smirnov test against U(0, 1)
    u = [ex.unit_fraction("salt-a", f"unit-{i}") for i in range(20_000)]
    assert sps.kstest(u, "uniform").pvalue > 0.001


def test_different_salts_split_independently() -> None:
    cum = [0.5, 1.0]
    n = 40_000
    a = np.array([ex.arm_index("salt-1", f"u{i}", cum) for i in range(n)])
    b = np.array([ex.arm_index("salt-2", f"u{i}", cum) for i in range(n)])
    table = np.array([[np.sum((a == i) & (b == j)) for j in (0, 1)] for i in (0, 1)])
    _, p, _, _ = sps.chi2_contingency(table)
    assert p > 0.001, table
    # agreement of two independent fair splits is 1/2 within Monte-Carlo error
    assert abs(np.mean(a == b) - 0.5) < 4 * math.sqrt(0.25 / n)


def test_assign_logs_the_first_exposure_once_with_its_propensity(store: Store) -> None:
    shop(store)
    design = {**DESIGN, "arms": [{"name": "a", "weight": 0.7}, {"name": "b", "weight": 0.3}]}
    with pytest.raises(NotFound):
        ex.assign(store, "shop", "w", "alice", pseudonym_key=KEY)
    exp = ex.create_experiment(store, "shop", "w", design=design)
    with pytest.raises(Conflict) as draft:
        ex.assign(store, "shop", "w", "alice", pseudonym_key=KEY)
    assert "only a running experiment assigns" in draft.value.message
    ex.start_experiment(store, "shop", "w")
    first = ex.assign(store, "shop", "w", "alice", covariate=2.5, pseudonym_key=KEY)
    assert first["unit"] == pseudonymise(KEY, "alice")
    assert first["propensity"] == {"a": 0.7, "b": 0.3}[first["arm"]]
    assert first["version"] is None and first["experiment"] == "w"
    for _ in range(3):
        again = ex.assign(store, "shop", "w", "alice", covariate=9.0, pseudonym_key=KEY)
        assert again == first
    peek = ex.assign(store, "shop", "w", "bob", pseudonym_key=KEY, log=False)
    answers = [ex.assign(store, "shop", "w", f"user-{i}", pseudonym_key=KEY)
               for i in range(200)]
    x = experiment_exposures
    with store.read() as conn:
        rows = conn.execute(select(x.c.unit, x.c.arm, x.c.propensity, x.c.covariate)
                            .where(x.c.experiment_id == exp.id)).all()
    by_unit = {r.unit: r for r in rows}
    assert len(rows) == 201 and peek["unit"] not in by_unit  # log=False logs nothing
    alice = by_unit[first["unit"]]
    assert (alice.arm, alice.propensity, alice.covariate) == (
        ["a", "b"].index(first["arm"]), first["propensity"], 2.5)  # the first covariate
    for a in answers:
        r = by_unit[a["unit"]]
        assert (["a", "b"][r.arm], r.propensity) == (a["arm"], a["propensity"])

    ex.stop_experiment(store, "shop", "w")
    with pytest.raises(Conflict):
        ex.assign(store, "shop", "w", "alice", pseudonym_key=KEY)


def test_units_join_the_logged_interactions(store: Store, settings: Settings) -> None:
    shop(store)
    ex.create_experiment(store, "shop", "s", design={**DESIGN, "unit": "session"})
    ex.start_experiment(store, "shop", "s")
    key = settings.pseudonym_key_bytes()
    got = ex.assign(store, "shop", "s", "sess-1", pseudonym_key=key)
    log(store, settings, [{"id": "i1", "input": "q", "output": "a", "session_id": "sess-1"}])
    with store.read() as conn:
        stored = conn.execute(select(interactions.c.session_id)).scalar()
    assert got["unit"] == stored
    # interaction units are the interaction's own id, not pseudonymised
    ex.create_experiment(store, "shop", "i", design={**DESIGN, "unit": "interaction"})
    ex.start_experiment(store, "shop", "i")
    assert ex.assign(store, "shop", "i", "i1", pseudonym_key=key)["unit"] == "i1"


def test_bad_assign_input(store: Store) -> None:
    shop(store)
    ex.create_experiment(store, "shop", "b", design=DESIGN)
    ex.start_experiment(store, "shop", "b")
    for kwargs, field in [({"unit_id": ""}, "unit_id"), ({"unit_id": "x" * 201}, "unit_id"),
                          ({"unit_id": "a\x00b"}, "unit_id"),
                          ({"unit_id": "u", "covariate": math.nan}, "covariate"),
                          ({"unit_id": "u", "covariate": True}, "covariate")]:
        with pytest.raises(InvalidInput) as err:
            ex.assign(store, "shop", "b", **kwargs)  # type: ignore[arg-type]
        assert err.value.details["field"] == field
    with pytest.raises(InvalidInput):
        ex.assign(store, "shop", "no such name", "u")
