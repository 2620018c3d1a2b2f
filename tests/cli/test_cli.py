"""The command line: every command on both databases through CliRunner, and the installed
``feedbackloop`` script as a real process (exit codes, --json shape, error messages)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import typing
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from feedbackloop.access import ROLES, authenticate_token, sign_in
from feedbackloop.capture.files import FORMATS, KINDS
from feedbackloop.capture.projects import RISK_TIERS
from feedbackloop.capture.redact import POLICIES
from feedbackloop.capture.schema import SIGNAL_TYPES
from feedbackloop.cli import build_app, common
from feedbackloop.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXE = str(Path(sys.executable).with_name("feedbackloop"))


def _reference() -> Any:
    spec = importlib.util.spec_from_file_location("cli_reference",
                                                  ROOT / "scripts" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Cli:
    """Runs commands in-process against one database."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db = db_url
        self.env = {"FEEDBACKLOOP_PSEUDONYM_KEY": "cli-test-key",
                    "FEEDBACKLOOP_DATA_DIR": str(tmp_path / "data"),
                    "FEEDBACKLOOP_DATABASE_URL": None}
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, code: int = 0) -> Any:
        result = self.runner.invoke(build_app(), [*args, "--db", self.db], env=self.env,
                                    input=input, prog_name="feedbackloop")
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return orjson.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def test_projects_and_signals(cli: Cli) -> None:
    made = cli.json("projects", "create", "shop", "--risk-tier", "high", "--redaction", "hash",
                    "--description", "web shop assistant")
    assert (made["name"], made["risk_tier"], made["redaction_policy"]) == ("shop", "high",
                                                                           "hash")
    cli("projects", "create", "other")
    assert [p["name"] for p in cli.json("projects", "list")] == ["other", "shop"]
    assert "shop" in cli("projects", "list").stdout

    taken = cli("projects", "create", "shop", code=2)
    assert "a project named 'shop' exists already" in taken.stderr
    bad_tier = cli("projects", "create", "x", "--risk-tier", "extreme", code=2)
    assert "extreme" in bad_tier.stderr

    cli("signals", "create", "thumbs", "--project", "shop", "--type", "binary")
    rating = cli.json("signals", "create", "rating", "-p", "shop", "-t", "ordinal",
                      "--min", "1", "--max", "5", "--description", "1 to 5 stars")
    assert (rating["scale_min"], rating["scale_max"]) == (1.0, 5.0)
    cli("signals", "create", "issue", "-p", "shop", "-t", "categorical", "--label", "wrong",
        "--label", "rude")
    listed = cli.json("signals", "list", "-p", "shop")
    assert [(s["name"], s["type"]) for s in listed] == [
        ("issue", "categorical"), ("rating", "ordinal"), ("thumbs", "binary")]
    assert listed[0]["labels"] == ["wrong", "rude"]
    no_scale = cli("signals", "create", "stars", "-p", "shop", "-t", "ordinal", code=2)
    assert "scale_min" in no_scale.stderr
    bad_name = cli("signals", "create", "has space", "-p", "shop", "-t", "text", code=2)
    assert "signal name" in bad_name.stderr
    missing = cli("signals", "list", "-p", "nowhere", code=2)
    assert "no project 'nowhere'" in missing.stderr


def test_ingest_export_and_status(cli: Cli, tmp_path: Path) -> None:
    cli("projects", "create", "shop")
    cli("signals", "create", "thumbs", "-p", "shop", "-t", "binary")
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "input": "q", "output": "r", "model_version": "v1"}\n'
                    b'{"id": "b", "input": "q"}\n'
                    b"{oops\n"
                    b'{"id": "c", "input": "q", "output": "r", "model_version": "v2"}\n')
    rejects = tmp_path / "rejects.jsonl"
    report = cli.json("ingest", str(src), "-p", "shop", "-k", "interactions", "--rejects",
                      str(rejects), "--workers", "0", code=1)
    assert report == {"accepted": 2, "duplicates": 0, "rejected": 2, "errors": [
        {"line": 2, "id": "b", "field": "output", "message": "Field required"},
        {"line": 3, "id": None, "field": "(line)", "message": report["errors"][1]["message"]}]}
    assert report["errors"][1]["message"].startswith("malformed JSON")
    assert len(rejects.read_bytes().splitlines()) == 2

    fb = tmp_path / "fb.csv"
    fb.write_text("id,interaction_id,signal,value\nf1,a,thumbs,up\nf2,c,thumbs,down\n")
    assert cli.json("ingest", str(fb), "-p", "shop", "-k", "feedback") == {
        "accepted": 2, "duplicates": 0, "rejected": 0, "errors": []}
    human = cli("ingest", str(fb), "-p", "shop", "-k", "feedback", "--no-progress")
    assert "0 accepted, 2 duplicates, 0 rejected" in human.stdout

    out = tmp_path / "export.parquet"
    exported = cli.json("export", "-p", "shop", "-k", "interactions", "--out", str(out))
    assert (exported["records"], exported["format"]) == (2, "parquet") and out.exists()
    late = cli.json("export", "-p", "shop", "-k", "feedback", "-o", str(tmp_path / "f.csv"),
                    "--since", "2999-01-01")
    assert late["records"] == 0
    assert "not an ISO 8601 date or time" in cli("export", "-p", "shop", "-k", "feedback", "-o",
                                         str(tmp_path / "x.csv"), "--since", "soon",
                                         code=2).stderr

    status = cli.json("status", "--project", "shop")["projects"]
    assert status == [{"project": "shop", "interactions": 2, "feedback": 2,
                       "by_signal": {"thumbs": 2}, "by_source": {"end_user": 2},
                       "by_model_version": {"v1": 1, "v2": 1}}]
    cli("projects", "create", "empty")
    everything = cli.json("status")["projects"]
    assert [p["project"] for p in everything] == ["empty", "shop"]
    assert "interactions" in cli("status").stdout


