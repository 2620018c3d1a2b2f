"""Batch ingest on both databases: per-record results, idempotency, privacy, signals."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from feedbackloop.capture.browse import (
    InteractionFilter,
    get_interaction,
    list_feedback,
    list_interactions,
)
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import Conflict, InvalidInput
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, interactions


def _count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture
def project(store: Store):  # type: ignore[no-untyped-def]
    p = create_project(store, "shop", risk_tier="high")
    create_signal(store, p, SignalIn(name="thumbs", type="binary"))
    create_signal(store, p, SignalIn(name="rating", type="ordinal", scale_min=1, scale_max=5))
    create_signal(store, p, SignalIn(name="score", type="numeric", scale_min=0, scale_max=1))
    create_signal(store, p, SignalIn(name="issue", type="categorical",
                                     labels=["wrong", "rude", "slow"]))
    create_signal(store, p, SignalIn(name="pref", type="pairwise"))
    create_signal(store, p, SignalIn(name="note", type="text"))
    return p


def test_mixed_batch_reports_each_record_and_stores_the_valid_ones_once(
        store: Store, settings: Settings, project) -> None:  # type: ignore[no-untyped-def]
    ing = Ingestor(store, settings, project)
    batch = [
        {"id": "a", "input": "q1", "output": "r1"},
        {"id": "b", "input": "q2"},                                  # output missing
        {"id": "c", "input": "q3", "output": "r3", "latency_ms": "fast"},
        {"id": "d", "input": "q4", "output": "r4", "colour": "red"},  # unknown field
        {"id": "a", "input": "q1", "output": "r1"},                  # same again: duplicate
        {"id": "a", "input": "q1", "output": "other"},               # conflict
        {"id": "e", "input": "x" * (settings.max_field_bytes + 1), "output": "r"},
        {"id": "f", "input": "nul \x00 here", "output": "r"},
        {"id": "g", "input": "q", "output": "r", "propensity": 0},
        "not an object",
        {"id": "h", "input": "q", "output": "r", "timestamp": "yesterday"},
    ]
    result = ing.interactions(batch)
    by_index = {r.index: r for r in result.results}
    assert [r.index for r in result.results] == list(range(len(batch)))
    assert by_index[0].status == "accepted"
    assert (by_index[1].status, by_index[1].field) == ("rejected", "output")
    assert (by_index[2].status, by_index[2].field) == ("rejected", "latency_ms")
    assert (by_index[3].status, by_index[3].field, by_index[3].message) == (
        "rejected", "colour", "unknown field")
    assert by_index[4].status == "duplicate"
    assert (by_index[5].status, by_index[5].field) == ("rejected", "id")
    assert "different content" in (by_index[5].message or "")
    assert (by_index[6].field, by_index[6].id) == ("input", "e")
    assert "limit" in (by_index[6].message or "")
    assert by_index[7].field == "input" and "NUL" in (by_index[7].message or "")
    assert by_index[8].field == "propensity"
    assert by_index[9].field == "(record)"
    assert by_index[10].field == "timestamp"
    assert result.summary() == {"accepted": 1, "duplicates": 1, "rejected": 9}
    assert _count(store, interactions) == 1

    again = ing.interactions([{"id": "a", "input": "q1", "output": "r1"},
                              {"id": "a2", "input": "q", "output": "r"}])
    assert again.summary() == {"accepted": 1, "duplicates": 1, "rejected": 0}
    conflict = ing.interactions([{"id": "a", "input": "changed", "output": "r1"}])
    assert conflict.rejected == 1 and conflict.results[0].field == "id"
    assert _count(store, interactions) == 2


def test_pii_is_redacted_and_user_ids_pseudonymised(
        store: Store, settings: Settings, project) -> None:  # type: ignore[no-untyped-def]
    ing = Ingestor(store, settings, project)
    ing.interactions([{
        "id": "p1", "input": "I am jo@example.com, card 4111 1111 1111 1111",
        "output": "Call +1 415 555 0100", "context": {"doc": "from 10.1.2.3"},
        "user_id": "jo-42", "session_id": "s-1", "metadata": {"ip": "10.1.2.3", "n": 1},
    }])
    with store.read() as conn:
        got = get_interaction(conn, project.id, "p1")
    assert got.input == "I am <EMAIL>, card <CREDIT_CARD>"
    assert got.output == "Call <PHONE>"
    assert got.context == {"doc": "from <IP_ADDRESS>"}
    assert got.metadata == {"ip": "<IP_ADDRESS>", "n": 1}
    key = settings.pseudonym_key_bytes()
    assert got.user_id == pseudonymise(key, "jo-42") != "jo-42"
    assert got.session_id == pseudonymise(key, "s-1")
    # the raw values are nowhere in the row
    with store.read() as conn:
        raw = " ".join(str(v) for v in conn.execute(select(interactions)).one())
    assert "jo@example.com" not in raw and "jo-42" not in raw and "4111" not in raw


def test_drop_policy_rejects_records_with_pii(store: Store, settings: Settings) -> None:
    strict = create_project(store, "strict", redaction_policy="drop")
    ing = Ingestor(store, settings, strict)
    res = ing.interactions([{"id": "1", "input": "clean", "output": "clean"},
                            {"id": "2", "input": "mail x@y.org", "output": "ok"}])
    assert [r.status for r in res.results] == ["accepted", "rejected"]
    assert res.results[1].field == "input" and "EMAIL" in (res.results[1].message or "")


def test_feedback_values_are_checked_against_their_signal(
        store: Store, settings: Settings, project) -> None:  # type: ignore[no-untyped-def]
    ing = Ingestor(store, settings, project)
    ing.interactions([{"id": "i1", "input": "q", "output": "a"},
                      {"id": "i2", "input": "q", "output": "b"}])
    batch = [
        {"id": "f1", "interaction_id": "i1", "signal": "thumbs", "value": "up"},
        {"id": "f2", "interaction_id": "i1", "signal": "rating", "value": 4},
        {"id": "f3", "interaction_id": "i1", "signal": "rating", "value": 6},
        {"id": "f4", "interaction_id": "i1", "signal": "rating", "value": 2.5},
        {"id": "f5", "interaction_id": "i1", "signal": "score", "value": "0.75"},
        {"id": "f6", "interaction_id": "i1", "signal": "issue", "value": "rude"},
        {"id": "f7", "interaction_id": "i1", "signal": "issue", "value": "boring"},
        {"id": "f8", "interaction_id": "i1", "interaction_id_b": "i2", "signal": "pref",
         "value": "B", "source": "annotator", "rater_id": "ann-1"},
        {"id": "f9", "interaction_id": "i1", "signal": "pref", "value": "a"},
        {"id": "f10", "interaction_id": "nope", "signal": "thumbs", "value": True},
        {"id": "f11", "interaction_id": "i1", "signal": "unknown", "value": 1},
        {"id": "f12", "interaction_id": "i1", "signal": "note", "value": "mail me a@b.io",
         "comment": "my phone is 555-123-4567", "rater_id": "end-user-7"},
        {"id": "f13", "interaction_id": "i1", "signal": "score", "value": True},
        {"id": "f14", "interaction_id": "i1", "signal": "thumbs", "value": True,
         "source": "robot"},
    ]
    res = ing.feedback(batch)
    status = {r.id: (r.status, r.field) for r in res.results}
    assert status == {
        "f1": ("accepted", None), "f2": ("accepted", None), "f3": ("rejected", "value"),
        "f4": ("rejected", "value"), "f5": ("accepted", None), "f6": ("accepted", None),
        "f7": ("rejected", "value"), "f8": ("accepted", None),
        "f9": ("rejected", "interaction_id_b"), "f10": ("rejected", "interaction_id"),
        "f11": ("rejected", "signal"), "f12": ("accepted", None),
        "f13": ("rejected", "value"), "f14": ("rejected", "source"),
    }
    assert "outside the scale" in next(r.message for r in res.results if r.id == "f3")
    with store.read() as conn:
        items = {f.id: f for f in list_feedback(conn, project.id, limit=100).items}
    assert items["f1"].value is True
    assert items["f2"].value == 4
    assert items["f5"].value == 0.75
    assert items["f8"].value == "b" and items["f8"].interaction_id_b == "i2"
    assert items["f8"].rater_id == "ann-1"            # annotators keep their id
    assert items["f12"].value == "mail me <EMAIL>"
    assert items["f12"].comment == "my phone is <PHONE>"
    assert items["f12"].rater_id is not None and items["f12"].rater_id.startswith("p_")
    with store.read() as conn:
        nums = dict(conn.execute(select(feedback.c.client_id, feedback.c.value_num)).all())
    assert nums["f1"] == 1.0 and nums["f8"] == 0.0 and nums["f2"] == 4.0


def test_ingest_role_may_only_send_end_user_feedback(
        store: Store, settings: Settings, project) -> None:  # type: ignore[no-untyped-def]
    Ingestor(store, settings, project).interactions([{"id": "i", "input": "q", "output": "a"}])
    ing = Ingestor(store, settings, project, allowed_sources=("end_user",))
    res = ing.feedback([
        {"id": "u", "interaction_id": "i", "signal": "thumbs", "value": False},
        {"id": "x", "interaction_id": "i", "signal": "thumbs", "value": True,
         "source": "expert"},
    ])
    assert [(r.status, r.field) for r in res.results] == [("accepted", None),
                                                          ("rejected", "source")]


def test_concurrent_writers_of_the_same_ids_store_each_once(
        store: Store, settings: Settings, project) -> None:  # type: ignore[no-untyped-def]
    records = [{"id": f"c{i}", "input": f"q{i}", "output": "a"} for i in range(400)]
    outcomes: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def work(part: list[dict]) -> None:  # type: ignore[type-arg]
        try:
            outcomes.append(Ingestor(store, settings, project).interactions(part).summary())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(records[i * 100 :],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(store, interactions) == 400
    assert sum(o["accepted"] for o in outcomes) == 400
    assert sum(o["rejected"] for o in outcomes) == 0


def test_listing_filters_and_pages_without_gaps(
        store: Store, settings: Settings, project) -> None:  # type: ignore[no-untyped-def]
    ing = Ingestor(store, settings, project)
    recs = [{"id": f"r{i:03d}", "input": "q", "output": "a",
             "timestamp": f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
             "model_version": "v2" if i % 3 == 0 else "v1",
             "attributes": {"locale": "fr" if i % 2 else "en", "tier": i % 4,
                            "vip": i % 5 == 0}}
            for i in range(250)]
    assert ing.interactions(recs).accepted == 250
    ing.feedback([{"id": "t1", "interaction_id": "r007", "signal": "thumbs", "value": 1}])
    seen: list[str] = []
    cursor = None
    with store.read() as conn:
        while True:
            page = list_interactions(conn, project.id, limit=37, cursor=cursor)
            seen += [x.id for x in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(r["id"] for r in recs) and len(seen) == 250
        stamps = [(x.timestamp, x.id) for x in list_interactions(conn, project.id,
                                                                 limit=1000).items]
        assert stamps == sorted(stamps, reverse=True)
        fr_v2 = list_interactions(conn, project.id, limit=1000, where=InteractionFilter(
            model_version="v2", attributes={"locale": "fr"})).items
        assert {x.id for x in fr_v2} == {r["id"] for r in recs
                                         if r["model_version"] == "v2"
                                         and r["attributes"]["locale"] == "fr"}
        tier = list_interactions(conn, project.id, limit=1000, where=InteractionFilter(
            attributes={"tier": "3"})).items
        assert len(tier) == sum(1 for r in recs if r["attributes"]["tier"] == 3)
        vip = list_interactions(conn, project.id, limit=1000, where=InteractionFilter(
            attributes={"vip": "true"})).items
        assert len(vip) == 50
        assert all(x.attributes["vip"] is True for x in vip)
        judged = list_interactions(conn, project.id, where=InteractionFilter(
            source="end_user")).items
        assert [x.id for x in judged] == ["r007"]
        with pytest.raises(InvalidInput) as info:
            list_interactions(conn, project.id, cursor="%%%")
        assert info.value.field == "cursor"


def test_signals_and_projects_refuse_bad_definitions(store: Store, project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Conflict):
        create_project(store, "shop")
    with pytest.raises(InvalidInput) as info:
        create_project(store, "bad name!")
    assert info.value.field == "name"
    with pytest.raises(InvalidInput) as info:
        create_signal(store, project, SignalIn(name="r2", type="ordinal"))
    assert info.value.field == "scale_min"
    with pytest.raises(InvalidInput) as info:
        create_signal(store, project, SignalIn(name="c2", type="categorical", labels=["x"]))
    assert info.value.field == "labels"
    with pytest.raises(Conflict):
        create_signal(store, project, SignalIn(name="thumbs", type="binary"))


@pytest.mark.parametrize("bad", ["nul \x00 here", "lone \ud800 surrogate"])
def test_project_and_signal_text_no_database_can_store_is_refused(
        store: Store, project, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as info:
        create_project(store, "p2", description=bad)
    assert info.value.field == "description"
    if "\x00" in bad:  # pydantic itself refuses lone surrogates in SignalIn
        with pytest.raises(InvalidInput) as info:
            create_signal(store, project, SignalIn(name="s", type="categorical",
                                                   labels=["ok", bad]))
        assert info.value.field == "labels"
