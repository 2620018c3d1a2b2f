"""The Test stage's pages over HTTP on SQLite and PostgreSQL: the experiment list, the
new-experiment form (planning through the real service), start, the decision form
(permissions, CSRF, bad input as a message), an experiment page rendering an analysis dict
(every part of it, user text escaped, "not estimable" with its reason, SRM flagged), the
report download, and a bandit's page."""

from __future__ import annotations

import functools
import html
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from feedbackloop.access import grant
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import Project, create_project, create_signal
from feedbackloop.capture.schema import SignalIn
from feedbackloop.experiments import (
    assign,
    create_experiment,
    get_experiment,
    list_experiments,
    start_experiment,
    update_design,
)
from feedbackloop.experiments.bandits import choose, create_bandit, reward
from feedbackloop.improve import registry as reg
from feedbackloop.settings import Settings
from feedbackloop.store import Store, tables
from feedbackloop.store.tables import experiments
from feedbackloop.web import experiments_pages
from feedbackloop.web.app import create_app

from ..experiments.analysis_fixture import XSS, analysis, decided
from .test_pages import PASSWORD, _client, _csrf, _sign_in


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
        for name, role in (("vic", "viewer"), ("max", "maintainer")):
            with store.transaction() as conn:
                conn.execute(tables.users.insert().values(
                    username=name, password_hash=_password_hash(), is_superuser=False,
                    created_at=datetime.now(UTC)))
            grant(store, name, project.id, role)
    return Lab(store, settings, project)


@functools.cache
def _password_hash() -> str:
    """PASSWORD hashed once for every test user (what create_user stores; hashing is
    deliberately slow)."""
    from feedbackloop.access.service import _hasher

    return str(_hasher.hash(PASSWORD))


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
                        lambda store, project, name, **kw: state["analysis"])
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


# -- the real service: plan, start, traffic, decide -----------------------------------------

def traffic(lab: Lab, name: str, units: range, rates: dict[str, float], *,
            seed: int) -> None:
    """Live traffic: each unit is assigned (its exposure logged), served the arm's model
    version, logs an interaction carrying experiment, arm and propensity, and gets an
    annotator's ``helpful`` rating (true with the arm's rate). The page copies them in."""
    rng = random.Random(seed)
    key = lab.settings.pseudonym_key_bytes()
    records, ratings = [], []
    for k in units:
        unit = f"user-{k}"
        served = assign(lab.store, lab.project, name, unit, pseudonym_key=key)
        records.append({"id": f"{name}-{k}", "input": f"question {k}",
                        "output": f"answer from {served['version']}", "user_id": unit,
                        "consent": True, "model_version": served["version"],
                        "experiment": name, "arm": served["arm"],
                        "propensity": served["propensity"]})
        ratings.append({"id": f"{name}-rating-{k}", "interaction_id": f"{name}-{k}",
                        "signal": "helpful", "value": rng.random() < rates[served["arm"]],
                        "source": "annotator", "rater_id": f"rater-{k % 3}"})
    ing = Ingestor(lab.store, lab.settings, lab.project)
    assert ing.interactions(records).rejected == 0
    assert ing.feedback(ratings).rejected == 0


PLAN = {"name": "shorter", "hypothesis": f"v2's shorter answers help more {XSS}",
        "component": "generation", "unit": "user", "arm_0_name": "control",
        "arm_0_version": "v1", "arm_1_name": "short", "arm_1_version": "v2",
        "metric": "helpful", "direction": "higher", "mde": "0.1", "baseline": "0.5",
        "alpha": "0.05", "power": "0.8", "sides": "2", "sequential": "asymptotic-cs",
        "correction": "holm", "max_days": "28", "guard_0_metric": "latency_ok",
        "guard_0_allowed": "0.05"}


def _post(client: httpx.Client, path: str, data: dict[str, str],
          csrf_from: str) -> httpx.Response:
    page = client.get(csrf_from)
    return client.post(path, data={"csrf": _csrf(page.text), **data})


def _widths(text: str) -> dict[str, float]:
    return {html.unescape(a): float(w) for a, w in re.findall(
        r'<tr data-arm="([^"]+)" data-seq-width="([^"]+)"', text)}


