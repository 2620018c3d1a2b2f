"""Documentation that must not fall behind the code (after Datasette's tests/test_docs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedbackloop.capture.schema import FEEDBACK_FIELDS, INTERACTION_FIELDS
from feedbackloop.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    text = (DOCS / "settings.md").read_text()
    assert f"`FEEDBACKLOOP_{name.upper()}`" in text


@pytest.mark.parametrize("field", sorted(set(INTERACTION_FIELDS) | set(FEEDBACK_FIELDS)))
def test_every_wire_field_is_documented(field: str) -> None:
    assert f"| `{field}` |" in (DOCS / "capture.md").read_text()


def test_every_setting_has_help_text() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    head = (DOCS.parent / "README.md").read_text()[:600]
    assert "make demo" in head and "make test" in head
