"""The demo job: fills a project through the real ingest path, prints the summary, and a
second run changes nothing."""

from __future__ import annotations

import io

from rich.console import Console

from feedbackloop.capture.sample import SAMPLE_SIGNALS, generate_feedback, generate_interactions
from feedbackloop.demo import run
from feedbackloop.settings import Settings


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=120, force_terminal=False), out


def test_demo_fills_a_project_and_a_second_run_is_all_duplicates(settings: Settings) -> None:
    n = 1500
    expected_fb = len(list(generate_feedback(generate_interactions(n, seed=3), seed=3)))
    console, out = _console()
    first = run(settings, project="demo-test", seed=3, n_interactions=n, console=console)
    assert first["created"] is True
    assert first["import"]["interactions"] == {"accepted": n, "duplicates": 0, "rejected": 0}
    assert first["import"]["feedback"] == {"accepted": expected_fb, "duplicates": 0,
                                           "rejected": 0}
    status = first["status"]
    assert status["interactions"] == n and status["feedback"] == expected_fb
    assert set(status["by_signal"]) == {s.name for s in SAMPLE_SIGNALS}
    assert set(status["by_source"]) >= {"end_user", "annotator", "automated"}
    assert set(status["by_model_version"]) == {"assistant-v1", "assistant-v2"}
    assert first["redacted"].get("EMAIL", 0) > 0
    text = out.getvalue()
    for heading in ("Feedback by signal", "Feedback by source", "By model version",
                    "assistant-v2", "Texts with PII redacted", "EMAIL", f"{n:,}"):
        assert heading in text

    console2, _ = _console()
    second = run(settings, project="demo-test", seed=3, n_interactions=n, console=console2)
    assert second["created"] is False
    assert second["import"]["interactions"] == {"accepted": 0, "duplicates": n, "rejected": 0}
    assert second["import"]["feedback"] == {"accepted": 0, "duplicates": expected_fb,
                                            "rejected": 0}
    assert second["status"] == first["status"]
    assert second["redacted"] == first["redacted"]
