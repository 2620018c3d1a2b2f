"""The data of the issue #7 "done when" story, shared by its end-to-end tests.

A project ``shop`` serves answers from a component ``generation``: ``v1`` is live. Users
(``locale`` en or de, half each) give thumbs on v1's answers; the thumbs-down come with
comments about three things: answers that ramble on (the theme the story fixes), wrong
prices, and slowness; two comments report that the answer showed someone's e-mail address
(privacy: escalated, never automated). A dataset is built from the thumbs, ``v2`` is
trained on it and tested against v1 in an experiment whose treatment is rated helpful far
more often, in both locales alike, so its gate can pass.

Everything goes through the real services (the ingest path pseudonymises users)."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedbackloop import experiments as ex
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal, get_project
from feedbackloop.capture.schema import SignalIn
from feedbackloop.improve.datasets import Dataset, build_dataset
from feedbackloop.improve.registry import ModelVersion, register_version
from feedbackloop.settings import Settings
from feedbackloop.store import Store

PROJECT = "shop"
COMPONENT = "generation"
EXPERIMENT = "shorter"

LONG = ["too long and rambling", "rambling, far too long", "long rambling reply",
        "too long, rambling on and on", "rambling and long winded", "way too long and rambling"]
PRICE = ["wrong price quoted", "the price is wrong", "quoted price wrong", "price was wrong",
         "wrong price again"]
SLOW = ["slow, waited ages", "very slow, waited a minute", "slow slow slow, waited",
        "waited ages, so slow"]
PRIVATE = ["it showed another customer's email address", "it printed my email and phone"]


def interaction(k: int, user: str, *, version: str = "v1", output: str = "an answer",
                **extra: Any) -> dict[str, Any]:
    return {"id": f"i{k}", "input": f"question {k} about order {k % 13}",
            "output": f"{output} {k}", "user_id": user, "model_version": version,
            "consent": True, "attributes": {"locale": "en" if k % 2 else "de"}, **extra}


def project(store: Store, *, risk_tier: str = "medium") -> Project:
    p = create_project(store, PROJECT, risk_tier=risk_tier)
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    return p


def feedback_log(store: Store, settings: Settings) -> dict[str, list[str]]:
    """v1's traffic: 120 interactions, each with a thumbs. Returns the feedback client ids
    by what they say (``long``, ``price``, ``slow``, ``private``, ``positive``)."""
    with store.read() as conn:
        p = get_project(conn, PROJECT)
    ing = Ingestor(store, settings, p)
    texts = ([("long", t) for t in LONG * 4] + [("price", t) for t in PRICE * 2]
             + [("slow", t) for t in SLOW * 2] + [("private", t) for t in PRIVATE])
    n_pos = 120 - len(texts)
    records, fb = [], []
    ids: dict[str, list[str]] = {"long": [], "price": [], "slow": [], "private": [],
                                 "positive": []}
    for k in range(120):
        user = f"user{k % 40}"
        records.append(interaction(k, user))
        if k < len(texts):
            kind, text = texts[k]
            fb.append({"id": f"fb{k}", "interaction_id": f"i{k}", "signal": "thumbs",
                       "value": False, "comment": text, "rater_id": user})
        else:
            kind = "positive"
            fb.append({"id": f"fb{k}", "interaction_id": f"i{k}", "signal": "thumbs",
                       "value": True, "rater_id": user})
        ids[kind].append(f"fb{k}")
    assert n_pos > 0
    res = ing.interactions(records)
    assert res.rejected == 0, res.errors()
    res = ing.feedback(fb)
    assert res.rejected == 0, res.errors()
    return ids


def dataset(store: Store) -> Dataset:
    """A KTO dataset (prompt, completion, label) from the thumbs: what v2 learns from."""
    return build_dataset(store, PROJECT, "thumbs-kto", "kto", {"signal": "thumbs"},
                         created_by="max")


def versions(store: Store, ds: Dataset) -> tuple[ModelVersion, ModelVersion]:
    """v1 (registered, to be made live by the caller) and v2 trained on ``ds``."""
    v1 = register_version(store, PROJECT, COMPONENT, "v1", created_by="max",
                          metrics={"helpful": 0.45})
    v2 = register_version(store, PROJECT, COMPONENT, "v2", created_by="max",
                          parent="v1", dataset_ids=[ds.id],
                          metrics={"helpful": 0.7}, description="shorter answers")
    return v1, v2


DESIGN: dict[str, Any] = {
    "unit": "user",
    "arms": [{"name": "control", "version": "v1"}, {"name": "treatment", "version": "v2"}],
    "primary": {"metric": "thumbs"},
    "mde": 0.1, "baseline": 0.45,
}


def experiment(store: Store) -> ex.Experiment:
    return ex.create_experiment(store, PROJECT, EXPERIMENT, design=DESIGN,
                                component=COMPONENT, created_by="max",
                                hypothesis="v2's shorter answers get more thumbs up")


def experiment_traffic(store: Store, settings: Settings, *, n_users: int = 600,
                       seed: int = 7) -> None:
    """The running experiment's traffic: one interaction and one thumbs per user, users
    split between the arms by the experiment's own assignment; thumbs up with probability
    0.45 on v1 and 0.75 on v2 in both locales."""
    rng = np.random.default_rng(seed)
    with store.read() as conn:
        p = get_project(conn, PROJECT)
    key = settings.pseudonym_key_bytes()
    records, fb = [], []
    for j in range(n_users):
        user = f"exp-user{j}"
        arm = ex.assign(store, p, EXPERIMENT, user, pseudonym_key=key,
                        log=False)["arm"]
        version = "v2" if arm == "treatment" else "v1"
        k = 10_000 + j
        records.append(interaction(k, user, version=version, experiment=EXPERIMENT,
                                   arm=arm))
        up = bool(rng.random() < (0.75 if arm == "treatment" else 0.45))
        fb.append({"id": f"xfb{j}", "interaction_id": f"i{k}", "signal": "thumbs",
                   "value": up, "rater_id": user})
    ing = Ingestor(store, settings, p)
    res = ing.interactions(records)
    assert res.rejected == 0, res.errors()
    res = ing.feedback(fb)
    assert res.rejected == 0, res.errors()
    ex.refresh(store, p, EXPERIMENT)
