"""``feedbackloop score`` on both databases: the --json shape, the default scorer set,
options, --since, exit codes (0 ok, 1 items failed, 2 usage), and the LLM judge against an
OpenAI-compatible server on loopback, whose rationale becomes the feedback comment."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from feedbackloop.cli import build_app
from feedbackloop.store import Store
from feedbackloop.store.tables import feedback, interactions, signals

CHEAP_OUTPUT_SCORERS = {"length_chars", "length_words", "length_tokens", "readability",
                        "sentiment", "profanity", "refusal", "pii_leakage", "json_valid"}
REFERENCE_SCORERS = {"exact_match", "rouge_l", "bleu", "chrf"}


class Cli:
    """Runs ``feedbackloop`` in-process against one database."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db = db_url
        self.tmp = tmp_path
        self.env = {"FEEDBACKLOOP_PSEUDONYM_KEY": "cli-test-key",
                    "FEEDBACKLOOP_DATA_DIR": str(tmp_path / "data"),
                    "FEEDBACKLOOP_DATABASE_URL": None}
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        result = self.runner.invoke(build_app(), [*args, "--db", self.db], env=self.env,
                                    prog_name="feedbackloop")
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        result = self(*args, "--json", code=code)
        assert result.stderr == ""  # no progress bar, no messages in --json mode
        return orjson.loads(result.stdout)

    def project(self, records: list[dict[str, Any]], name: str = "shop") -> None:
        self("projects", "create", name)
        path = self.tmp / f"{name}.jsonl"
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        self("ingest", str(path), "--project", name, "--kind", "interactions")


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    return Cli(db_url, tmp_path)


def _stored(db_url: str, signal: str) -> dict[str, tuple[Any, str | None, str | None]]:
    """interaction id → (value, rater id, comment) of the signal's feedback."""
    store = Store.from_url(db_url)
    try:
        q = (select(interactions.c.client_id, feedback.c.value, feedback.c.rater_id,
                    feedback.c.comment)
             .join(feedback, feedback.c.interaction_id == interactions.c.id)
             .join(signals, signals.c.id == feedback.c.signal_id)
             .where(signals.c.name == signal, feedback.c.source == "automated"))
        with store.read() as conn:
            return {cid: (v, r, c) for cid, v, r, c in conn.execute(q)}
    finally:
        store.dispose()


RECORDS = [
    {"id": "a", "input": "What is 2+2?", "output": "4", "reference": "4",
     "timestamp": "2024-03-01T10:00:00Z"},
    {"id": "b", "input": "Capital of France?", "output": "Paris is the capital.",
     "reference": "Paris", "timestamp": "2024-03-02T10:00:00Z"},
    {"id": "c", "input": "Say hi", "output": "hi there", "timestamp": "2024-03-03T10:00:00Z"},
]


def test_json_report_and_a_cheap_rerun(cli: Cli, db_url: str) -> None:
    cli.project(RECORDS)
    report = cli.json("score", "--project", "shop", "--scorer", "length_chars")
    (entry,) = report["scorers"]
    assert set(report) == {"project", "scored", "errors", "scorers"}
    assert (report["project"], report["scored"], report["errors"]) == ("shop", 3, 0)
    assert set(entry) == {"scorer", "version", "signal", "scored", "cached", "skipped",
                          "not_applicable", "errors", "error_samples", "scorer_items",
                          "seconds", "items_per_second"}
    assert {k: entry[k] for k in ("scorer", "version", "signal", "scored", "cached",
                                  "skipped", "not_applicable", "errors", "error_samples",
                                  "scorer_items")} == {
        "scorer": "length_chars", "version": "1", "signal": "length_chars", "scored": 3,
        "cached": 0, "skipped": 0, "not_applicable": 0, "errors": 0, "error_samples": [],
        "scorer_items": 3}
    assert _stored(db_url, "length_chars") == {
        "a": (1.0, "length_chars@1", None), "b": (21.0, "length_chars@1", None),
        "c": (8.0, "length_chars@1", None)}

    again = cli.json("score", "--project", "shop", "--scorer", "length_chars")
    assert {k: again["scorers"][0][k] for k in ("scored", "skipped", "scorer_items")} == \
        {"scored": 0, "skipped": 3, "scorer_items": 0}


