"""Person names through presidio and spaCy (the ``nlp`` extra, part of the test extra)."""

from __future__ import annotations

from feedbackloop.capture.browse import get_interaction
from feedbackloop.capture.ingest import Ingestor
from feedbackloop.capture.projects import create_project
from feedbackloop.capture.redact import Redactor, load_name_detector
from feedbackloop.settings import load_settings
from feedbackloop.store import Store


def test_presidio_finds_person_names_offline() -> None:
    detect = load_name_detector()
    r = Redactor("redact", names=detect)
    out = r.redact("Hello, my name is Margaret Thompson and I live in Leeds.")
    assert "Margaret" not in out and "Thompson" not in out
    assert "<PERSON>" in out
    assert r.redact("the parcel arrived late and the box was wet") == (
        "the parcel arrived late and the box was wet")


def test_the_setting_turns_name_redaction_on_at_ingest(sqlite_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store.from_url(sqlite_url)
    project = create_project(store, "names")
    on = load_settings(data_dir=str(tmp_path), database_url=sqlite_url, pseudonym_key="k",
                       detect_person_names=True)
    off = load_settings(data_dir=str(tmp_path), database_url=sqlite_url, pseudonym_key="k")
    text = "Please ask John Smith to call me back."
    Ingestor(store, on, project).interactions([{"id": "on", "input": text, "output": "ok"}])
    Ingestor(store, off, project).interactions([{"id": "off", "input": text, "output": "ok"}])
    with store.read() as conn:
        assert get_interaction(conn, project.id, "on").input == (
            "Please ask <PERSON> to call me back.")
        assert get_interaction(conn, project.id, "off").input == text
