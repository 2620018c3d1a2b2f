"""Fairness over a cohort attribute: the stratified report, and the two checks a release
gate runs (:func:`cohort_regressions`, :func:`fairness_check`).

The unit is the interaction. A signal's value on an interaction is the mean of its labels
(several raters), as in the two-channel evaluation; a binary signal becomes approved /
not approved at 0.5, an ordinal or numeric one is compared by its mean and, for the
four-fifths rule, by its approval rate (at or above the middle of its scale; see
:func:`..evaluation.service.default_approval_threshold`). The cohort is the interaction's
attribute ``attributes[ATTRIBUTE]`` as text; interactions without it are counted and left
out. Statistics: :mod:`feedbackloop.stats.fairness`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, String, case, cast, func, select

from ..capture.projects import Project, Signal, get_project, get_signal
from ..errors import InvalidInput, NotFound
from ..stats import fairness as fs
from ..stats.estimate import unavailable
from ..stats.intervals import wilson_interval
from ..store import Store
from ..store.tables import feedback, interactions
from .service import default_approval_threshold

__all__ = [
    "DEFAULT_MIN_COHORT",
    "MAX_COHORTS",
    "CohortData",
    "analyse",
    "check_criteria",
    "cohort_regressions",
    "fairness_check",
    "fairness_report",
]

MAX_COHORTS = 50
"""More distinct values than this and the attribute is not a cohort attribute (an id?)."""
DEFAULT_MIN_COHORT = 20
"""Cohorts with fewer interactions are shown but not judged by the four-fifths rule (the
Uniform Guidelines, 29 CFR 1607.4D: differences "based on small numbers" may not be
adverse impact)."""
_ATTRIBUTE = re.compile(r"^[A-Za-z0-9_.:\-]{1,100}$")
_SIGNAL_KINDS = {"binary": "rate", "ordinal": "mean", "numeric": "mean"}


@dataclass
class CohortData:
    """One signal on interactions: ``values`` (rates as 0/1), ``approved`` (0/1 or None
    when the signal has no approval threshold), ``cohorts`` (text), ``versions``, ``keys``
    (interaction ids)."""

    kind: fs.Kind
    values: np.ndarray
    approved: np.ndarray | None
    cohorts: np.ndarray
    versions: np.ndarray
    keys: np.ndarray
    missing: int  # interactions with the signal but without the attribute
    approval_rule: str


def _check_attribute(attribute: str) -> str:
    if not isinstance(attribute, str) or not _ATTRIBUTE.match(attribute):
        raise InvalidInput("the cohort attribute is 1-100 letters, digits, '_', '.', ':' "
                           f"or '-', got {str(attribute)[:120]!r}", field="attribute")
    return attribute


def _resolve(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _signal(conn: Connection, project: Project, name: str, field: str = "signal") -> Signal:
    if not isinstance(name, str) or not name or len(name) > 100 or "\x00" in name:
        raise InvalidInput("a signal name is 1-100 characters without NUL", field=field)
    try:
        sig = get_signal(conn, project.id, name)
    except NotFound as exc:
        raise NotFound(exc.message, field=field) from None
    if sig.type not in _SIGNAL_KINDS:
        raise InvalidInput(f"signal {name!r} is {sig.type}: fairness compares binary, "
                           "ordinal or numeric signals", field=field)
    return sig


def _check_version(version: str | None, field: str) -> None:
    if version is not None and (not isinstance(version, str) or not version
                                or len(version) > 200 or "\x00" in version):
        raise InvalidInput("a model version is 1-200 characters without NUL", field=field)


def _cohort_text(value: Any) -> str | None:
    return None if value is None else str(value)


def _cohort_expr(conn: Connection, attribute: str) -> Any:
    """The attribute as text, the same on both databases (SQLite's json_extract reads a
    JSON boolean as 1/0; json_type names it)."""
    col = interactions.c.attributes[attribute].as_string()
    if conn.dialect.name != "sqlite":
        return col
    kind = func.json_type(interactions.c.attributes, f'$."{attribute}"')
    return case((kind.in_(("true", "false")), kind), else_=col)


def _fetch(conn: Connection, project: Project, sig: Signal, attribute: str,
           versions: Sequence[str] | None) -> CohortData:
    f, i = feedback, interactions
    cohort = _cohort_expr(conn, attribute)
    q = (select(f.c.interaction_id, func.avg(f.c.value_num), func.min(cohort),
                func.min(i.c.model_version))
         .join(i, i.c.id == f.c.interaction_id)
         .where(f.c.project_id == project.id, f.c.signal_id == sig.id,
                f.c.value_num.is_not(None)))
    if versions is not None:
        q = q.where(i.c.model_version.in_(list(versions)))
    rows = conn.execute(q.group_by(f.c.interaction_id).order_by(f.c.interaction_id)).all()
    kept = [(int(r[0]), float(r[1]), _cohort_text(r[2]), r[3]) for r in rows]
    present = [r for r in kept if r[2] is not None]
    kind: fs.Kind = "rate" if sig.type == "binary" else "mean"
    raw = np.array([r[1] for r in present], dtype=float)
    threshold, rule = default_approval_threshold(sig)
    approved = (raw >= threshold).astype(float) if threshold is not None else None
    values = approved if kind == "rate" and approved is not None else raw
    data = CohortData(kind, values, approved,
                      np.array([r[2] for r in present], dtype=object).astype(str),
                      np.array([r[3] or "" for r in present], dtype=object).astype(str),
                      np.array([r[0] for r in present], dtype=np.int64),
                      len(kept) - len(present), rule)
    n_cohorts = len(set(data.cohorts.tolist()))
    if n_cohorts > MAX_COHORTS:
        raise InvalidInput(f"attribute {attribute!r} has {n_cohorts} distinct values: "
                           f"fairness compares at most {MAX_COHORTS} cohorts",
                           field="attribute")
    return data


def _representation(conn: Connection, project: Project, sig: Signal, attribute: str,
                    version: str | None) -> dict[str, Any]:
    """Users (distinct user ids, an interaction without one counting as its own user) per
    cohort, against those who gave end-user feedback on the signal."""
    i, f = interactions, feedback
    cohort = _cohort_expr(conn, attribute).label("cohort")
    unit = func.coalesce(i.c.user_id, "interaction:" + cast(i.c.id, String))
    where = [i.c.project_id == project.id]
    if version is not None:
        where.append(i.c.model_version == version)
    users_q = select(cohort, func.count(func.distinct(unit))).where(*where).group_by(cohort)
    givers_q = (select(cohort, func.count(func.distinct(unit)))
                .join(f, f.c.interaction_id == i.c.id)
                .where(*where, f.c.signal_id == sig.id, f.c.source == "end_user")
                .group_by(cohort))
    users: dict[str, int] = {}
    givers: dict[str, int] = {}
    for target, q in ((users, users_q), (givers, givers_q)):
        for c, n in conn.execute(q).all():
            key = _cohort_text(c)
            if key is not None:
                target[key] = target.get(key, 0) + int(n)
    if len(users) > MAX_COHORTS:
        return {"cohorts": [], "users": sum(users.values()), "givers": sum(givers.values()),
                "test": {"method": "chi-square test of independence", "statistic": None,
                         "df": None, "p_value": None,
                         "reason": f"more than {MAX_COHORTS} cohorts"}}
    # a user seen in two cohorts counts in both; givers never exceed users per cohort
    givers = {c: min(n, users.get(c, 0)) for c, n in givers.items()}
    out = fs.representation(users, givers)
    out["unit"] = "user (an interaction without a user id counts as one user)"
    return out


def analyse(values: np.ndarray, cohorts: np.ndarray, kind: fs.Kind, *,
            approved: np.ndarray | None = None, labels: np.ndarray | None = None,
            predictions: np.ndarray | None = None, min_ratio: float = fs.FOUR_FIFTHS,
            min_cohort_size: int = DEFAULT_MIN_COHORT, alpha: float = 0.05,
            rng: np.random.Generator | None = None) -> dict[str, Any]:
    """The stratified report on arrays (the database and CSV paths both end here).

    ``values`` are 0/1 for ``kind="rate"`` or numbers for ``"mean"``; ``approved`` (0/1)
    feeds the impact ratios (the values themselves for a rate); ``labels`` and
    ``predictions`` (0/1, same length) add the classifier criteria.
    """
    _check_ratio(min_ratio)
    if kind not in ("rate", "mean"):
        raise InvalidInput("kind is rate or mean", field="kind")
    rng = rng if rng is not None else np.random.default_rng(0)
    values = np.asarray(values, dtype=float)
    cohorts = np.asarray(cohorts).astype(str)
    if approved is None and kind == "rate":
        approved = values
    strata = [{"cohort": c, **e.to_dict()} for c, e in fs.stratified(values, cohorts, kind)]
    sizes = {c: int((cohorts == c).sum()) for c in sorted(set(cohorts.tolist()))}
    out: dict[str, Any] = {"kind": kind, "n": int(values.size), "cohorts": strata,
                           "min_ratio": min_ratio, "min_cohort_size": min_cohort_size}
    if approved is not None:
        counts = {c: (int(approved[cohorts == c].sum()), n) for c, n in sizes.items()}
        out["impact_ratios"] = _impact(counts, min_ratio, min_cohort_size)
        out["approval_rates"] = [{"cohort": c, **e.to_dict()} for c, e in
                                 fs.stratified(approved, cohorts, "rate")]
    else:
        out["impact_ratios"] = {"available": False, "reason": "the signal has no approval "
                                "threshold (no scale), so no selection rate"}
        out["approval_rates"] = []
    out["gaps"] = [_comparison(r, "rest", "estimate") for r in
                   fs.satisfaction_gaps(values, cohorts, kind, alpha=alpha)]
    out["alpha"] = alpha
    if labels is not None and predictions is not None:
        cf = fs.classifier_fairness(labels, predictions, cohorts, rng=rng)
        out["classifier"] = cf.to_dict()
    else:
        out["classifier"] = None
    out["method"] = {
        "rates": "Wilson score interval", "means": "Student t interval",
        "impact_ratio": "cohort rate / highest judged cohort's rate, Katz log interval; "
                        f"below {min_ratio:g} flags adverse impact (four-fifths rule, "
                        "29 CFR 1607.4D)",
        "gaps": ("cohort - rest: Newcombe hybrid score interval" if kind == "rate" else
                 "cohort - rest: Welch t interval") + ", Holm-adjusted p-values",
        "classifier": "fairlearn definitions (between groups, worst case), row bootstrap "
                      "percentile intervals"}
    return out


def _check_ratio(min_ratio: float) -> None:
    if not (isinstance(min_ratio, int | float) and math.isfinite(min_ratio)
            and 0 < min_ratio <= 1):
        raise InvalidInput(f"min_ratio must be in (0, 1], got {min_ratio!r}",
                           field="min_ratio")


def _impact(counts: dict[str, tuple[int, int]], min_ratio: float,
            min_cohort_size: int) -> dict[str, Any]:
    judged = {c: v for c, v in counts.items() if v[1] >= min_cohort_size}
    small = sorted(c for c in counts if c not in judged)
    rows = [r.to_dict() for r in fs.impact_ratios(judged, min_ratio=min_ratio)] \
        if judged else []
    for c in small:
        x, n = counts[c]
        rows.append({"cohort": c, "selected": x, "n": n,
                     "rate": wilson_interval(x, n).to_dict(),
                     "ratio": unavailable(n, "impact-ratio (katz-log)",
                                             f"fewer than {min_cohort_size} interactions: "
                                             "not judged").to_dict(),
                     "reference": None, "below_threshold": None})
    rows.sort(key=lambda r: r["cohort"])
    estimable = [r for r in rows if r["below_threshold"] is not None]
    if len(estimable) < 2:
        passed, reason = None, (f"fewer than two cohorts with at least {min_cohort_size} "
                                "interactions and some approval: nothing to compare")
    else:
        passed = not any(r["below_threshold"] for r in estimable)
        reason = None
    worst = min((r["ratio"]["value"] for r in estimable), default=None)
    return {"available": True, "rows": rows, "passed": passed, "reason": reason,
            "lowest_ratio": worst, "not_judged": small}


def _comparison(r: fs.CohortComparison, a: str, b: str) -> dict[str, Any]:
    return {"cohort": r.cohort, a: r.a.to_dict(), b: r.b.to_dict(),
            "difference": r.difference.to_dict(), "ci95": r.difference.to_dict()["ci95"],
            "p_value": r.p_value, "adjusted_p_value": r.adjusted_p_value,
            "flagged": r.flagged}


def _prediction_labels(conn: Connection, project: Project, data: CohortData,
                       prediction: str, version: str | None, attribute: str
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of ``data`` that have a prediction, labels 0/1, predictions 0/1)."""
    if data.approved is None:
        raise InvalidInput("the human signal has no approval threshold, so it cannot be "
                           "the label of a classifier", field="signal")
    psig = _signal(conn, project, prediction, "prediction")
    pdata = _fetch(conn, project, psig, attribute, [version] if version else None)
    threshold, _ = default_approval_threshold(psig)
    if threshold is None:
        raise InvalidInput(f"signal {prediction!r} has no scale, so its predictions cannot "
                           "be read as 0/1", field="prediction")
    pred = dict(zip(pdata.keys.tolist(), (pdata.approved if pdata.approved is not None
                                          else pdata.values).tolist(), strict=True))
    rows = np.array([k in pred for k in data.keys.tolist()], dtype=bool)
    preds = np.array([pred[k] for k in data.keys[rows].tolist()], dtype=float)
    return rows, data.approved[rows], preds


