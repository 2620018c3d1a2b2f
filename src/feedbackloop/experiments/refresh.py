"""Incremental refresh: exposures and metric observations from logged interactions and
feedback.

Interactions that carry the experiment's name (``experiment`` column) and arrived since the
last refresh become exposures of their unit (the user, the session or the interaction
itself, by the design's ``unit``), to the arm they name, with the propensity they logged or
else the arm's weight; a unit already exposed keeps its first exposure. Feedback that
arrived since the last refresh, on the experiment's interactions, for the primary or a
guardrail signal, becomes an observation of the unit's (first) arm, in the narrow shape
the analysis scans: binary and ordinal/numeric signals by their number, a categorical
signal as 1 for the design's success label and 0 otherwise. Each unit keeps one *unit row*
per signal holding its mean (see :func:`_copy_observations`), so the analysis sums one row
per unit without grouping.

Two watermarks on the experiment row (the highest interaction and feedback ids seen) make
a second run add only what is new; both advance in the same transaction as the rows, and
that transaction holds the experiment row locked, so two refreshes never both copy a row.
On PostgreSQL an id taken by a transaction still open when the refresh reads can commit
later, below the watermark; so there each refresh looks again at the last
:data:`RESCAN_ROWS` ids below the watermarks and copies only what it has not copied yet
(exposures are insert-or-ignore; an observation is skipped when its feedback id is already
stored for that unit). SQLite has one writer at a time, so ids commit in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, select

from ..capture.projects import Project, list_signals
from ..errors import InvalidInput
from ..store import Store
from ..store.tables import (
    experiment_exposures,
    experiment_observations,
    experiments,
    feedback,
    interactions,
)
from .assignment import insert_exposures
from .design import metric_signals
from .service import _locked, _project

__all__ = ["RESCAN_ROWS", "refresh"]

RESCAN_ROWS = 50_000
_CHUNK = 5_000


def _unit_column(unit: str) -> Any:
    return {"user": interactions.c.user_id, "session": interactions.c.session_id,
            "interaction": interactions.c.client_id}[unit]


def _watermark(conn: Connection, table: Any, project_id: int) -> int:
    """The highest id of the project's rows."""
    q = select(func.max(table.c.id)).where(table.c.project_id == project_id)
    return int(conn.execute(q).scalar() or 0)


def refresh(store: Store, project: Project | str, name: str, *,
            progress: Callable[[str, int, int], None] | None = None,
            rescan: int | None = None, settle: float | None = None) -> dict[str, Any]:
    """Copy new exposures and observations of one experiment; returns what was added:
    ``{"interactions", "exposures", "observations", "skipped_no_unit",
    "skipped_unknown_arm"}`` (``interactions``: new ones read). ``rescan``: ids below the
    watermarks to look at again (default :data:`RESCAN_ROWS` on PostgreSQL, 0 on
    SQLite). ``settle`` is accepted and ignored: an earlier version waited for recent
    rows; the rescan made that unnecessary."""
    with store.transaction() as conn:
        p = _project(conn, project)
        exp = _locked(conn, p, name)
        if exp.kind != "ab":
            raise InvalidInput(f"{name!r} is a bandit; it has no exposures to refresh",
                               field="name")
        design = exp.design
        if rescan is None:
            rescan = RESCAN_ROWS if conn.dialect.name == "postgresql" else 0
        top_i = _watermark(conn, interactions, p.id)
        top_f = _watermark(conn, feedback, p.id)
        low_i = max(0, exp.seen_interaction_id - rescan)
        low_f = max(0, exp.seen_feedback_id - rescan)
        out = {"interactions": 0, "exposures": 0, "observations": 0,
               "skipped_no_unit": 0, "skipped_unknown_arm": 0}
        arm_of = {a["name"]: (i, float(a["weight"])) for i, a in enumerate(design["arms"])}
        i = interactions
        unit_col = _unit_column(design["unit"])
        q = (select(i.c.id, unit_col.label("unit"), i.c.arm, i.c.propensity, i.c.timestamp)
             .where(i.c.project_id == p.id, i.c.experiment == name,
                    i.c.id > low_i, i.c.id <= top_i)
             .order_by(i.c.id))
        batch: list[dict[str, Any]] = []
        for row in conn.execute(q):
            new = row.id > exp.seen_interaction_id
            out["interactions"] += new
            if row.unit is None:
                out["skipped_no_unit"] += new
                continue
            found = arm_of.get(row.arm)
            if found is None:
                out["skipped_unknown_arm"] += new
                continue
            batch.append({"experiment_id": exp.id, "unit": row.unit, "arm": found[0],
                          "propensity": row.propensity if row.propensity is not None
                          else found[1], "covariate": None, "exposed_at": row.timestamp})
            if len(batch) >= _CHUNK:
                out["exposures"] += _add_exposures(conn, exp.id, batch)
                batch = []
                if progress is not None:
                    progress("exposures", out["interactions"], out["interactions"])
        out["exposures"] += _add_exposures(conn, exp.id, batch)
        if progress is not None:
            progress("observations", 0, 1)
        signals = {s.name: s for s in list_signals(conn, p.id)}
        metrics = {design["primary"]["metric"]: design["primary"]}
        for g in design.get("guardrails") or []:
            metrics.setdefault(g["metric"], g)
        f, x, o = feedback, experiment_exposures, experiment_observations
        for signal_name in metric_signals(design):
            signal = signals.get(signal_name)
            if signal is None:  # deleted since the design was made
                continue
            success = metrics[signal_name].get("success")
            value: Any = f.c.value_num if success is None else \
                case((f.c.value_text == success, 1.0), else_=0.0)
            present = f.c.value_num.is_not(None) if success is None \
                else f.c.value_text.is_not(None)
            src = (select(x.c.unit, x.c.arm, value.label("value"),
                          f.c.timestamp.label("observed_at"), f.c.id.label("feedback_id"))
                   .select_from(f.join(i, i.c.id == f.c.interaction_id)
                                .join(x, and_(x.c.experiment_id == exp.id,
                                              x.c.unit == unit_col)))
                   .where(f.c.project_id == p.id, f.c.signal_id == signal.id,
                          f.c.id <= top_f, i.c.experiment == name, present))
            if low_f < exp.seen_feedback_id:
                copied = (select(o.c.id).where(
                    o.c.experiment_id == exp.id, o.c.signal_id == signal.id,
                    o.c.arm.in_([x.c.arm, -1 - x.c.arm]), o.c.unit == x.c.unit,
                    o.c.feedback_id == f.c.id).exists())
                src = src.where(~copied)
            cursor = low_f
            while True:
                rows = conn.execute(src.where(f.c.id > cursor).order_by(f.c.id)
                                    .limit(_CHUNK)).all()
                if not rows:
                    break
                out["observations"] += _copy_observations(conn, exp.id, signal.id, rows)
                cursor = rows[-1].feedback_id
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(
            seen_interaction_id=max(top_i, exp.seen_interaction_id),
            seen_feedback_id=max(top_f, exp.seen_feedback_id)))
        if progress is not None:
            progress("observations", 1, 1)
    return out