def test_ingest_stops_on_an_unknown_column_before_storing(cli: Cli, tmp_path: Path) -> None:
    cli("projects", "create", "shop")
    path = tmp_path / "in.csv"
    path.write_text("id,input,output,colour\n1,q,r,red\n")
    result = cli("ingest", str(path), "-p", "shop", "-k", "interactions", code=2)
    assert "unknown column 'colour'" in result.stderr
    assert cli.json("status", "-p", "shop")["projects"][0]["interactions"] == 0


def test_tokens_and_users(cli: Cli) -> None:
    cli("projects", "create", "shop")
    made = cli.json("tokens", "create", "-p", "shop", "-r", "ingest", "--name", "collector")
    store = Store.from_url(cli.db)
    try:
        principal = authenticate_token(store, made["token"])
        assert list(principal.roles.values()) == ["ingest"] and not principal.superuser
        plain = cli("tokens", "create", "-p", "shop", "-r", "viewer")
        token = plain.stdout.strip()
        assert token.startswith("fl_") and "not shown again" in plain.stderr
        assert list(authenticate_token(store, token).roles.values()) == ["viewer"]
        admin = cli.json("tokens", "create", "--admin")
        assert authenticate_token(store, admin["token"]).superuser
        assert "--admin" in cli("tokens", "create", "--admin", "-p", "shop", code=2).stderr
        assert "--project" in cli("tokens", "create", "-r", "viewer", code=2).stderr

        cli("users", "create", "ana", "--password-stdin", input="correct horse\n")
        cli.json("users", "grant", "ana", "-p", "shop", "-r", "annotator")
        session = sign_in(store, "ana", "correct horse")
        who = authenticate_token(store, session, kind="session")
        assert (who.name, list(who.roles.values())) == ("ana", ["annotator"])
        boss = cli.json("users", "create", "boss", "--password", "long enough", "--superuser")
        assert boss["superuser"] is True
        assert "exactly one" in cli("users", "create", "x", code=2).stderr

        # A token made for a user acts as that user, with the token's project and role only.
        cli("projects", "create", "other")
        cli.json("users", "grant", "ana", "-p", "other", "-r", "maintainer")
        rater = cli.json("tokens", "create", "-p", "shop", "-r", "annotator", "--user", "ana")
        who = authenticate_token(store, rater["token"])
        assert (who.name, who.user_id is not None, list(who.roles.values())) == (
            "ana", True, ["annotator"])
        assert "not a member" in cli("tokens", "create", "-p", "shop", "-r", "viewer",
                                     "--user", "boss", code=2).stderr
        assert "no user named 'nobody'" in cli("tokens", "create", "-p", "shop", "-r",
                                               "viewer", "--user", "nobody", code=2).stderr
        short = cli("users", "create", "y", "--password", "short", code=2)
        assert "at least 8" in short.stderr
        nobody = cli("users", "grant", "ghost", "-p", "shop", "-r", "viewer", code=2)
        assert "no user 'ghost'" in nobody.stderr
    finally:
        store.dispose()


def test_demo_fills_a_sample_project(cli: Cli) -> None:
    summary = cli.json("demo", "--project", "sample", "--seed", "7", "--interactions", "60")
    assert summary["project"] == "sample"
    assert summary["import"]["interactions"] == {"accepted": 60, "duplicates": 0,
                                                 "rejected": 0}
    status = cli.json("status", "-p", "sample")["projects"][0]
    assert status["interactions"] == 60 == summary["status"]["interactions"]
    assert status["feedback"] == summary["import"]["feedback"]["accepted"] > 0
    again = cli.json("demo", "--project", "sample", "--seed", "7", "--interactions", "60")
    assert again["import"]["interactions"]["duplicates"] == 60


