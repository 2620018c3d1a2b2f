"""The case study every release writes: what changed, why, the evidence, what happened after.

:func:`build_case_study` reads one release and everything it points at in the caller's
connection (the release service stores the result in ``releases.case_study`` in its own
transaction; the release page builds it again to show what happened since).
:func:`case_study_markdown` renders it for export.

- *What changed*: the released version and the one it replaced (its rollback target), with
  the offline metrics their trainers reported and their change.
- *Why*: the findings linked to the version, its datasets, its experiment or the release
  (``provenance_links``), each with how much feedback reported it.
- *Evidence*: the gate's criteria with pass/fail and evidence, the sign-offs, and the
  experiment's decision with its primary comparison (estimate, 95 % CI, method) as analysed
  when the decision was made.
- *After*: monitoring deltas need the watch stage (issue #8) and say so; until then, the
  share of interactions that drew feedback, and the share of negative feedback, on the new
  version since the release beside the previous version over as long a window before it
  (Wilson 95 % intervals; "not estimable" with the reason when there is no traffic).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, and_, case, func, or_, select

from ..capture.projects import get_project
from ..errors import NotFound
from ..stats.intervals import wilson_interval
from ..store import as_utc, utcnow
from ..store.tables import (
    datasets,
    experiment_decisions,
    experiments,
    feedback,
    finding_feedback,
    findings,
    gates,
    interactions,
    model_version_datasets,
    model_versions,
    provenance_links,
    releases,
    signals,
    signoffs,
)

__all__ = ["MONITORING_NOTE", "build_case_study", "case_study_markdown"]

MONITORING_NOTE = ("Monitoring deltas (metrics and alerts by version and cohort) are not "
                   "available yet: they come with the watch stage (issue #8). Until then "
                   "this section shows feedback on the new version against the previous one.")


def _iso(value: datetime | None) -> str | None:
    stamp = as_utc(value)
    return None if stamp is None else stamp.isoformat()


def _version(conn: Connection, version_id: int | None) -> dict[str, Any] | None:
    if version_id is None:
        return None
    mv = model_versions
    row = conn.execute(select(mv).where(mv.c.id == version_id)).first()
    if row is None:
        return None
    ds = [f"{r.name}@{r.version}" for r in conn.execute(
        select(datasets.c.name, datasets.c.version)
        .join(model_version_datasets, model_version_datasets.c.dataset_id == datasets.c.id)
        .where(model_version_datasets.c.model_version_id == version_id)
        .order_by(datasets.c.id))]
    return {"id": row.id, "name": row.name, "status": row.status, "trainer": row.trainer,
            "metrics": dict(row.metrics or {}), "datasets": ds,
            "description": row.description, "created_by": row.created_by,
            "created_at": _iso(row.created_at)}


def _metric_changes(new: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    before = (old or {}).get("metrics", {})
    for key, value in sorted(new["metrics"].items()):
        prior = before.get(key)
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool)
                      for v in (value, prior))
        out.append({"metric": key, "before": prior, "after": value,
                    "change": (value - prior) if numeric else None})
    return out


def _findings(conn: Connection, project_id: int, ends: list[tuple[str, int]],
              base: str) -> list[dict[str, Any]]:
    pl = provenance_links
    if not ends:
        return []
    where = or_(*[and_(pl.c.dst_kind == k, pl.c.dst_id == i) for k, i in ends])
    ids = sorted({int(r.src_id) for r in conn.execute(
        select(pl.c.src_id).where(pl.c.project_id == project_id, pl.c.src_kind == "finding",
                                  where))})
    if not ids:
        return []
    counts: dict[int, int] = dict(conn.execute(
        select(finding_feedback.c.finding_id, func.count())
        .where(finding_feedback.c.finding_id.in_(ids))
        .group_by(finding_feedback.c.finding_id)).all())
    f = findings
    rows = conn.execute(select(f.c.id, f.c.title, f.c.status, f.c.severity, f.c.priority,
                               f.c.route, f.c.reach_users, f.c.reach_interactions)
                        .where(f.c.id.in_(ids)).order_by(f.c.priority.desc(), f.c.id))
    return [{"id": r.id, "title": r.title, "status": r.status, "route": r.route,
             "severity": r.severity, "priority": r.priority, "reach_users": r.reach_users,
             "reach_interactions": r.reach_interactions,
             "feedback_count": int(counts.get(r.id, 0)), "url": f"{base}/findings/{r.id}"}
            for r in rows]


def _primary_summary(analysis: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not analysis:
        return []
    primary = analysis.get("primary") or {}
    out = []
    for c in primary.get("comparisons") or []:
        absolute = c.get("absolute") or {}
        seq = c.get("sequential") or {}
        row: dict[str, Any] = {"metric": primary.get("metric"), "arm": c.get("arm"),
                               "control": c.get("control"), "n": c.get("n")}
        if absolute.get("estimable"):
            row.update(estimate=absolute.get("estimate"), ci95=absolute.get("ci95"),
                       p_value=absolute.get("p_value"), method=c.get("method"))
        else:
            row.update(estimate=None, ci95=None, p_value=None, method=c.get("method"),
                       reason=absolute.get("reason") or "not estimable")
        if seq.get("estimable"):
            row["sequential"] = {"method": seq.get("description") or seq.get("method"),
                                 "ci95": seq.get("ci95"), "p_value": seq.get("p_value")}
        out.append(row)
    return out


def _experiment(conn: Connection, experiment_id: int | None, base: str
                ) -> dict[str, Any] | None:
    if experiment_id is None:
        return None
    e = experiments
    row = conn.execute(select(e.c.id, e.c.name, e.c.status, e.c.hypothesis)
                       .where(e.c.id == experiment_id)).first()
    if row is None:
        return None
    d = experiment_decisions
    dec = conn.execute(select(d).where(d.c.experiment_id == experiment_id)
                       .order_by(d.c.id.desc()).limit(1)).first()
    out: dict[str, Any] = {"id": row.id, "name": row.name, "status": row.status,
                           "hypothesis": row.hypothesis,
                           "url": f"{base}/experiments/{quote(row.name, safe='')}",
                           "decision": None, "primary": []}
    if dec is None:
        out["note"] = "no decision recorded: the analysis below the gate is its evidence"
    else:
        out["decision"] = {"decision": dec.decision, "arm": dec.arm,
                           "rationale": dec.rationale, "decided_by": dec.decided_by,
                           "created_at": _iso(dec.created_at)}
        out["primary"] = _primary_summary(dec.analysis)
    return out


def _rate(successes: int, n: int) -> dict[str, Any]:
    est = wilson_interval(successes, n) if n else None
    if est is None or est.value is None:
        return {"value": None, "ci95": None, "n": n, "method": "wilson",
                "reason": "not estimable: no observations"}
    return {"value": est.value, "ci95": list(est.ci) if est.ci else None, "n": n,
            "method": "wilson"}


def _negative() -> Any:
    """Negative feedback: a binary false, or an ordinal or numeric value below its scale's
    midpoint."""
    mid = (signals.c.scale_min + signals.c.scale_max) / 2.0
    return or_(and_(signals.c.type == "binary", feedback.c.value_num == 0),
               and_(signals.c.type.in_(("ordinal", "numeric")),
                    signals.c.scale_min.is_not(None), signals.c.scale_max.is_not(None),
                    feedback.c.value_num < mid))


def _feedback_window(conn: Connection, project_id: int, version: str, start: datetime,
                     end: datetime) -> dict[str, Any]:
    i = interactions
    window = and_(i.c.project_id == project_id, i.c.model_version == version,
                  i.c.timestamp >= start, i.c.timestamp < end)
    n_inter = int(conn.execute(select(func.count()).select_from(i).where(window)).scalar_one())
    judged = int(conn.execute(
        select(func.count(func.distinct(feedback.c.interaction_id)))
        .select_from(feedback.join(i, i.c.id == feedback.c.interaction_id))
        .where(window)).scalar_one())
    row = conn.execute(
        select(func.count(), func.coalesce(func.sum(case((_negative(), 1), else_=0)), 0))
        .select_from(feedback.join(i, i.c.id == feedback.c.interaction_id)
                     .join(signals, signals.c.id == feedback.c.signal_id))
        .where(window, or_(signals.c.type == "binary",
                           and_(signals.c.scale_min.is_not(None),
                                signals.c.scale_max.is_not(None))))).one()
    return {"version": version, "from": _iso(start), "to": _iso(end),
            "interactions": n_inter, "feedback_rate": _rate(judged, n_inter),
            "negative_share": _rate(int(row[1]), int(row[0]))}


def _after(conn: Connection, project_id: int, new: dict[str, Any],
           old: dict[str, Any] | None, released_at: datetime, now: datetime
           ) -> dict[str, Any]:
    span = now - released_at
    out: dict[str, Any] = {"monitoring": {"available": False, "reason": MONITORING_NOTE},
                           "since": _iso(released_at), "as_of": _iso(now),
                           "new_since_release": _feedback_window(conn, project_id,
                                                                 new["name"], released_at,
                                                                 now)}
    if old is not None:
        out["previous_before_release"] = _feedback_window(
            conn, project_id, old["name"], released_at - span, released_at)
        out["previous_since_release"] = _feedback_window(conn, project_id, old["name"],
                                                         released_at, now)
    return out


def build_case_study(conn: Connection, project_id: int, release_id: int) -> dict[str, Any]:
    """The case study of one release as a JSON-able dict (see the module docstring)."""
    r = releases
    rel = conn.execute(select(r).where(r.c.id == release_id,
                                       r.c.project_id == project_id)).first()
    if rel is None:
        raise NotFound(f"no release {release_id} in this project", field="release_id")
    project = get_project(conn, project_id)
    base = "/projects/" + quote(project.name, safe="")
    new = _version(conn, rel.model_version_id)
    assert new is not None  # a foreign key with ON DELETE CASCADE
    old = _version(conn, rel.rollback_to_id)
    gate = None
    experiment_id = None
    signs: list[dict[str, Any]] = []
    if rel.gate_id is not None:
        g = conn.execute(select(gates).where(gates.c.id == rel.gate_id)).first()
        if g is not None:
            experiment_id = g.experiment_id
            gate = {"id": g.id, "status": g.status, "risk_tier": g.risk_tier,
                    "criteria": g.criteria, "result": g.result,
                    "created_by": g.created_by, "evaluated_at": _iso(g.evaluated_at),
                    "url": f"{base}/gates/{g.id}"}
            signs = [{"actor": s.actor, "role": s.role, "capacity": s.capacity,
                      "decision": s.decision, "comment": s.comment,
                      "created_at": _iso(s.created_at)}
                     for s in conn.execute(select(signoffs).where(signoffs.c.gate_id == g.id)
                                           .order_by(signoffs.c.id))]
    ends: list[tuple[str, int]] = [("model_version", new["id"]), ("release", rel.id)]
    ends += [("dataset", int(d)) for d in conn.execute(
        select(model_version_datasets.c.dataset_id)
        .where(model_version_datasets.c.model_version_id == new["id"])).scalars()]
    if experiment_id is not None:
        ends.append(("experiment", int(experiment_id)))
    why = _findings(conn, project_id, ends, base)
    released_at = as_utc(rel.released_at)
    assert released_at is not None
    now = utcnow()
    return {
        "release": {"id": rel.id, "project": project.name, "component": rel.component,
                    "version": new["name"], "rollback_to": old["name"] if old else None,
                    "cohort": rel.cohort, "status": rel.status,
                    "released_by": rel.released_by, "released_at": _iso(released_at),
                    "rolled_back_at": _iso(rel.rolled_back_at),
                    "url": f"{base}/releases/{rel.id}"},
        "what_changed": {"component": rel.component, "version": new, "previous": old,
                         "metric_changes": _metric_changes(new, old),
                         "metrics_note": "offline metrics as the trainers reported them"},
        "why": {"findings": why,
                "note": None if why else "no finding is linked to this version, its "
                                         "datasets, its experiment or the release"},
        "evidence": {"gate": gate, "signoffs": signs,
                     "experiment": _experiment(conn, experiment_id, base)},
        "after": _after(conn, project_id, new, old, released_at, now),
        "built_at": _iso(now),
    }


# -- Markdown --------------------------------------------------------------------------------


def _md(value: Any) -> str:
    out = " ".join(str(value).split())
    for ch in "\\`*_[]<>|#":
        out = out.replace(ch, "\\" + ch)
    return out


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return _md(value)


def _ci(ci: Any) -> str:
    return f"[{_num(ci[0])}, {_num(ci[1])}]" if ci else "—"


def _rate_md(label: str, w: dict[str, Any]) -> list[str]:
    lines = [f"- {label} ({_md(w['version'])}, {w['interactions']} interactions):"]
    for key, text in (("feedback_rate", "interactions with feedback"),
                      ("negative_share", "negative feedback")):
        r = w[key]
        if r["value"] is None:
            lines.append(f"  - {text}: {r['reason']}")
        else:
            lines.append(f"  - {text}: {r['value']:.1%} (95 % CI [{r['ci95'][0]:.1%}, "
                         f"{r['ci95'][1]:.1%}], Wilson, n = {r['n']})")
    return lines


def case_study_markdown(study: dict[str, Any]) -> str:
    """The case study as a Markdown document (user text escaped)."""
    rel = study["release"]
    changed = study["what_changed"]
    lines = [f"# Case study: release {rel['id']} of {_md(rel['component'])} "
             f"→ {_md(rel['version'])}", "",
             f"Project `{rel['project']}` · released by {_md(rel['released_by'] or '—')} at "
             f"{rel['released_at']} · status {rel['status']} · rollback target "
             f"{_md(rel['rollback_to'] or 'none')} · cohort "
             f"{_md(rel['cohort']) if rel['cohort'] else 'everyone'}", "",
             "## What changed", ""]
    v = changed["version"]
    lines.append(f"Version {_md(v['name'])} (trainer {_md(v['trainer'] or '—')}, datasets "
                 f"{_md(', '.join(v['datasets']) or 'none')}) replaces "
                 f"{_md(changed['previous']['name']) if changed['previous'] else 'nothing'}.")
    if changed["metric_changes"]:
        lines += ["", "| metric | before | after | change |", "|---|---|---|---|"]
        lines += [f"| {_md(m['metric'])} | {_num(m['before'])} | {_num(m['after'])} | "
                  f"{_num(m['change'])} |" for m in changed["metric_changes"]]
        lines += ["", f"_{changed['metrics_note']}._"]
    lines += ["", "## Why", ""]
    why = study["why"]
    if why["findings"]:
        lines += [f"- [finding {f['id']}: {_md(f['title'])}]({f['url']}) — {f['status']}, "
                  f"{f['feedback_count']} feedback item(s), severity {_num(f['severity'])}, "
                  f"priority {_num(f['priority'])}" for f in why["findings"]]
    else:
        lines.append(f"_{why['note']}._")
    ev = study["evidence"]
    lines += ["", "## Evidence", ""]
    gate = ev["gate"]
    if gate is None:
        lines.append("_No gate: this release was not gated._")
    else:
        lines.append(f"Gate {gate['id']} ({gate['risk_tier']} tier): **{gate['status']}**.")
        for c in gate.get("result") or []:
            if isinstance(c, dict):
                verdict = "pass" if c.get("passed") else "fail"
                lines.append(f"- {_md(c.get('name', '?'))}: {verdict} — "
                             f"{_md(c.get('evidence', ''))}")
    if ev["signoffs"]:
        lines += ["", "Sign-offs:"]
        lines += [f"- {_md(s['actor'])} as {s['capacity']}: {s['decision']}"
                  + (f" — {_md(s['comment'])}" if s["comment"] else "")
                  for s in ev["signoffs"]]
    exp = ev["experiment"]
    if exp is not None:
        lines += ["", f"Experiment [{_md(exp['name'])}]({exp['url']}) ({exp['status']})."]
        if exp["decision"]:
            d = exp["decision"]
            lines.append(f"Decision: **{d['decision']}**"
                         + (f" {_md(d['arm'])}" if d["arm"] else "")
                         + f" by {_md(d['decided_by'] or '—')}: {_md(d['rationale'])}")
        for p in exp["primary"]:
            if p["estimate"] is None:
                lines.append(f"- {_md(p['metric'])}, {_md(p['arm'])} vs "
                             f"{_md(p['control'])}: {_md(p.get('reason'))}")
            else:
                lines.append(f"- {_md(p['metric'])}, {_md(p['arm'])} vs {_md(p['control'])}: "
                             f"{_num(p['estimate'])} (95 % CI {_ci(p['ci95'])}, "
                             f"{_md(p['method'])}, p = {_num(p['p_value'])})")
        if exp.get("note"):
            lines.append(f"_{exp['note']}._")
    after = study["after"]
    lines += ["", "## What happened after", "", f"_{after['monitoring']['reason']}_", ""]
    lines += _rate_md("New version since the release", after["new_since_release"])
    if "previous_before_release" in after:
        lines += _rate_md("Previous version, as long a window before the release",
                          after["previous_before_release"])
        lines += _rate_md("Previous version since the release",
                          after["previous_since_release"])
    lines += ["", f"_Built {study['built_at']}._"]
    return "\n".join(lines) + "\n"
