"""``feedbackloop dataset build|list|show|export`` through the real command tree, on SQLite
and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from feedbackloop.errors import InvalidInput
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from ..improve.test_recipes import World
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


@pytest.fixture
def world(store: Store, settings: Settings) -> World:
    w = World(store, settings)
    for k in range(10):
        w.interaction(f"g{k}", f"question {k}", f"good answer {k}",
                      attributes={"locale": "de" if k % 2 else "en"})
        w.interaction(f"b{k}", f"question {k}", f"bad answer {k}",
                      attributes={"locale": "de" if k % 2 else "en"})
        w.fb(f"g{k}", "pref", "a", b=f"b{k}", rater="r", fid=f"vote{k}")
        w.fb(f"g{k}", "thumbs", True, rater="r")
        w.fb(f"b{k}", "thumbs", False, rater="r")
    return w


def test_build_list_show_export(cli: Cli, world: World, tmp_path: Path) -> None:
    built = cli.json("dataset", "build", "prefs", "--project", "shop", "--recipe",
                     "preference", "--param", "signal=pref", "--param", "splits.train=0.8",
                     "--param", "splits.test=0.2", "--param", "near_threshold=0.9")
    assert built["ref"] == "prefs@1" and built["counts"]["rows"] == 10
    assert built["counts"]["splits"] == {"train": 8, "test": 2}
    assert built["params"]["near_threshold"] == 0.9 and built["params"]["signal"] == "pref"
    text = cli("dataset", "build", "prefs", "-p", "shop", "--recipe", "preference",
               "--param", "signal=pref", "--param", "attributes.locale=de").stdout
    assert "Built prefs@2 (preference): 5 rows" in text
    assert "feedback cohort 5" in text

    listed = cli.json("dataset", "list", "-p", "shop")
    assert [(d["name"], d["version"]) for d in listed] == [("prefs", 1), ("prefs", 2)]
    assert "prefs" in cli("dataset", "list", "-p", "shop").stdout

    shown = cli.json("dataset", "show", "prefs", "-p", "shop", "--version", "1", "--rows", "3")
    assert shown["version"] == 1 and len(shown["rows"]) == 3
    row = shown["rows"][0]
    k = row["data"]["prompt"].split()[-1]
    assert row["feedback_ids"] == [f"vote{k}"]
    assert row["data"]["chosen"] == f"good answer {k}"
    page = cli("dataset", "show", "prefs", "-p", "shop", "--rows", "2").stdout
    assert "prefs (version 2)" in page and "vote" in page

    out = tmp_path / "export"
    result = cli.json("dataset", "export", "prefs", "-p", "shop", "--version", "1",
                      "--task", "dpo", "--style", "conversational", "--out", str(out))
    assert result["rows"] == {"train": 8, "test": 2}
    first = orjson.loads((out / "train.jsonl").read_bytes().splitlines()[0])
    assert first["prompt"][0]["role"] == "user"
    text = cli("dataset", "export", "prefs", "-p", "shop", "--task", "reward", "--format",
               "parquet", "--out", str(tmp_path / "rm")).stdout
    assert "Exported prefs@2 for reward (standard, parquet)" in text
    assert (tmp_path / "rm" / "README.md").exists()


def test_bad_input_exits_2_and_names_it(cli: Cli, world: World, tmp_path: Path) -> None:
    bad = cli("dataset", "build", "x", "-p", "shop", "--recipe", "preference", code=2)
    assert "needs a pairwise signal" in bad.stderr
    bad = cli("dataset", "build", "x", "-p", "shop", "--recipe", "kto", "--param",
              "signal=thumbs", "--param", "min_agreement=lots", code=2)
    assert "parameter 'min_agreement'" in bad.stderr
    bad = cli("dataset", "build", "x", "-p", "shop", "--recipe", "kto", "--param",
              "nonsense", code=2)
    assert "KEY=VALUE" in bad.stderr
    bad = cli("dataset", "build", "x", "-p", "shop", "--recipe", "magic", code=2)
    assert "magic" in bad.stderr
    bad = cli("dataset", "build", "x", "-p", "shop", "--recipe", "kto", "--param",
              "signal=thumbs", "--param", "attributes.locale=fr", code=2)
    assert "yielded no rows" in bad.stderr
    assert cli.json("dataset", "list", "-p", "shop") == []
    bad = cli("dataset", "show", "nothing", "-p", "shop", code=2)
    assert "no dataset 'nothing'" in bad.stderr
    cli("dataset", "build", "k", "-p", "shop", "--recipe", "kto", "--param", "signal=thumbs")
    bad = cli("dataset", "export", "k", "-p", "shop", "--task", "dpo", "--out",
              str(tmp_path / "o"), code=2)
    assert "task 'dpo' needs a preference dataset" in bad.stderr
    bad = cli("dataset", "export", "k", "-p", "shop", "--task", "kto", "--style", "chat",
              "--out", str(tmp_path / "o"), code=2)
    assert "chat" in bad.stderr


def test_parse_param() -> None:
    from feedbackloop.cli.datasets import parse_param

    assert parse_param(["signal=pref", "splits.train=0.9", "splits.test=0.1",
                        "attributes={\"locale\": \"de\"}", "model_version=null"]) == {
        "signal": "pref", "splits": {"train": "0.9", "test": "0.1"},
        "attributes": {"locale": "de"}, "model_version": None}
    with pytest.raises(InvalidInput, match="given as a value and as an object"):
        parse_param(["splits=x", "splits.train=1"])
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_param(["attributes={oops"])


def test_help_lists_the_commands() -> None:
    from typer.testing import CliRunner

    from feedbackloop.cli import build_app

    runner = CliRunner()
    text = runner.invoke(build_app(), ["dataset", "--help"]).stdout
    for command in ("build", "list", "show", "export"):
        assert command in text
    for command in ("build", "list", "show", "export"):
        result = runner.invoke(build_app(), ["dataset", command, "--help"])
        assert result.exit_code == 0 and "--project" in result.stdout
    assert "dpo" in runner.invoke(build_app(), ["dataset", "export", "--help"]).stdout


def test_choices_follow_the_domain() -> None:
    import typing

    from feedbackloop.cli import datasets as cli_datasets
    from feedbackloop.improve.exports import FORMATS, STYLES, TASKS
    from feedbackloop.improve.recipes import RECIPES

    assert typing.get_args(cli_datasets.RecipeName) == tuple(RECIPES)
    assert typing.get_args(cli_datasets.TaskName) == tuple(TASKS)
    assert typing.get_args(cli_datasets.StyleName) == STYLES
    assert typing.get_args(cli_datasets.ExportFormat) == FORMATS
