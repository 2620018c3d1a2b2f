"""The Test stage's pages over HTTP on SQLite and PostgreSQL: the experiment list, the
new-experiment form (planning through the real service), start, the decision form
(permissions, CSRF, bad input as a message), an experiment page rendering an analysis dict
(every part of it, user text escaped, "not estimable" with its reason, SRM flagged), the
report download, and a bandit's page."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from feedbackloop.access import create_user, grant
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import experiments
from feedbackloop.web import experiments_pages
from feedbackloop.web.app import create_app

from ..experiments.analysis_fixture import XSS, analysis, decided
from .test_pages import PASSWORD, _client, _sign_in


@dataclass
class Lab:
    store: Store
    settings: Settings
    project: Project


def seed_lab(store: Store, settings: Settings, *, users: bool = True) -> Lab:
    """Project ``lab``: signals ``helpful`` (binary, rated by annotators), ``latency_ok``
    (binary), ``stars`` (ordinal), ``note`` (text); versions v1 and v2 of ``generation``
    registered without training; vic (viewer) and max (maintainer)."""
    reg.clear_resolve_cache()
    project = create_project(store, "lab")
    create_signal(store, project, SignalIn(name="helpful", type="binary"))
    create_signal(store, project, SignalIn(name="latency_ok", type="binary"))
    create_signal(store, project, SignalIn(name="stars", type="ordinal", scale_min=1,
                                           scale_max=5))
    create_signal(store, project, SignalIn(name="note", type="text"))
    reg.register_version(store, project, "generation", "v1", created_by="max")
    reg.register_version(store, project, "generation", "v2", created_by="max")
    if users:
        create_user(store, "vic", PASSWORD)
        grant(store, "vic", project.id, "viewer")
        create_user(store, "max", PASSWORD)
        grant(store, "max", project.id, "maintainer")
    return Lab(store, settings, project)


def insert_experiment(store: Store, project: Project, a: dict[str, Any]) -> None:
    """The experiment row behind an analysis dict, written directly: rendering tests
    should not depend on the statistics."""
    exp = a["experiment"]
    with store.transaction() as conn:
        conn.execute(experiments.insert().values(
            project_id=project.id, name=exp["name"], kind=exp["kind"], status=exp["status"],
            hypothesis=exp["hypothesis"], component=exp["component"], design=exp["design"],
            design_hash="0" * 64, salt="ab" * 8, created_by="max",
            created_at=datetime(2026, 11, 1, 8, tzinfo=UTC),
            started_at=datetime(2026, 11, 1, 9, tzinfo=UTC)))


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


@pytest.fixture
def lab(store: Store, settings: Settings) -> Lab:
    return seed_lab(store, settings)


@pytest.fixture
def client(lab: Lab, portal: BlockingPortal) -> Iterator[httpx.Client]:
    with _client(create_app(lab.settings, lab.store), portal) as c:
        yield c


@pytest.fixture
def fixed(monkeypatch: pytest.MonkeyPatch, lab: Lab) -> dict[str, Any]:
    """The hand-made analysis stored as experiment ``shorter-answers``, served by the page
    instead of the service's analysis."""
    state = {"analysis": analysis()}
    insert_experiment(lab.store, lab.project, state["analysis"])
    monkeypatch.setattr(experiments_pages, "_analysis",
                        lambda store, project, name: state["analysis"])
    return state


def _section(text: str, ident: str) -> str:
    part = text.split(f'id="{ident}"', 1)
    assert len(part) == 2, f"no #{ident} on the page"
    return part[1].split("</section>", 1)[0]


# -- rendering an analysis ----------------------------------------------------------------

def test_the_experiment_page_renders_every_part_of_the_analysis(
        client: httpx.Client, fixed: dict[str, Any]) -> None:
    _sign_in(client, "vic")
    page = client.get("/projects/lab/experiments/shorter-answers")
    assert page.status_code == 200, page.text
    text = page.text
    assert re.search(r'href="/projects/lab/experiments"\s+class="current"', text)
    # user text (hypothesis, an arm name, a note) is text, never markup
    assert XSS not in text and html.escape(XSS) in text
    # arms with their model version pages
    arms = _section(text, "arms-card")
    assert 'href="/projects/lab/models/generation/v1">v1</a>' in arms
    assert 'href="/projects/lab/models/generation/v2">v2</a>' in arms
    assert "1,010" in arms and "40.0 %" in arms and "46.0 %" in arms
    # lift: Welch and sequential, relative, adjusted p, the reading
    lift = _section(text, "lift")
    assert "+6.0 pp" in lift and "[0.7 pp, 11.3 pp]" in lift and "0.026" in lift
    assert "(0.052)" in lift and "+15.0 %" in lift
    assert "[-1.0 pp, 13.0 pp]" in lift and "no difference shown yet" in lift
    assert 'data-seq-width="0.14"' in lift
    # the confidence sequence, with a band and a line per treatment arm, zero and MDE
    seq = _section(text, "sequence")
    assert seq.count('class="arm series-') == 2 and seq.count('class="band"') == 2
    assert 'class="zero"' in seq and 'class="mde"' in seq
    assert "peeking" in seq.lower() or "Read after every batch" in seq
    assert "14.2 %" in seq  # the published peeking figure
    # SRM, stopping, planned looks, guardrails, Bayes, planned vs actual, notes
    assert "No mismatch" in _section(text, "srm") and "0.840" in _section(text, "srm")
    stopping = _section(text, "stopping")
    assert "None fired." in stopping and "continue" in stopping
    assert "4.333" in stopping and "not reached" in stopping
    guard = _section(text, "guardrails")
    assert "at risk" in guard and "not estimable: zero variance in both arms" in guard
    assert "96.0 %" in _section(text, "bayes")
    assert "1,534" in text and "32 %" in text
    assert "not estimable" in _section(text, "notes")
    assert 'href="/projects/lab/experiments/shorter-answers-draft"' in text  # supersedes
    # a viewer sees no form: only the sign-out form carries the token
    assert 'id="decide-form"' not in text and text.count('name="csrf"') == 1
    assert 'href="/projects/lab/experiments/shorter-answers/report?format=html"' in text


