"""LLM judge against a fake OpenAI Chat Completions server on loopback.

The judge model is outside our system and cannot run here, so a small HTTP server speaks
the real protocol: it checks the bearer token and the request body as the OpenAI API
does, and answers with a ``chat.completion`` object. Its "model" grades deterministically
(one point per key step of a password reset that the output mentions), and the requested
model name picks how it phrases the answer, so every test knows the exact score and
rationale to expect.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from feedbackloop.errors import ConfigurationError, InvalidInput
from feedbackloop.scoring.base import ScoreError, ScoreItem
from feedbackloop.scoring.llm_judge import API_KEY_ENV, LLMJudge, parse_judgement

KEY = "sk-test-0123456789"
RUBRIC = "A good answer gives the concrete steps to reset a password."
STEPS = ("forgot password", "sign-in page", "email", "link")
QUESTION = "How do I reset my password?"
OUTPUTS = [
    "Click 'Forgot password' on the sign-in page; we email you a link.",  # 4 steps -> 5
    "Use 'Forgot password' and check your email.",  # 2 steps -> 3
    "Please contact support.",  # none -> 1
]
EXPECTED = [(5, "mentions forgot password, sign-in page, email, link"),
            (3, "mentions forgot password, email"),
            (1, "mentions none of the steps")]


def grade(user_message: str) -> tuple[int, str]:
    """The fake judge's rule: 1 + one point per step the graded output mentions."""
    output = user_message.split("## Output to grade\n", 1)[1].lower()
    found = [s for s in STEPS if s in output]
    return 1 + len(found), ("mentions " + ", ".join(found) if found
                            else "mentions none of the steps")


