"""The batch scoring engine on SQLite and PostgreSQL: values stored as automated feedback,
idempotent re-runs, the cache, per-item errors, versions, --since, and worker processes.

The scorers here are the tests' own, written the way a plug-in is: a class with ``info``
and ``score``. They count their calls so that "costs nothing" is measured, not assumed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal, list_signals
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import ConfigurationError, InvalidInput
from feedbackloop.scoring import ScoreError, ScoreItem, ScorerInfo
from feedbackloop.scoring._workers import check_value
from feedbackloop.scoring.engine import content_hash, feedback_id, score_project
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, interactions, score_cache, score_errors, signals


# -- the tests' own scorers ----------------------------------------------------------------
class Length:
    """numeric: characters in the output. Counts calls and items it was given."""

    def __init__(self, version: str = "1", cpu_bound: bool = True,
                 pid_dir: str | None = None) -> None:
        self.info = ScorerInfo(name="length", version=version, output_type="numeric",
                               needs=frozenset({"output"}), description="output length",
                               scale_min=0.0, cpu_bound=cpu_bound)
        self.calls = 0
        self.items = 0
        self.pid_dir = pid_dir

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        self.calls += 1
        self.items += len(items)
        if self.pid_dir is not None:
            Path(self.pid_dir, str(os.getpid())).touch()
            time.sleep(0.05)  # long enough that one worker cannot take every batch
        return [float(len(item.output)) for item in items]


class Moody:
    """binary: true when the output says "good"; misbehaves on purpose for some outputs."""

    info = ScorerInfo(name="moody", version="1", output_type="binary",
                      needs=frozenset({"output"}), cpu_bound=False)

    def __init__(self) -> None:
        self.calls = 0

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        self.calls += 1
        out: list[Any] = []
        for item in items:
            if "boom" in item.output:
                raise RuntimeError("cannot read " + item.output)
            if "nan" in item.output:
                out.append(float("nan"))
            elif "wrong" in item.output:
                out.append("yes")
            elif "refuse" in item.output:
                out.append(ScoreError("no opinion on this one"))
            else:
                out.append("good" in item.output)
        return out


class Overlap:
    """ordinal 0-1: does the output repeat the reference (needs a reference)."""

    info = ScorerInfo(name="overlap", version="1", output_type="ordinal",
                      needs=frozenset({"output", "reference"}), scale_min=0, scale_max=1)

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        return [ScoreError("no reference") if item.reference is None
                else int(item.reference in item.output) for item in items]


class Judge:
    """categorical with a rationale, as an LLM judge gives."""

    info = ScorerInfo(name="judge", version="j1", output_type="categorical",
                      needs=frozenset({"input", "output"}), labels=("short", "long"),
                      cpu_bound=False)

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        raise AssertionError("the engine calls score_with_rationale when there is one")

    def score_with_rationale(self, items: Sequence[ScoreItem]) -> list[Any]:
        return [("long", f"{len(i.output)} characters") if len(i.output) > 10
                else ("short", None) for i in items]


# -- fixtures ------------------------------------------------------------------------------
def _project(store: Store, settings: Settings, records: list[dict[str, Any]],
             name: str = "shop") -> Project:
    project = create_project(store, name)
    result = Ingestor(store, settings, project).interactions(records)
    assert result.rejected == 0, result.errors()
    return project


def _records(outputs: list[str], **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"i{n}", "input": f"question {n}", "output": out, **extra}
            for n, out in enumerate(outputs)]


def _values(store: Store, signal: str) -> dict[str, Any]:
    """interaction client id → stored value of ``signal``."""
    q = (select(interactions.c.client_id, feedback.c.value)
         .join(feedback, feedback.c.interaction_id == interactions.c.id)
         .join(signals, signals.c.id == feedback.c.signal_id)
         .where(signals.c.name == signal))
    with store.read() as conn:
        return {cid: value for cid, value in conn.execute(q)}


def _errors(store: Store) -> dict[str, str]:
    q = (select(interactions.c.client_id, score_errors.c.message)
         .join(score_errors, score_errors.c.interaction_id == interactions.c.id))
    with store.read() as conn:
        return {cid: msg for cid, msg in conn.execute(q)}


def _count(store: Store, table: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


# -- storage -------------------------------------------------------------------------------
def test_values_are_stored_as_automated_feedback(store: Store, settings: Settings) -> None:
    project = _project(store, settings, _records(["hello", "hi", "good morning"]))
    scorer = Length()
    report = score_project(store, settings, project, [scorer], workers=0, progress=False)

    assert _values(store, "length") == {"i0": 5.0, "i1": 2.0, "i2": 12.0}
    with store.read() as conn:
        (sig,) = list_signals(conn, project.id)
        rows = conn.execute(select(feedback.c.client_id, feedback.c.source,
                                   feedback.c.rater_id, feedback.c.value_num)
                            .order_by(feedback.c.client_id)).all()
    assert (sig.name, sig.type, sig.scale_min, sig.description) == ("length", "numeric", 0.0,
                                                                    "output length")
    assert [tuple(r) for r in rows] == [
        ("auto:length:1:i0", "automated", "length@1", 5.0),
        ("auto:length:1:i1", "automated", "length@1", 2.0),
        ("auto:length:1:i2", "automated", "length@1", 12.0)]
    r = report["length"]
    assert (r.scored, r.cached, r.skipped, r.errors, r.scorer_items) == (3, 0, 0, 0, 3)
    assert r.seconds > 0 and r.items_per_second > 0
    assert scorer.calls == 1
    assert _count(store, score_cache) == 3


def test_a_rerun_costs_no_scorer_calls_and_writes_nothing(store: Store,
                                                          settings: Settings) -> None:
    project = _project(store, settings, _records([f"out {n}" for n in range(40)]))
    score_project(store, settings, project, [Length(), Moody()], batch_size=16, workers=0,
                  progress=False)
    before = (_count(store, feedback), _count(store, score_cache), _count(store, score_errors))

    length, moody = Length(), Moody()
    again = score_project(store, settings, project, [length, moody], batch_size=16,
                          workers=0, progress=False)
    assert (length.calls, moody.calls) == (0, 0)
    assert (_count(store, feedback), _count(store, score_cache),
            _count(store, score_errors)) == before == (80, 80, 0)
    assert [(r.scored, r.cached, r.skipped, r.errors) for r in again.scorers] == \
        [(0, 0, 40, 0), (0, 0, 40, 0)]


def test_the_cache_serves_content_scored_in_another_project(store: Store,
                                                            settings: Settings) -> None:
    first = _project(store, settings, _records(["alpha", "beta"]), name="first")
    score_project(store, settings, first, [Length()], workers=0, progress=False)
    second = _project(store, settings, _records(["beta", "alpha", "gamma"]), name="second")
    scorer = Length()
    report = score_project(store, settings, second, [scorer], workers=0, progress=False)
    assert (scorer.items, report["length"].cached, report["length"].scored) == (1, 2, 3)
    with store.read() as conn:
        q = (select(interactions.c.client_id, feedback.c.value)
             .join(feedback, feedback.c.interaction_id == interactions.c.id)
             .where(feedback.c.project_id == second.id))
        assert dict(conn.execute(q).all()) == {"i0": 4.0, "i1": 5.0, "i2": 5.0}


@pytest.mark.parametrize("batch_size", [256, 1])
def test_identical_content_is_scored_once(store: Store, settings: Settings,
                                          batch_size: int) -> None:
    """Within a batch and across batches that are in flight together."""
    project = _project(store, settings, _records(["same", "same", "other", "same"]))
    scorer = Length()
    report = score_project(store, settings, project, [scorer], batch_size=batch_size,
                           workers=0, progress=False)
    assert scorer.items == 2
    assert (report["length"].scored, report["length"].cached) == (4, 2)
    assert _values(store, "length") == {"i0": 4.0, "i1": 4.0, "i2": 5.0, "i3": 4.0}
    assert _count(store, score_cache) == 2


def test_a_new_version_is_scored_again_beside_the_old(store: Store,
                                                      settings: Settings) -> None:
    project = _project(store, settings, _records(["one", "three"]))
    score_project(store, settings, project, [Length("1")], workers=0, progress=False)
    v2 = Length("2")
    report = score_project(store, settings, project, [v2], workers=0, progress=False)
    assert (v2.items, report["length"].scored, report["length"].skipped) == (2, 2, 0)
    with store.read() as conn:
        raters = conn.execute(select(feedback.c.rater_id, func.count())
                              .group_by(feedback.c.rater_id).order_by(feedback.c.rater_id))
        assert [tuple(r) for r in raters] == [("length@1", 2), ("length@2", 2)]


def test_rationale_is_stored_as_the_comment(store: Store, settings: Settings) -> None:
    project = _project(store, settings, _records(["a fairly long answer", "short"]))
    score_project(store, settings, project, [Judge()], workers=0, progress=False)
    with store.read() as conn:
        rows = conn.execute(select(feedback.c.client_id, feedback.c.value,
                                   feedback.c.comment).order_by(feedback.c.client_id)).all()
        (sig,) = list_signals(conn, project.id)
    assert [tuple(r) for r in rows] == [("auto:judge:j1:i0", "long", "20 characters"),
                                        ("auto:judge:j1:i1", "short", None)]
    assert (sig.type, sig.labels) == ("categorical", ["short", "long"])
    # The rationale comes back from the cache too.
    other = _project(store, settings, _records(["a fairly long answer"]), name="other")
    report = score_project(store, settings, other, [Judge()], workers=0, progress=False)
    assert report["judge"].cached == 1
    with store.read() as conn:
        assert conn.execute(select(feedback.c.comment).where(
            feedback.c.project_id == other.id)).scalar_one() == "20 characters"


# -- errors --------------------------------------------------------------------------------
def test_bad_items_are_recorded_and_never_stop_the_batch(store: Store,
                                                         settings: Settings) -> None:
    outputs = ["good", "boom", "bad", "nan", "wrong", "refuse", "good again"]
    project = _project(store, settings, _records(outputs))
    scorer = Moody()
    report = score_project(store, settings, project, [scorer], workers=0, progress=False)

    # The batch raised once ("boom"); then one call per item.
    assert scorer.calls == 1 + len(outputs)
    assert _values(store, "moody") == {"i0": True, "i2": False, "i6": True}
    errors = _errors(store)
    assert errors == {
        "i1": "raised RuntimeError: cannot read boom",
        "i3": "returned nan (float): a binary scorer returns true or false",
        "i4": "returned 'yes' (str): a binary scorer returns true or false",
        "i5": "no opinion on this one",
    }
    r = report["moody"]
    assert (r.scored, r.errors) == (3, 4)
    assert r.error_samples == [{"interaction_id": k, "message": v} for k, v in errors.items()]
    with store.read() as conn:
        cached_errors = conn.execute(select(func.count()).select_from(score_cache).where(
            score_cache.c.error.is_not(None))).scalar_one()
    assert cached_errors == 4

    again = Moody()
    rerun = score_project(store, settings, project, [again], workers=0, progress=False)
    assert (again.calls, rerun["moody"].errors, rerun["moody"].skipped) == (0, 0, 7)


def test_retry_errors_tries_failed_items_again(store: Store, settings: Settings) -> None:
    project = _project(store, settings, _records(["good", "refuse"]))
    score_project(store, settings, project, [Moody()], workers=0, progress=False)
    again = Moody()
    report = score_project(store, settings, project, [again], workers=0, progress=False,
                           retry_errors=True)
    assert again.calls == 1  # only the failed item, and not from the cache
    assert (report["moody"].errors, report["moody"].skipped) == (1, 1)
    assert _errors(store) == {"i1": "no opinion on this one"}


class RaisesForBatches(Length):
    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        self.calls += 1
        if len(items) > 1:
            raise RuntimeError("batch too big")
        return [float(len(items[0].output))]


def test_a_scorer_that_fails_whole_batches_falls_back_to_single_items(
        store: Store, settings: Settings) -> None:
    project = _project(store, settings, _records(["a", "bb", "ccc"]))
    scorer = RaisesForBatches()
    report = score_project(store, settings, project, [scorer], workers=0, progress=False)
    assert scorer.calls == 4
    assert _values(store, "length") == {"i0": 1.0, "i1": 2.0, "i2": 3.0}
    assert report["length"].errors == 0


class Misconfigured(Length):
    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        self.calls += 1
        raise ConfigurationError("the endpoint refused the credentials", option="api_key")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_configuration_error_stops_the_run_and_records_nothing(
        store: Store, settings: Settings, workers: int) -> None:
    project = _project(store, settings, _records([f"o{n}" for n in range(20)]))
    scorer = Misconfigured()
    with pytest.raises(ConfigurationError, match="refused the credentials"):
        score_project(store, settings, project, [scorer], batch_size=5, workers=workers,
                      progress=False)
    if workers == 0:
        assert scorer.calls == 1  # not once per item
    assert (_count(store, feedback), _count(store, score_cache),
            _count(store, score_errors)) == (0, 0, 0)


class ShortChanged(Length):
    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        return [1.0]


def test_a_wrong_number_of_results_is_an_error_per_item(store: Store,
                                                        settings: Settings) -> None:
    project = _project(store, settings, _records(["a", "bb"]))
    score_project(store, settings, project, [ShortChanged()], workers=0, progress=False)
    # Item by item, one result for one item is right.
    assert _values(store, "length") == {"i0": 1.0, "i1": 1.0}


def test_a_value_the_ingestor_refuses_becomes_an_error(store: Store,
                                                       settings: Settings) -> None:
    class Echo:
        info = ScorerInfo(name="echo", version="1", output_type="text",
                          needs=frozenset({"output"}))

        def score(self, items: Sequence[ScoreItem]) -> list[Any]:
            return ["x" * 200_000 for _ in items]

    project = _project(store, settings, _records(["hi"]))
    report = score_project(store, settings, project, [Echo()], workers=0, progress=False)
    assert report["echo"].errors == 1
    assert _errors(store) == {
        "i0": "value not stored: value: text longer than the limit of 100000 bytes"}


@pytest.mark.parametrize(("info_kw", "value", "expected"), [
    ({"output_type": "binary"}, np.bool_(True), (True, None)),
    ({"output_type": "binary"}, 1, (None, "returned 1 (int): a binary scorer returns true "
                                          "or false")),
    ({"output_type": "numeric"}, True, (None, "returned True (bool): a numeric scorer "
                                              "returns a number")),
    ({"output_type": "numeric"}, np.float32(0.5), (0.5, None)),
    ({"output_type": "numeric"}, float("inf"), (None, "returned inf: not a finite number")),
    ({"output_type": "numeric", "scale_min": 0.0, "scale_max": 1.0}, 1.5,
     (None, "returned 1.5, outside the scale [0, 1]")),
    ({"output_type": "numeric", "scale_min": 0.0, "scale_max": 100.0}, 100.00000000000004,
     (100.0, None)),  # sacrebleu's BLEU of two identical texts
    ({"output_type": "numeric", "scale_min": 0.0, "scale_max": 100.0}, 100.001,
     (None, "returned 100.001, outside the scale [0, 100]")),
    ({"output_type": "numeric", "scale_min": -1.0}, -1.0000000000000002, (-1.0, None)),
    ({"output_type": "ordinal", "scale_min": 1, "scale_max": 5}, np.int64(3), (3, None)),
    ({"output_type": "ordinal", "scale_min": 1, "scale_max": 5}, 3.0,
     (None, "returned 3.0 (float): an ordinal scorer returns a whole number (int)")),
    ({"output_type": "ordinal", "scale_min": 1, "scale_max": 5}, 6,
     (None, "returned 6, outside the scale [1, 5]")),
    ({"output_type": "categorical", "labels": ("a", "b")}, "c",
     (None, "returned 'c', not one of the labels a, b")),
    ({"output_type": "categorical", "labels": ("a", "b")}, "b", ("b", None)),
    ({"output_type": "text"}, "  ", (None, "returned '  ' (str): a text scorer returns "
                                           "non-empty text")),
])
def test_values_are_checked_against_the_output_type(info_kw: dict[str, Any], value: Any,
                                                    expected: tuple[Any, str | None]) -> None:
    info = ScorerInfo(name="s", version="1", needs=frozenset({"output"}), **info_kw)
    outcome = check_value(info, value)
    assert (outcome.value, outcome.error) == expected
    if outcome.value is not None:
        assert type(outcome.value) in (bool, int, float, str)


# -- what is scored ------------------------------------------------------------------------
def test_since_limits_the_interactions(store: Store, settings: Settings) -> None:
    records = [{"id": f"i{n}", "input": "q", "output": "o" * (n + 1),
                "timestamp": datetime(2024, 1, 1 + n, 12, tzinfo=UTC).isoformat()}
               for n in range(4)]
    project = _project(store, settings, records)
    report = score_project(store, settings, project, [Length()], workers=0, progress=False,
                           since=datetime(2024, 1, 3, 12, tzinfo=UTC))
    assert _values(store, "length") == {"i2": 3.0, "i3": 4.0}
    assert (report["length"].scored, report["length"].skipped) == (2, 0)


class ReadsReference(Length):
    """Reads the reference when there is one, as an LLM judge does."""

    def __init__(self) -> None:
        super().__init__()
        self.info = ScorerInfo(name="length", version="1", output_type="numeric",
                               needs=frozenset({"output", "reference"}))

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        return [float(len(i.output) - len(i.reference or "")) for i in items]


REFERENCE_RECORDS = [
    {"id": "with", "input": "q", "output": "the answer is 4", "reference": "4"},
    {"id": "wrong", "input": "q", "output": "five", "reference": "4"},
    {"id": "without", "input": "q", "output": "4"}]


def test_items_lacking_a_field_the_scorer_reads_are_scored(store: Store,
                                                           settings: Settings) -> None:
    """``needs`` is what a scorer reads: the scorer decides what a missing field means."""
    project = _project(store, settings, REFERENCE_RECORDS)
    report = score_project(store, settings, project, [Overlap(), ReadsReference()],
                           workers=0, progress=False)
    assert _values(store, "overlap") == {"with": 1, "wrong": 0}
    assert _values(store, "length") == {"with": 14.0, "wrong": 3.0, "without": 1.0}
    assert _errors(store) == {"without": "no reference"}
    r = report["overlap"]
    assert (r.scored, r.not_applicable, r.errors) == (2, 0, 1)


def test_skip_incomplete_leaves_them_out(store: Store, settings: Settings) -> None:
    project = _project(store, settings, REFERENCE_RECORDS)
    report = score_project(store, settings, project, [Overlap(), ReadsReference()],
                           workers=0, progress=False, skip_incomplete=True)
    assert _values(store, "overlap") == {"with": 1, "wrong": 0}
    assert _values(store, "length") == {"with": 14.0, "wrong": 3.0}
    assert _errors(store) == {}
    r = report["overlap"]
    assert (r.scored, r.not_applicable, r.errors, r.skipped) == (2, 1, 0, 0)


def test_a_signal_of_another_type_is_a_clear_error(store: Store, settings: Settings) -> None:
    project = _project(store, settings, _records(["x"]))
    create_signal(store, project, SignalIn(name="length", type="binary"))
    with pytest.raises(InvalidInput, match="signal 'length' exists in project 'shop' as "
                                           "binary, but scorer 'length' produces numeric"):
        score_project(store, settings, project, [Length()], workers=0, progress=False)
    assert _count(store, feedback) == 0


def test_an_existing_signal_of_the_same_type_is_used(store: Store,
                                                     settings: Settings) -> None:
    project = _project(store, settings, _records(["x"]))
    create_signal(store, project, SignalIn(name="length", type="numeric",
                                           description="mine"))
    score_project(store, settings, project, [Length()], workers=0, progress=False)
    assert _values(store, "length") == {"i0": 1.0}


class Nameless:
    def __init__(self, **kw: Any) -> None:
        base = {"name": "ok", "version": "1", "output_type": "numeric",
                "needs": frozenset({"output"})}
        self.info = ScorerInfo(**{**base, **kw})

    def score(self, items: Sequence[ScoreItem]) -> list[Any]:
        return [0.0 for _ in items]


@pytest.mark.parametrize(("kw", "field", "message"), [
    ({"name": "bad name"}, "info.name", "name 'bad name' must be"),
    ({"version": ""}, "info.version", "scorer 'ok': version must be text of 1-50"),
    ({"output_type": "pairwise"}, "info.output_type", "output type 'pairwise' is not one"),
    ({"needs": frozenset({"output", "images"})}, "info.needs", "needs images"),
    ({"output_type": "ordinal"}, "info.scale_min", "declares scale_min and scale_max"),
    ({"output_type": "categorical"}, "info.labels", "declares its labels"),
])
def test_a_malformed_scorer_is_refused_by_field(store: Store, settings: Settings,
                                                kw: dict[str, Any], field: str,
                                                message: str) -> None:
    project = _project(store, settings, _records(["x"]))
    with pytest.raises(InvalidInput, match=message) as caught:
        score_project(store, settings, project, [Nameless(**kw)], workers=0)
    assert caught.value.field == field
    with pytest.raises(InvalidInput, match="given twice"):
        score_project(store, settings, project, [Nameless(), Nameless()], workers=0)
    with pytest.raises(InvalidInput, match="is not a Scorer"):
        score_project(store, settings, project, [object()], workers=0)  # type: ignore[list-item]


def test_progress_callback_counts_items(store: Store, settings: Settings) -> None:
    project = _project(store, settings, _records([f"o{n}" for n in range(5)]))
    seen: list[tuple[str, int, int]] = []
    score_project(store, settings, project, [Length()], batch_size=2, workers=0,
                  progress=lambda name, done, total: seen.append((name, done, total)))
    assert seen == [("length", 2, 5), ("length", 4, 5), ("length", 5, 5)]


# -- worker processes ----------------------------------------------------------------------
def test_worker_processes_store_the_same_results(store: Store, settings: Settings,
                                                 tmp_path: Path) -> None:
    # 120 distinct outputs: batch 3 repeats batch 1 while both are in flight, later
    # batches repeat what the cache holds.
    outputs = [f"answer {n % 120}" for n in range(600)]
    project = _project(store, settings, _records(outputs))
    pids = tmp_path / "pids"
    pids.mkdir()
    report = score_project(store, settings, project, [Length(pid_dir=str(pids))],
                           batch_size=50, workers=2, progress=False)
    parallel = _values(store, "length")
    worker_pids = {int(p.name) for p in pids.iterdir()}
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids

    serial_project = _project(store, settings, _records(outputs), name="serial")
    with store.transaction() as conn:  # make the serial run score, not read the cache
        conn.execute(score_cache.delete())
    serial = Length()
    score_project(store, settings, serial_project, [serial], batch_size=50, workers=0,
                  progress=False)
    with store.read() as conn:
        q = (select(interactions.c.client_id, feedback.c.value)
             .join(feedback, feedback.c.interaction_id == interactions.c.id)
             .where(feedback.c.project_id == serial_project.id))
        serial_values = dict(conn.execute(q).all())
    assert parallel == serial_values
    assert len(parallel) == 600
    assert parallel["i7"] == float(len(outputs[7]))
    unique = len(set(outputs))
    assert report["length"].scorer_items == serial.items == unique == 120
    assert report["length"].scored == 600


# -- identities ----------------------------------------------------------------------------
def test_content_hash_covers_the_needed_fields_only() -> None:
    info = Length().info
    base = {"input": "q", "output": "o", "reference": None}
    assert content_hash(info, base) == content_hash(info, {**base, "input": "other"})
    assert content_hash(info, base) != content_hash(info, {**base, "output": "O"})
    both = ScorerInfo(**{**info.__dict__, "needs": frozenset({"input", "output"})})
    assert content_hash(both, base) != content_hash(both, {**base, "input": "other"})
    assert len(content_hash(info, base)) == 40


def test_feedback_ids_stay_within_the_limit() -> None:
    info = Length().info
    assert feedback_id(info, "abc") == "auto:length:1:abc"
    long_id = feedback_id(info, "z" * 200)
    assert len(long_id) <= 200 and long_id.startswith("auto:length:1:#")
    assert long_id == feedback_id(info, "z" * 200) != feedback_id(info, "z" * 199 + "y")


def test_nan_guard_is_not_fooled_by_math() -> None:
    info = ScorerInfo(name="s", version="1", output_type="numeric", needs=frozenset())
    assert check_value(info, -math.inf).error == "returned -inf: not a finite number"