def fairness_report(store: Store, project: Project | str, *, attribute: str, signal: str,
                    version: str | None = None, prediction: str | None = None,
                    min_ratio: float = fs.FOUR_FIFTHS,
                    min_cohort_size: int = DEFAULT_MIN_COHORT, alpha: float = 0.05,
                    seed: int = 0) -> dict[str, Any]:
    """The whole report: per-cohort estimates, impact ratios and the four-fifths rule,
    satisfaction gaps (Holm), classifier criteria when ``prediction`` (an automated signal)
    is given, and representation of feedback givers against users."""
    _check_attribute(attribute)
    _check_version(version, "version")
    _check_ratio(min_ratio)
    _check_alpha(alpha)
    if not isinstance(min_cohort_size, int) or not 1 <= min_cohort_size <= 1_000_000:
        raise InvalidInput("min_cohort_size must be between 1 and 1000000",
                           field="min_cohort_size")
    if not 0 <= seed < 2**32:
        raise InvalidInput("seed must be between 0 and 2**32 - 1", field="seed")
    with store.read() as conn:
        proj = _resolve(conn, project)
        sig = _signal(conn, proj, signal)
        data = _fetch(conn, proj, sig, attribute, [version] if version else None)
        labels = preds = None
        pred_rows = None
        if prediction is not None:
            if prediction == signal:
                raise InvalidInput("the prediction signal must differ from the signal",
                                   field="prediction")
            pred_rows, labels, preds = _prediction_labels(conn, proj, data, prediction,
                                                          version, attribute)
        rep = _representation(conn, proj, sig, attribute, version)
    out = analyse(data.values, data.cohorts, data.kind, approved=data.approved,
                  min_ratio=min_ratio, min_cohort_size=min_cohort_size, alpha=alpha,
                  rng=np.random.default_rng(seed))
    if pred_rows is not None:
        cf = fs.classifier_fairness(labels, preds, data.cohorts[pred_rows],  # type: ignore
                                    rng=np.random.default_rng(seed))
        out["classifier"] = {**cf.to_dict(), "prediction": prediction,
                             "label": f"{signal} ({data.approval_rule})"}
    out.update(project=proj.name, attribute=attribute, signal=sig.name,
               signal_type=sig.type, version=version, prediction=prediction,
               missing_attribute=data.missing, approval_rule=data.approval_rule,
               representation=rep, seed=seed)
    out["check"] = check_criteria(out, signal=sig.name, prediction=prediction,
                                  min_ratio=min_ratio)
    return out


