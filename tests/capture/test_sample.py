"""The sample generator: deterministic, valid on the wire, realistic in the ways later
stages rely on, and accepted whole by the real ingest path on both databases."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from feedbackloop.capture.browse import project_status
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.prepare import SignalSpec, coerce_value
from feedbackloop.capture.projects import create_project, create_signal, signal_specs
from feedbackloop.capture.redact import Redactor, luhn_valid
from feedbackloop.capture.sample import (
    SAMPLE_SIGNALS,
    card_number,
    generate_feedback,
    generate_interactions,
)
from feedbackloop.capture.schema import FeedbackIn, InteractionIn
from feedbackloop.settings import Settings
from feedbackloop.store import Store

N = 4000


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(generate_interactions(N, seed=7))


@pytest.fixture(scope="module")
def fb(records: list[dict]) -> list[dict]:
    return list(generate_feedback(records, seed=7))


def test_same_seed_same_records_and_shorter_runs_are_prefixes(records: list[dict]) -> None:
    assert list(generate_interactions(N, seed=7)) == records
    assert list(generate_interactions(500, seed=7)) == records[:500]
    other = list(generate_interactions(500, seed=8))
    assert other[0]["id"] != records[0]["id"]
    assert [r["output"] for r in other] != [r["output"] for r in records[:500]]
    assert list(generate_feedback(records, seed=7)) == list(generate_feedback(records, seed=7))


def test_every_record_is_valid_on_the_wire(records: list[dict], fb: list[dict]) -> None:
    for r in records:
        InteractionIn.model_validate(r)
    for f in fb:
        FeedbackIn.model_validate(f)
    assert len({r["id"] for r in records}) == N
    assert len({f["id"] for f in fb}) == len(fb)


def test_timestamps_increase_from_the_given_start() -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    recs = list(generate_interactions(300, seed=1, start=start))
    times = [datetime.fromisoformat(r["timestamp"]) for r in recs]
    assert times[0] > start
    assert all(a < b for a, b in itertools.pairwise(times))


def test_outputs_have_realistic_length_and_versions_differ_in_quality(
        records: list[dict]) -> None:
    words = [len(r["output"].split()) for r in records if "error" not in r]
    assert min(words) >= 45 and max(words) <= 260
    assert 100 <= sum(words) / len(words) <= 160
    by_version: dict[str, list[float]] = {}
    for r in records:
        if "error" not in r:
            by_version.setdefault(r["model_version"], []).append(
                r["metadata"]["sample_quality"])
    mean = {v: sum(q) / len(q) for v, q in by_version.items()}
    assert set(mean) == {"assistant-v1", "assistant-v2"}
    assert mean["assistant-v2"] - mean["assistant-v1"] > 0.08


def test_cohorts_experiment_errors_and_consent_are_present(records: list[dict]) -> None:
    attrs = Counter(r["attributes"]["locale"] for r in records)
    assert {"en-US", "de-DE", "ja-JP"} <= set(attrs)
    assert {r["attributes"]["platform"] for r in records} == {"web", "ios", "android"}
    assert {r["attributes"]["segment"] for r in records} == {"free", "pro", "enterprise"}
    in_exp = [r for r in records if r.get("experiment")]
    assert 0.18 < len(in_exp) / N < 0.32
    assert {r["arm"] for r in in_exp} == {"control", "treatment"}
    assert all(r["propensity"] == 0.5 for r in in_exp)
    errors = [r for r in records if r.get("error")]
    assert 0.005 < len(errors) / N < 0.03
    assert all(r["output"] == "" for r in errors)
    consent = sum(r["consent"] for r in records) / N
    assert 0.5 < consent < 0.75
    users = [r["user_id"] for r in records if r.get("user_id")]
    assert all(re.fullmatch(r"cust_[0-9a-f]{12}", u) for u in users)
    assert len(set(users)) > 100  # many customers, some with several questions
    latencies = sorted(r["latency_ms"] for r in records)
    median = latencies[len(latencies) // 2]
    assert 500 < median < 1500 and latencies[-1] > 3 * median  # log-normal: long right tail


def test_a_few_percent_of_texts_carry_pii_that_the_redactor_finds(records: list[dict]) -> None:
    redactor = Redactor("redact")
    with_pii = 0
    for r in records:
        clean_in = redactor.redact(r["input"])
        if clean_in != r["input"]:
            with_pii += 1
            assert re.search(r"<(EMAIL|PHONE|CREDIT_CARD)>", clean_in)
            assert "@" not in clean_in
        assert redactor.redact(r["output"]).count("@") == 0
    assert 0.02 <= with_pii / N <= 0.05
    assert {"EMAIL", "PHONE", "CREDIT_CARD"} <= set(redactor.counts)


def test_card_numbers_pass_the_luhn_check() -> None:
    rng = random.Random(3)
    for _ in range(200):
        number = card_number(rng, rng.choice(("4", "51")))
        digits = number.replace(" ", "")
        assert len(digits) == 16 and luhn_valid(digits)


def test_feedback_covers_every_signal_and_source_and_fits_their_types(
        records: list[dict], fb: list[dict]) -> None:
    specs = {s.name: s for s in SAMPLE_SIGNALS}
    assert {f["signal"] for f in fb} == set(specs)
    assert {f["source"] for f in fb} == {"end_user", "annotator", "expert", "automated"}
    for f in fb:
        s = specs[f["signal"]]
        spec = SignalSpec(0, s.name, s.type, s.scale_min, s.scale_max,
                          tuple(s.labels) if s.labels else None)
        coerce_value(spec, f["value"])  # raises when the value does not fit
    assert any(f.get("comment") for f in fb)
    assert any(f.get("correction") for f in fb)
    ids = {r["id"]: r for r in records}
    pairs = [f for f in fb if f["signal"] == "preference"]
    assert len(pairs) > 50
    for p in pairs:
        a, b = ids[p["interaction_id"]], ids[p["interaction_id_b"]]
        assert a["input"] == b["input"] and a["model_version"] != b["model_version"]
    assert {p["value"] for p in pairs} == {"a", "b", "tie"}


def test_thumbs_follow_the_hidden_quality(records: list[dict], fb: list[dict]) -> None:
    quality = {r["id"]: r["metadata"]["sample_quality"] for r in records}
    ups = [quality[f["interaction_id"]] for f in fb if f["signal"] == "thumbs" and f["value"]]
    downs = [quality[f["interaction_id"]] for f in fb
             if f["signal"] == "thumbs" and not f["value"]]
    assert sum(ups) / len(ups) - sum(downs) / len(downs) > 0.15


def test_the_real_ingest_path_accepts_every_sample_record(
        store: Store, settings: Settings) -> None:
    recs = list(generate_interactions(600, seed=11))
    feedback = list(generate_feedback(recs, seed=11))
    project = create_project(store, "sample")
    for spec in SAMPLE_SIGNALS:
        create_signal(store, project, spec)
    with store.read() as conn:
        assert set(signal_specs(conn, project.id)) == {s.name for s in SAMPLE_SIGNALS}
    ing = Ingestor(store, settings, project)
    assert ing.interactions(recs).summary() == {"accepted": 600, "duplicates": 0,
                                                "rejected": 0}
    assert ing.feedback(feedback).summary() == {"accepted": len(feedback), "duplicates": 0,
                                                "rejected": 0}
    with store.read() as conn:
        status = project_status(conn, project.id)
    assert status["interactions"] == 600
    assert status["feedback"] == len(feedback)
    assert sum(status["by_model_version"].values()) == 600