def test_flagged_srm_fired_rules_and_a_recorded_decision_are_shown(
        client: httpx.Client, fixed: dict[str, Any]) -> None:
    a = decided()
    a["srm"] = {**a["srm"], "p_value": 1e-6, "flagged": True}
    a["stopping"] = {"fired": ["efficacy", "guardrail"], "recommendation": "stop",
                     "details": {}}
    a["primary"]["comparisons"][0]["sequential"] = {"method": "asymptotic-cs",
                                                     "ci95": [0.01, 0.11], "ci": [0.01, 0.11],
                                                     "level": 0.95, "p_value": 0.01}
    fixed["analysis"] = a
    _sign_in(client, "vic")
    text = client.get("/projects/lab/experiments/shorter-answers").text
    assert "Sample ratio mismatch" in _section(text, "srm") and "&lt; 0.001" in text
    stopping = _section(text, "stopping")
    assert "Efficacy" in stopping and "Guardrail breach" in stopping and ">stop<" in stopping
    assert "better than control" in _section(text, "lift")
    decision = _section(text, "decision")
    assert ">Ship</strong>" in decision and html.escape(f"Ship it {XSS}") in decision
    assert XSS not in text


def test_sequential_off_and_nothing_estimable_say_why(client: httpx.Client,
                                                       fixed: dict[str, Any]) -> None:
    a = analysis()
    comp = a["primary"]["comparisons"][0]
    comp["sequential"] = None
    for part in ("absolute", "relative"):
        comp[part] = {"estimable": False, "reason": "fewer than 2 units in arm terse"}
    a["sequential_path"] = []
    a["group_sequential"] = None
    fixed["analysis"] = a
    _sign_in(client, "vic")
    text = client.get("/projects/lab/experiments/shorter-answers").text
    lift = _section(text, "lift")
    assert "not estimable: fewer than 2 units in arm terse" in lift
    assert "off: sequential analysis is off in the design" in lift
    assert "No looks yet" in _section(text, "sequence")
    assert "nan" not in text.lower().replace("nano", "")


def test_the_report_downloads_as_html_and_markdown(client: httpx.Client,
                                                   fixed: dict[str, Any]) -> None:
    _sign_in(client, "vic")
    r = client.get("/projects/lab/experiments/shorter-answers/report?format=html")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert "<svg" in r.text and XSS not in r.text and "http://" not in r.text.replace(
        "http://www.w3.org/2000/svg", "")
    md = client.get("/projects/lab/experiments/shorter-answers/report?format=md")
    assert md.status_code == 200 and md.text.startswith("# Experiment shorter-answers")
    assert md.headers["content-type"].startswith("text/markdown")
    bad = client.get("/projects/lab/experiments/shorter-answers/report?format=pdf")
    assert bad.status_code == 422


def test_the_list_shows_experiments_and_links_them(client: httpx.Client,
                                                   fixed: dict[str, Any]) -> None:
    _sign_in(client, "vic")
    text = client.get("/projects/lab/experiments").text
    row = text.split('data-experiment="shorter-answers"', 1)[1].split("</tr>", 1)[0]
    assert 'href="/projects/lab/experiments/shorter-answers"' in row
    assert "helpful" in row and "running" in row and "2026-11-01 09:00:00 UTC" in row
    assert XSS not in text
    assert 'id="new-experiment"' not in text  # a viewer cannot plan


def test_unknown_experiments_and_projects_are_404(client: httpx.Client,
                                                  fixed: dict[str, Any]) -> None:
    _sign_in(client, "vic")
    assert client.get("/projects/lab/experiments/nope").status_code == 404
    assert client.get("/projects/lab/experiments/" + "x" * 300).status_code == 404
    assert client.get("/projects/lab/experiments/no%00pe").status_code == 404
    assert client.get("/projects/elsewhere/experiments").status_code == 404
    assert client.get("/projects/lab/experiments/nope/report").status_code == 404