def test_a_maintainer_plans_starts_watches_and_decides(client: httpx.Client,
                                                      lab: Lab) -> None:
    _sign_in(client, "max")
    form = client.get("/projects/lab/experiments/new")
    assert form.status_code == 200
    assert 'value="helpful"' in form.text and 'value="note"' not in form.text  # no text
    assert '<option value="v2"' in form.text
    r = _post(client, "/projects/lab/experiments/new", PLAN, "/projects/lab/experiments/new")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/projects/lab/experiments/shorter?done=created"
    page = client.get(r.headers["location"]).text
    assert XSS not in page and html.escape(XSS) in page
    assert 'id="status">draft<' in page and "units per arm" in _section(page, "plan")
    assert 'id="start-form"' in page and 'id="decide-form"' not in page

    here = "/projects/lab/experiments/shorter"
    r = _post(client, f"{here}/start", {}, here)
    assert r.status_code == 303 and r.headers["location"] == f"{here}?done=started"
    traffic(lab, "shorter", range(0, 120), {"control": 0.4, "short": 0.7}, seed=1)
    first = client.get(here).text
    assert 'id="status">running<' in first and 'id="decide-form"' in first
    arms = _section(first, "arms-card")
    assert 'href="/projects/lab/models/generation/v2">v2</a>' in arms
    w1 = _widths(first)["short"]
    traffic(lab, "shorter", range(120, 600), {"control": 0.4, "short": 0.7}, seed=2)
    second = client.get(here).text
    w2 = _widths(second)["short"]
    assert w2 < w1 * 0.7, (w1, w2)
    seq = _section(second, "sequence")
    assert 'data-arm="short" data-looks="2"' in seq  # two looks, two points on the path

    # a bad decision form is a message, not a change
    bad = _post(client, f"{here}/decide", {"decision": "ship", "arm": "",
                                           "rationale": "obvious"}, here)
    assert bad.status_code == 422 and "choose the arm to ship" in bad.text
    bad = _post(client, f"{here}/decide", {"decision": "ship", "arm": "short",
                                           "rationale": "  "}, here)
    assert bad.status_code == 422 and "rationale" in bad.text
    r = _post(client, f"{here}/decide", {"decision": "ship", "arm": "short",
                                         "rationale": f"Clearly better {XSS}"}, here)
    assert r.status_code == 303 and r.headers["location"] == f"{here}?done=decided"
    done = client.get(r.headers["location"]).text
    decision = _section(done, "decision")
    assert ">Ship</strong>" in decision and html.escape(f"Clearly better {XSS}") in decision
    assert XSS not in done and 'id="decide-form"' not in done
    assert 'id="status">decided<' in done
    row = client.get("/projects/lab/experiments").text.split(
        'data-experiment="shorter"', 1)[1].split("</tr>", 1)[0]
    assert "<strong>ship</strong> short" in row and "by max" in row
    # starting again is a conflict shown on the page
    again = _post(client, f"{here}/start", {}, here)
    assert again.status_code == 409 and "only a draft can start" in again.text
    # the report of the real analysis
    md = client.get(f"{here}/report?format=md").text
    assert "**Ship** (short)" in md and "| short |" in md


def test_a_viewer_sees_no_forms_and_posting_is_refused(client: httpx.Client,
                                                       lab: Lab) -> None:
    create_experiment(lab.store, lab.project, "quiet", design={
        "arms": [{"name": "a", "version": "v1"}, {"name": "b", "version": "v2"}],
        "primary": {"metric": "helpful"}, "mde": 0.1, "baseline": 0.5},
        component="generation")
    _sign_in(client, "vic")
    page = client.get("/projects/lab/experiments/quiet").text
    assert page.count('name="csrf"') == 1 and 'id="start-form"' not in page
    assert client.get("/projects/lab/experiments/new").status_code == 403
    here = "/projects/lab/experiments/quiet"
    for action in ("start", "stop", "decide"):
        r = _post(client, f"{here}/{action}", {"decision": "abandon", "rationale": "x"}, here)
        assert r.status_code == 403, action
    r = _post(client, "/projects/lab/experiments/new", {**PLAN, "name": "sneaky"}, here)
    assert r.status_code == 403
    with lab.store.read() as conn:
        assert get_experiment(conn, lab.project, "quiet").status == "draft"
        assert [e.name for e in list_experiments(conn, lab.project)] == ["quiet"]


