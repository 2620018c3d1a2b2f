"""Discrepancy tags and the knowledge base, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.evaluation import CAUSES, evaluate, knowledge_base, tag_discrepancy
from feedbackloop.settings import Settings
from feedbackloop.store import Store


@pytest.fixture
def tagged(store: Store, settings: Settings) -> int:
    project = create_project(store, "kb")
    other = create_project(store, "elsewhere")
    create_signal(store, project, SignalIn(name="thumbs", type="binary"))
    create_signal(store, project, SignalIn(name="score", type="numeric"))
    ing = Ingestor(store, settings, project)
    ing.interactions([{"id": f"k{i}", "input": "q", "output": "a"} for i in range(5)])
    Ingestor(store, settings, other).interactions([{"id": "x1", "input": "q", "output": "a"}])
    ing.feedback([{"id": f"f{i}", "interaction_id": f"k{i}", "signal": "thumbs",
                   "value": i % 2 == 0} for i in range(5)]
                 + [{"id": f"m{i}", "interaction_id": f"k{i}", "signal": "score",
                     "value": i / 4, "source": "automated"} for i in range(5)])
    report = evaluate(store, "kb", "thumbs", ["score"])
    assert report.id is not None
    return report.id


def test_tags_count_by_cause_and_week(store: Store, tagged: int) -> None:
    ids = tag_discrepancy(store, "kb", ["k0", "k1"], "thumbs", "score", "metric_error",
                          note="length bias: short answers scored low", created_by="ann",
                          evaluation_id=tagged)
    assert len(ids) == 2
    tag_discrepancy(store, "kb", ["k2"], "thumbs", "score", "guideline_gap",
                    note="<b>refunds</b> not covered")
    kb = knowledge_base(store, "kb")
    assert kb["total"] == 3
    counts = {c["cause"]: c["count"] for c in kb["causes"]}
    assert counts == {c: 0 for c in CAUSES} | {"metric_error": 2, "guideline_gap": 1}
    metric = next(c for c in kb["causes"] if c["cause"] == "metric_error")
    assert {t["interaction"] for t in metric["tags"]} == {"k0", "k1"}
    assert metric["tags"][0]["note"] == "length bias: short answers scored low"
    assert metric["tags"][0]["evaluation_id"] == tagged
    assert len(kb["weeks"]) == 1 and kb["weeks"][0]["total"] == 3
    assert kb["weeks"][0]["counts"]["metric_error"] == 2


def test_bad_tags_are_refused(store: Store, tagged: int) -> None:
    def tag(**changes: object) -> None:
        args: dict = {"interaction_client_ids": ["k0"], "human_signal": "thumbs",
                      "metric_signal": "score", "cause": "rater_error"} | changes
        tag_discrepancy(store, "kb", **args)

    for changes, field in (({"cause": "bad_luck"}, "cause"),
                           ({"interaction_client_ids": []}, "interaction"),
                           ({"note": "x" * 5001}, "note"),
                           ({"note": "nul\x00"}, "note"),
                           ({"metric_signal": ""}, "metric")):
        with pytest.raises(InvalidInput) as caught:
            tag(**changes)
        assert caught.value.field == field
    # an interaction of another project is as unknown as a missing one
    for missing in (["x1"], ["k0", "nope"]):
        with pytest.raises(NotFound):
            tag(interaction_client_ids=missing)
    with pytest.raises(NotFound):
        tag(evaluation_id=tagged + 1000)
    assert knowledge_base(store, "kb")["total"] == 0
