"""``feedbackloop experiment create|revise|start|stop|status|decide|list|show|assign``
through the real command tree on SQLite and PostgreSQL: plan from options or a design
file, run on logged traffic, read the status, decide; errors exit 2 naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from feedbackloop.experiments import assign, clear_assignment_cache
from feedbackloop.settings import load_settings
from feedbackloop.store import Store

from ..experiments.stored import log, shop
from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    clear_assignment_cache()
    store = Store.from_url(db_url)
    shop(store)
    store.dispose()
    return Cli(db_url, tmp_path)


def _traffic(cli: Cli, tmp_path: Path, users: range, seed: int) -> None:
    """Users assigned (the first two through the CLI, the rest by the service with the
    CLI's key), their interactions and thumbs logged with the same pseudonym key."""
    settings = load_settings(database_url=cli.db, pseudonym_key="cli-test-key",
                             data_dir=str(tmp_path / "data"))
    store = Store.from_url(cli.db)
    rng = np.random.default_rng(seed)
    rows, fb = [], []
    key = settings.pseudonym_key_bytes()
    for u in users:
        if u < users.start + 2:
            arm = cli.json("experiment", "assign", "tone", "-p", "shop", "--unit",
                           f"user{u}")
            assert arm == assign(store, "shop", "tone", f"user{u}", pseudonym_key=key)
        else:
            arm = assign(store, "shop", "tone", f"user{u}", pseudonym_key=key)
        rows.append({"id": f"i{u}", "input": "q", "output": "a", "user_id": f"user{u}",
                     "experiment": "tone", "arm": arm["arm"],
                     "propensity": arm["propensity"]})
        rate = 0.3 if arm["arm"] == "control" else 0.6
        fb.append({"id": f"f{u}", "interaction_id": f"i{u}", "signal": "thumbs",
                   "value": bool(rng.random() < rate)})
    log(store, settings, rows, fb)
    store.dispose()


def test_plan_run_status_and_decide(cli: Cli, tmp_path: Path) -> None:
    made = cli.json("experiment", "create", "tone", "-p", "shop", "--arm", "control",
                    "--arm", "warm", "--metric", "thumbs", "--guardrail", "rating:0.3",
                    "--mde", "0.1", "--baseline", "0.3", "--looks", "0.5,1",
                    "--hypothesis", "A warmer tone gets more thumbs up")
    assert made["status"] == "draft"
    assert made["design"]["planned"]["per_arm"] == 356  # R: power.prop.test(p1=.3, p2=.4)
    assert made["design"]["guardrails"][0] == {"metric": "rating", "kind": "mean",
                                               "higher_is_better": True,
                                               "allowed_change": 0.3, "relative": False}
    text = cli("experiment", "show", "tone", "-p", "shop").stdout
    assert "A warmer tone gets more thumbs up" in text and "356 units per arm" in text
    assert cli("experiment", "assign", "tone", "-p", "shop", "-u", "x", code=2).stderr \
        .count("only a running experiment assigns") == 1
    cli("experiment", "start", "tone", "-p", "shop")

    _traffic(cli, tmp_path, range(0, 150), seed=1)
    first = cli.json("experiment", "status", "tone", "-p", "shop")
    assert sum(a["exposed"] for a in first["arms"]) == 150
    assert sum(a["n"] for a in first["arms"]) == 150
    _traffic(cli, tmp_path, range(150, 400), seed=2)
    status = cli("experiment", "status", "tone", "-p", "shop", "--no-progress").stdout
    for words in ("warm vs control", "sequential (asymptotic-cs)", "relative", "SRM: ok",
                  "Guardrail rating", "P(best)", "Stopping rules fired",
                  "Group-sequential looks"):
        assert words in status, words
    second = cli.json("experiment", "status", "tone", "-p", "shop")
    path = second["sequential_path"]
    assert [p["n"] for p in path] == [150, 400]  # one look per growth of the sample
    assert path[1]["ci"][1] - path[1]["ci"][0] < path[0]["ci"][1] - path[0]["ci"][0]

    # frozen design: revise refuses, names the field; a new name supersedes
    design = dict(made["design"], mde=0.2)
    design.pop("planned")
    (tmp_path / "d.json").write_text(json.dumps(design))
    frozen = cli("experiment", "revise", "tone", "-p", "shop", "--design",
                 str(tmp_path / "d.json"), code=2)
    assert "'mde' cannot change" in frozen.stderr

    listed = cli.json("experiment", "list", "-p", "shop")
    assert [(e["name"], e["status"]) for e in listed] == [("tone", "running")]
    assert "tone" in cli("experiment", "list", "-p", "shop").stdout

    bad = cli("experiment", "decide", "tone", "-p", "shop", "-d", "ship", "-r", "wins",
              code=2)
    assert "say which arm ships" in bad.stderr
    decided = cli.json("experiment", "decide", "tone", "-p", "shop", "-d", "ship",
                       "--arm", "warm", "-r", "warm wins on thumbs, rating held")
    assert (decided["decision"], decided["arm"], decided["decided_by"]) == ("ship", "warm",
                                                                           "cli")
    final = cli("experiment", "status", "tone", "-p", "shop").stdout
    assert "Decision: ship warm by cli" in final
    assert cli.json("experiment", "show", "tone", "-p", "shop")["status"] == "decided"


def test_design_file_revise_and_errors(cli: Cli, tmp_path: Path) -> None:
    design = {"arms": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.5}],
              "primary": {"metric": "issue", "success": "solved"}, "mde": 0.05,
              "baseline": 0.5}
    (tmp_path / "design.json").write_text(json.dumps(design))
    made = cli.json("experiment", "create", "cat", "-p", "shop", "--design",
                    str(tmp_path / "design.json"), "--alpha", "0.01")
    assert made["design"]["alpha"] == 0.01 and made["design"]["primary"]["kind"] == \
        "proportion"
    cli("experiment", "start", "cat", "-p", "shop")
    new = cli.json("experiment", "revise", "cat", "-p", "shop", "--design",
                   str(tmp_path / "design.json"), "--new-name", "cat-2")
    assert (new["name"], new["status"], new["supersedes"]) == ("cat-2", "running", "cat")
    assert cli.json("experiment", "show", "cat", "-p", "shop")["status"] == "superseded"
    stopped = cli.json("experiment", "stop", "cat-2", "-p", "shop", "--reason", "done")
    assert stopped["stop_reason"] == "done"

    for args, message in [
        (["--arm", "a", "--arm", "b", "--metric", "note", "--mde", "0.1"],
         "a metric of the wrong type"),
        (["--arm", "a=v1:x", "--arm", "b", "--metric", "thumbs", "--mde", "0.1"],
         "is not a number"),
        (["--arm", "a", "--metric", "thumbs", "--mde", "0.1"], "2 to 20 arms"),
        (["--metric", "thumbs", "--mde", "0.1"], "give the arms"),
        (["--arm", "a", "--arm", "b", "--mde", "0.1"], "give the primary metric"),
        (["--arm", "a", "--arm", "b", "--metric", "thumbs", "--guardrail", "rating",
          "--mde", "0.1"], "SIGNAL:ALLOWED"),
        (["--arm", "a", "--arm", "b", "--metric", "thumbs", "--mde", "0.1", "--looks",
          "half"], "fractions"),
        (["--design", str(tmp_path / "missing.json")], "no design file"),
    ]:
        res = cli("experiment", "create", "x", "-p", "shop", *args, code=2)
        assert message in res.stderr, (args, res.stderr)
    assert "no experiment 'nope'" in cli("experiment", "status", "nope", "-p", "shop",
                                         code=2).stderr
