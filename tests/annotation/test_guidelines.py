"""Versioned guidelines on SQLite and PostgreSQL: a change adds a version and leaves the
old text as it was; rubric anchors are checked against the signal; Markdown is safe."""

from __future__ import annotations

import pytest

from feedbackloop.annotation.guidelines import (
    create_guideline,
    get_guideline,
    list_guidelines,
)
from feedbackloop.annotation.markdown import render_markdown, safe_link
from feedbackloop.errors import InvalidInput, NotFound
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from .campaign_data import make_project

RUBRIC = [{"value": 1, "label": "poor", "description": "wrong or harmful",
           "examples": ["Answers a different question."]},
          {"value": 5, "label": "excellent", "description": "right and complete"}]


def test_a_change_adds_a_version_and_keeps_the_old_text(store: Store,
                                                        settings: Settings) -> None:
    project = make_project(store, settings, n=0)  # version 1 of each signal exists
    v2 = create_guideline(store, project, "quality", "# Quality\n\nJudge the *answer*.",
                          RUBRIC, note="first rubric", created_by="lead")
    v3 = create_guideline(store, "shop", "quality", "# Quality\n\nJudge answer and tone.",
                          RUBRIC[:1], note="tone added")
    assert (v2.version, v3.version) == (2, 3)
    with store.read() as conn:
        latest = get_guideline(conn, project, "quality")
        old = get_guideline(conn, project, "quality", 2)
        first = get_guideline(conn, "shop", "quality", 1)
        versions = list_guidelines(conn, project, "quality")
        other = list_guidelines(conn, project, "thumbs")
    assert latest.version == 3 and latest.body.endswith("answer and tone.")
    assert old.body == "# Quality\n\nJudge the *answer*." and old.note == "first rubric"
    assert old.created_by == "lead" and old.rubric == [
        {"value": 1, "label": "poor", "description": "wrong or harmful",
         "examples": ["Answers a different question."]},
        {"value": 5, "label": "excellent", "description": "right and complete",
         "examples": []}]
    assert first.body == "# How to judge quality" and first.rubric == []
    assert [g.version for g in versions] == [3, 2, 1]
    assert [g.version for g in other] == [1]
    assert latest.to_dict()["signal"] == "quality" and latest.to_dict()["version"] == 3


def test_rubric_values_are_checked_against_the_signal(store: Store,
                                                      settings: Settings) -> None:
    project = make_project(store, settings, n=0)
    cases = [
        ("quality", [{"value": 6}], "rubric[0].value", "outside the scale"),
        ("quality", [{"value": 2.5}], "rubric[0].value", "whole number"),
        ("topic", [{"value": "refund"}], "rubric[0].value", "not a label"),
        ("pref", [{"value": "left"}], "rubric[0].value", "'a', 'b' or 'tie'"),
        ("thumbs", [{"value": 2}], "rubric[0].value", "binary"),
        ("quality", [{"value": 1}, {"value": 1}], "rubric[1].value", "appears twice"),
        ("quality", [{"label": "x"}], "rubric[0].value", "needs a value"),
        ("quality", [{"value": 1, "colour": "red"}], "rubric[0].colour", "unknown field"),
        ("quality", [{"value": 1, "examples": "one"}], "rubric[0].examples", "list"),
        ("quality", {"value": 1}, "rubric", "list of anchors"),
    ]
    for signal, rubric, field, words in cases:
        with pytest.raises(InvalidInput) as exc:
            create_guideline(store, project, signal, "text", rubric)  # type: ignore[arg-type]
        assert exc.value.field == field, (signal, rubric)
        assert words in exc.value.message, exc.value.message
    ok = {"quality": [{"value": 3}], "topic": [{"value": "billing"}],
          "pref": [{"value": "tie"}, {"value": "a"}], "thumbs": [{"value": "true"},
                                                                 {"value": 0}],
          "note": [{"value": "concise"}], "score": [{"value": 0.25}]}
    stored = {s: create_guideline(store, project, s, "text", r).rubric for s, r in ok.items()}
    assert [a["value"] for a in stored["thumbs"]] == [True, False]
    assert [a["value"] for a in stored["pref"]] == ["tie", "a"]
    assert stored["score"][0]["value"] == 0.25


def test_bad_guideline_input_names_the_field(store: Store, settings: Settings) -> None:
    project = make_project(store, settings, n=0)
    with pytest.raises(InvalidInput) as exc:
        create_guideline(store, project, "quality", "   ")
    assert exc.value.field == "body"
    with pytest.raises(InvalidInput) as exc:
        create_guideline(store, project, "quality", "a\x00b")
    assert exc.value.field == "body"
    with pytest.raises(NotFound) as nf:
        create_guideline(store, project, "missing", "text")
    assert nf.value.details["field"] == "signal"
    with store.read() as conn, pytest.raises(NotFound) as nf:
        get_guideline(conn, project, "quality", 9)
    assert "no guideline version 9" in nf.value.message
    with store.read() as conn:
        assert [g.version for g in list_guidelines(conn, project, "quality")] == [1]


def test_markdown_is_rendered_without_raw_html_or_unsafe_links() -> None:
    html = str(render_markdown(
        "# Title\n\n<script>alert(1)</script> **bold** [ok](https://example.org) "
        "[bad](javascript:alert(1)) [tab](java\tscript:x) [mail](mailto:a@b.c) [rel](/x)"))
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://example.org" rel="nofollow noopener noreferrer">ok</a>' in html
    assert 'href="javascript' not in html and "[bad](javascript:alert(1))" in html
    assert '<a href="mailto:a@b.c"' in html and '<a href="/x"' in html
    assert str(render_markdown("")) == "" and str(render_markdown(None)) == ""
    assert safe_link("HTTPS://x") and safe_link("#anchor") and not safe_link("data:x")
    assert not safe_link(" vbscript:x")
