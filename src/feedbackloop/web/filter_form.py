"""The filter forms of the interaction browser and the feedback list: query parameters in,
a filter for ``capture.browse`` out, and a message for every value that cannot be used.

A bad value never reaches the database: it becomes a sentence on the page, and the list is
not shown, since a list silently ignoring part of the filter would mislead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from ..capture.browse import InteractionFilter
from ..capture.projects import Signal
from ..capture.schema import SOURCES

__all__ = ["FeedbackFilterForm", "InteractionFilterForm", "feedback_filters",
           "interaction_filters"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
_MAX_VALUE = 200


@dataclass
class _Form:
    """What the user asked for (to fill the form again) and what was wrong with it."""

    values: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    cursor: str | None = None
    limit: int = DEFAULT_PAGE_SIZE

    @property
    def active(self) -> bool:
        return any(v for k, v in self.values.items() if k != "limit")

    def query(self, **changes: str | None) -> str:
        """This form's query string with ``changes``; empty values are left out."""
        merged: dict[str, Any] = {**self.values, **changes}
        return urlencode({k: v for k, v in merged.items() if v})


@dataclass
class InteractionFilterForm(_Form):
    where: InteractionFilter = field(default_factory=InteractionFilter)


@dataclass
class FeedbackFilterForm(_Form):
    where: dict[str, Any] = field(default_factory=dict)


def _text(params: QueryParams, name: str, form: _Form, label: str) -> str | None:
    """A stripped parameter, or None; a value no database can compare is reported."""
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip()
    form.values[name] = value
    if len(value) > _MAX_VALUE or "\x00" in value or not value.isprintable():
        form.errors.append(f"{label}: not a usable value.")
        return None
    return value


def _day(params: QueryParams, name: str, form: _Form, label: str) -> date | None:
    value = _text(params, name, form, label)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        form.errors.append(f"{label}: {value!r} is not a date; use YYYY-MM-DD.")
        return None


def _signal_id(params: QueryParams, form: _Form, signals: list[Signal]) -> int | None:
    name = _text(params, "signal", form, "Signal")
    if name is None:
        return None
    for s in signals:
        if s.name == name:
            return s.id
    form.errors.append(f"Signal: this project has no signal {name!r}.")
    return None


def _source(params: QueryParams, form: _Form) -> str | None:
    value = _text(params, "source", form, "Source")
    if value is not None and value not in SOURCES:
        form.errors.append(f"Source: {value!r} is not one of {', '.join(SOURCES)}.")
        return None
    return value


def _paging(params: QueryParams, form: _Form) -> None:
    form.cursor = params.get("cursor") or None
    if form.cursor is not None and (len(form.cursor) > 500 or not form.cursor.isascii()):
        form.errors.append("The page link is damaged; start again from the newest.")
        form.cursor = None
    raw = _text(params, "limit", form, "Rows per page")
    if raw is None:
        return
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        form.errors.append(f"Rows per page: a whole number from 1 to {MAX_PAGE_SIZE}.")
        return
    form.limit = int(raw)


def _window(params: QueryParams, form: _Form) -> tuple[datetime | None, datetime | None]:
    """The ``from``/``to`` days as a half-open UTC interval; ``to`` includes its day."""
    first = _day(params, "from", form, "From")
    last = _day(params, "to", form, "To")
    if first and last and first > last:
        form.errors.append("From is after To.")
    since = datetime.combine(first, time.min, tzinfo=UTC) if first else None
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC) if last else None
    return since, until


def interaction_filters(params: QueryParams, signals: list[Signal],
                        versions: list[str]) -> InteractionFilterForm:
    """Read the interaction browser's filters: model version, one cohort attribute as
    ``key=value``, signal and source of feedback on the interaction, and a day range."""
    form = InteractionFilterForm()
    version = _text(params, "model_version", form, "Model version")
    if version is not None and version not in versions:
        form.errors.append(f"Model version: no interactions of version {version!r}.")
    attributes = None
    cohort = _text(params, "attribute", form, "Cohort attribute")
    if cohort is not None:
        key, sep, value = cohort.partition("=")
        if not sep or not key.strip():
            form.errors.append("Cohort attribute: write it as key=value, e.g. locale=de.")
        else:
            attributes = {key.strip(): value.strip()}
    signal_id = _signal_id(params, form, signals)
    source = _source(params, form)
    since, until = _window(params, form)
    _paging(params, form)
    form.where = InteractionFilter(model_version=version, attributes=attributes,
                                   signal_id=signal_id, source=source, since=since,
                                   until=until)
    return form


def feedback_filters(params: QueryParams, signals: list[Signal]) -> FeedbackFilterForm:
    """Read the feedback list's filters: signal, source and a day range."""
    form = FeedbackFilterForm()
    signal_id = _signal_id(params, form, signals)
    source = _source(params, form)
    since, until = _window(params, form)
    _paging(params, form)
    form.where = {"signal_id": signal_id, "source": source, "since": since, "until": until}
    return form
