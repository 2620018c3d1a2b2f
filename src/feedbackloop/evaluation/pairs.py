"""Gathering the two channels from the feedback table, as numpy arrays keyed by interaction.

The human channel is aggregated per interaction: the mean of the numeric projection
(``value_num``) of all its labels, or the majority label for a categorical signal (ties go
to the label listed first in the signal's definition). The automated channel keeps one value
per interaction: the latest (by feedback timestamp, then insertion order), so a rescoring
replaces the old score without deleting it.

Each channel is one SQL statement that returns narrow rows (interaction key, value) in an
order the database can give from an index; the pairing itself is done in numpy, so a
project of a million scored interactions costs one scan per signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from ..capture.browse import _attribute_equals, _db_ts
from ..capture.projects import Signal
from ..errors import InvalidInput
from ..store import as_utc
from ..store.tables import feedback, interactions

__all__ = ["Channel", "EvaluationFilters", "fetch_channel", "interaction_client_ids"]


@dataclass(frozen=True)
class EvaluationFilters:
    """Which interactions an evaluation covers. Dates bound the interaction's timestamp,
    ``since`` inclusive and ``until`` exclusive; attributes must all match."""

    model_version: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name, value in (("model_version", self.model_version),
                            *((f"attributes.{k}", v) for k, v in self.attributes.items()),
                            *(("attributes", k) for k in self.attributes)):
            if value is not None and ("\x00" in value or len(value) > 200):
                raise InvalidInput(f"{name} must be at most 200 characters without NUL",
                                   field=name)
        if self.since is not None and self.until is not None \
                and as_utc(self.since) >= as_utc(self.until):  # type: ignore[operator]
            raise InvalidInput("since must be before until", field="since")

    @property
    def active(self) -> bool:
        return bool(self.model_version or self.attributes or self.since or self.until)

    def to_dict(self) -> dict[str, Any]:
        since, until = as_utc(self.since), as_utc(self.until)
        return {"model_version": self.model_version, "attributes": dict(self.attributes),
                "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationFilters:
        def ts(value: Any) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        return cls(model_version=data.get("model_version"),
                   attributes=dict(data.get("attributes") or {}),
                   since=ts(data.get("since")), until=ts(data.get("until")))


@dataclass
class Channel:
    """One signal's values, one per interaction: ``keys`` (interaction primary keys,
    ascending) and either ``values`` (floats) or ``labels`` (strings, categorical)."""

    signal: Signal
    keys: np.ndarray
    values: np.ndarray | None = None
    labels: np.ndarray | None = None
    raters: np.ndarray | None = None  # labels per interaction (human channel)

    @property
    def n(self) -> int:
        return int(self.keys.size)


def _scoped(conn: Connection, q: Any, project_id: int, signal_id: int,
            filters: EvaluationFilters) -> Any:
    f = feedback
    q = q.where(f.c.project_id == project_id, f.c.signal_id == signal_id)
    if filters.active:
        i = interactions
        q = q.join(i, i.c.id == f.c.interaction_id)
        if filters.model_version is not None:
            q = q.where(i.c.model_version == filters.model_version)
        for key, value in filters.attributes.items():
            q = q.where(_attribute_equals(conn, key, value))
        if filters.since is not None:
            q = q.where(i.c.timestamp >= _db_ts(conn, filters.since))
        if filters.until is not None:
            q = q.where(i.c.timestamp < _db_ts(conn, filters.until))
    return q


def _column(rows: Sequence[Any], index: int, dtype: Any) -> np.ndarray:
    return np.fromiter((r[index] for r in rows), dtype=dtype, count=len(rows))


def fetch_channel(conn: Connection, project_id: int, signal: Signal,
                  filters: EvaluationFilters, *, aggregate: bool) -> Channel:
    """The signal's values per interaction: aggregated over raters (``aggregate``, the
    human channel) or the latest value (the automated channel)."""
    f = feedback
    categorical = signal.type == "categorical"
    if aggregate and not categorical:
        q = select(f.c.interaction_id, func.avg(f.c.value_num), func.count())
        q = _scoped(conn, q.where(f.c.value_num.is_not(None)), project_id, signal.id, filters)
        rows = conn.execute(q.group_by(f.c.interaction_id)
                            .order_by(f.c.interaction_id)).all()
        return Channel(signal, _column(rows, 0, np.int64),
                       values=_column(rows, 1, float), raters=_column(rows, 2, np.int64))
    if aggregate:
        q = select(f.c.interaction_id, f.c.value_text, func.count())
        q = _scoped(conn, q.where(f.c.value_text.is_not(None)), project_id, signal.id,
                    filters)
        rows = conn.execute(q.group_by(f.c.interaction_id, f.c.value_text)).all()
        return _majority(signal, rows)
    value_col = f.c.value_text if categorical else f.c.value_num
    q = select(f.c.interaction_id, value_col).where(value_col.is_not(None))
    # Oldest first (the feedback index on project, signal, timestamp gives this order), so
    # the last row seen for an interaction is its latest value.
    q = _scoped(conn, q, project_id, signal.id, filters).order_by(f.c.timestamp, f.c.id)
    rows = conn.execute(q).all()
    keys = _column(rows, 0, np.int64)
    if categorical:
        values: np.ndarray = np.array([r[1] for r in rows], dtype=object)
    else:
        values = _column(rows, 1, float)
    # np.unique on the reversed keys finds each key's first index there: its last here.
    rev = keys[::-1]
    unique, first = np.unique(rev, return_index=True)
    latest = values[::-1][first]
    if categorical:
        return Channel(signal, unique, labels=latest)
    return Channel(signal, unique, values=latest)


def _majority(signal: Signal, rows: Sequence[Any]) -> Channel:
    order = {label: k for k, label in enumerate(signal.labels or ())}
    best: dict[int, tuple[int, int, str]] = {}
    raters: dict[int, int] = {}
    for key, label, count in rows:
        rank = (int(count), -order.get(label, len(order)), label)
        raters[key] = raters.get(key, 0) + int(count)
        if key not in best or rank > best[key]:
            best[key] = rank
    keys = np.array(sorted(best), dtype=np.int64)
    return Channel(signal, keys, labels=np.array([best[int(k)][2] for k in keys],
                                                 dtype=object),
                   raters=np.array([raters[int(k)] for k in keys], dtype=np.int64))


def interaction_client_ids(conn: Connection, keys: list[int]) -> dict[int, str]:
    """Client ids of a few interactions, by primary key."""
    if not keys:
        return {}
    i = interactions
    rows = conn.execute(select(i.c.id, i.c.client_id).where(i.c.id.in_(keys))).all()
    return {int(k): str(cid) for k, cid in rows}
