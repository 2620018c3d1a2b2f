"""``feedbackloop train`` and ``feedbackloop models ...`` through the real command tree on
SQLite and PostgreSQL: train a reward model, serve it to 10 % of a cohort, promote, roll
back; errors exit with code 2 and a message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from feedbackloop.improve import registry as reg
from feedbackloop.store import Store

from ..improve.model_data import insert_dataset, preference_rows, project
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    reg.clear_resolve_cache()
    store = Store.from_url(db_url)
    project(store)
    insert_dataset(store, "shop", "prefs", "preference", preference_rows(200, 3))
    store.dispose()
    return Cli(db_url, tmp_path)


@pytest.mark.slow
def test_train_then_serve_to_a_cohort_promote_and_roll_back(cli: Cli, tmp_path: Path) -> None:
    trained = cli.json("train", "-p", "shop", "--trainer", "reward-model", "--dataset",
                       "prefs@1", "--param", "features=tfidf", "--param", "C=2",
                       "--seed", "5", "--name", "rm-1")
    version, run = trained["version"], trained["run"]
    assert (version["name"], version["component"], version["status"]) == ("rm-1", "reward",
                                                                          "candidate")
    assert run["status"] == "succeeded" and run["seed"] == 5 and run["params"]["C"] == 2
    assert run["params"]["dataset"] == "prefs@1"
    assert version["artifact_hash"] == run["artifact_hash"]
    art = Path(version["artifact_uri"].removeprefix("file://"))
    assert art.is_relative_to(tmp_path / "data" / "artifacts") and art.exists()
    assert version["metrics"]["held_out"]["beats_baselines"] is True

    text = cli("train", "-p", "shop", "-t", "reward-model", "-d", "prefs", "--param",
               "features=tfidf", "--name", "rm-2", "--no-progress").stdout
    assert "Trained rm-2 (reward, candidate)" in text
    assert "held-out pairwise accuracy" in text and "longer wins" in text

    listed = cli.json("models", "list", "-p", "shop")
    assert [(v["name"], v["status"]) for v in listed] == [("rm-1", "candidate"),
                                                         ("rm-2", "candidate")]
    assert "rm-2" in cli("models", "list", "-p", "shop", "-c", "reward").stdout

    # no live version yet: nothing to roll back
    bad = cli("models", "rollback", "-p", "shop", "reward", code=2)
    assert "no live version to roll back" in bad.stderr
    assert cli.json("models", "promote", "-p", "shop", "reward", "rm-1")["status"] == "live"
    bad = cli("models", "rollback", "-p", "shop", "reward", code=2)
    assert "no version was live before 'rm-1'" in bad.stderr

    toggle = cli.json("models", "toggle", "-p", "shop", "reward", "--serve", "rm-2=10",
                      "--when", "tier=beta")
    assert toggle["default"] == "rm-1"
    assert toggle["rules"] == [{"when": [{"attribute": "tier", "op": "eq", "value": "beta"}],
                                "split": {"rm-2": 10}}]
    shown = cli("models", "toggle", "-p", "shop", "reward").stdout
    assert "tier eq beta → rm-2 10 %" in shown
    answers = [cli.json("models", "resolve", "-p", "shop", "reward", "--unit", f"u{i}",
                        "--attribute", "tier=beta") for i in range(12)]
    store = Store.from_url(cli.db)
    try:
        for i, a in enumerate(answers):
            assert a == reg.resolve(store, "shop", "reward", f"u{i}", {"tier": "beta"})
    finally:
        store.dispose()
    assert {a["version"] for a in answers} <= {"rm-1", "rm-2"}
    free = cli("models", "resolve", "-p", "shop", "reward", "-u", "u1", "-a",
               "tier=free").stdout
    assert "reward for u1: rm-1 (live; the default)" in free

    over = cli("models", "toggle", "-p", "shop", "reward", "--rules",
               json.dumps([{"split": {"rm-1": 70, "rm-2": 40}}]), code=2)
    assert "rules[0]: percentages add up to 110 %, more than 100 %" in over.stderr
    rules_file = tmp_path / "rules.json"
    rules_file.write_text(json.dumps([{"name": "all", "split": {"rm-9": 5}}]))
    unknown = cli("models", "toggle", "-p", "shop", "reward", "--rules", f"@{rules_file}",
                  code=2)
    assert "rules[0] (all): no version 'rm-9' of component 'reward'" in unknown.stderr
    assert cli.json("models", "toggle", "-p", "shop", "reward")["rules"] == toggle["rules"]

    cli.json("models", "promote", "-p", "shop", "reward", "rm-2")
    back = cli.json("models", "rollback", "-p", "shop", "reward")
    assert (back["name"], back["status"]) == ("rm-1", "live")
    shown = cli.json("models", "show", "-p", "shop", "reward", "rm-2")
    assert shown["status"] == "rolled_back" and shown["datasets"] == ["prefs@1"]
    assert [e["kind"] for e in shown["events"]] == ["registered", "promoted", "rolled_back"]
    assert shown["training_run"]["artifact_hash"] == shown["artifact_hash"]
    human = cli("models", "show", "-p", "shop", "reward", "rm-1").stdout
    assert "reward/rm-1: live" in human and "datasets: prefs@1" in human
    # a rolled-back version is served to nobody, whatever the toggle says
    after = cli.json("models", "resolve", "-p", "shop", "reward", "--unit", "u1",
                     "--attribute", "tier=beta")
    assert (after["version"], after["rule"]) == ("rm-1", None)
    assert cli.json("models", "toggle", "-p", "shop", "reward", "--clear")["rules"] == []


def test_train_errors_exit_with_code_2(cli: Cli) -> None:
    bad = cli("train", "-p", "shop", "-t", "dpo", "-d", "prefs", code=2)
    assert "unknown trainer 'dpo'; valid names:" in bad.stderr
    assert "reward-model" in bad.stderr
    bad = cli("train", "-p", "shop", "-t", "reward-model", "-d", "prefs", "--param", "oops",
              code=2)
    assert "--param 'oops' must look like KEY=VALUE" in bad.stderr
    bad = cli("train", "-p", "shop", "-t", "reward-model", "-d", "nope", code=2)
    assert "no dataset 'nope'" in bad.stderr
    bad = cli("train", "-p", "shop", "-t", "classifier", "-d", "prefs", code=2)
    assert "trains on labels datasets; prefs@1 is a preference dataset" in bad.stderr
    bad = cli("train", "-p", "shop", "-t", "external", "-d", "prefs", "--param",
              "command=no-such-binary-here", code=2)
    assert "'no-such-binary-here' was not found" in bad.stderr
    runs = cli.json("models", "runs", "-p", "shop")
    assert [(r["trainer"], r["status"]) for r in runs] == [("external", "failed")]
    assert "was not found" in runs[0]["error"]
    assert "was not found" in cli("models", "runs", "-p", "shop").stdout
    bad = cli("models", "promote", "-p", "shop", "reward", "x", "--to", "gold", code=2)
    assert "gold" in bad.stderr
    bad = cli("models", "resolve", "-p", "shop", "reward", "-u", "u", code=2)
    assert "component 'reward' has no versions" in bad.stderr
    bad = cli("models", "toggle", "-p", "shop", "reward", "--when", "a=b", code=2)
    assert "--when needs --serve" in bad.stderr


@pytest.mark.parametrize("command", [["train"], ["models"], ["models", "list"],
                                     ["models", "show"], ["models", "runs"],
                                     ["models", "promote"],
                                     ["models", "rollback"], ["models", "resolve"],
                                     ["models", "toggle"]])
def test_every_command_has_help(command: list[str]) -> None:
    from typer.testing import CliRunner

    from feedbackloop.cli import build_app

    result = CliRunner().invoke(build_app(), [*command, "--help"], prog_name="feedbackloop")
    assert result.exit_code == 0 and "Usage: feedbackloop" in result.stdout
