"""``feedbackloop gate|release|policy``: a gate is created, checked and signed by members
acting in their roles; the release is refused until then, names its rollback target, prints
its case study and rolls back in one command.

On SQLite only: the commands are a thin layer over the services, whose tests
(tests/governance) run on both databases; each command here builds the whole command tree,
which is what costs the time."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from feedbackloop.cli import release as release_cli
from feedbackloop.governance.policy import CAPACITIES
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from ..governance.release_data import release_project, run_experiment
from .test_cli import Cli


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    return sqlite_url


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def test_gate_sign_release_and_roll_back(cli: Cli, store: Store, settings: Settings) -> None:
    p = release_project(store, "medium")
    run_experiment(store, settings, p)
    gate = cli.json("gate", "create", "assistant", "v2", "-p", "shop", "-e", "tone",
                    "--cohort-attribute", "region", "--tolerance", "0.1", "--user", "mia")
    gid = str(gate["id"])
    assert [c["name"] for c in gate["criteria"]] == \
        ["primary_metric", "guardrails", "cohort_regressions"]
    refused = cli("release", "promote", "assistant", "v2", "-p", "shop", "--gate", gid,
                  "--user", "mia", code=2)
    assert "not checked yet" in refused.stderr
    checked = cli.json("gate", "check", gid, "-p", "shop", "--user", "mia")
    assert checked["status"] == "passed"
    assert "self-approval" in cli("gate", "sign", gid, "-p", "shop", "--user", "mia", "--as",
                                  "maintainer", code=2).stderr
    assert "may not sign off at all" in cli("gate", "sign", gid, "-p", "shop", "--user",
                                            "val", "--as", "maintainer", code=2).stderr
    assert "unknown" not in cli("gate", "sign", gid, "-p", "shop", "--user", "max", "--as",
                                "maintainer", "--comment", "ship it").stdout
    shown = cli("gate", "show", gid, "-p", "shop").stdout
    assert "passed" in shown and "maintainer: 1/1 (max)" in shown
    assert "v2" in cli("gate", "list", "-p", "shop").stdout
    assert "may not release" in cli("release", "promote", "assistant", "v2", "-p", "shop",
                                    "--gate", gid, "--user", "val", code=2).stderr

    release = cli.json("release", "promote", "assistant", "v2", "-p", "shop", "--gate",
                       gid, "--user", "mia", "--reason", "more thumbs up")
    assert (release["version"], release["rollback_to"]) == ("v2", "v1")
    rid = str(release["id"])
    assert [r["id"] for r in cli.json("release", "list", "-p", "shop")] == [release["id"]]
    study = cli("release", "show", rid, "-p", "shop", "--case-study").stdout
    assert study.startswith("#") and "v2" in study
    assert "rollback target v1" in cli("release", "show", rid, "-p", "shop").stdout
    back = cli.json("release", "rollback", "assistant", "-p", "shop", "--reason", "oops",
                    "--user", "mia")
    assert back["live"] == "v1" and back["release"]["status"] == "rolled_back"


def test_policy_show_and_set(cli: Cli, store: Store) -> None:
    release_project(store, "medium")
    shown = cli.json("policy", "show", "-p", "shop")
    assert shown["policy"]["risk_tier"] == "medium" and shown["stored"][0]["component"] is None
    after = cli.json("policy", "set", "-p", "shop", "-c", "assistant", "--tier", "high",
                     "--set", "escalate_to=expert", "--set",
                     'signoffs=[{"capacity": "expert", "count": 2}]', "--reason", "medical")
    assert (after["risk_tier"], after["escalate_to"], after["signoffs"]) == \
        ("high", "expert", [{"capacity": "expert", "count": 2}])
    assert "high" in cli("policy", "show", "-p", "shop", "-c", "assistant").stdout
    bad = cli("policy", "set", "-p", "shop", "--set", "nope=1", code=2)
    assert "unknown policy key" in bad.stderr
    assert "may not manage project" in cli("policy", "set", "-p", "shop", "--tier", "low",
                                           "--user", "max", code=2).stderr
    cleared = cli.json("policy", "set", "-p", "shop", "-c", "assistant", "--clear")
    assert cleared["escalate_to"] == "admin"  # the high tier's default again


def test_capacity_choices_are_the_policy_capacities() -> None:
    assert typing.get_args(release_cli.Capacity) == CAPACITIES
