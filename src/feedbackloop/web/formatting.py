"""How values look on the pages: timestamps, feedback values, JSON, URL parts.

These are Jinja filters. They return plain strings, which the autoescaping templates then
escape, so none of them can let user text through as markup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from jinja2 import Environment

__all__ = ["register"]


def when(value: datetime | None) -> str:
    """A UTC timestamp to the second: precise enough to tell rows apart, short enough to
    scan down a column."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def shown(value: Any) -> str:
    """A feedback value or attribute as a person reads it: text as is, the rest as JSON
    (``true``, ``4``, ``0.75``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def pretty_json(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def url_part(value: Any) -> str:
    """One path segment: an interaction id may hold '/', '?' or '#'."""
    return quote(str(value), safe="")


def number(value: int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.1f}"


def register(env: Environment) -> None:
    env.filters.update(when=when, shown=shown, pretty_json=pretty_json, url_part=url_part,
                       number=number)
