"""An experiment's report, as a self-contained HTML page (inline style and SVG, no external
resource, every user text escaped) or as Markdown with tables, from the analysis dict that
:func:`feedbackloop.experiments.analyze` returns.

:func:`report_view` turns that dict into rows of formatted text (numbers with their
interval and method, "not estimable" with its reason); the experiment page renders the same
rows, so the page and the report cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..capture.projects import Project
from ..store import Store

__all__ = [
    "AA_SIMULATION",
    "PEEKING",
    "SEQUENTIAL_LESSON",
    "STOPPING_RULES",
    "current_analysis",
    "html_report",
    "markdown_report",
    "render_report",
    "report_view",
]

ReportFormat = Literal["html", "md"]
# The page template sits with the web pages' templates (one package-data rule ships both).
_TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"

# Armitage, McPherson & Rowe (1969), "Repeated significance tests on accumulating data",
# J. R. Statist. Soc. A 132(2), 235-244 (as Jennison & Turnbull 2000, Table 1.1, repeat
# them): the chance that a two-sided test at
# nominal 5 % rejects at one of N equally spaced looks when there is no effect.
PEEKING: tuple[tuple[int, float], ...] = ((1, 0.05), (2, 0.083), (5, 0.142), (10, 0.193),
                                          (20, 0.248), (50, 0.320), (100, 0.374))

# The project's own A/A simulation (feedbackloop.stats.experiments.simulation, as
# tests/stats/test_experiments_validity.py runs it: 2,000 experiments, a 10 % conversion
# rate, 20 looks of 250 units per arm, seed 20261123): the share that declared a winner
# at some look up to the 5th, 10th and 20th.
AA_SIMULATION = {"sims": 2000, "looks": 20, "batch": 250, "fixed_horizon_5": 0.1425,
                 "fixed_horizon_10": 0.198, "fixed_horizon_20": 0.2445,
                 "sequential_20": 0.013}

SEQUENTIAL_LESSON = (
    "Why the sequential interval is the default: a fixed-horizon test (the Welch interval "
    "and p-value) promises a 5 % false-positive rate only if it is read once, at the "
    "planned sample size. Read after every batch and stopped at the first p < 0.05, it "
    "declares a difference that is not there far more often. In 2,000 simulated A/A "
    "experiments peeked at 20 times, the fixed-horizon test found a winner in 24.5 % of "
    "them (14.3 % within 5 looks, 19.8 % within 10), as Armitage, McPherson & Rowe (1969) "
    "computed (14.2 %, 19.3 %, 24.8 %); the always-valid confidence sequence, read at the "
    "same 20 looks, in 1.3 %. It is wider early on, but its 5 % holds however often and "
    "whenever you look, so you may watch the experiment and stop as soon as the interval "
    "excludes zero.")

STOPPING_RULES: dict[str, str] = {
    "efficacy": "Efficacy: the sequential interval excludes zero in the better direction.",
    "futility": "Futility: the sequential interval cannot reach the minimum detectable "
                "effect any more.",
    "guardrail": "Guardrail breach: a guardrail metric is worse than its allowed change.",
    "max_duration": "Maximum duration reached.",
    "max_sample": "Maximum (or planned) sample reached.",
}

_DECISIONS = {"ship": "Ship", "iterate": "Iterate", "abandon": "Abandon"}
_GUARDRAIL = {"ok": "ok", "at_risk": "at risk", "breached": "breached",
              "not_estimable": "not estimable"}


# -- numbers as text ----------------------------------------------------------------------

def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _sig(v: float, digits: int = 3) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 10 ** digits or abs(v) < 10 ** -(digits + 1):
        return f"{v:.{digits}g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def value_text(v: Any, kind: str, *, diff: bool = False, relative: bool = False) -> str:
    """A mean (a share for proportions), a difference (percentage points for proportions)
    or a relative lift (percent), signed when it is a change."""
    x = _finite(v)
    if x is None:
        return "n/a"
    sign = "+" if diff and x > 0 else ""
    if relative:
        return f"{sign}{x * 100:.1f} %"
    if kind == "proportion":
        return f"{sign}{x * 100:.1f} pp" if diff else f"{x * 100:.1f} %"
    return sign + _sig(x)


def interval_text(ci: Any, kind: str, *, relative: bool = False) -> str:
    """``[lo, hi]`` in the unit of :func:`value_text`; a missing (infinite) end of a
    one-sided interval is written as -∞ or +∞."""
    if not isinstance(ci, Sequence) or len(ci) != 2:
        return "n/a"
    lo, hi = _finite(ci[0]), _finite(ci[1])

    def end(x: float | None, inf: str) -> str:
        if x is None:
            return inf
        if relative:
            return f"{x * 100:.1f} %"
        if kind == "proportion":
            return f"{x * 100:.1f} pp"
        return _sig(x)

    return f"[{end(lo, '-∞')}, {end(hi, '+∞')}]"


def p_text(p: Any) -> str:
    x = _finite(p)
    if x is None:
        return "n/a"
    if x < 0.001:
        return "< 0.001"
    return f"{x:.3f}"


def _percent(x: Any) -> str:
    v = _finite(x)
    return "n/a" if v is None else f"{v * 100:.1f} %"


def _count(x: Any) -> str:
    v = _finite(x)
    return "n/a" if v is None else f"{round(v):,}"


def _day(ts: Any) -> str:
    return str(ts or "")[:16].replace("T", " ")


def _parse(ts: Any) -> datetime | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


# -- the view -----------------------------------------------------------------------------

def _estimable(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("estimable", True) is not False \
        and _finite(part.get("estimate", 0.0)) is not None


def _part(part: Any, kind: str, *, relative: bool = False,
          sequential: bool = False) -> dict[str, Any]:
    """One of a comparison's absolute / relative / sequential parts as text."""
    if part is None:
        return {"available": False, "reason": "sequential analysis is off in the design",
                "text": "off", "interval": "", "p": "", "width": None, "excludes_zero": None}
    if not isinstance(part, Mapping) or part.get("estimable") is False:
        reason = str(part.get("reason") if isinstance(part, Mapping) else "") \
            or "not estimable"
        return {"available": False, "reason": reason, "text": "not estimable",
                "interval": "", "p": "", "width": None, "excludes_zero": None}
    ci = part.get("ci95") or part.get("ci")
    lo = _finite(ci[0]) if isinstance(ci, Sequence) and len(ci) == 2 else None
    hi = _finite(ci[1]) if isinstance(ci, Sequence) and len(ci) == 2 else None
    width = hi - lo if lo is not None and hi is not None else None
    excludes = (lo is not None and lo > 0) or (hi is not None and hi < 0)
    return {
        "available": True, "reason": "",
        "text": "" if sequential else value_text(part.get("estimate"), kind, diff=True,
                                                 relative=relative),
        "interval": interval_text(ci, kind, relative=relative),
        "p": p_text(part.get("p_value")), "width": width, "excludes_zero": excludes,
        "method": str(part.get("method") or ""),
    }


