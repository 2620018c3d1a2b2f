"""``feedbackloop triage …`` and ``feedbackloop findings …`` through the real command tree
on SQLite and PostgreSQL: rules, run, queue, route, escalations, themes, and a finding
taken from a theme to verified; bad input exits 2 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..triage.data import support
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    store = Store.from_url(db_url)
    settings = load_settings(database_url=db_url, pseudonym_key="cli-test-key",
                             data_dir=str(tmp_path / "data"))
    support(store, settings, per_kind=4)
    store.dispose()
    return Cli(db_url, tmp_path)


def test_triage_commands(cli: Cli) -> None:
    rule = cli.json("triage", "rules", "add", "pii", "-p", "help", "--route", "privacy",
                    "--when", '{"text": "email|phone"}', "--escalate", "--actor", "alice")
    assert rule["escalate"] is True and rule["route"] == "privacy"
    assert "pii" in cli("triage", "rules", "list", "-p", "help").stdout
    cli("triage", "rules", "threshold", "0.7", "-p", "help")
    assert cli.json("triage", "rules", "list", "-p", "help")["threshold"] == 0.7
    summary = cli.json("triage", "run", "-p", "help")
    assert summary["by_status"] == {"routed": 0, "queued": 14, "escalated": 4, "resolved": 0}
    queue = cli.json("triage", "queue", "-p", "help")["items"]
    assert len(queue) == 14
    routed = cli.json("triage", "route", str(queue[0]["id"]), "ux", "-p", "help")
    assert routed["method"] == "human" and routed["status"] == "routed"
    esc = cli.json("triage", "escalations", "-p", "help")
    assert esc["escalate_to"] == "maintainer" and len(esc["items"]) == 4
    assert "maintainer" in cli("triage", "escalations", "-p", "help").stdout
    done = cli.json("triage", "resolve", str(esc["items"][0]["id"]), "-p", "help", "--note",
                    "asked support to delete the record")
    assert done["status"] == "resolved"
    assert len(cli.json("triage", "queue", "-p", "help", "--all")["items"]) == 18
    assert "item" in cli("triage", "queue", "-p", "help").stdout
    bad = cli("triage", "rules", "add", "x", "-p", "help", "--route", "ux", "--when",
              '{"text": "("}', code=2)
    assert "conditions.text" in bad.stderr
    cli("triage", "rules", "add", "x", "-p", "help", "--route", "ux", "--when", "{", code=2)
    cli("triage", "rules", "delete", "pii", "-p", "help")


def test_themes_to_a_verified_finding(cli: Cli) -> None:
    run = cli.json("triage", "themes", "-p", "help", "--method", "tfidf", "--k", "4")
    assert len(run["themes"]) == 4
    assert "theme run" in cli("triage", "themes", "-p", "help", "--show").stdout
    theme = run["themes"][0]
    made = cli.json("findings", "create", "-p", "help", "--title", "A theme",
                    "--theme", str(theme["id"]), "--severity", "3", "--effort", "1.5",
                    "--risk", "2", "--confidence", "0.8", "--owner", "bob")
    assert made["reach"]["interactions"] == theme["size"]
    assert made["priority"] == pytest.approx(made["reach"]["users"] * 3 * 0.8 / 1.5 * 7 / 8)
    other = cli.json("findings", "create", "-p", "help", "--title", "Picked",
                     "--feedback", "1,2")
    upd = cli.json("findings", "update", str(other["id"]), "-p", "help", "--severity", "5",
                   "--effort", "0.1", "--risk", "1", "--confidence", "1")
    assert upd["priority"] > made["priority"]
    ranked = cli.json("findings", "rank", "-p", "help")
    assert [r["id"] for r in ranked["items"]] == [other["id"], made["id"]]
    assert "expected benefit" in cli("findings", "rank", "-p", "help").stdout
    shown = cli("findings", "show", str(made["id"]), "-p", "help").stdout
    assert "priority" in shown and "reach" in shown
    assert len(cli.json("findings", "list", "-p", "help")["items"]) == 2
    for status in ("triaged", "in_progress", "fixed", "verified"):
        cli("findings", "status", str(made["id"]), status, "-p", "help")
    bad = cli("findings", "status", str(made["id"]), "new", "-p", "help", code=2)
    assert "from verified to new" in bad.stderr
    bad = cli("findings", "update", str(made["id"]), "-p", "help", "--severity", "9", code=2)
    assert "severity" in bad.stderr
    bad = cli("findings", "update", str(made["id"]), "-p", "help", "--effort", "0", code=2)
    assert "effort" in bad.stderr
    bad = cli("findings", "link", str(made["id"]), "-p", "help", "--dataset", "nope", code=2)
    assert "no dataset" in bad.stderr
    linked = cli.json("findings", "link", str(made["id"]), "-p", "help", "--feedback", "3")
    assert linked["finding"]["id"] == made["id"]
    cli("findings", "create", "-p", "help", "--title", "x", "--feedback", "a,b", code=2)


def test_the_command_choices_are_the_domain_tuples() -> None:
    from typing import get_args

    from feedbackloop.cli import triage as cli_triage
    from feedbackloop.triage.findings import STATUSES
    from feedbackloop.triage.rules import ROUTES
    from feedbackloop.triage.service import ITEM_STATUSES
    from feedbackloop.triage.themes import METHODS
    from feedbackloop.web import triage_api

    assert get_args(cli_triage.Route) == ROUTES == get_args(triage_api.RouteName)
    assert get_args(cli_triage.FindingStatus) == STATUSES == get_args(
        triage_api.FindingStatus)
    assert get_args(cli_triage.ItemStatus) == ITEM_STATUSES == get_args(
        triage_api.ItemStatus)
    assert get_args(cli_triage.ThemeMethod) == METHODS