def test_init_reports_where_the_database_is(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "state"
    result = runner.invoke(build_app(), ["init", "--json"],
                           env={"FEEDBACKLOOP_DATA_DIR": str(data),
                                "FEEDBACKLOOP_DATABASE_URL": None})
    assert result.exit_code == 0, result.output
    info = orjson.loads(result.stdout)
    assert info["database"] == f"sqlite:///{data / 'feedbackloop.db'}"
    assert (data / "feedbackloop.db").exists() and (data / "pseudonym.key").exists()
    assert info["revision"] == Store.from_url(info["database"]).head_revision()


def test_choices_offered_by_the_cli_are_the_domain_ones() -> None:
    pairs = [(common.RiskTier, RISK_TIERS), (common.RedactionPolicy, POLICIES),
             (common.SignalType, SIGNAL_TYPES), (common.RoleName, ROLES),
             (common.KindName, KINDS), (common.FormatName, FORMATS)]
    for literal, domain in pairs:
        assert typing.get_args(literal) == tuple(domain)


def test_cli_reference_is_up_to_date() -> None:
    ref = _reference()
    assert (ROOT / "docs" / "cli.md").read_text() == ref.render(), \
        "docs/cli.md is out of date: run python scripts/cli_reference.py"
    titles = {" ".join(p) for p in ref.command_paths()}
    assert {"ingest", "export", "projects create", "signals list", "tokens create",
            "users grant", "serve", "status", "demo", "init"} <= titles


# -- the installed script, as a real process -------------------------------------------------
def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACKLOOP_")}
    return subprocess.run([EXE, *args], cwd=cwd, env={**full, **env}, capture_output=True,
                          text=True, timeout=120)


def test_help_of_every_command_exits_zero(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # Every command in-process (a process each cost a second of imports apiece, ~150 s of
    # CPU for the whole tree), then the installed script for a sample of depths.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDBACKLOOP_DATABASE_URL", raising=False)
    app, runner = build_app(), CliRunner()
    paths = _reference().command_paths()
    assert len(paths) > 50
    for path in paths:
        res = runner.invoke(app, [*path, "--help"], prog_name="feedbackloop")
        assert res.exit_code == 0, (path, res.output)
        assert "Usage: feedbackloop" in res.output, path
    sample = [[], ["ingest"], ["experiment", "bandit", "create"], ["models", "toggle"]]
    procs = [(p, subprocess.Popen([EXE, *p, "--help"], cwd=tmp_path, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
             for p in sample]
    for path, proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, (path, stderr)
        assert "Usage: feedbackloop" in stdout
    assert not (tmp_path / ".feedbackloop").exists()  # --help touches no database


def test_script_exit_codes_json_and_line_numbers(tmp_path: Path) -> None:
    assert _run(["projects", "create", "shop"], tmp_path).returncode == 0
    assert (tmp_path / ".feedbackloop" / "feedbackloop.db").exists()
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "1", "input": "q", "output": "r"}\n')
    ok = _run(["ingest", str(good), "--project", "shop", "--kind", "interactions", "--json"],
              tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert orjson.loads(ok.stdout) == {"accepted": 1, "duplicates": 0, "rejected": 0,
                                       "errors": []}

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"id": "2", "input": "q", "output": "r"}\n'
                    b"\n"
                    b'{"id": "3", "input": \n'
                    b'{"id": "4", "input": "\xff\xfe", "output": "r"}\n'
                    b'{"id": "1", "input": "q", "output": "changed"}\n'
                    b'{"id": "5", "input": "q", "output": "r", "latency_ms": -1}\n')
    partly = _run(["ingest", str(bad), "-p", "shop", "-k", "interactions", "--json"],
                  tmp_path)
    assert partly.returncode == 1, partly.stderr
    body = orjson.loads(partly.stdout)
    assert list(body) == ["accepted", "duplicates", "rejected", "errors"]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 4)
    assert [(e["line"], e["field"]) for e in body["errors"]] == [
        (3, "(line)"), (4, "(line)"), (5, "id"), (6, "latency_ms")]
    assert all(list(e) == ["line", "id", "field", "message"] for e in body["errors"])
    assert body["errors"][1]["message"].startswith("invalid UTF-8")

    human = _run(["ingest", str(bad), "-p", "shop", "-k", "interactions"], tmp_path)
    assert human.returncode == 1
    assert "0 accepted, 1 duplicates, 4 rejected" in human.stdout
    assert "Rejected records" in human.stderr and "invalid UTF-8" in human.stderr

    unknown = _run(["ingest", str(good), "-p", "nope", "-k", "interactions"], tmp_path)
    assert unknown.returncode == 2 and "no project 'nope'" in unknown.stderr
    assert unknown.stdout == ""
    setting = _run(["projects", "list"], tmp_path, FEEDBACKLOOP_MAX_FIELD_BYTES="abc")
    assert setting.returncode == 2
    assert "FEEDBACKLOOP_MAX_FIELD_BYTES" in setting.stderr
    usage = _run(["ingest", str(good), "-p", "shop", "-k", "things"], tmp_path)
    assert usage.returncode == 2 and "things" in usage.stderr
    bad_db = _run(["projects", "list", "--db", "mysql://x"], tmp_path)
    assert bad_db.returncode == 2 and "database_url" in bad_db.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_on_loopback(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDBACKLOOP_")}
    proc = subprocess.Popen([EXE, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.2)
        assert resp.status_code == 200 and resp.json()["info"]["title"] == "feedbackloop"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()