def _check_alpha(alpha: float) -> None:
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and 0 < alpha < 1):
        raise InvalidInput(f"alpha must be in (0, 1), got {alpha!r}", field="alpha")


def cohort_regressions(store: Store, project: Project | str, *, attribute: str, signal: str,
                       baseline_version: str, candidate_version: str, tolerance: float,
                       alpha: float = 0.05, higher_is_better: bool = True) -> dict[str, Any]:
    """Did the candidate version regress any cohort beyond ``tolerance``?

    Per cohort, candidate - baseline on the signal (a binary signal's approval rate, an
    ordinal or numeric signal's mean) with its 95% interval; a one-sided test of H0 "worse
    by at most ``tolerance``" (in the signal's units) against "worse by more", Holm-adjusted
    across cohorts. ``regressed`` when the adjusted p-value is below ``alpha``. ``passed``
    when no cohort regressed and at least one cohort has data under both versions.
    """
    _check_attribute(attribute)
    for v, field in ((baseline_version, "baseline_version"),
                     (candidate_version, "candidate_version")):
        if v is None:
            raise InvalidInput("name the version", field=field)
        _check_version(v, field)
    if baseline_version == candidate_version:
        raise InvalidInput("the baseline and the candidate are the same version",
                           field="candidate_version")
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) \
            or not math.isfinite(tolerance) or tolerance < 0:
        raise InvalidInput(f"tolerance must be a finite number >= 0, got {tolerance!r}",
                           field="tolerance")
    _check_alpha(alpha)
    with store.read() as conn:
        proj = _resolve(conn, project)
        sig = _signal(conn, proj, signal)
        data = _fetch(conn, proj, sig, attribute, [baseline_version, candidate_version])
    base, cand = data.versions == baseline_version, data.versions == candidate_version
    rows = fs.cohort_regressions(data.values[base], data.cohorts[base], data.values[cand],
                                 data.cohorts[cand], data.kind,
                                 tolerance=float(tolerance), alpha=alpha,
                                 higher_is_better=higher_is_better)
    cohorts = []
    for r in rows:
        d = r.difference.to_dict()
        reason = None
        if r.p_value is None:
            reason = d["reason"] or "not testable"
        cohorts.append({"cohort": r.cohort, "baseline": r.a.to_dict(),
                        "candidate": r.b.to_dict(), "difference": d["value"],
                        "ci95": d["ci95"], "p_value": r.p_value,
                        "adjusted_p_value": r.adjusted_p_value, "regressed": r.flagged,
                        "reason": reason})
    tested = [c for c in cohorts if c["p_value"] is not None]
    regressed = [c["cohort"] for c in cohorts if c["regressed"]]
    if not tested:
        passed, reason = False, ("no cohort has data under both versions: a regression "
                                 "cannot be ruled out")
    else:
        passed, reason = not regressed, None
    unit = "approval rate" if data.kind == "rate" else "mean"
    return {
        "attribute": attribute, "signal": sig.name, "kind": data.kind,
        "baseline_version": baseline_version, "candidate_version": candidate_version,
        "tolerance": float(tolerance), "alpha": alpha, "higher_is_better": higher_is_better,
        "cohorts": cohorts, "regressed": regressed, "passed": passed, "reason": reason,
        "missing_attribute": data.missing,
        "method": (f"per cohort, candidate - baseline {unit} "
                   + ("(Newcombe hybrid score interval; p-value by inverting it)"
                      if data.kind == "rate" else "(Welch t)")
                   + f"; one-sided test of a regression beyond {float(tolerance):g}, Holm-"
                     f"adjusted across {len(tested)} cohort(s) at alpha {alpha:g}"),
    }


