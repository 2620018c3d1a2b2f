"""``feedbackloop guideline`` and ``feedbackloop campaign`` against SQLite and PostgreSQL:
help text, a campaign from flags and from a spec file, status, export as JSONL and CSV,
close, and bad input with exit code 2 and a message naming the field."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import pytest

from feedbackloop.annotation.assignment import next_item, skip, submit
from feedbackloop.settings import Settings
from feedbackloop.store import Store

from ..annotation.campaign_data import make_project
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def test_every_command_has_help(cli: Cli) -> None:
    from typer.testing import CliRunner

    from feedbackloop.cli import build_app

    for group, commands in (("campaign", ("create", "list", "status", "export", "close")),
                            ("guideline", ("add", "list", "show"))):
        result = CliRunner().invoke(build_app(), [group, "--help"], prog_name="feedbackloop")
        assert result.exit_code == 0
        top = result.stdout
        for command in commands:
            assert command in top
            text = cli(group, command, "--help").stdout
            assert "Usage:" in text and "--project" in text and "--db" in text


def test_guidelines_from_the_command_line(cli: Cli, store: Store, settings: Settings,
                                          tmp_path: Path) -> None:
    make_project(store, settings, n=0)
    body = tmp_path / "quality.md"
    body.write_text("# Quality\n\nRate the **answer**.\n", encoding="utf-8")
    rubric = tmp_path / "rubric.json"
    rubric.write_bytes(orjson.dumps([{"value": 1, "label": "poor"},
                                     {"value": 5, "label": "great",
                                      "examples": ["Exactly what was asked."]}]))
    made = cli.json("guideline", "add", "-p", "shop", "--signal", "quality", "--body-file",
                    str(body), "--rubric", str(rubric), "--note", "anchors added")
    assert made["version"] == 2 and [a["value"] for a in made["rubric"]] == [1, 5]
    assert made["created_by"] == "cli"
    cli("guideline", "add", "-p", "shop", "-s", "quality", "--body", "Third text.")
    listed = cli.json("guideline", "list", "-p", "shop", "-s", "quality")
    assert [g["version"] for g in listed] == [3, 2, 1]
    shown = cli.json("guideline", "show", "-p", "shop", "-s", "quality", "--version", "2")
    assert shown["body"] == "# Quality\n\nRate the **answer**.\n"
    text = cli("guideline", "show", "-p", "shop", "-s", "quality", "--version", "2").stdout
    assert "version 2" in text and "anchors added" in text and "great" in text
    assert "Third text." in cli("guideline", "show", "-p", "shop", "-s", "quality").stdout
    assert "3" in cli("guideline", "list", "-p", "shop", "-s", "quality").stdout

    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps([{"value": 9}]))
    err = cli("guideline", "add", "-p", "shop", "-s", "quality", "--body", "x", "--rubric",
              str(bad), code=2).stderr
    assert "rubric[0].value" in err and "outside the scale" in err
    err = cli("guideline", "add", "-p", "shop", "-s", "quality", code=2).stderr
    assert "--body-file" in err
    err = cli("guideline", "show", "-p", "shop", "-s", "quality", "--version", "9",
              code=2).stderr
    assert "no guideline version 9" in err
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    err = cli("guideline", "add", "-p", "shop", "-s", "quality", "--body", "x", "--rubric",
              str(broken), code=2).stderr
    assert "not valid JSON" in err


def test_a_campaign_from_flags_status_export_and_close(cli: Cli, store: Store,
                                                       settings: Settings,
                                                       tmp_path: Path) -> None:
    project = make_project(store, settings, n=30)
    made = cli.json("campaign", "create", "-p", "shop", "--name", "first", "--signal",
                    "quality", "--rater", "ann", "--rater", "bob", "--budget", "8",
                    "--overlap", "2", "--policy", "stratified=1,random=1", "--option",
                    'by=["locale"]', "--seed", "4")
    assert made["name"] == "first" and made["overlap"] == 2
    assert made["policy"] == {"stratified": 0.5, "random": 0.5}
    assert made["options"]["by"] == ["locale"] and made["options"]["n_items"] == 8
    text = cli("campaign", "create", "-p", "shop", "--name", "second", "--signal", "thumbs",
               "--rater", "ann", "--budget", "3", "--no-progress").stdout
    assert "Campaign second (standard): 3 items, 0 gold items, overlap 1, 1 raters" in text
    listed = cli.json("campaign", "list", "-p", "shop")
    assert [c["name"] for c in listed] == ["second", "first"]
    assert "first" in cli("campaign", "list", "-p", "shop").stdout

    item = next_item(store, project, "first", "ann")
    assert item is not None
    submit(store, project, "first", "ann", item.assignment_id, {"quality": 4},
           comment="fine", settings=settings)
    other = next_item(store, project, "first", "bob")
    assert other is not None
    skip(store, project, "first", "bob", other.assignment_id, "off topic")
    status = cli.json("campaign", "status", "first", "-p", "shop")
    assert status["items"] == 8 and status["labels_done"] == 1
    assert status["labels_needed"] == 16 and status["progress"] == 0.0625
    assert status["assignments"] == {"leased": 0, "done": 1, "skipped": 1, "expired": 0}
    assert status["by_policy"] == {"random": 4, "stratified": 4}
    assert [(r["rater"], r["done"], r["skipped"]) for r in status["raters"]] == [
        ("ann", 1, 0), ("bob", 0, 1)]
    text = cli("campaign", "status", "first", "-p", "shop").stdout
    assert "0 of 8 items complete, 1 of 16 labels (6%)" in text

    rows = [orjson.loads(line) for line in
            cli("campaign", "export", "first", "-p", "shop").stdout.splitlines()]
    # both raters were served item 0 (overlap 2): rows in item, then assignment order
    assert other.position == item.position == 0
    assert [(r["rater"], r["signal"], r["value"], r["skip_reason"]) for r in rows] == [
        ("ann", "quality", 4, None), ("bob", None, None, "off topic")]
    done = next(r for r in rows if r["signal"])
    assert done["interaction"] == item.interaction["id"] and done["comment"] == "fine"
    assert done["guideline_version"] == "1" and done["is_gold"] is False
    assert done["item"] == item.position
    target = tmp_path / "out.csv"
    cli("campaign", "export", "1", "-p", "shop", "--format", "csv", "-o", str(target))
    table = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(table) == 2 and table[0]["campaign"] == "first"
    assert {r["skip_reason"] for r in table} == {"", "off topic"}

    closed = cli.json("campaign", "close", "first", "-p", "shop")
    assert closed["status"] == "closed" and closed["closed_at"]
    err = cli("campaign", "close", "first", "-p", "shop", code=2).stderr
    assert "closed already" in err


def test_a_campaign_from_a_spec_file(cli: Cli, store: Store, settings: Settings,
                                     tmp_path: Path) -> None:
    make_project(store, settings, n=20)
    spec = tmp_path / "spec.json"
    spec.write_bytes(orjson.dumps({
        "name": "cal", "kind": "calibration", "signals": ["topic"],
        "raters": ["ann", "bob", "cat"], "budget": 5,
        "options": {"model_version": "v1"}}))
    made = cli.json("campaign", "create", "-p", "shop", "--spec", str(spec), "--option",
                    "attributes={\"locale\": \"en\"}")
    assert made["kind"] == "calibration" and made["overlap"] == 3
    assert made["options"]["model_version"] == "v1"
    assert made["options"]["attributes"] == {"locale": "en"}
    assert made["signals"] == [{"signal": "topic", "signal_id": 3, "type": "categorical",
                                "guideline_version": 1}]


def test_campaign_bad_input_names_the_field(cli: Cli, store: Store, settings: Settings,
                                            tmp_path: Path) -> None:
    make_project(store, settings, n=10)
    base = ("campaign", "create", "-p", "shop", "--name", "c", "--signal", "quality",
            "--rater", "ann")
    cases = [
        ((*base,), "--budget"),
        ((*base, "--budget", "0"), "budget must be between 1 and 1,000,000"),
        ((*base, "--budget", "5", "--overlap", "3"), "overlap must be between 1 and the "
                                                     "number of raters (1)"),
        ((*base, "--budget", "5", "--policy", "clever"), "unknown selection policy"),
        ((*base, "--budget", "5", "--policy", "random=x"), "NAME=WEIGHT"),
        ((*base, "--budget", "5", "--option", "colour=red"), "unknown option 'colour'"),
        ((*base, "--budget", "5", "--gold-rate", "0.9"), "gold_rate must be between"),
        ((*base, "--budget", "5", "--gold-rate", "0.2"), "no gold items"),
        (("campaign", "create", "-p", "shop", "--name", "c", "--signal", "quality",
          "--rater", "nobody", "--budget", "5"), "rater 'nobody' is not a user"),
        (("campaign", "create", "-p", "shop", "--name", "bad name", "--signal", "quality",
          "--rater", "ann", "--budget", "5"), "campaign name must be"),
        (("campaign", "create", "-p", "shop", "--name", "c", "--signal", "missing",
          "--rater", "ann", "--budget", "5"), "no signal 'missing'"),
        (("campaign", "status", "nope", "-p", "shop"), "no campaign 'nope'"),
        (("campaign", "export", "nope", "-p", "shop"), "no campaign 'nope'"),
    ]
    for args, words in cases:
        err = cli(*args, code=2).stderr
        assert words in err, (args, err)
    spec = tmp_path / "spec.json"
    spec.write_bytes(orjson.dumps({"name": "c", "signals": ["quality"], "raters": ["ann"],
                                   "budget": 3, "colour": "red"}))
    err = cli("campaign", "create", "-p", "shop", "--spec", str(spec), code=2).stderr
    assert "colour: unknown field" in err
    spec.write_bytes(orjson.dumps({"name": "c", "signals": ["quality"], "raters": ["ann"],
                                   "budget": "many"}))
    err = cli("campaign", "create", "-p", "shop", "--spec", str(spec), code=2).stderr
    assert "budget" in err
    cli("campaign", "create", "-p", "shop", "--name", "c", "--signal", "quality", "--rater",
        "ann", "--budget", "2")
    err = cli("campaign", "create", "-p", "shop", "--name", "c", "--signal", "quality",
              "--rater", "ann", "--budget", "2", code=2).stderr
    assert "exists already" in err