def test_default_runs_the_cheap_builtins_whose_fields_the_project_has(cli: Cli) -> None:
    cli.project([{k: v for k, v in r.items() if k != "reference"} for r in RECORDS])
    report = cli.json("score", "--project", "shop")
    assert {s["scorer"] for s in report["scorers"]} == CHEAP_OUTPUT_SCORERS
    assert report["scored"] == 3 * len(CHEAP_OUTPUT_SCORERS)

    cli.project(RECORDS, name="graded")
    with_ref = cli.json("score", "--project", "graded")
    by_name = {s["scorer"]: s for s in with_ref["scorers"]}
    assert set(by_name) == CHEAP_OUTPUT_SCORERS | REFERENCE_SCORERS
    # "c" has no reference: not applicable to the reference scorers, and no error.
    assert with_ref["errors"] == 0
    assert (by_name["exact_match"]["scored"], by_name["exact_match"]["not_applicable"]) == \
        (2, 1)


def test_options_since_and_human_output(cli: Cli, db_url: str) -> None:
    cli.project(RECORDS)
    result = cli("score", "--project", "shop", "--scorer", "regex_match",
                 "--option", "regex_match.pattern=^[0-9]+$", "--since", "2024-03-02")
    assert "regex_match" in result.stdout and "scored" in result.stdout
    assert {k: v[0] for k, v in _stored(db_url, "regex_match").items()} == {"b": False,
                                                                            "c": False}
    cli("score", "--project", "shop", "--scorer", "regex_match",
        "--option", "regex_match.pattern=^[0-9]+$")
    assert _stored(db_url, "regex_match")["a"][0] is True
    # A JSON value is read as JSON. Named explicitly, a reference metric scores every
    # interaction: the one without a reference is an error (exit 1).
    report = cli.json("score", "--project", "shop", "--scorer", "exact_match",
                      "--option", "exact_match.normalize=true", code=1)
    (entry,) = report["scorers"]
    assert (entry["scored"], entry["errors"], entry["error_samples"]) == (
        2, 1, [{"interaction_id": "c", "message": "no reference"}])


def test_usage_errors_exit_2_with_a_message(cli: Cli) -> None:
    cli.project(RECORDS)
    unknown = cli("score", "--project", "shop", "--scorer", "lenght_chars", code=2)
    assert "unknown scorer 'lenght_chars'; valid names:" in unknown.stderr
    assert "length_chars" in unknown.stderr and "llm_judge" in unknown.stderr
    bad = cli("score", "--project", "shop", "--option", "pattern=x", code=2)
    assert "must look like SCORER.KEY=VALUE" in bad.stderr
    stray = cli("score", "--project", "shop", "--scorer", "length_chars",
                "--option", "regex_match.pattern=x", code=2)
    assert "not run: add --scorer regex_match" in stray.stderr
    invalid = cli("score", "--project", "shop", "--scorer", "regex_match",
                  "--option", "regex_match.pattern=(", code=2)
    assert "not a valid regular expression" in invalid.stderr
    since = cli("score", "--project", "shop", "--since", "yesterday", code=2)
    assert "--since 'yesterday' is not an ISO 8601 date or time" in since.stderr
    missing = cli("score", "--project", "nowhere", code=2)
    assert "no project 'nowhere'" in missing.stderr


