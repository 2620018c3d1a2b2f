"""Incremental refresh: exposures and metric observations from logged interactions and
feedback.

Interactions that carry the experiment's name (``experiment`` column) and arrived since the
last refresh become exposures of their unit (the user, the session or the interaction
itself, by the design's ``unit``), to the arm they name, with the propensity they logged or
else the arm's weight; a unit already exposed keeps its first exposure. Feedback that
arrived since the last refresh, on the experiment's interactions, for the primary or a
guardrail signal, becomes an observation of the unit's (first) arm, in the narrow shape
the analysis scans: binary and ordinal/numeric signals by their number, a categorical
signal as 1 for the design's success label and 0 otherwise.

Two watermarks on the experiment row (the highest interaction and feedback ids seen) make
a second run add only what is new; both advance in the same transaction as the rows, and
that transaction holds the experiment row locked, so two refreshes never both copy a row.
On PostgreSQL an id allocated by a transaction still open when the refresh reads the
maximum can commit later, below the watermark, and be missed; interactions and feedback
are written in short batch transactions, so refresh reads the maxima a moment old
(rows ingested in the last :data:`SETTLE_SECONDS` wait for the next refresh).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, select

from ..capture.projects import Project, list_signals
from ..errors import InvalidInput
from ..store import Store, utcnow
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

__all__ = ["SETTLE_SECONDS", "refresh"]

SETTLE_SECONDS = 2.0
_CHUNK = 5_000


def _unit_column(unit: str) -> Any:
    return {"user": interactions.c.user_id, "session": interactions.c.session_id,
            "interaction": interactions.c.client_id}[unit]


def _watermark(conn: Connection, table: Any, project_id: int, settle: float) -> int:
    """The highest id of the project's rows, left below rows ingested in the last
    ``settle`` seconds on PostgreSQL (see the module docstring)."""
    q = select(func.max(table.c.id)).where(table.c.project_id == project_id)
    if conn.dialect.name == "postgresql" and settle > 0:
        q = q.where(table.c.ingested_at < utcnow() - timedelta(seconds=settle))
    return int(conn.execute(q).scalar() or 0)


def refresh(store: Store, project: Project | str, name: str, *,
            progress: Callable[[str, int, int], None] | None = None,
            settle: float = SETTLE_SECONDS) -> dict[str, Any]:
    """Copy new exposures and observations of one experiment; returns what was added:
    ``{"interactions", "exposures", "observations", "skipped_no_unit",
    "skipped_unknown_arm"}``."""
    with store.transaction() as conn:
        p = _project(conn, project)
        exp = _locked(conn, p, name)
        if exp.kind != "ab":
            raise InvalidInput(f"{name!r} is a bandit; it has no exposures to refresh",
                               field="name")
        design = exp.design
        top_i = _watermark(conn, interactions, p.id, settle)
        top_f = _watermark(conn, feedback, p.id, settle)
        out = {"interactions": 0, "exposures": 0, "observations": 0,
               "skipped_no_unit": 0, "skipped_unknown_arm": 0}
        arm_of = {a["name"]: (i, float(a["weight"])) for i, a in enumerate(design["arms"])}
        i = interactions
        unit_col = _unit_column(design["unit"])
        q = (select(i.c.id, unit_col.label("unit"), i.c.arm, i.c.propensity, i.c.timestamp)
             .where(i.c.project_id == p.id, i.c.experiment == name,
                    i.c.id > exp.seen_interaction_id, i.c.id <= top_i)
             .order_by(i.c.id))
        batch: list[dict[str, Any]] = []
        before = None
        for row in conn.execute(q):
            out["interactions"] += 1
            if row.unit is None:
                out["skipped_no_unit"] += 1
                continue
            found = arm_of.get(row.arm)
            if found is None:
                out["skipped_unknown_arm"] += 1
                continue
            batch.append({"experiment_id": exp.id, "unit": row.unit, "arm": found[0],
                          "propensity": row.propensity if row.propensity is not None
                          else found[1], "covariate": None, "exposed_at": row.timestamp})
            if before is None:
                before = _count(conn, experiment_exposures, exp.id)
            if len(batch) >= _CHUNK:
                insert_exposures(conn, batch)
                batch = []
                if progress is not None:
                    progress("exposures", out["interactions"], out["interactions"])
        insert_exposures(conn, batch)
        if before is not None:
            out["exposures"] = _count(conn, experiment_exposures, exp.id) - before
        if progress is not None:
            progress("observations", 0, 1)
        signals = {s.name: s for s in list_signals(conn, p.id)}
        metrics = {design["primary"]["metric"]: design["primary"]}
        for g in design.get("guardrails") or []:
            metrics.setdefault(g["metric"], g)
        f, x = feedback, experiment_exposures
        for signal_name in metric_signals(design):
            signal = signals.get(signal_name)
            if signal is None:  # deleted since the design was made
                continue
            success = metrics[signal_name].get("success")
            value: Any = f.c.value_num if success is None else \
                case((f.c.value_text == success, 1.0), else_=0.0)
            present = f.c.value_num.is_not(None) if success is None \
                else f.c.value_text.is_not(None)
            src = (select(literal(exp.id), literal(signal.id), x.c.unit, x.c.arm, value,
                          f.c.timestamp, f.c.id)
                   .select_from(f.join(i, i.c.id == f.c.interaction_id)
                                .join(x, and_(x.c.experiment_id == exp.id,
                                              x.c.unit == unit_col)))
                   .where(f.c.project_id == p.id, f.c.signal_id == signal.id,
                          f.c.id > exp.seen_feedback_id, f.c.id <= top_f,
                          i.c.experiment == name, present))
            # rowcount of INSERT ... SELECT is -1 through psycopg here: count the source.
            n = int(conn.execute(select(func.count()).select_from(src.subquery())).scalar()
                    or 0)
            if n:
                conn.execute(experiment_observations.insert().from_select(
                    ["experiment_id", "signal_id", "unit", "arm", "value", "observed_at",
                     "feedback_id"], src))
                out["observations"] += n
        conn.execute(experiments.update().where(experiments.c.id == exp.id).values(
            seen_interaction_id=max(top_i, exp.seen_interaction_id),
            seen_feedback_id=max(top_f, exp.seen_feedback_id)))
        if progress is not None:
            progress("observations", 1, 1)
    return out


def _count(conn: Connection, table: Any, experiment_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(table)
                            .where(table.c.experiment_id == experiment_id)).scalar() or 0)
