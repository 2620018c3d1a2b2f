"""The provenance graph on SQLite and PostgreSQL: link() writes a link and an audit entry,
trace() walks feedback → finding → dataset → model version → experiment → release both
ways, never sideways, and cuts wide fan-outs saying how many it left out."""

from __future__ import annotations

import pytest

from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.governance import audit
from feedbackloop.governance.provenance import link, links_of, trace, trace_markdown
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .chain import build_chain


def _ids(graph: dict) -> set[str]:
    return {n["id"] for n in graph["nodes"]}


def test_trace_from_feedback_reaches_the_release(store: Store, settings: Settings) -> None:
    c = build_chain(store, settings, comment="<script>x</script> slow")
    first = c.feedback_ids[0]
    g = trace(store, "shop", "feedback", first)
    assert g["start"] == f"feedback:{first}"
    assert _ids(g) == {f"feedback:{first}", f"finding:{c.finding_id}",
                       f"dataset:{c.dataset_id}", f"model_version:{c.v2_id}",
                       f"experiment:{c.experiment_id}", f"release:{c.release_id}"}
    # Downstream only: the other feedback of the finding and the dataset are siblings.
    assert all(n["direction"] in ("start", "downstream") for n in g["nodes"])
    edges = {(e["src"], e["dst"], e["relation"]) for e in g["edges"]}
    assert (f"feedback:{first}", f"finding:{c.finding_id}", "reported_in") in edges
    assert (f"finding:{c.finding_id}", f"dataset:{c.dataset_id}", "addresses") in edges
    assert (f"feedback:{first}", f"dataset:{c.dataset_id}", "included_in") in edges
    assert (f"dataset:{c.dataset_id}", f"model_version:{c.v2_id}", "trained") in edges
    assert (f"model_version:{c.v2_id}", f"experiment:{c.experiment_id}", "tested_by") in edges
    assert (f"experiment:{c.experiment_id}", f"release:{c.release_id}",
            "evidence_for") in edges
    assert (f"model_version:{c.v2_id}", f"release:{c.release_id}", "released_as") in edges
    urls = {n["kind"]: n["url"] for n in g["nodes"]}
    assert urls == {"feedback": "/projects/shop/interactions/i0",
                    "finding": f"/projects/shop/findings/{c.finding_id}",
                    "dataset": "/projects/shop/datasets/prefs/1",
                    "model_version": "/projects/shop/models/ranking/v2",
                    "experiment": "/projects/shop/experiments/faster",
                    "release": f"/projects/shop/releases/{c.release_id}"}
    # By client id too; the Markdown escapes the comment and links every node.
    assert trace(store, "shop", "feedback", "f0")["nodes"] == g["nodes"]
    md = trace_markdown(g)
    assert "<script>" not in md and "\\<script\\>" in md
    assert f"(/projects/shop/releases/{c.release_id})" in md
    assert md.index("## Feedback") < md.index("## Findings") < md.index("## Releases")


def test_trace_from_release_and_version_walks_upstream(store: Store,
                                                       settings: Settings) -> None:
    c = build_chain(store, settings)
    g = trace(store, "shop", "release", c.release_id)
    ids = _ids(g)
    # The release came from v2 (its datasets, their feedback and findings) and was justified
    # by the experiment, which also tested v1.
    assert {f"model_version:{c.v2_id}", f"experiment:{c.experiment_id}",
            f"model_version:{c.v1_id}", f"dataset:{c.dataset_id}",
            f"finding:{c.finding_id}"} <= ids
    assert {f"feedback:{f}" for f in c.feedback_ids[:3]} <= ids
    assert f"feedback:{c.feedback_ids[3]}" not in ids  # in no dataset nor finding
    assert all(n["direction"] in ("start", "upstream") for n in g["nodes"])

    by_name = trace(store, "shop", "model_version", "ranking:v2")
    assert by_name["start"] == f"model_version:{c.v2_id}"
    assert {n["direction"] for n in by_name["nodes"]} == {"start", "upstream", "downstream"}
    assert f"release:{c.release_id}" in _ids(by_name)
    assert f"feedback:{c.feedback_ids[0]}" in _ids(by_name)
    assert trace(store, "shop", "model_version", c.v2_id)["nodes"] == by_name["nodes"]

    # A version nothing links to is a graph of one node.
    lone = trace(store, "shop", "feedback", c.feedback_ids[3])
    assert len(lone["nodes"]) == 1 and lone["edges"] == []
    assert "Nothing links to or from it yet" in trace_markdown(lone)


