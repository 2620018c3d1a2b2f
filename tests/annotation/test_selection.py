"""Selection policies on SQLite and PostgreSQL, each on data built so the right answer is
known: the stratified split, the items nearest the threshold, the items built to
disagree, the items labelled before a release; mixes, shortfalls, filters, determinism by
seed, pairs, and the plug-in registry."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from sqlalchemy import select

from feedbackloop import plugins
from feedbackloop.annotation import selection
from feedbackloop.annotation.campaigns import CampaignSpec, create_campaign
from feedbackloop.annotation.selection import available_policies, get_policy, quotas
from feedbackloop.capture.projects import Project
from feedbackloop.errors import ConfigurationError, InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import campaign_items, interactions

from .campaign_data import START, add_feedback, add_interactions, make_project


def _spec(**kw: Any) -> CampaignSpec:
    base: dict[str, Any] = {"name": "c", "signals": ["quality"], "raters": ["ann", "bob"],
                            "budget": 10}
    base.update(kw)
    return CampaignSpec(**base)


def _items(store: Store, campaign_id: int, *, gold: bool = False) -> list[dict[str, Any]]:
    ci, i = campaign_items, interactions
    ib = interactions.alias("ib")
    with store.read() as conn:
        rows = conn.execute(
            select(ci.c.position, i.c.client_id, ib.c.client_id.label("b"), ci.c.policy,
                   ci.c.score, ci.c.stratum, ci.c.is_gold, ci.c.gold_value)
            .select_from(ci.join(i, i.c.id == ci.c.interaction_id)
                         .outerjoin(ib, ib.c.id == ci.c.interaction_b_id))
            .where(ci.c.campaign_id == campaign_id, ci.c.is_gold.is_(gold))
            .order_by(ci.c.position)).all()
    return [dict(r._mapping) for r in rows]


def _ids(items: list[dict[str, Any]]) -> list[str]:
    return [it["client_id"] for it in items]


def test_builtin_policies_are_registered_as_entry_points() -> None:
    assert set(available_policies()) >= {"random", "stratified", "uncertainty",
                                         "disagreement", "recheck"}
    assert get_policy("stratified").name == "stratified"
    with pytest.raises(InvalidInput) as exc:
        get_policy("clever")
    assert exc.value.field == "policy" and "random" in exc.value.message


def test_a_name_registered_twice_fails_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [EntryPoint("random", "feedbackloop.annotation.selection:RandomPolicy",
                      selection.GROUP),
           EntryPoint("random", "acme:Random", selection.GROUP)]
    monkeypatch.setattr(plugins, "entry_points", lambda group: eps)
    selection.clear_policy_cache()
    try:
        with pytest.raises(ConfigurationError) as exc:
            available_policies()
        assert "registered twice" in exc.value.message and "acme:Random" in exc.value.message
    finally:
        monkeypatch.undo()
        selection.clear_policy_cache()
    assert "random" in available_policies()


def test_quotas_split_the_budget_by_largest_remainder() -> None:
    assert quotas({"a": 0.7, "b": 0.3}, 10) == {"a": 7, "b": 3}
    assert quotas({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 10) == {"a": 4, "b": 3, "c": 3}
    assert sum(quotas({"a": 0.55, "b": 0.45}, 7).values()) == 7


def test_random_is_deterministic_by_seed_and_respects_filters(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=60)
    a = create_campaign(store, project, _spec(name="a", seed=3))
    b = create_campaign(store, project, _spec(name="b", seed=3))
    c = create_campaign(store, project, _spec(name="c", seed=4))
    ia, ib, ic = (_items(store, x.id) for x in (a, b, c))
    assert _ids(ia) == _ids(ib) and len(set(_ids(ia))) == 10
    assert _ids(ia) != _ids(ic)
    assert {it["policy"] for it in ia} == {"random"} and [it["position"] for it in ia] == \
        list(range(10))
    # model version v2 (odd k), locale de (k % 3 == 0), k in [6, 36): k = 9, 15, ..., 33
    f = create_campaign(store, project, _spec(
        name="f", budget=50, options={"model_version": ["v2"], "attributes": {"locale": "de"},
                                      "since": (START + timedelta(minutes=6)).isoformat(),
                                      "until": (START + timedelta(minutes=36)).isoformat()}))
    assert sorted(_ids(_items(store, f.id))) == [f"i{k:03d}" for k in range(9, 36, 6)]
    assert f.options["selection_notes"] == [
        "random: 5 of 50 items found", "selected 5 of the budget of 50 items: no more "
        "interactions match"]
    assert f.options["n_items"] == 5


def test_stratified_allocates_equally_and_fills_past_small_strata(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=60)  # de: 20 (k % 3 == 0), en: 40
    even = create_campaign(store, project, _spec(name="even", budget=10, policy="stratified",
                                                 options={"by": ["locale"]}))
    items = _items(store, even.id)
    assert Counter(it["stratum"] for it in items) == {"locale=de": 5, "locale=en": 5}
    # any prefix is balanced too: the serving order alternates strata
    assert Counter(it["stratum"] for it in items[:4]) == {"locale=de": 2, "locale=en": 2}
    wide = create_campaign(store, project, _spec(name="wide", budget=50, policy="stratified",
                                                 options={"by": ["locale"]}))
    assert Counter(it["stratum"] for it in _items(store, wide.id)) == {
        "locale=de": 20, "locale=en": 30}
    both = create_campaign(store, project, _spec(
        name="both", budget=8, policy="stratified",
        options={"by": ["model_version", "locale"]}))
    strata = Counter(it["stratum"] for it in _items(store, both.id))
    assert strata == {"model_version=v1|locale=de": 2, "model_version=v1|locale=en": 2,
                      "model_version=v2|locale=de": 2, "model_version=v2|locale=en": 2}
    for it in _items(store, both.id):
        k = int(it["client_id"][1:])
        assert it["stratum"] == (f"model_version={'v1' if k % 2 == 0 else 'v2'}|"
                                 f"locale={'de' if k % 3 == 0 else 'en'}")


def _scores(store: Store, settings: Settings, project: Project, n: int) -> None:
    add_feedback(store, settings, project, [
        {"id": f"score-{k}", "interaction_id": f"i{k:03d}", "signal": "score",
         "value": k / n, "source": "automated"} for k in range(n)])


def test_uncertainty_picks_the_scores_nearest_the_threshold(
        store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=40)
    _scores(store, settings, project, 40)  # score = k / 40
    mid = create_campaign(store, project, _spec(name="mid", budget=3, policy="uncertainty",
                                                options={"metric": "score"}))
    items = _items(store, mid.id)
    assert sorted(_ids(items)) == ["i019", "i020", "i021"]
    assert items[0]["client_id"] == "i020" and items[0]["score"] == pytest.approx(0.0)
    assert sorted(it["score"] for it in items) == pytest.approx([0.0, 0.025, 0.025])
    low = create_campaign(store, project, _spec(name="low", budget=1, policy="uncertainty",
                                                options={"metric": "score",
                                                         "threshold": 0.25}))
    assert _ids(_items(store, low.id)) == ["i010"]
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, project, _spec(name="x", policy="uncertainty"))
    assert exc.value.field == "options.metric"
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, project, _spec(name="x", policy="uncertainty",
                                              options={"metric": "topic"}))
    assert exc.value.field == "options.metric" and "categorical" in exc.value.message
    with pytest.raises(NotFound) as nf:
        create_campaign(store, project, _spec(name="x", policy="uncertainty",
                                              options={"metric": "nope"}))
    assert nf.value.details["field"] == "options.metric"


def test_disagreement_picks_the_items_built_to_disagree(store: Store,
                                                       settings: Settings) -> None:
    project = make_project(store, settings, n=40)
    # the metric agrees with the human rating on every item but five: there the human
    # says 5 (best) and the metric 0 (worst)
    disagree = {3, 11, 17, 26, 38}
    records = []
    for k in range(40):
        q = 5 if k in disagree else 1 + k % 5
        m = 0.0 if k in disagree else (q - 1) / 4
        records += [{"id": f"q-{k}", "interaction_id": f"i{k:03d}", "signal": "quality",
                     "value": q, "source": "annotator", "rater_id": "r1"},
                    {"id": f"m-{k}", "interaction_id": f"i{k:03d}", "signal": "score",
                     "value": m, "source": "automated"}]
    add_feedback(store, settings, project, records)
    hm = create_campaign(store, project, _spec(
        name="hm", budget=5, policy="disagreement",
        options={"metric": "score", "kind": "human-metric"}))
    items = _items(store, hm.id)
    assert sorted(_ids(items)) == sorted(f"i{k:03d}" for k in disagree)
    assert all(it["score"] == pytest.approx(1.0) for it in items)
    assert "disagreement: quality vs score; 5 interactions disagree" in \
        hm.options["selection_notes"]

    # rater-rater: two raters far apart on items 4 and 9, close on 5, alone elsewhere
    add_feedback(store, settings, project, [
        {"id": "r2-4", "interaction_id": "i004", "signal": "quality", "value": 1,
         "source": "annotator", "rater_id": "r2"},  # r1 gave 5 (k % 5 == 4 → 5)
        {"id": "r2-9", "interaction_id": "i009", "signal": "quality", "value": 2,
         "source": "annotator", "rater_id": "r2"},  # r1 gave 5
        {"id": "r2-5", "interaction_id": "i005", "signal": "quality", "value": 2,
         "source": "annotator", "rater_id": "r2"},  # r1 gave 1
    ])
    rr = create_campaign(store, project, _spec(name="rr", budget=10, policy="disagreement",
                                               options={"kind": "rater"}))
    items = _items(store, rr.id)
    assert _ids(items) == ["i004", "i009", "i005"]
    # twice the sd of the normalised values: |5 - 1| / 4 = 1, |5 - 2| / 4 = 0.75, 0.25
    assert [it["score"] for it in items] == pytest.approx([1.0, 0.75, 0.25])
    assert "disagreement: 3 of 10 items found" in rr.options["selection_notes"]

    both = create_campaign(store, project, _spec(name="both", budget=20,
                                                 policy="disagreement",
                                                 options={"metric": "score"}))
    # the human mean on 4 (5 and 1 → 3 → 0.5) vs the metric 1.0: 0.5; rater spread 1.0
    got = {it["client_id"]: it["score"] for it in _items(store, both.id)}
    assert set(got) == {f"i{k:03d}" for k in disagree} | {"i004", "i009", "i005"}
    assert got["i004"] == pytest.approx(1.0) and got["i009"] == pytest.approx(0.75)
    assert got["i005"] == pytest.approx(0.25)  # mean 1.5 → 0.125 vs 0; spread 0.25


def test_categorical_disagreement_uses_label_entropy(store: Store,
                                                    settings: Settings) -> None:
    project = make_project(store, settings, n=10)
    records = []
    for k, labels in {0: ["billing", "shipping", "other"], 1: ["billing", "shipping"],
                      2: ["billing", "billing"], 3: ["other"]}.items():
        records += [{"id": f"t-{k}-{j}", "interaction_id": f"i{k:03d}", "signal": "topic",
                     "value": lab, "source": "annotator", "rater_id": f"r{j}"}
                    for j, lab in enumerate(labels)]
    add_feedback(store, settings, project, records)
    camp = create_campaign(store, project, _spec(name="t", signals=["topic"], budget=5,
                                                 policy="disagreement",
                                                 options={"kind": "rater"}))
    items = _items(store, camp.id)
    import math

    assert _ids(items) == ["i000", "i001"]
    assert [it["score"] for it in items] == pytest.approx([1.0, math.log(2) / math.log(3)])


def test_recheck_picks_items_labelled_before_the_release(store: Store,
                                                        settings: Settings) -> None:
    project = make_project(store, settings, n=20)
    release = START + timedelta(days=10)
    records = []
    for k in range(12):
        ts = release - timedelta(days=1) if k < 6 else release + timedelta(days=1)
        records.append({"id": f"q-{k}", "interaction_id": f"i{k:03d}", "signal": "quality",
                        "value": 3, "source": "expert" if k == 0 else "annotator",
                        "rater_id": "r1", "timestamp": ts.isoformat()})
    records.append({"id": "auto-7", "interaction_id": "i007", "signal": "quality",
                    "value": 3, "source": "automated",
                    "timestamp": (release - timedelta(days=2)).isoformat()})
    add_feedback(store, settings, project, records)
    camp = create_campaign(store, project, _spec(name="re", budget=20, policy="recheck",
                                                 options={"before": release.isoformat()}))
    assert sorted(_ids(_items(store, camp.id))) == [f"i{k:03d}" for k in range(6)]
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, project, _spec(name="x", policy="recheck"))
    assert exc.value.field == "options.before"
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, project, _spec(name="x", policy="recheck",
                                              options={"before": "last tuesday"}))
    assert exc.value.field == "options.before"


def test_a_mix_takes_shares_dedupes_and_fills_shortfalls(store: Store,
                                                         settings: Settings) -> None:
    project = make_project(store, settings, n=50)
    _scores(store, settings, project, 50)
    add_feedback(store, settings, project, [
        {"id": f"r{j}-{k}", "interaction_id": f"i{k:03d}", "signal": "quality",
         "value": 1 + 4 * j, "source": "annotator", "rater_id": f"r{j}"}
        for k in (1, 2, 3) for j in (0, 1)])
    camp = create_campaign(store, project, _spec(
        name="mix", budget=20, policy={"disagreement": 1, "random": 1, "uncertainty": 2},
        options={"metric": "score", "kind": "rater"}, seed=5))
    items = _items(store, camp.id)
    assert len(items) == 20 and len(set(_ids(items))) == 20
    counts = Counter(it["policy"] for it in items)
    # disagreement finds 3 of its 5; the 2 missing are shared by weight (2:1, largest
    # remainder): uncertainty 10 + 1, random 5 + 1
    assert counts == {"uncertainty": 11, "disagreement": 3, "random": 6}
    assert {it["client_id"] for it in items if it["policy"] == "disagreement"} == {
        "i001", "i002", "i003"}
    notes = camp.options["selection_notes"]
    assert "disagreement: 3 of 5 items found" in notes
    assert "filled 1 item from uncertainty" in notes and "filled 1 item from random" in notes
    # interleaved by share: the first four hold two uncertainty items
    assert Counter(it["policy"] for it in items[:4])["uncertainty"] == 2
    again = create_campaign(store, project, _spec(
        name="mix2", budget=20, policy={"disagreement": 1, "random": 1, "uncertainty": 2},
        options={"metric": "score", "kind": "rater"}, seed=5))
    assert _ids(_items(store, again.id)) == _ids(items)


def test_pairs_share_an_input_across_two_versions(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=0)
    # inputs "question 0".. "question 9", each answered by v1, v2 and v3
    add_interactions(store, settings, project, 30, versions=("v1", "v2", "v3"),
                     same_input=True)
    camp = create_campaign(store, project, _spec(
        name="pw", signals=["pref"], budget=6, options={"versions": ["v1", "v3"]}))
    items = _items(store, camp.id)
    assert len(items) == 6
    with store.read() as conn:
        info = {cid: (v, inp) for cid, v, inp in conn.execute(select(
            interactions.c.client_id, interactions.c.model_version, interactions.c.input))}
    for it in items:
        (va, qa), (vb, qb) = info[it["client_id"]], info[it["b"]]
        assert (va, vb) == ("v1", "v3") and qa == qb
    free = create_campaign(store, project, _spec(name="pw2", signals=["pref"], budget=20,
                                                 policy="stratified"))
    items = _items(store, free.id)
    assert len(items) == 10  # one pair per input
    for it in items:
        (va, qa), (vb, qb) = info[it["client_id"]], info[it["b"]]
        assert va < vb and qa == qb
        assert it["stratum"].endswith(f"versions={va} vs {vb}")
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, project, _spec(name="x", signals=["pref"],
                                              policy="disagreement"))
    assert exc.value.field == "policy" and "cannot select pairs" in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        create_campaign(store, project, _spec(name="x", signals=["pref"],
                                              options={"versions": ["v1", "v1"]}))
    assert exc.value.field == "options.versions"


def test_selection_of_many_interactions_stays_in_numpy(store: Store,
                                                       settings: Settings) -> None:
    """20,000 interactions, budget 15,000, a three-way mix: all distinct, quick."""
    import time

    project = make_project(store, settings, n=0)
    add_interactions(store, settings, project, 20_000)
    _scores(store, settings, project, 20_000)
    began = time.perf_counter()
    camp = create_campaign(store, project, _spec(
        name="big", budget=15_000, policy={"random": 1, "stratified": 1, "uncertainty": 1},
        options={"metric": "score", "by": ["locale"]}))
    took = time.perf_counter() - began
    items = _items(store, camp.id)
    assert len(items) == 15_000 and len(set(_ids(items))) == 15_000
    assert Counter(it["policy"] for it in items) == {"random": 5000, "stratified": 5000,
                                                     "uncertainty": 5000}
    assert took < 20, took