def test_bad_plans_and_expired_forms_are_messages(client: httpx.Client, lab: Lab) -> None:
    _sign_in(client, "max")
    new = "/projects/lab/experiments/new"
    for change, message in (
            ({"metric": "note"}, "a metric of the wrong type"),
            ({"mde": "abc"}, "must be a number"),
            ({"arm_1_name": "", "arm_1_version": ""}, "at least two arms"),
            ({"arm_1_version": "v9"}, "v9"),
            ({"looks": "0.5, 0.2"}, "looks must increase"),
            ({"name": ""}, "give the experiment a name")):
        r = _post(client, new, {**PLAN, **change}, new)
        assert r.status_code == 422, (change, r.text[:300])
        assert message in html.unescape(r.text), (change, message)
        assert 'value="shorter"' in r.text or change.get("name") == ""  # kept
    r = client.post(new, data=PLAN)  # no token
    assert r.status_code == 403
    r = client.post("/projects/lab/experiments/nope/start", data={"csrf": "x"})
    assert r.status_code == 403
    with lab.store.read() as conn:
        assert list_experiments(conn, lab.project) == []


def test_a_bandit_page_shows_arms_probabilities_and_floor(client: httpx.Client,
                                                          lab: Lab) -> None:
    create_bandit(lab.store, lab.project, "picker",
                  arms=[{"name": "a", "version": "v1"}, {"name": f"b {XSS}",
                                                          "version": "v2"}],
                  policy="thompson", reward_kind="binary", hypothesis=f"h {XSS}",
                  component="generation")
    rng = np.random.default_rng(0)
    for k in range(12):
        made = choose(lab.store, lab.project, "picker", unit_id=f"u{k}", rng=rng)
        reward(lab.store, lab.project, "picker", made["decision_id"], float(k % 2))
    _sign_in(client, "vic")
    text = client.get("/projects/lab/experiments/picker").text
    assert XSS not in text and html.escape(XSS) in text
    card = _section(text, "bandit")
    assert card.count("<tr data-arm=") == 2 and "12 decisions" in card
    assert 'class="chart probabilities"' in card and 'class="floor"' in card
    assert 'href="/projects/lab/models/generation/v1">v1</a>' in card
    assert "Wilson" in card and "Thompson" in card
    assert client.get("/projects/lab/experiments").text.count("bandit") >= 1
    assert client.get("/projects/lab/experiments/picker/report").status_code == 422


def test_stop_and_a_superseding_design_link_both_ways(client: httpx.Client,
                                                       lab: Lab) -> None:
    design = {"arms": [{"name": "a", "version": "v1"}, {"name": "b", "version": "v2"}],
              "primary": {"metric": "helpful"}, "mde": 0.1, "baseline": 0.5}
    create_experiment(lab.store, lab.project, "first", design=design,
                      component="generation")
    start_experiment(lab.store, lab.project, "first")
    update_design(lab.store, lab.project, "first", {**design, "mde": 0.2},
                  new_name="second")
    _sign_in(client, "max")
    old = client.get("/projects/lab/experiments/first").text
    assert 'id="status">superseded<' in old
    assert 'href="/projects/lab/experiments/second"' in _section(old, "facts").split(
        "</dl>", 1)[0]
    new = client.get("/projects/lab/experiments/second").text
    assert 'id="supersedes"><a href="/projects/lab/experiments/first">' in new
    assert 'id="status">running<' in new  # a running experiment's successor runs on
    here = "/projects/lab/experiments/second"
    r = _post(client, f"{here}/stop", {"reason": f"enough {XSS}"}, here)
    assert r.status_code == 303 and r.headers["location"] == f"{here}?done=stopped"
    page = client.get(r.headers["location"]).text
    assert 'id="status">stopped<' in page and 'id="decide-form"' in page
    assert 'id="stop-form"' not in page
    listed = client.get("/projects/lab/experiments").text
    assert listed.index('data-experiment="second"') < listed.index('data-experiment="first"')
    assert "supersedes <a" in listed