def _comparison_row(c: Mapping[str, Any], kind: str, *,
                    higher_is_better: bool = True) -> dict[str, Any]:
    absolute = _part(c.get("absolute"), kind)
    seq = _part(c.get("sequential"), kind, sequential=True)
    est = _finite((c.get("absolute") or {}).get("estimate")) \
        if isinstance(c.get("absolute"), Mapping) else None
    if seq["available"] and seq["excludes_zero"] and est is not None:
        better = (est > 0) == higher_is_better
        verdict = "better than control" if better else "worse than control"
    elif seq["available"]:
        verdict = "no difference shown yet"
    else:
        verdict = "not estimable" if not absolute["available"] else "fixed-horizon only"
    return {
        "arm": str(c.get("arm", "")), "control": str(c.get("control", "")),
        "method": str(c.get("method") or ""),
        "absolute": absolute,
        "relative": _part(c.get("relative"), kind, relative=True),
        "sequential": seq,
        "sequential_method": str((c.get("sequential") or {}).get("method") or "")
        if isinstance(c.get("sequential"), Mapping) else "",
        "adjusted_p": p_text(c.get("adjusted_p_value")),
        "cuped": c.get("cuped") if isinstance(c.get("cuped"), Mapping) else None,
        "verdict": verdict,
    }