def _copy_observations(conn: Connection, experiment_id: int, signal_id: int,
                       rows: Sequence[Any]) -> int:
    """Store new observations keeping one *unit row* per unit: arm ``a`` (>= 0) holding the
    unit's mean, so the analysis sums unit rows in one pass. A unit observed more than
    once also keeps each observation as a row of arm ``-1 - a`` (with its feedback id);
    its unit row then has no feedback id. The mean over all of a unit's rows is still its
    mean (the unit row adds one more copy of it)."""
    o = experiment_observations
    by_unit: dict[str, list[Any]] = {}
    for r in rows:
        by_unit.setdefault(r.unit, []).append(r)
    by_arm: dict[int, list[str]] = {}
    for unit, new in by_unit.items():
        by_arm.setdefault(new[0].arm, []).append(unit)
    existing: dict[str, list[Any]] = {}
    for arm, units in by_arm.items():
        for k in range(0, len(units), 500):
            for r in conn.execute(select(o.c.id, o.c.unit, o.c.arm, o.c.value,
                                         o.c.observed_at, o.c.feedback_id).where(
                    o.c.experiment_id == experiment_id, o.c.signal_id == signal_id,
                    o.c.arm.in_([arm, -1 - arm]), o.c.unit.in_(units[k:k + 500]))):
                existing.setdefault(r.unit, []).append(r)
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []

    def row(unit: str, arm: int, value: float, at: Any, fid: int | None) -> None:
        inserts.append({"experiment_id": experiment_id, "signal_id": signal_id,
                        "unit": unit, "arm": arm, "value": float(value),
                        "observed_at": at, "feedback_id": fid})

    for unit, new in by_unit.items():
        arm = new[0].arm
        old = existing.get(unit, [])
        if not old and len(new) == 1:
            row(unit, arm, new[0].value, new[0].observed_at, new[0].feedback_id)
            continue
        head = next((r for r in old if r.arm >= 0), None)
        singles = [r for r in old if r.arm < 0]
        if head is not None and not singles:  # the one earlier observation, kept apart now
            singles = [head]
            row(unit, -1 - arm, head.value, head.observed_at, head.feedback_id)
        for r in new:
            row(unit, -1 - arm, r.value, r.observed_at, r.feedback_id)
        values = [float(r.value) for r in singles] + [float(r.value) for r in new]
        mean = math.fsum(values) / len(values)
        latest = new[-1].observed_at
        if head is None:
            row(unit, arm, mean, latest, None)
        else:
            updates.append({"oid": head.id, "v": mean, "t": latest})
    if inserts:
        conn.execute(o.insert(), inserts)
    if updates:
        conn.execute(o.update().where(o.c.id == bindparam("oid"))
                     .values(value=bindparam("v"), observed_at=bindparam("t"),
                             feedback_id=None), updates)
    return len(rows)


def _add_exposures(conn: Connection, experiment_id: int, batch: list[dict[str, Any]]
                   ) -> int:
    """Insert the first exposure of each unit not exposed yet; returns how many."""
    first: dict[str, dict[str, Any]] = {}
    for r in batch:
        first.setdefault(r["unit"], r)
    units = list(first)
    x = experiment_exposures
    known = 0
    for k in range(0, len(units), 500):
        known += int(conn.execute(select(func.count()).select_from(x).where(
            x.c.experiment_id == experiment_id, x.c.unit.in_(units[k:k + 500]))).scalar()
            or 0)
    insert_exposures(conn, list(first.values()))
    return len(units) - known