def fairness_check(store: Store, project: Project | str, *, attribute: str, signal: str,
                   version: str | None = None, min_ratio: float = fs.FOUR_FIFTHS,
                   prediction: str | None = None,
                   min_cohort_size: int = DEFAULT_MIN_COHORT) -> dict[str, Any]:
    """The fairness criteria a gate checks, each with pass/fail and its evidence:

    * ``four_fifths``: every cohort's approval rate on ``signal`` (over ``version``'s
      interactions) is at least ``min_ratio`` of the highest cohort's (cohorts smaller than
      ``min_cohort_size`` are shown, not judged);
    * with ``prediction`` (an automated signal read as 0/1 against the human approval):
      ``demographic_parity_ratio`` and ``equalized_odds_ratio`` at least ``min_ratio``.

    ``passed`` only when every criterion passed; one that cannot be judged (too few
    cohorts, too little data) fails, with its reason.
    """
    report = fairness_report(store, project, attribute=attribute, signal=signal,
                             version=version, prediction=prediction, min_ratio=min_ratio,
                             min_cohort_size=min_cohort_size)
    return report["check"]


def check_criteria(report: dict[str, Any], *, signal: str, prediction: str | None,
                   min_ratio: float) -> dict[str, Any]:
    """The gate's criteria read off a report made by :func:`analyse` (see
    :func:`fairness_check`)."""
    impact = report["impact_ratios"]
    criteria = [{
        "name": "four_fifths",
        "description": f"each cohort's approval rate on {signal!r} is at least "
                       f"{min_ratio:g} of the highest cohort's",
        "threshold": min_ratio, "value": impact.get("lowest_ratio"), "ci95": None,
        "passed": impact.get("passed"), "reason": impact.get("reason"),
        "evidence": {"rows": impact.get("rows", []),
                     "not_judged": impact.get("not_judged", [])},
    }]
    cf = report["classifier"]
    if cf is not None:
        for key in ("demographic_parity_ratio", "equalized_odds_ratio"):
            est = cf[key]
            value = est["value"]
            criteria.append({
                "name": key,
                "description": f"{key.replace('_', ' ')} of {prediction!r} against "
                               f"{signal!r} is at least {min_ratio:g}",
                "threshold": min_ratio, "value": value, "ci95": est["ci95"],
                "passed": None if value is None else bool(value >= min_ratio - 1e-9),
                "reason": est["reason"],
                "evidence": {"cohorts": cf["cohorts"], "notes": cf["notes"]}})
    for c in criteria:
        if c["passed"] is None and not c["reason"]:
            c["reason"] = "not estimable"
    return {"passed": all(c["passed"] is True for c in criteria), "criteria": criteria,
            "attribute": report.get("attribute"), "signal": signal,
            "version": report.get("version"), "min_ratio": min_ratio,
            "method": report["method"], "missing_attribute": report.get("missing_attribute")}
