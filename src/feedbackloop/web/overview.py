"""Read-only summaries the pages show and the capture services do not offer yet: counts
for many projects in one query, and interactions per day for the overview chart.

They belong with ``capture.browse`` once the API needs them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, Connection, String, cast, func, select

from ..store import utcnow
from ..store.tables import feedback, interactions

__all__ = ["DayCount", "interactions_per_day", "project_counts"]


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


def project_counts(conn: Connection, ids: list[int]) -> dict[int, tuple[int, int]]:
    """project id → (interactions, feedback) for the given projects; missing ones are 0."""
    out = {pid: (0, 0) for pid in ids}
    if not ids:
        return out
    n_int: dict[int, int] = {pid: n for pid, n in conn.execute(
        select(interactions.c.project_id, func.count())
        .where(interactions.c.project_id.in_(ids)).group_by(interactions.c.project_id))}
    n_fb: dict[int, int] = {pid: n for pid, n in conn.execute(
        select(feedback.c.project_id, func.count())
        .where(feedback.c.project_id.in_(ids)).group_by(feedback.c.project_id))}
    for pid in ids:
        out[pid] = (int(n_int.get(pid, 0)), int(n_fb.get(pid, 0)))
    return out


def interactions_per_day(conn: Connection, project_id: int, *, days: int = 30,
                         today: date | None = None) -> list[DayCount]:
    """Interactions in each of the last ``days`` UTC days ending ``today``, oldest first,
    with zero for days without any (a gap in traffic is information)."""
    today = today or utcnow().date()
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC)
    ts = interactions.c.timestamp
    day: ColumnElement[str]
    if conn.dialect.name == "sqlite":
        # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS...': the first ten characters are
        # the day, and the naive bounds compare as text in the same format.
        day = func.substr(cast(ts, String), 1, 10)
        start, end = start.replace(tzinfo=None), end.replace(tzinfo=None)
    else:
        day = cast(func.date(func.timezone("UTC", ts)), String)
    rows = conn.execute(
        select(day.label("day"), func.count())
        .where(interactions.c.project_id == project_id, ts >= start, ts < end)
        .group_by(day)).all()
    found = {str(d)[:10]: int(n) for d, n in rows}
    return [DayCount(first + timedelta(days=i),
                     found.get((first + timedelta(days=i)).isoformat(), 0))
            for i in range(days)]