# -- the LLM judge against a server on loopback ---------------------------------------------
class _Judge(BaseHTTPRequestHandler):
    """Grades 4 with a rationale; an output saying "garbled" gets an answer without a
    score, until the server is told to recover."""

    recovered = False

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][1]["content"]
        if "garbled" in user and not type(self).recovered:
            content = "I would rather not say."
        else:
            content = json.dumps({"score": 4, "rationale": "answers the question"})
        data = json.dumps({"choices": [{"message": {"role": "assistant",
                                                    "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class JudgeServer:
    """The judge server on a free loopback port; :meth:`recover` ends its bad answers."""

    def __init__(self) -> None:
        # A class of its own per server, so that recovering one leaves the others alone.
        self.handler: type[_Judge] = type("Judge", (_Judge,), {"recovered": False})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def recover(self) -> None:
        self.handler.recovered = True


@pytest.fixture
def judge() -> Iterator[JudgeServer]:
    server = JudgeServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        server.thread.join()


def test_failed_items_exit_1_and_can_be_retried(cli: Cli, db_url: str,
                                                judge: JudgeServer) -> None:
    cli.project([*RECORDS, {"id": "d", "input": "?", "output": "garbled text"}])
    args = ["score", "--project", "shop", "--scorer", "llm_judge",
            "--option", f"llm_judge.url={judge.url}", "--option", "llm_judge.model=m",
            "--option", "llm_judge.rubric=Is it right?", "--option", "llm_judge.max_retries=0"]
    result = cli(*args, code=1)
    assert "1 items could not be scored by llm_judge" in result.stderr
    assert "d: " in result.stderr
    stored = _stored(db_url, "llm_judge")
    assert set(stored) == {"a", "b", "c"}
    value, rater, comment = stored["a"]
    assert (value, comment) == (4, "answers the question")
    assert rater is not None and rater.startswith("llm_judge@")

    report = cli.json(*args)  # the failure is recorded: nothing to do, exit 0
    assert {k: report["scorers"][0][k] for k in ("scored", "skipped", "errors")} == \
        {"scored": 0, "skipped": 4, "errors": 0}

    judge.recover()
    retried = cli.json(*args, "--retry-errors")
    assert {k: retried["scorers"][0][k] for k in ("scored", "skipped", "errors")} == \
        {"scored": 1, "skipped": 3, "errors": 0}
    assert _stored(db_url, "llm_judge")["d"][0] == 4


def test_json_failure_report(cli: Cli, judge: JudgeServer) -> None:
    cli.project([{"id": "x", "input": "?", "output": "garbled"}])
    report = cli.json("score", "--project", "shop", "--scorer", "llm_judge",
                      "--option", f"llm_judge.url={judge.url}", "--option", "llm_judge.model=m",
                      "--option", "llm_judge.rubric=r", "--option", "llm_judge.max_retries=0",
                      code=1)
    (entry,) = report["scorers"]
    assert (report["errors"], entry["errors"], entry["scored"]) == (1, 1, 0)
    (sample,) = entry["error_samples"]
    assert sample["interaction_id"] == "x" and sample["message"]


def test_embedding_scores_persist_their_vectors_beside_the_database(
        sqlite_url: str, tmp_path: Path) -> None:
    # Where the vectors go does not depend on the database: SQLite suffices.
    cli = Cli(sqlite_url, tmp_path)
    cli.project([{"id": "e1", "input": "How do I reset my password?",
                  "output": "Open Settings, then Security, then Reset password."},
                 {"id": "e2", "input": "Where is my parcel?",
                  "output": "Bananas are rich in potassium."}])
    out = cli.json("score", "--project", "shop", "--scorer", "semantic_relevance")
    assert out["scorers"][0]["scored"] == 2
    cache = tmp_path / "data" / "embeddings" / "all-MiniLM-L6-v2.sqlite"
    assert cache.exists() and cache.stat().st_size > 0
    values = {k: v[0] for k, v in _stored(sqlite_url, "semantic_relevance").items()}
    assert values["e1"] > values["e2"] + 0.2  # the on-topic answer is the relevant one
