"""The analysis of a stored experiment: per-arm summaries from SQL aggregates, then the
statistics of :mod:`feedbackloop.stats.experiments`.

Each metric is summarised per unit: a unit's value is the mean of its observations (a user
who rated three answers counts once, with their mean rating), and an arm's summary is the
count, sum and sum of squares of those unit means. The refresh keeps one unit row per
unit holding that mean, so the database computes an arm's sums in one scan of the covering
index ``(experiment, signal, arm, unit, value)`` without grouping. Sums are of values
shifted by a pilot value (one unit's) so the variance does not cancel on large,
far-from-zero metrics. CUPED (``design["cuped"]``) joins the exposures' covariates.

Then: Welch differences and delta-method relative lifts with the always-valid interval
beside them, Holm or Benjamini-Hochberg adjusted p-values across every metric and arm,
guardrail statuses, the sample-ratio check on the exposures (chi-square, flagged at
p < 0.001), the probability that each arm is best, group-sequential boundaries at the
looks taken (when the design plans looks), and the stopping rules that fired. What cannot
be estimated says why, in ``notes`` and in the part concerned; nothing is NaN.

:func:`analyze` returns the ANALYSIS DICT (see docs/experiments.md) that the pages, the
reports, the CLI and the API all render.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Connection, select, text

from ..capture.projects import Project, list_signals
from ..errors import InvalidInput
from ..store import Store, utcnow
from ..store.tables import experiment_looks
from .service import Experiment, _ab, _project, get_decision, get_experiment

__all__ = ["analyze", "arm_summaries", "exposure_counts"]

# One unit row per unit and arm (arm >= 0) holds the unit's mean; see refresh.py.
_UNIT_SUMS = text(
    "SELECT COUNT(*), SUM(value - :shift), SUM((value - :shift) * (value - :shift)) "
    "FROM experiment_observations WHERE experiment_id = :e AND signal_id = :s AND arm = :a")
_CUPED_SUMS = text(
    "SELECT COUNT(*), SUM(o.value - :shift), SUM((o.value - :shift) * (o.value - :shift)), "
    "SUM(x.covariate), SUM(x.covariate * x.covariate), "
    "SUM((o.value - :shift) * x.covariate) FROM experiment_observations AS o "
    "JOIN experiment_exposures AS x ON x.experiment_id = o.experiment_id AND x.unit = o.unit "
    "WHERE o.experiment_id = :e AND o.signal_id = :s AND o.arm = :a "
    "AND x.covariate IS NOT NULL")
_PILOT = text("SELECT value FROM experiment_observations WHERE experiment_id = :e "
              "AND signal_id = :s AND arm >= 0 LIMIT 1")
_EXPOSED = text("SELECT arm, COUNT(*) FROM experiment_exposures WHERE experiment_id = :e "
                "GROUP BY arm")
_RANK = {"ok": 0, "not_estimable": 1, "at_risk": 2, "breached": 3}


def exposure_counts(conn: Connection, experiment_id: int, n_arms: int) -> list[int]:
    """Exposed units per arm (index order)."""
    counts = [0] * n_arms
    for arm, n in conn.execute(_EXPOSED, {"e": experiment_id}):
        if 0 <= arm < n_arms:
            counts[arm] = int(n)
    return counts


def arm_summaries(conn: Connection, experiment_id: int, signal_id: int, names: list[str],
                  *, cuped: bool = False) -> tuple[list[Any], list[int]]:
    """One :class:`ArmSummary` per arm over per-unit means (with the covariate moments
    when ``cuped``; then units without a covariate are left out), and the plain per-arm
    unit counts (to tell how many CUPED left out)."""
    from ..stats.experiments import ArmSummary

    pilot = conn.execute(_PILOT, {"e": experiment_id, "s": signal_id}).scalar()
    shift = float(pilot) if pilot is not None else 0.0
    out, plain_n = [], []
    for a, name in enumerate(names):
        params = {"e": experiment_id, "s": signal_id, "a": a, "shift": shift}
        n, total, total_sq = conn.execute(_UNIT_SUMS, params).one()
        plain_n.append(int(n or 0))
        if cuped:
            row = conn.execute(_CUPED_SUMS, params).one()
            if int(row[0] or 0) == int(n or 0) and n:
                out.append(ArmSummary.from_sums(
                    name, int(row[0]), float(row[1]), float(row[2]),
                    x_total=float(row[3]), x_total_sq=float(row[4]),
                    xy_total=float(row[5]), shift=shift))
                continue
        out.append(ArmSummary.from_sums(name, int(n or 0), float(total or 0.0),
                                        float(total_sq or 0.0), shift=shift))
    return out, plain_n


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _not_estimable_comparison(control: str, arm: str, kind: str, design: dict[str, Any],
                              reason: str, n: int) -> dict[str, Any]:
    from ..stats.experiments import not_estimable

    method = design["sequential"]["method"]
    return {"arm": arm, "control": control, "kind": kind, "method": "Welch t",
            "alpha": design["alpha"], "sides": design["sides"], "n": n,
            "absolute": not_estimable(reason), "relative": not_estimable(reason),
            "sequential": None if method == "none" else {"method": method,
                                                         **not_estimable(reason)},
            "cuped": None}


def _comparisons(summaries: list[Any], design: dict[str, Any], metric: dict[str, Any],
                 notes: list[str], *, cuped: bool, what: str) -> list[dict[str, Any]]:
    from ..stats.experiments import SequentialConfig, compare

    names = [a["name"] for a in design["arms"]]
    ci = names.index(design["control"])
    control = summaries[ci]
    seq = design["sequential"]
    planned = (design.get("planned") or {}).get("total")
    config = SequentialConfig(method=seq["method"], tuning_n=seq.get("tuning_n") or planned)
    out = []
    for i, arm in enumerate(summaries):
        if i == ci:
            continue
        empty = [s.name for s in (control, arm) if s.n == 0]
        if empty:
            reason = f"arm {empty[0]!r} has no units with {what} {metric['metric']!r}"
            out.append(_not_estimable_comparison(control.name, arm.name, metric["kind"],
                                                 design, reason, control.n + arm.n))
            continue
        try:
            comp = compare(control, arm, kind=metric["kind"], alpha=design["alpha"],
                           sides=design["sides"],
                           cuped=cuped and control.x_mean is not None
                           and arm.x_mean is not None,
                           sequential=config, higher_is_better=metric["higher_is_better"])
        except ValueError as exc:
            notes.append(f"{what} {metric['metric']!r}, {arm.name} vs {control.name}: {exc}")
            out.append(_not_estimable_comparison(control.name, arm.name, metric["kind"],
                                                 design, str(exc), control.n + arm.n))
            continue
        out.append(comp.to_dict())
    return out


def _arm_rows(design: dict[str, Any], exposed: list[int], summaries: list[Any]
              ) -> list[dict[str, Any]]:
    rows = []
    for a, e, s in zip(design["arms"], exposed, summaries, strict=True):
        rows.append({"name": a["name"], "version": a.get("version"), "weight": a["weight"],
                     "exposed": e, "n": s.n, "mean": s.mean if s.n else None,
                     "sd": s.sd if s.n >= 2 else None})
    return rows


def _srm(exposed: list[int], design: dict[str, Any]) -> dict[str, Any]:
    from ..stats.experiments import srm_test

    weights = [float(a["weight"]) for a in design["arms"]]
    if sum(exposed) == 0:
        return {"p_value": None, "chi2": None, "flagged": False, "observed": exposed,
                "expected": None, "estimable": False, "reason": "no units exposed yet"}
    try:
        return srm_test(exposed, weights).to_dict()
    except ValueError as exc:
        return {"p_value": None, "chi2": None, "flagged": False, "observed": exposed,
                "expected": None, "estimable": False, "reason": str(exc)}


def _bayes(summaries: list[Any], metric: dict[str, Any], salt: str,
           notes: list[str]) -> list[dict[str, Any]]:
    from ..stats.experiments import prob_best

    arms = [s for s in summaries if s.n > 0]
    if len(arms) < 2:
        return []
    if len(arms) < len(summaries):
        notes.append("the probability of being best leaves out arms with no units")
    rng = np.random.default_rng(int.from_bytes(salt.encode()[:8].ljust(8, b"\0"), "big"))
    try:
        return prob_best(arms, kind=metric["kind"], rng=rng,
                         higher_is_better=metric["higher_is_better"])
    except ValueError as exc:
        notes.append(f"probability of being best not estimable: {exc}")
        return []


def _z(comp: dict[str, Any]) -> float | None:
    part = comp.get("absolute") or {}
    if not part.get("estimable") or not part.get("se"):
        return None
    return float(part["estimate"]) / float(part["se"])


def _look_point(comps: list[dict[str, Any]], as_of: str, n_total: int) -> dict[str, Any]:
    points = []
    for c in comps:
        seq = c.get("sequential") or {}
        part = seq if seq.get("estimable") else c.get("absolute") or {}
        points.append({"arm": c["arm"], "n": c.get("n", 0),
                       "estimate": part.get("estimate") if part.get("estimable") else None,
                       "ci": part.get("ci") if part.get("estimable") else None,
                       "z": _z(c)})
    return {"as_of": as_of, "n": n_total, "primary": points}


def _group_sequential(design: dict[str, Any], looks: list[dict[str, Any]],
                      notes: list[str]) -> dict[str, Any] | None:
    """Boundaries at the looks taken (the recorded looks and this one), then at the
    planned looks still ahead."""
    from ..stats.experiments import group_sequential_bounds

    planned_looks = design.get("looks")
    if not planned_looks:
        return None
    total = (design.get("planned") or {}).get("total")
    if not total:
        notes.append("group-sequential boundaries need the planned sample size")
        return {"looks": [], "reason": "no planned sample size"}
    taken: list[tuple[float, float | None]] = []
    for look in looks:
        z = (look["primary"][0].get("z") if look.get("primary") else None)
        f = min(1.0, look["n"] / total)
        if f <= 0 or (taken and f <= taken[-1][0]):
            continue
        taken.append((f, z))
    ahead = [f for f in planned_looks if not taken or f > taken[-1][0]]
    fractions = [f for f, _ in taken] + ahead
    try:
        bounds = group_sequential_bounds(fractions, alpha=design["alpha"],
                                         sides=design["sides"])
    except ValueError as exc:
        notes.append(f"group-sequential boundaries not computed: {exc}")
        return {"looks": [], "reason": str(exc)}
    out = []
    for k, (f, b) in enumerate(zip(fractions, bounds, strict=True)):
        z = taken[k][1] if k < len(taken) else None
        crossed = None if z is None else bool(abs(z) >= b if design["sides"] == 2
                                              else z >= b)
        out.append({"fraction": f, "boundary": b, "z": z, "crossed": crossed,
                    "taken": k < len(taken)})
    return {"looks": out, "spending": "obrien-fleming (Lan-DeMets)"}


def _stopping(exp: Experiment, design: dict[str, Any], comps: list[dict[str, Any]],
              guard_status: list[dict[str, Any]], n_total: int, exposed_total: int,
              gs: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    from ..stats.experiments import stopping_status

    elapsed = None
    if exp.started_at is not None:
        end = exp.stopped_at or now
        elapsed = (end - exp.started_at).total_seconds() / 86400
    taken = {"looks": [lk for lk in (gs or {}).get("looks", []) if lk.get("taken")]} \
        if gs else None
    per_arm = {}
    for c in comps:
        per_arm[c["arm"]] = stopping_status(
            c, mde=design["mde"], relative=design["relative"],
            higher_is_better=design["primary"]["higher_is_better"],
            guardrails=guard_status, n=n_total,
            planned_total=(design.get("planned") or {}).get("total"),
            elapsed_days=elapsed, max_days=design.get("max_days"),
            max_units=design.get("max_units"), group_sequential=taken)
    if not per_arm:
        return {"fired": [], "recommendation": "continue", "details": {}}
    first = next(iter(per_arm.values()))
    order = ("efficacy", "futility", "guardrail", "max_duration", "max_sample")
    fired = [r for r in order if any(r in s["fired"] for s in per_arm.values())]
    out = {"fired": fired, "recommendation": "stop" if fired else "continue",
           "details": first["details"], "exposed": exposed_total}
    if len(per_arm) > 1:
        out["arms"] = per_arm
    return out


def analyze(store: Store, project: Project | str, name: str, *, record_look: bool = False,
            looked_by: str = "") -> dict[str, Any]:
    """The experiment's analysis as it stands (refresh first to include new data).

    ``record_look`` stores this look (its sample and the primary intervals) when the
    experiment is running and the sample grew since the last look: the looks draw the
    confidence sequence over time and place the group-sequential boundaries."""
    from ..stats.experiments import adjust_p_values, guardrail_status

    now = utcnow()
    with store.read() as conn:
        p = _project(conn, project)
        exp = get_experiment(conn, p, name)
        _ab(exp)
        design = exp.design
        names = [a["name"] for a in design["arms"]]
        signals = {s.name: s for s in list_signals(conn, p.id)}
        exposed = exposure_counts(conn, exp.id, len(names))
        notes: list[str] = []
        metrics = [("primary metric", design["primary"])] + \
            [("guardrail", g) for g in design.get("guardrails") or []]
        summaries: list[list[Any]] = []
        for what, metric in metrics:
            signal = signals.get(metric["metric"])
            if signal is None:
                raise InvalidInput(f"the {what} signal {metric['metric']!r} no longer exists",
                                   field="design.primary.metric")
            found, plain_n = arm_summaries(conn, exp.id, signal.id, names,
                                           cuped=bool(design.get("cuped")))
            if design.get("cuped") and what == "primary metric":
                left = [nm for nm, s, n0 in zip(names, found, plain_n, strict=True)
                        if n0 and s.x_mean is None]
                if left:
                    notes.append("CUPED not applied for arm(s) " + ", ".join(left) +
                                 ": some units have no pre-period covariate")
            summaries.append(found)
        looks = [r.result for r in conn.execute(
            select(experiment_looks.c.result).where(experiment_looks.c.experiment_id == exp.id)
            .order_by(experiment_looks.c.id))]
        decision = get_decision(conn, exp.id)
    primary_summ = summaries[0]
    for s, e in zip(primary_summ, exposed, strict=True):
        if s.n == 0:
            notes.append(f"arm {s.name!r} has no units with the primary metric "
                         f"{design['primary']['metric']!r}: not estimable"
                         + (f" ({e:,} exposed)" if e else " (none exposed)"))
    n_metric, n_exposed = sum(s.n for s in primary_summ), sum(exposed)
    if n_exposed:
        notes.append(f"the primary metric covers {n_metric:,} of {n_exposed:,} exposed units "
                     f"({n_metric / n_exposed:.0%})")
    comps_by_metric = [
        _comparisons(summ, design, metric, notes, cuped=bool(design.get("cuped")), what=what)
        for (what, metric), summ in zip(metrics, summaries, strict=True)]
    flat = [c for comps in comps_by_metric for c in comps]
    pvals = [(c, c["absolute"]["p_value"]) for c in flat if c["absolute"].get("estimable")]
    for c in flat:
        c["adjusted_p_value"] = None
    if pvals:
        adjusted = adjust_p_values([p for _, p in pvals], design["correction"])
        for (c, _), q in zip(pvals, adjusted, strict=True):
            c["adjusted_p_value"] = float(q)
    guardrails, guard_status = [], []
    for (_, metric), comps in zip(metrics[1:], comps_by_metric[1:], strict=True):
        worst = "ok" if comps else "not_estimable"
        for c in comps:
            st = guardrail_status(c, metric["allowed_change"],
                                  higher_is_better=metric["higher_is_better"],
                                  relative=metric["relative"])
            c["guardrail"] = st
            if _RANK[st["status"]] > _RANK[worst]:
                worst = st["status"]
        guardrails.append({"metric": metric["metric"], "kind": metric["kind"],
                           "higher_is_better": metric["higher_is_better"],
                           "allowed_change": metric["allowed_change"],
                           "relative": metric["relative"], "status": worst,
                           "comparisons": comps})
        guard_status.append({"metric": metric["metric"], "status": worst})
    srm = _srm(exposed, design)
    if srm.get("flagged"):
        notes.append(f"sample ratio mismatch (chi-square p = {srm['p_value']:.2g} < 0.001): "
                     "the arms did not get their planned shares; check assignment and "
                     "exposure logging before trusting the comparison")
    as_of = now.isoformat()
    primary_comps = comps_by_metric[0]
    current = _look_point(primary_comps, as_of, n_metric)
    path_looks = looks + ([current] if not looks or looks[-1].get("n") != n_metric else [])
    gs = _group_sequential(design, path_looks, notes)
    stopping = _stopping(exp, design, primary_comps, guard_status, n_metric, n_exposed, gs,
                         now)
    planned = dict(design.get("planned") or {})
    if planned.get("reason"):
        notes.append(f"sample size not planned: {planned['reason']}")
    result = {
        "experiment": {"name": exp.name, "kind": exp.kind, "status": exp.status,
                       "hypothesis": exp.hypothesis, "component": exp.component,
                       "design": design, "started_at": _iso(exp.started_at),
                       "stopped_at": _iso(exp.stopped_at), "supersedes": exp.supersedes,
                       "superseded_by": exp.superseded_by, "stop_reason": exp.stop_reason,
                       "created_at": _iso(exp.created_at)},
        "as_of": as_of,
        "planned": planned,
        "arms": _arm_rows(design, exposed, primary_summ),
        "srm": srm,
        "primary": {"metric": design["primary"]["metric"],
                    "kind": design["primary"]["kind"],
                    "higher_is_better": design["primary"]["higher_is_better"],
                    "comparisons": primary_comps},
        "guardrails": guardrails,
        "bayes": _bayes(primary_summ, design["primary"], exp.salt, notes),
        "sequential_path": [{"arm": pt["arm"], "at": lk["as_of"], "n": pt["n"],
                             "estimate": pt["estimate"], "ci": pt["ci"]}
                            for lk in path_looks for pt in lk.get("primary", [])
                            if pt.get("ci") is not None],
        "group_sequential": gs,
        "stopping": stopping,
        "decision": decision,
        "correction": design["correction"],
        "notes": notes,
    }
    if record_look and exp.status == "running" and n_metric > 0 and \
            (not looks or looks[-1].get("n") != n_metric):
        total = planned.get("total")
        with store.transaction() as conn:
            conn.execute(experiment_looks.insert().values(
                experiment_id=exp.id, created_by=looked_by[:100], created_at=now,
                information_fraction=min(1.0, n_metric / total) if total else None,
                result=current))
    return _clean(result)


def _clean(value: Any) -> Any:
    """No NaN or infinity in what is returned (JSON has neither): None instead."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.floating):
        return _clean(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value