def test_trace_cuts_wide_fan_outs(store: Store, settings: Settings) -> None:
    c = build_chain(store, settings)
    g = trace(store, "shop", "dataset", c.dataset_id, limit=2)
    shown = [n for n in g["nodes"] if n["kind"] == "feedback"]
    assert len(shown) == 2
    assert {"from": f"dataset:{c.dataset_id}", "kind": "feedback", "shown": 2,
            "total": 3} in g["truncated"]
    assert "showing 2 of 3 feedback links" in trace_markdown(g)


def test_trace_refuses_bad_starts(store: Store, settings: Settings) -> None:
    c = build_chain(store, settings)
    with pytest.raises(InvalidInput, match="start_kind must be one of") as bad:
        trace(store, "shop", "user", 1)
    assert bad.value.field == "start_kind"
    with pytest.raises(NotFound, match="no model version 'ranking:v9'"):
        trace(store, "shop", "model_version", "ranking:v9")
    with pytest.raises(InvalidInput, match="COMPONENT:NAME"):
        trace(store, "shop", "model_version", "v2")
    with pytest.raises(NotFound, match="no release 999"):
        trace(store, "shop", "release", 999)
    with pytest.raises(NotFound):
        trace(store, "shop", "release", 2**70)
    with pytest.raises(InvalidInput, match="whole number"):
        trace(store, "shop", "finding", "x")
    with pytest.raises(InvalidInput, match="limit"):
        trace(store, "shop", "finding", c.finding_id, limit=0)
    with pytest.raises(NotFound, match="no project"):
        trace(store, "nope", "finding", 1)


def test_link_is_audited_checked_and_idempotent(store: Store, settings: Settings) -> None:
    c = build_chain(store, settings)
    pid = c.project.id
    with store.transaction() as conn:
        first = link(conn, pid, "model_version", c.v2_id, "release", c.release_id,
                     "released_as", "bo")
        again = link(conn, pid, "model_version", c.v2_id, "release", c.release_id,
                     "released_as", "bo")
    assert first == again
    with store.read() as conn:
        logged = [e for e in audit.entries(conn, project_id=pid)
                  if e.action == "provenance.link"]
        assert logged[0].after == {"src": f"model_version:{c.v2_id}",
                                                "dst": f"release:{c.release_id}",
                                                "relation": "released_as"}
        assert logged[0].actor == "bo" and len(logged) == 2  # this one and the chain's
        assert [r["relation"] for r in links_of(conn, "release", c.release_id)] == [
            "released_as"]
    # The trace does not show the generic link twice next to the release table's own edge.
    edges = trace(store, "shop", "release", c.release_id)["edges"]
    assert sum(e["src"] == f"model_version:{c.v2_id}" and e["dst"] == f"release:"
               f"{c.release_id}" for e in edges) == 1

    with store.transaction() as conn:
        with pytest.raises(InvalidInput, match="src_kind must be one of"):
            link(conn, pid, "user", 1, "release", c.release_id, "x", "bo")
        with pytest.raises(InvalidInput, match="relation"):
            link(conn, pid, "finding", c.finding_id, "dataset", c.dataset_id, "", "bo")
        with pytest.raises(NotFound, match="no dataset 999") as nf:
            link(conn, pid, "finding", c.finding_id, "dataset", 999, "addresses", "bo")
        assert nf.value.details["field"] == "dst_id"
        with pytest.raises(InvalidInput, match="two different ends"):
            link(conn, pid, "finding", c.finding_id, "finding", c.finding_id, "x", "bo")