@dataclass
class FakeOpenAI:
    """State of the fake server: every request it got, and the most it worked on at once."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.seen.clear()
            self.max_in_flight = 0


def _error(message: str, code: str, kind: str = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _check_body(body: Any) -> str | None:
    """What the real API would reject in a Chat Completions request body."""
    if not isinstance(body, dict):
        return "body must be a JSON object"
    allowed = {"model", "messages", "temperature", "response_format", "max_tokens"}
    if set(body) - allowed:
        return f"unrecognized request argument: {sorted(set(body) - allowed)}"
    if not isinstance(body.get("model"), str):
        return "model must be a string"
    messages = body.get("messages")
    if not isinstance(messages, list) or [m.get("role") for m in messages] != ["system",
                                                                                 "user"]:
        return "messages must be a system then a user message"
    if not all(isinstance(m.get("content"), str) and set(m) == {"role", "content"}
               for m in messages):
        return "message content must be a string"
    temperature = body.get("temperature", 1)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        return "temperature must be between 0 and 2"
    if "response_format" in body and body["response_format"] != {"type": "json_object"}:
        return "response_format must be {'type': 'json_object'}"
    return None


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None,
                  ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            # The client may have given up (a timeout test).
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            with state.lock:
                state.requests.append({"path": self.path, "body": body,
                                       "authorization": self.headers.get("Authorization"),
                                       "content_type": self.headers.get("Content-Type")})
            if self.path != "/v1/chat/completions":
                return self._send(404, _error(f"Unknown request URL: POST {self.path}",
                                              "unknown_url"))
            if self.headers.get("Authorization") != f"Bearer {KEY}":
                return self._send(401, _error("Incorrect API key provided.",
                                              "invalid_api_key"))
            problem = _check_body(body)
            if problem is not None or self.headers.get("Content-Type") != "application/json":
                return self._send(400, _error(problem or "bad content type", "invalid_body"))
            model, user = body["model"], body["messages"][1]["content"]
            with state.lock:
                attempt = state.seen.get(user, 0)
                state.seen[user] = attempt + 1
            if model == "no-such-model":
                return self._send(404, _error(f"The model `{model}` does not exist.",
                                              "model_not_found"))
            if model == "judge-flaky" and attempt == 0:
                return self._send(500, _error("The server had an error.", "server_error",
                                              "server_error"))
            if model == "judge-busy" and attempt == 0:
                return self._send(429, _error("Rate limit reached.", "rate_limit_exceeded",
                                              "requests"), {"Retry-After": "0"})
            if model == "judge-down":
                return self._send(503, _error("The engine is overloaded.", "overloaded",
                                              "server_error"))
            if model == "judge-broken":
                return self._send(200, {"result": "ok"})
            if model == "judge-slow":
                time.sleep(1.0)
            if model == "judge-steady":  # count requests being worked on at the same time
                with state.lock:
                    state.in_flight += 1
                    state.max_in_flight = max(state.max_in_flight, state.in_flight)
                time.sleep(0.2)
                with state.lock:
                    state.in_flight -= 1
            score, rationale = grade(user)
            content = {
                "judge-prose": f"Score: {score}\nRationale: {rationale}",
                "judge-fenced": f"```json\n{json.dumps({'score': score, 'rationale': rationale})}"
                                "\n```",
                "judge-wild": json.dumps({"score": score + 5, "rationale": rationale}),
                "judge-garbled": "I think this answer is quite good overall.",
            }.get(model, json.dumps({"score": score, "rationale": rationale}))
            self._send(200, {
                "id": f"chatcmpl-{len(state.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(user.split()), "completion_tokens": 12,
                          "total_tokens": len(user.split()) + 12},
            })
            return None

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def api(server: FakeOpenAI) -> FakeOpenAI:
    server.reset()
    return server


def judge(api: FakeOpenAI, model: str = "judge-json", **options: Any) -> LLMJudge:
    return LLMJudge(**{"url": api.url, "model": model, "rubric": RUBRIC, "api_key": KEY,
                       "backoff": 0.01, **options})


def items() -> list[ScoreItem]:
    return [ScoreItem(input=QUESTION, output=o) for o in OUTPUTS]


def test_json_answers_give_scores_and_rationales(api: FakeOpenAI) -> None:
    j = judge(api)
    assert j.score_with_rationale(items()) == EXPECTED
    assert j.score(items()) == [5, 3, 1]
    request = api.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["authorization"] == f"Bearer {KEY}"
    body = request["body"]
    assert body["model"] == "judge-json" and body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert RUBRIC in system["content"] and "from 1 (worst) to 5 (best)" in system["content"]
    assert user["content"].startswith(f"## Input\n{QUESTION}")
    assert "## Reference" not in user["content"] and "## Context" not in user["content"]


def test_reference_and_context_are_in_the_prompt_when_present(api: FakeOpenAI) -> None:
    item = ScoreItem(input=QUESTION, output=OUTPUTS[1], reference="Use Forgot password.",
                     context={"plan": "pro", "docs": ["reset.md"]})
    assert judge(api).score_with_rationale([item]) == [EXPECTED[1]]
    user = api.requests[0]["body"]["messages"][1]["content"]
    assert "## Reference answer\nUse Forgot password." in user
    assert '## Context\n{"plan": "pro", "docs": ["reset.md"]}' in user
    assert user.index("## Reference") < user.index("## Output to grade")


@pytest.mark.parametrize("model", ["judge-prose", "judge-fenced"])
def test_score_read_from_prose_or_a_fenced_block(api: FakeOpenAI, model: str) -> None:
    results = judge(api, model).score_with_rationale(items())
    assert [r[0] for r in results] == [5, 3, 1]  # type: ignore[index]
    if model == "judge-fenced":
        assert results == EXPECTED
    else:  # the whole answer is the rationale
        assert results[2] == (1, "Score: 1\nRationale: mentions none of the steps")


def test_score_off_the_scale_is_an_error_quoting_the_answer(api: FakeOpenAI) -> None:
    results = judge(api, "judge-wild").score(items())
    assert results[0] == ScoreError(
        "judge's score 10 is off the scale 1-5; answer: "
        "'{\"score\": 10, \"rationale\": \"mentions forgot password, sign-in page, email, "
        "link\"}'")
    assert all(isinstance(r, ScoreError) for r in results)
    assert results[2].message.startswith("judge's score 6 is off the scale 1-5")  # type: ignore[union-attr]
    # On a wider scale the same answers are fine.
    assert judge(api, "judge-wild", scale_max=10).score(items()) == [10, 8, 6]


def test_answer_without_a_score_is_an_error(api: FakeOpenAI) -> None:
    results = judge(api, "judge-garbled").score(items()[:1])
    assert results == [ScoreError("no score in the judge's answer: "
                                  "'I think this answer is quite good overall.'")]


def test_body_that_is_not_a_chat_completion_is_an_error(api: FakeOpenAI) -> None:
    [result] = judge(api, "judge-broken").score(items()[:1])
    assert result == ScoreError("judge endpoint's answer is not a chat completion: "
                                "'{\"result\": \"ok\"}'")


@pytest.mark.parametrize("model", ["judge-flaky", "judge-busy"])
def test_500_and_429_are_retried(api: FakeOpenAI, model: str) -> None:
    assert judge(api, model).score_with_rationale(items()) == EXPECTED
    assert len(api.requests) == 6  # one failure and one success per item
    assert sorted(api.seen.values()) == [2, 2, 2]


def test_gives_up_after_max_retries(api: FakeOpenAI) -> None:
    [result] = judge(api, "judge-down", max_retries=2).score(items()[:1])
    assert result == ScoreError(
        "judge endpoint failed 3 times; last: HTTP 503: {\"error\": {\"message\": \"The "
        "engine is overloaded.\", \"type\": \"server_error\", \"param\": null, \"code\": "
        "\"overloaded\"}}")
    assert len(api.requests) == 3


def test_timeouts_are_retried_then_an_error(api: FakeOpenAI) -> None:
    [result] = judge(api, "judge-slow", timeout=0.2, max_retries=1).score(items()[:1])
    assert result == ScoreError("judge endpoint failed 2 times; last: timed out after 0.2 s")
    assert len(api.requests) == 2


def test_refused_connection_is_an_error(api: FakeOpenAI) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once it is closed
    j = LLMJudge(url=f"http://127.0.0.1:{port}/v1", model="m", rubric=RUBRIC, backoff=0.01,
                 max_retries=1)
    [result] = j.score(items()[:1])
    assert isinstance(result, ScoreError)
    assert result.message.startswith("judge endpoint failed 2 times; last: connection failed")


def test_wrong_key_raises_once_and_stops_calling(api: FakeOpenAI) -> None:
    j = judge(api, api_key="sk-wrong-key")
    with pytest.raises(ConfigurationError) as info:
        j.score(items())
    message = info.value.message
    assert "refused the credentials (HTTP 401)" in message and API_KEY_ENV in message
    assert "Incorrect API key provided." in message
    assert "sk-wrong-key" not in message
    assert info.value.details == {"option": "api_key", "status": 401}
    sent = len(api.requests)
    assert 1 <= sent <= 3  # the requests already in flight on the pool's threads
    with pytest.raises(ConfigurationError):
        j.score(items())
    assert len(api.requests) == sent  # known bad: no more requests


def test_no_key_says_to_set_one(api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    j = LLMJudge(url=api.url, model="judge-json", rubric=RUBRIC)
    with pytest.raises(ConfigurationError, match=f"no API key was sent: set {API_KEY_ENV}"):
        j.score(items()[:1])
    assert api.requests[0]["authorization"] is None


def test_key_from_the_environment(api: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    j = LLMJudge(url=api.url, model="judge-json", rubric=RUBRIC)
    assert j.score(items()) == [5, 3, 1]
    assert KEY not in json.dumps(j.info.options) and KEY not in repr(j.info)


def test_unknown_model_or_route_raises(api: FakeOpenAI) -> None:
    with pytest.raises(ConfigurationError, match="HTTP 404: check the url and model"):
        judge(api, "no-such-model").score(items()[:1])
    with pytest.raises(ConfigurationError, match="Unknown request URL"):
        LLMJudge(url=api.url + "/extra", model="judge-json", rubric=RUBRIC,
                 api_key=KEY).score(items()[:1])


def test_requests_run_concurrently(api: FakeOpenAI) -> None:
    many = [ScoreItem(input=QUESTION, output=f"{o} ({i})") for i, o in
            enumerate(OUTPUTS * 3)]
    results = judge(api, "judge-steady", concurrency=4).score(many)
    assert results == [5, 3, 1] * 3
    assert api.max_in_flight == 4
    api.reset()
    assert judge(api, "judge-steady", concurrency=1).score(many[:3]) == [5, 3, 1]
    assert api.max_in_flight == 1


def test_json_mode_off_leaves_response_format_out(api: FakeOpenAI) -> None:
    assert judge(api, json_mode=False, temperature=0.5).score(items()[:1]) == [5]
    body = api.requests[0]["body"]
    assert "response_format" not in body and body["temperature"] == 0.5


def test_info_and_version(api: FakeOpenAI) -> None:
    j = judge(api)
    info = j.info
    assert (info.name, info.output_type, info.scale_min, info.scale_max, info.cpu_bound) == (
        "llm_judge", "ordinal", 1.0, 5.0, False)
    assert info.needs == frozenset({"input", "output", "reference", "context"})
    assert len(info.version) <= 50
    assert info.options == {"url": api.url, "model": "judge-json", "rubric": RUBRIC,
                            "scale_min": 1, "scale_max": 5, "temperature": 0,
                            "json_mode": True}
    assert judge(api).info.version == info.version
    # Anything that can change a grade changes the version; transport settings do not.
    for changed in ({"rubric": RUBRIC + " Be strict."}, {"model": "judge-prose"},
                    {"scale_max": 10}, {"temperature": 0.7}):
        assert judge(api, **changed).info.version != info.version
    assert judge(api, timeout=5, max_retries=0, concurrency=2).info.version == info.version


def test_survives_pickling(api: FakeOpenAI) -> None:
    copy = pickle.loads(pickle.dumps(judge(api)))
    assert copy.score(items()) == [5, 3, 1]


@pytest.mark.parametrize(("options", "field"), [
    ({"url": "ftp://example.com"}, "url"),
    ({"url": None}, "url"),
    ({"model": " "}, "model"),
    ({"rubric": ""}, "rubric"),
    ({"scale_min": 5, "scale_max": 5}, "scale_max"),
    ({"scale_min": 1.5}, "scale_min"),
    ({"timeout": 0}, "timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"temperature": 3}, "temperature"),
    ({"concurrency": 0}, "concurrency"),
    ({"json_mode": "yes"}, "json_mode"),
    ({"api_key": ""}, "api_key"),
    ({"prompt": "x"}, "prompt"),
])
def test_bad_options_name_the_option(options: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {"url": "http://127.0.0.1:1/v1", "model": "m", "rubric": RUBRIC}
    with pytest.raises(InvalidInput) as info:
        LLMJudge(**{**base, **options})
    assert info.value.field == field and field in info.value.message


@pytest.mark.parametrize(("content", "expected"), [
    ('{"score": 4, "rationale": "clear"}', (4, "clear")),
    ('{"score": "4", "rationale": "clear"}', (4, "clear")),
    ('{"score": 4.0}', (4, "")),
    ('Here you go: {"score": 2, "reason": "vague"} Hope it helps.', (2, "vague")),
    ("**Score:** 3\nIt is fine.", (3, "**Score:** 3\nIt is fine.")),
    ("score = 5", (5, "score = 5")),
])
def test_parse_judgement_reads(content: str, expected: tuple[int, str]) -> None:
    assert parse_judgement(content, 1, 5) == expected


@pytest.mark.parametrize(("content", "message"), [
    ('{"score": 3.5}', "judge's score 3.5 is not an integer"),
    ('{"score": true}', "judge's score True is not an integer"),
    ("Score: 2.5", "judge's score 2.5 is not an integer"),
    ("Score: 0", "judge's score 0 is off the scale 1-5"),
    ("good answer", "no score in the judge's answer"),
])
def test_parse_judgement_refuses(content: str, message: str) -> None:
    result = parse_judgement(content, 1, 5)
    assert isinstance(result, ScoreError) and result.message.startswith(message)


def test_parse_judgement_negative_scale() -> None:
    assert parse_judgement("Score: -2", -2, 2) == (-2, "Score: -2")