def _sample(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """Planned against actual: units per arm, and days."""
    planned = analysis.get("planned") or {}
    arms = analysis.get("arms") or []
    per_arm = _finite(planned.get("per_arm"))
    smallest = min((_finite(a.get("n")) or 0.0 for a in arms), default=0.0)
    exp = analysis.get("experiment") or {}
    start = _parse(exp.get("started_at"))
    end = _parse(exp.get("stopped_at")) or _parse(analysis.get("as_of"))
    days = (end - start).total_seconds() / 86400 if start and end and end >= start else None
    return {
        "per_arm": _count(per_arm), "total": _count(planned.get("total")),
        "method": str(planned.get("method") or ""),
        "units_per_day": _count(planned.get("units_per_day")),
        "expected_days": "n/a" if _finite(planned.get("expected_days")) is None
        else f"{_finite(planned.get('expected_days')):.1f}",
        "duration": (f"about {_finite(planned.get('expected_days')):.1f} days at "
                     f"{_count(planned.get('units_per_day'))} units a day of recent traffic"
                     if _finite(planned.get("expected_days")) is not None else
                     "duration unknown (no recent traffic to plan from)"),
        "reason": str(planned.get("reason") or ""),
        "actual_total": _count(sum(_finite(a.get("n")) or 0.0 for a in arms)),
        "exposed_total": _count(sum(_finite(a.get("exposed")) or 0.0 for a in arms)),
        "smallest_arm": _count(smallest),
        "fraction": None if not per_arm else min(smallest / per_arm, 9.99),
        "fraction_text": "n/a" if not per_arm else f"{smallest / per_arm * 100:.0f} %",
        "days": "n/a" if days is None else f"{days:.1f}",
    }


def report_view(analysis: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis as rows of text for the page and the reports (escaping is the
    renderer's job: nothing here is markup)."""
    exp = analysis.get("experiment") or {}
    design = exp.get("design") or {}
    primary = analysis.get("primary") or {}
    kind = str(primary.get("kind") or (design.get("primary") or {}).get("kind") or "mean")
    hib = primary.get("higher_is_better", True) is not False
    arms = [{
        "name": str(a.get("name", "")), "version": a.get("version"),
        "weight": _percent(a.get("weight")), "exposed": _count(a.get("exposed")),
        "n": _count(a.get("n")), "mean": value_text(a.get("mean"), kind),
        "sd": "n/a" if _finite(a.get("sd")) is None else _sig(float(a["sd"])),
        "control": a.get("name") == design.get("control"),
    } for a in analysis.get("arms") or []]
    srm = analysis.get("srm") or {}
    guardrails = []
    for g in analysis.get("guardrails") or []:
        gk = str(g.get("kind") or next(
            (d.get("kind") for d in design.get("guardrails") or []
             if d.get("metric") == g.get("metric")), "mean"))
        gh = next((d.get("higher_is_better", True) for d in design.get("guardrails") or []
                   if d.get("metric") == g.get("metric")), True) is not False
        allowed = _finite(g.get("allowed_change"))
        guardrails.append({
            "metric": str(g.get("metric", "")),
            "allowed": "n/a" if allowed is None else value_text(
                allowed, gk, diff=True, relative=bool(g.get("relative"))).lstrip("+"),
            "status": str(g.get("status") or "not_estimable"),
            "status_text": _GUARDRAIL.get(str(g.get("status")), str(g.get("status"))),
            "comparisons": [_comparison_row(c, gk, higher_is_better=gh)
                            for c in g.get("comparisons") or []],
        })
    stopping = analysis.get("stopping") or {}
    fired = [str(f) for f in stopping.get("fired") or []]
    gs = analysis.get("group_sequential") or None
    decision = analysis.get("decision") or None
    mde = _finite(design.get("mde"))
    return {
        "name": str(exp.get("name", "")), "kind": str(exp.get("kind", "ab")),
        "status": str(exp.get("status", "")), "hypothesis": str(exp.get("hypothesis") or ""),
        "component": exp.get("component"), "supersedes": exp.get("supersedes"),
        "started_at": _day(exp.get("started_at")), "stopped_at": _day(exp.get("stopped_at")),
        "as_of": _day(analysis.get("as_of")),
        "metric": str(primary.get("metric") or (design.get("primary") or {}).get("metric")
                      or ""),
        "metric_kind": kind, "higher_is_better": hib,
        "unit": str(design.get("unit") or ""),
        "mde": "n/a" if mde is None else value_text(
            mde, kind, diff=True, relative=bool(design.get("relative"))).lstrip("+"),
        "alpha": design.get("alpha", 0.05), "power": design.get("power", 0.8),
        "sides": design.get("sides", 2),
        "sequential_method": str((design.get("sequential") or {}).get("method")
                                 or "asymptotic-cs"),
        "correction": {"holm": "Holm", "bh": "Benjamini-Hochberg"}.get(
            str(analysis.get("correction") or design.get("correction") or "holm"),
            str(analysis.get("correction"))),
        "arms": arms,
        "comparisons": [_comparison_row(c, kind, higher_is_better=hib)
                        for c in primary.get("comparisons") or []],
        "srm": {"p": p_text(srm.get("p_value")), "chi2": "n/a" if _finite(
            srm.get("chi2")) is None else f"{float(srm['chi2']):.2f}",
            "flagged": bool(srm.get("flagged")),
            "observed": ", ".join(_count(x) for x in srm.get("observed") or []),
            "expected": ", ".join(f"{_finite(x) or 0:.1f}" for x in
                                  srm.get("expected") or []),
            "available": "p_value" in srm},
        "guardrails": guardrails,
        "bayes": [{"arm": str(b.get("arm", "")), "p_best": _percent(b.get("p_best")),
                   "expected_loss": value_text(b.get("expected_loss"), kind, diff=False)
                   if kind != "proportion" else
                   ("n/a" if _finite(b.get("expected_loss")) is None
                    else f"{float(b['expected_loss']) * 100:.2f} pp"),
                   "method": str(b.get("method") or "")}
                  for b in analysis.get("bayes") or []],
        "group_sequential": None if not gs else [{
            "fraction": _percent(look.get("fraction")),
            "boundary": "n/a" if _finite(look.get("boundary")) is None
            else f"{float(look['boundary']):.3f}",
            "z": "not reached" if _finite(look.get("z")) is None
            else f"{float(look['z']):.3f}",
            "crossed": _finite(look.get("z")) is not None
            and _finite(look.get("boundary")) is not None
            and abs(float(look["z"])) >= float(look["boundary"]),
        } for look in gs.get("looks") or []],
        "stopping": {"fired": fired, "texts": [STOPPING_RULES.get(f, f) for f in fired],
                     "recommendation": str(stopping.get("recommendation") or "continue"),
                     "details": stopping.get("details") or {}},
        "sample": _sample(analysis),
        "decision": None if not decision else {
            "decision": str(decision.get("decision", "")),
            "label": _DECISIONS.get(str(decision.get("decision")),
                                    str(decision.get("decision"))),
            "arm": decision.get("arm"), "rationale": str(decision.get("rationale") or ""),
            "decided_by": str(decision.get("decided_by") or ""),
            "created_at": _day(decision.get("created_at"))},
        "notes": [str(n) for n in analysis.get("notes") or []],
        "lesson": SEQUENTIAL_LESSON,
    }


def mde_in_difference(analysis: Mapping[str, Any]) -> float | None:
    """The design's minimum detectable effect on the scale of the sequential path
    (absolute difference): a relative MDE times the control mean."""
    design = (analysis.get("experiment") or {}).get("design") or {}
    mde = _finite(design.get("mde"))
    if mde is None:
        return None
    if design.get("relative"):
        control = next((a for a in analysis.get("arms") or []
                        if a.get("name") == design.get("control")), None)
        base = _finite((control or {}).get("mean")) or _finite(design.get("baseline"))
        if not base:
            return None
        mde *= base
    hib = ((analysis.get("primary") or {}).get("higher_is_better", True)) is not False
    return mde if hib else -mde


def confidence_sequence_svg(analysis: Mapping[str, Any]) -> Any:
    """The sequential path as inline SVG (markup), or None with fewer than one point."""
    from ..web.experiment_charts import sequence_plot

    view_kind = str((analysis.get("primary") or {}).get("kind") or "mean")
    metric = str((analysis.get("primary") or {}).get("metric") or "")
    return sequence_plot(analysis.get("sequential_path") or [],
                         mde=mde_in_difference(analysis), kind=view_kind,
                         title=f"Sequential interval of the difference to control: {metric}")


def current_analysis(store: Store, project: Project | str, name: str, *,
                     record_look: bool = False, looked_by: str = "") -> dict[str, Any]:
    """The analysis with the data logged so far: a running or stopped A/B experiment
    copies new exposures and observations first (ratings of exposed units keep arriving
    after a stop); ``record_look`` stores the look when the experiment is running."""
    from .analysis import analyze
    from .refresh import refresh
    from .service import get_experiment

    with store.read() as conn:
        exp = get_experiment(conn, project, name)
    if exp.kind == "ab" and exp.status in ("running", "stopped"):
        refresh(store, project, name)
    return analyze(store, project, name, record_look=record_look and exp.status == "running",
                   looked_by=looked_by)


# -- Markdown -----------------------------------------------------------------------------

def _md(text: Any) -> str:
    """User text safe inside a Markdown table cell: no markup, no HTML, one line."""
    s = " ".join(str(text if text is not None else "").split())
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        s = s.replace(ch, "\\" + ch)
    return s


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def markdown_report(analysis: Mapping[str, Any]) -> str:
    """The report as Markdown (GitHub tables)."""
    v = report_view(analysis)
    lines = [f"# Experiment {_md(v['name'])}", ""]
    if v["hypothesis"]:
        lines += [f"**Hypothesis:** {_md(v['hypothesis'])}", ""]
    facts = [f"Status: {_md(v['status'])}", f"as of {_md(v['as_of'])} UTC"]
    if v["started_at"]:
        facts.append(f"started {_md(v['started_at'])}")
    if v["stopped_at"]:
        facts.append(f"stopped {_md(v['stopped_at'])}")
    if v["supersedes"]:
        facts.append(f"supersedes {_md(v['supersedes'])}")
    lines += ["; ".join(facts) + ".", "",
              f"Primary metric **{_md(v['metric'])}** ({v['metric_kind']}, "
              f"{'higher' if v['higher_is_better'] else 'lower'} is better); unit "
              f"{_md(v['unit'])}; MDE {_md(v['mde'])}; alpha {v['alpha']}, power "
              f"{v['power']}, {v['sides']}-sided; sequential method "
              f"{_md(v['sequential_method'])}; {v['correction']} correction.", ""]
    if v["decision"]:
        d = v["decision"]
        arm = f" ({_md(d['arm'])})" if d["arm"] else ""
        lines += ["## Decision", "",
                  f"**{d['label']}**{arm}, by {_md(d['decided_by'])} on "
                  f"{_md(d['created_at'])} UTC: {_md(d['rationale'])}", ""]
    lines += ["## Arms", ""]
    lines += _table(["Arm", "Version", "Weight", "Exposed", "n", "Mean", "SD"],
                    [[_md(a["name"]) + (" (control)" if a["control"] else ""),
                      _md(a["version"] or "—"), a["weight"], a["exposed"], a["n"],
                      a["mean"], a["sd"]] for a in v["arms"]])
    lines += ["## Lift against control", ""]
    lines += _table(
        ["Arm", "Difference", "95 % CI (Welch)", "p", "adjusted p", "Relative",
         "95 % CI", "Sequential 95 % CI", "sequential p", "Reading"],
        [[_md(c["arm"]), _cell(c["absolute"], "text"), _cell(c["absolute"], "interval"),
          _cell(c["absolute"], "p"), c["adjusted_p"], _cell(c["relative"], "text"),
          _cell(c["relative"], "interval"), _cell(c["sequential"], "interval"),
          _cell(c["sequential"], "p"), c["verdict"]] for c in v["comparisons"]])
    lines += [f"Fixed-horizon figures: {_md(_methods(v['comparisons']))}; adjusted p: "
              f"{v['correction']} across metrics and arms.", ""]
    lines += ["## Confidence sequence over time", ""]
    path = analysis.get("sequential_path") or []
    if path:
        kind = v["metric_kind"]
        lines += _table(["Arm", "At", "n", "Estimate", "Sequential 95 % CI"],
                        [[_md(p.get("arm")), _md(p.get("at")), _count(p.get("n")),
                          value_text(p.get("estimate"), kind, diff=True),
                          interval_text(p.get("ci"), kind)] for p in path])
    else:
        lines += ["No looks yet.", ""]
    lines += [f"> {SEQUENTIAL_LESSON}", ""]
    lines += ["## Sample ratio", ""]
    s = v["srm"]
    lines += [(f"**Sample ratio mismatch** (chi-square p = {s['p']}, flagged below 0.001): "
               "the arms did not receive the planned shares; the comparison is suspect until "
               "the cause is found." if s["flagged"] else
               f"No sample ratio mismatch: chi-square p = {s['p']} (flagged below 0.001)")
              + f"; observed {s['observed']}, expected {s['expected']}.", ""]
    lines += ["## Planned and actual sample", ""]
    sm = v["sample"]
    planned = (f"Planned {sm['per_arm']} units per arm ({sm['total']} in all; "
               f"{_md(sm['method'])}), {sm['duration']}." if sm["per_arm"] != "n/a" else
               f"No sample size planned: {_md(sm['reason'] or 'unknown')}.")
    lines += [f"{planned} Now: {sm['actual_total']} units with the "
              f"metric ({sm['exposed_total']} exposed), the smallest arm at "
              f"{sm['fraction_text']} of plan, after {sm['days']} days.", ""]
    if v["guardrails"]:
        lines += ["## Guardrails", ""]
        rows = []
        for g in v["guardrails"]:
            for c in g["comparisons"] or [{}]:
                rows.append([_md(g["metric"]), g["allowed"], g["status_text"],
                             _md(c.get("arm", "")),
                             _cell(c["absolute"], "text") if c else "",
                             _cell(c["sequential"], "interval") if c else ""])
        lines += _table(["Metric", "Allowed change", "Status", "Arm", "Difference",
                         "Sequential 95 % CI"], rows)
    if v["bayes"]:
        lines += ["## Bayesian view", ""]
        lines += _table(["Arm", "P(best)", "Expected loss", "Method"],
                        [[_md(b["arm"]), b["p_best"], b["expected_loss"], _md(b["method"])]
                         for b in v["bayes"]])
    if v["group_sequential"]:
        lines += ["## Planned looks (group-sequential)", ""]
        lines += _table(["Information", "Boundary (absolute z)", "z", "Crossed"],
                        [[g["fraction"], g["boundary"], g["z"],
                          "yes" if g["crossed"] else "no"] for g in v["group_sequential"]])
    lines += ["## Stopping rules", ""]
    st = v["stopping"]
    if st["texts"]:
        lines += [f"- {_md(t)}" for t in st["texts"]] + [""]
    else:
        lines += ["None fired.", ""]
    lines += [f"Recommendation: **{_md(st['recommendation'])}**.", ""]
    if v["notes"]:
        lines += ["## Notes", ""] + [f"- {_md(n)}" for n in v["notes"]] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _cell(part: Mapping[str, Any], key: str) -> str:
    if not part["available"]:
        return "not estimable: " + _md(part["reason"]) if key == "text" or (
            key == "interval" and not part.get("text")) else ""
    return str(part[key])


def _methods(comparisons: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(dict.fromkeys(c["method"] for c in comparisons if c["method"])) \
        or "Welch"


# -- HTML ---------------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1d2330; max-width: 1000px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.08rem; margin-top: 1.8rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: .4rem 0; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e4e7ec;
  vertical-align: top; }
th { font-size: .75rem; text-transform: uppercase; color: #667085; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted, .sub { color: #667085; } .sub { font-size: .85em; }
.bad { color: #b42318; } .good { color: #067647; } .warn { color: #b54708; }
.lesson { background: #f6f7f9; border-left: 3px solid #2f5bd3; padding: .6rem .9rem; }
.decision { background: #ecfdf3; border: 1px solid #abefc6; padding: .6rem .9rem;
  border-radius: 8px; }
svg { max-width: 100%; height: auto; display: block; }
"""



def html_report(analysis: Mapping[str, Any]) -> str:
    """The report as one HTML file: inline style and SVG, nothing fetched, user text
    escaped (autoescaping)."""
    env = Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=True,
                      undefined=StrictUndefined)
    v = report_view(analysis)
    return env.get_template("experiment_report.html").render(
        v=v, css=_CSS, chart=confidence_sequence_svg(analysis),
        methods=_methods(v["comparisons"]))


def render_report(analysis: Mapping[str, Any], fmt: ReportFormat = "html") -> str:
    """``html_report`` or ``markdown_report`` by name."""
    if fmt == "md":
        return markdown_report(analysis)
    if fmt == "html":
        return html_report(analysis)
    raise ValueError(f"unknown report format {fmt!r}: html or md")
