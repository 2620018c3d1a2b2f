"""``feedbackloop offpolicy`` on JSONL files and stored logs, and ``feedbackloop experiment
bandit create|choose|reward|status``, through the real command tree on SQLite and
PostgreSQL: the --json shape the issue fixes, numbers equal to the estimators', DM and DR
skipped without predictions (and said so), bad rows named by line and field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from feedbackloop.capture.prepare import pseudonymise
from feedbackloop.experiments.bandits import clear_bandit_cache
from feedbackloop.stats.offpolicy import OffPolicyLog, evaluate
from feedbackloop.store import Store
from feedbackloop.store.tables import bandit_decisions

from .test_cli import Cli


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    clear_bandit_cache()
    return Cli(db_url, tmp_path)


@pytest.fixture
def files(sqlite_url: str, tmp_path: Path) -> Cli:
    """Commands on files touch no database: one database kind is enough."""
    return Cli(sqlite_url, tmp_path)


def _rows(n: int = 400, predicted: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    theta = [0.2, 0.4, 0.7]
    out = []
    for _ in range(n):
        a = int(rng.integers(3))
        row = {"action": a, "reward": float(rng.random() < theta[a]), "propensity": 1 / 3,
               "target": [0.1, 0.2, 0.7]}
        if predicted:
            row["predicted"] = [0.25, 0.4, 0.6]
        out.append(row)
    return out


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_offpolicy_on_a_file(files: Cli, tmp_path: Path) -> None:
    rows = _rows()
    path = _write(tmp_path / "log.jsonl", rows)
    got = files.json("offpolicy", str(path), "--seed", "3", "--bootstrap", "500")
    for key in ("n", "ips", "snips", "dm", "dr", "effective_sample_size"):
        assert key in got
    for key in ("ips", "snips", "dm", "dr"):
        assert set(got[key]) >= {"estimate", "ci95"}
    log = OffPolicyLog.of([r["action"] for r in rows], [r["reward"] for r in rows],
                          [r["propensity"] for r in rows], [r["target"] for r in rows],
                          [r["predicted"] for r in rows])
    want = evaluate(log, rng=np.random.default_rng(3), bootstrap=500)
    assert got["n"] == 400
    for key in ("ips", "snips", "dm", "dr"):
        assert got[key]["estimate"] == pytest.approx(want[key]["estimate"])
        assert got[key]["ci95"] == pytest.approx(want[key]["ci95"])
    assert got["effective_sample_size"] == pytest.approx(want["effective_sample_size"])
    assert got["dm"]["estimate"] == pytest.approx(0.1 * 0.25 + 0.2 * 0.4 + 0.7 * 0.6)
    # the same seed gives the same intervals; another seed other ones
    assert files.json("offpolicy", str(path), "--seed", "3", "--bootstrap", "500") == got
    assert files.json("offpolicy", str(path), "--seed", "4", "--bootstrap", "500")[
        "ips"]["ci95"] != got["ips"]["ci95"]
    human = files("offpolicy", str(path), "--bootstrap", "100").stdout
    assert "IPS" in human and "effective sample size" in human and "DR" in human


def test_without_predicted_dm_and_dr_are_skipped(files: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path / "log.jsonl", _rows(predicted=False))
    got = files.json("offpolicy", str(path), "--bootstrap", "0")
    assert got["dm"]["estimable"] is False and "predicted" in got["dm"]["reason"]
    assert got["dr"]["estimable"] is False
    assert got["ips"]["ci95"] is None
    assert "DM and DR skipped" in " ".join(got["notes"])
    assert "skipped" in files("offpolicy", str(path), "--bootstrap", "0").stdout


GOOD = {"action": 0, "reward": 1, "propensity": 0.5, "target": [0.5, 0.5]}


@pytest.mark.parametrize(("bad", "message"), [
    ({**GOOD, "propensity": 0}, "line 2: propensity: must be in (0, 1], got 0"),
    ({**GOOD, "propensity": 1.2}, "line 2: propensity: must be in (0, 1], got 1.2"),
    ({**GOOD, "target": [0.5, 0.6]}, "line 2: target: probabilities sum to 1.1, not 1"),
    ({**GOOD, "action": 2}, "line 2: action: 2 is out of range: target lists 2 actions"),
    ({**GOOD, "target": [0.2, 0.3, 0.5]}, "line 2: target: has 3 probabilities, earlier rows"),
    ({**GOOD, "predicted": [0.1, 0.2]}, "line 2: predicted: present on some rows only"),
    ({**GOOD, "reward": "yes"}, "line 2: reward: must be a finite number"),
    ({"action": 0, "reward": 1, "target": [1.0, 0.0]}, "line 2: propensity: missing"),
    ({**GOOD, "actions": 1}, "line 2: actions: unknown field"),
])
def test_bad_rows_name_the_line_and_field(files: Cli, tmp_path: Path, bad: dict,
                                          message: str) -> None:
    path = _write(tmp_path / "bad.jsonl", [GOOD, bad])
    result = files("offpolicy", str(path), code=2)
    assert message in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr + result.stdout


def test_unreadable_input_is_a_clear_error(files: Cli, tmp_path: Path) -> None:
    (tmp_path / "broken.jsonl").write_text('{"action": 0,\n', encoding="utf-8")
    assert "line 1: json: not a JSON object" in files(
        "offpolicy", str(tmp_path / "broken.jsonl"), code=2).stderr
    assert "cannot read" in files("offpolicy", str(tmp_path / "missing.jsonl"), code=2).stderr
    assert "give a JSONL FILE" in files("offpolicy", code=2).stderr
    assert "--project and --experiment go together" in files(
        "offpolicy", "--experiment", "x", code=2).stderr


def test_bandit_commands_and_offpolicy_on_the_stored_log(cli: Cli, db_url: str) -> None:
    cli("projects", "create", "shop", "--risk-tier", "high")
    made = cli.json("experiment", "bandit", "create", "greeting", "-p", "shop",
                    "--arm", "short=v1", "--arm", "long=v2", "--policy", "ucb")
    assert (made["floor"], made["policy"], made["status"]) == (0.1, "ucb", "running")
    assert made["arms"] == [{"name": "short", "version": "v1"},
                            {"name": "long", "version": "v2"}]
    too_low = cli("experiment", "bandit", "create", "x", "-p", "shop", "--arm", "a",
                  "--arm", "b", "--floor", "0.01", code=2)
    assert "below 0.1" in too_low.stderr
    decisions = []
    for i in range(4):
        d = cli.json("experiment", "bandit", "choose", "greeting", "-p", "shop",
                     "--unit", f"user-{i}", "--context", '{"hour": 9}')
        assert d["propensity"] == d["probabilities"][d["arm"]]
        decisions.append(d)
        r = cli.json("experiment", "bandit", "reward", "greeting", str(d["decision_id"]),
                     "1" if d["arm"] == "long" else "0", "-p", "shop")
        assert r["decision_id"] == d["decision_id"]
    store = Store.from_url(db_url)
    try:
        with store.read() as conn:
            first = conn.execute(bandit_decisions.select().order_by(
                bandit_decisions.c.id)).first()
    finally:
        store.dispose()
    assert first is not None
    assert first.unit == pseudonymise(b"cli-test-key", "user-0")  # the capture key
    assert first.context == {"hour": 9}
    status = cli.json("experiment", "bandit", "status", "greeting", "-p", "shop")
    assert status["decisions"] == status["rewarded"] == 4
    assert {a["name"] for a in status["arms"]} == {"short", "long"}
    assert "P(play)" in cli("experiment", "bandit", "status", "greeting", "-p", "shop").stdout
    again = cli("experiment", "bandit", "reward", "greeting", str(decisions[0]["decision_id"]),
                "0.5", "-p", "shop", code=2)
    assert "rewarded" in again.stderr or "0 or 1" in again.stderr
    got = cli.json("offpolicy", "--project", "shop", "--experiment", "greeting",
                   "--target", "long=1", "--bootstrap", "100")
    assert got["n"] == 4 and got["kind"] == "bandit"
    assert got["target"] == {"short": 0.0, "long": 1.0}
    assert got["snips"]["estimate"] == pytest.approx(1.0)  # "long" always paid 1
    bad = cli("offpolicy", "--project", "shop", "--experiment", "greeting", "--target",
              "long=0.5", code=2)
    assert "sum to 0.5" in bad.stderr
    assert "no arm 'huge'" in cli("offpolicy", "-p", "shop", "-e", "greeting", "-t",
                                  "huge=1", code=2).stderr


def test_choices_match_the_domain() -> None:
    import typing

    from feedbackloop.cli import offpolicy
    from feedbackloop.stats.bandits import POLICIES, REWARD_KINDS

    assert typing.get_args(offpolicy.Policy) == POLICIES
    assert typing.get_args(offpolicy.RewardKind) == REWARD_KINDS
