"""Two-channel evaluation: a human signal against one or more automated signals.

:func:`evaluate` gathers both channels (``pairs``), checks that they can be compared,
computes the report (``analysis``) and saves it in the ``evaluations`` table, where the
pages, the API and the CLI read it back.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from ..capture.projects import Project, Signal, get_project, get_signal
from ..errors import InvalidInput, NotFound
from ..store import Store, as_utc, utcnow
from ..store.tables import evaluations
from .analysis import (
    approval_labels,
    categorical_report,
    metric_report,
    stacking_report,
)
from .pairs import Channel, EvaluationFilters, fetch_channel, interaction_client_ids

__all__ = [
    "COMPARABLE",
    "MAX_METRICS",
    "EvaluationReport",
    "check_comparable",
    "default_approval_threshold",
    "evaluate",
    "get_evaluation",
    "list_evaluations",
]

MAX_METRICS = 20
COMPARABLE = ("binary", "ordinal", "numeric")
"""Signal types compared by rank, AUROC and calibration (any with any)."""


@dataclass(frozen=True)
class EvaluationReport:
    """A saved (or, with ``save=False``, unsaved: ``id`` None) evaluation."""

    id: int | None
    project: str
    human_signal: str
    metric_signals: list[str]
    filters: dict[str, Any]
    result: dict[str, Any]
    created_by: str
    created_at: datetime

    def metric(self, name: str) -> dict[str, Any]:
        for m in self.result["metrics"]:
            if m["signal"] == name:
                return dict(m)
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "project": self.project, "human_signal": self.human_signal,
                "metric_signals": list(self.metric_signals), "filters": self.filters,
                "created_by": self.created_by, "created_at": self.created_at.isoformat(),
                "result": self.result}


def check_comparable(human: Signal, metric: Signal) -> None:
    """Raise :class:`InvalidInput` when ``metric`` cannot be evaluated against ``human``."""
    for sig, role in ((human, "human"), (metric, "metric")):
        if sig.type not in (*COMPARABLE, "categorical"):
            raise InvalidInput(
                f"signal {sig.name!r} is {sig.type}: a two-channel evaluation compares "
                "binary, ordinal, numeric or categorical signals", field=role)
    if (human.type == "categorical") != (metric.type == "categorical"):
        cat, other = (human, metric) if human.type == "categorical" else (metric, human)
        raise InvalidInput(
            f"signal {cat.name!r} is categorical and {other.name!r} is {other.type}: a "
            "categorical signal can only be compared with a categorical signal with the "
            "same labels", field="metric")
    if human.type == "categorical" and set(human.labels or ()) != set(metric.labels or ()):
        raise InvalidInput(
            f"categorical signals {human.name!r} and {metric.name!r} have different labels "
            f"({', '.join(human.labels or ())} vs {', '.join(metric.labels or ())})",
            field="metric")


def default_approval_threshold(signal: Signal) -> tuple[float | None, str]:
    """Where approval starts on ``signal`` when the caller does not say, and the rule in
    words (or None and the reason there is no default)."""
    if signal.type == "binary":
        return 0.5, "approved when the raters' mean is at least 0.5 (a tie approves)"
    if signal.type == "ordinal" and signal.scale_min is not None \
            and signal.scale_max is not None:
        step = math.floor((signal.scale_min + signal.scale_max) / 2) + 1
        return float(step), f"approved when the raters' mean is at least {step:g} (above " \
                            "the middle of the scale)"
    if signal.scale_min is not None and signal.scale_max is not None:
        t = (signal.scale_min + signal.scale_max) / 2
        return t, f"approved when the raters' mean is at least {t:g} (the middle of the scale)"
    return None, (f"signal {signal.name!r} has no scale, so approval needs a threshold "
                  "(human_threshold)")


def _scale(signal: Signal, values: np.ndarray) -> tuple[float, float]:
    if signal.type == "binary":
        return 0.0, 1.0
    if signal.scale_min is not None and signal.scale_max is not None:
        return float(signal.scale_min), float(signal.scale_max)
    if values.size == 0:
        return 0.0, 1.0
    return float(values.min()), float(values.max())


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _signals(conn: Connection, project: Project, human_signal: str,
             metric_signals: list[str]) -> tuple[Signal, list[Signal]]:
    if not metric_signals:
        raise InvalidInput("name at least one metric signal", field="metric")
    if len(metric_signals) > MAX_METRICS:
        raise InvalidInput(f"at most {MAX_METRICS} metric signals at once", field="metric")
    if len(set(metric_signals)) != len(metric_signals):
        raise InvalidInput("a metric signal is named twice", field="metric")
    if human_signal in metric_signals:
        raise InvalidInput(f"signal {human_signal!r} cannot be both the human and a metric "
                           "signal", field="metric")
    for name, field in ((human_signal, "human"), *((m, "metric") for m in metric_signals)):
        if not name or len(name) > 100 or "\x00" in name:
            raise InvalidInput("a signal name is 1-100 characters without NUL", field=field)

    def signal(name: str, field: str) -> Signal:
        try:
            return get_signal(conn, project.id, name)
        except NotFound as exc:
            raise NotFound(exc.message, field=field) from None

    human = signal(human_signal, "human")
    metrics = [signal(m, "metric") for m in metric_signals]
    for metric in metrics:
        check_comparable(human, metric)
    return human, metrics


def evaluate(store: Store, project: Project | str, human_signal: str,
             metric_signals: list[str], *, filters: EvaluationFilters | None = None,
             human_threshold: float | None = None, seed: int = 0, save: bool = True,
             created_by: str = "") -> EvaluationReport:
    """Evaluate each metric signal against the human signal over the filtered traffic.

    ``human_threshold`` sets where human approval starts (the aggregated judgement at or
    above it); by default the middle of the signal's scale (see
    :func:`default_approval_threshold`). ``seed`` fixes the bootstrap and the
    cross-validation folds, so the same data give the same report.
    """
    began = time.perf_counter()
    filters = filters or EvaluationFilters()
    if human_threshold is not None and not math.isfinite(human_threshold):
        raise InvalidInput("the human threshold must be a finite number",
                           field="human_threshold")
    if not 0 <= seed < 2**32:
        raise InvalidInput("seed must be between 0 and 2**32 - 1", field="seed")
    rng = np.random.default_rng(seed)
    with store.read() as conn:
        proj = _resolve(conn, project)
        human, metrics = _signals(conn, proj, human_signal, metric_signals)
        if human_threshold is not None and human.type == "categorical":
            raise InvalidInput("a categorical human signal has no approval threshold",
                               field="human_threshold")
        human_ch = fetch_channel(conn, proj.id, human, filters, aggregate=True)
        metric_chs = [fetch_channel(conn, proj.id, m, filters, aggregate=False)
                      for m in metrics]
        fetched = time.perf_counter()
        result = _report(human_ch, metric_chs, human_threshold, rng)
        keys = sorted({d["key"] for m in result["metrics"] for d in m["discrepancies"]})
        names = interaction_client_ids(conn, keys)
    for m in result["metrics"]:
        for d in m["discrepancies"]:
            d["interaction"] = names.get(d.pop("key"), "")
    result["seed"] = seed
    result["timing_ms"] = {"fetch": round((fetched - began) * 1000, 1),
                           "total": round((time.perf_counter() - began) * 1000, 1)}
    report = EvaluationReport(None, proj.name, human.name, [m.name for m in metrics],
                              filters.to_dict(), result, created_by, utcnow())
    if not save:
        return report
    with store.transaction() as conn:
        new = conn.execute(evaluations.insert().values(
            project_id=proj.id, human_signal=human.name, metric_signals=report.metric_signals,
            filters=report.filters, result=result, created_by=created_by,
            created_at=report.created_at)).inserted_primary_key
    return EvaluationReport(int(new[0]), *[getattr(report, f) for f in  # type: ignore[index]
                                           ("project", "human_signal", "metric_signals",
                                            "filters", "result", "created_by",
                                            "created_at")])


def _report(human: Channel, metrics: list[Channel], human_threshold: float | None,
            rng: np.random.Generator) -> dict[str, Any]:
    sig = human.signal
    threshold, rule = (human_threshold, f"approved when the raters' mean is at least "
                       f"{human_threshold:g}") if human_threshold is not None \
        else default_approval_threshold(sig)
    categorical = sig.type == "categorical"
    out: dict[str, Any] = {
        "human": {"signal": sig.name, "type": sig.type, "n_items": human.n,
                  "n_labels": int(human.raters.sum()) if human.raters is not None else 0,
                  "approval_threshold": None if categorical else threshold,
                  "approval_rule": None if categorical else rule},
        "metrics": [], "stacking": None,
    }
    for ch in metrics:
        entry: dict[str, Any] = {"signal": ch.signal.name, "type": ch.signal.type,
                                 "n_items": ch.n}
        _, hi, mi = np.intersect1d(human.keys, ch.keys, assume_unique=True,
                                   return_indices=True)
        keys = human.keys[hi]
        if categorical:
            assert human.labels is not None and ch.labels is not None
            entry.update(categorical_report(
                keys=keys, human=human.labels[hi], metric=ch.labels[mi],
                labels=list(sig.labels or ()), rng=rng))
        else:
            assert human.values is not None and ch.values is not None
            unlabelled = np.ones(ch.n, dtype=bool)
            unlabelled[mi] = False
            entry.update(metric_report(
                human_type=sig.type, keys=keys, human=human.values[hi],
                metric=ch.values[mi], unlabelled=ch.values[unlabelled],
                approval_threshold=threshold,
                approval_reason=None if threshold is not None else rule,
                scale=_scale(ch.signal, ch.values),
                binary_pair=sig.type == "binary" and ch.signal.type == "binary", rng=rng))
        out["metrics"].append(entry)
    if len(metrics) >= 2 and not categorical and threshold is not None:
        out["stacking"] = _stacking(human, metrics, threshold, rng)
    return out


def _stacking(human: Channel, metrics: list[Channel], threshold: float,
              rng: np.random.Generator) -> dict[str, Any]:
    assert human.values is not None
    common = human.keys
    for ch in metrics:
        common = np.intersect1d(common, ch.keys, assume_unique=True)
    columns = []
    for ch in metrics:
        assert ch.values is not None
        columns.append(ch.values[np.searchsorted(ch.keys, common)])
    features = np.column_stack(columns) if columns else np.empty((0, 0))
    approved = approval_labels(human.values[np.searchsorted(human.keys, common)], threshold)
    return stacking_report(features, approved, [ch.signal.name for ch in metrics], rng)


def _from_row(row: Any, project: str) -> EvaluationReport:
    return EvaluationReport(int(row.id), project, row.human_signal, list(row.metric_signals),
                            dict(row.filters), dict(row.result), row.created_by,
                            as_utc(row.created_at))  # type: ignore[arg-type]


def get_evaluation(conn: Connection, project: Project, evaluation_id: int) -> EvaluationReport:
    row = conn.execute(select(evaluations).where(
        evaluations.c.project_id == project.id, evaluations.c.id == evaluation_id)).first()
    if row is None:
        raise NotFound(f"no evaluation {evaluation_id} in project {project.name!r}",
                       field="evaluation")
    return _from_row(row, project.name)


def list_evaluations(conn: Connection, project: Project, *, limit: int = 100
                     ) -> list[dict[str, Any]]:
    """The newest evaluations of a project, as summaries (no full result)."""
    e = evaluations
    rows = conn.execute(select(e).where(e.c.project_id == project.id)
                        .order_by(e.c.created_at.desc(), e.c.id.desc()).limit(limit)).all()
    out = []
    for row in rows:
        report = _from_row(row, project.name)
        out.append({"id": report.id, "human_signal": report.human_signal,
                    "metric_signals": report.metric_signals, "filters": report.filters,
                    "created_by": report.created_by, "created_at": report.created_at,
                    "n_paired": {m["signal"]: m.get("n_paired", 0)
                                 for m in report.result.get("metrics", [])}})
    return out
