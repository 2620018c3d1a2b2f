"""A hand-made ANALYSIS DICT (the shape ``experiments.analyze`` returns, as the issue #6
spec fixes it) for rendering tests that should not depend on the statistics: two
treatment arms against control, one guardrail, a sequential path of three looks, planned
group-sequential looks, a stopping rule that fired, and user text that tries markup."""

from __future__ import annotations

import copy
from typing import Any

XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _comparison(arm: str, estimate: float, lo: float, hi: float, seq: tuple[float, float],
                p: float, seq_p: float) -> dict[str, Any]:
    return {
        "arm": arm, "control": "control", "kind": "proportion",
        "method": "Welch t (difference in proportions)",
        "absolute": {"estimate": estimate, "se": (hi - lo) / 3.92, "ci95": [lo, hi],
                     "ci": [lo, hi], "level": 0.95, "p_value": p, "df": 1998.0},
        "relative": {"estimate": estimate / 0.40, "se": (hi - lo) / 3.92 / 0.40,
                     "ci95": [lo / 0.40, hi / 0.40], "ci": [lo / 0.40, hi / 0.40],
                     "level": 0.95, "p_value": p},
        "sequential": {"method": "asymptotic-cs", "ci95": list(seq), "ci": list(seq),
                       "level": 0.95, "p_value": seq_p},
        "cuped": None,
        "adjusted_p_value": min(1.0, p * 2),
    }


def analysis(*, hypothesis: str = f"Shorter answers get better ratings {XSS}",
             status: str = "running") -> dict[str, Any]:
    """The fixture; every call returns a fresh copy."""
    design = {
        "unit": "user",
        "arms": [{"name": "control", "version": "v1", "weight": 0.5},
                 {"name": f"short {XSS}", "version": "v2", "weight": 0.25},
                 {"name": "terse", "version": None, "weight": 0.25}],
        "control": "control",
        "primary": {"metric": "helpful", "kind": "proportion", "higher_is_better": True},
        "guardrails": [{"metric": "latency_ok", "kind": "proportion",
                        "higher_is_better": True, "allowed_change": 0.02,
                        "relative": False}],
        "mde": 0.05, "relative": False, "alpha": 0.05, "power": 0.8, "sides": 2,
        "baseline": 0.40, "sd": None,
        "sequential": {"method": "asymptotic-cs", "tuning_n": None},
        "looks": [0.25, 0.5, 0.75, 1.0], "correction": "holm",
        "max_days": 28, "max_units": None,
        "planned": {"per_arm": 1534, "total": 4602,
                    "method": "two-proportion z-test (pooled), as R power.prop.test",
                    "units_per_day": 300.0, "expected_days": 15.3},
    }
    short = design["arms"][1]["name"]
    return copy.deepcopy({
        "experiment": {"name": "shorter-answers", "kind": "ab", "status": status,
                       "hypothesis": hypothesis, "component": "generation",
                       "design": design, "started_at": "2026-11-01T09:00:00+00:00",
                       "stopped_at": None, "supersedes": "shorter-answers-draft"},
        "as_of": "2026-11-10T12:00:00+00:00",
        "planned": design["planned"],
        "arms": [
            {"name": "control", "version": "v1", "weight": 0.5, "exposed": 1010, "n": 1000,
             "mean": 0.40, "sd": 0.49},
            {"name": short, "version": "v2", "weight": 0.25, "exposed": 495, "n": 490,
             "mean": 0.46, "sd": 0.498},
            {"name": "terse", "version": None, "weight": 0.25, "exposed": 505, "n": 500,
             "mean": 0.39, "sd": 0.488},
        ],
        "srm": {"p_value": 0.84, "chi2": 0.35, "flagged": False,
                "observed": [1010, 495, 505], "expected": [1005.0, 502.5, 502.5]},
        "primary": {"metric": "helpful", "kind": "proportion", "higher_is_better": True,
                    "comparisons": [
                        _comparison(short, 0.06, 0.007, 0.113, (-0.01, 0.13), 0.026, 0.21),
                        _comparison("terse", -0.01, -0.063, 0.043, (-0.08, 0.06), 0.71,
                                    1.0)]},
        "guardrails": [{"metric": "latency_ok", "allowed_change": 0.02, "relative": False,
                        "status": "at_risk", "comparisons": [
                            _comparison(short, -0.01, -0.04, 0.02, (-0.06, 0.04), 0.5,
                                        1.0),
                            {**_comparison("terse", 0.0, 0.0, 0.0, (0.0, 0.0), 1.0, 1.0),
                             "absolute": {"estimable": False,
                                          "reason": "zero variance in both arms"},
                             "relative": {"estimable": False,
                                          "reason": "zero variance in both arms"},
                             "sequential": {"estimable": False,
                                            "reason": "zero variance in both arms"}}]}],
        "bayes": [{"arm": "control", "p_best": 0.02, "expected_loss": 0.061,
                   "method": "Beta(1+s, 1+f) posteriors, 20,000 draws"},
                  {"arm": short, "p_best": 0.96, "expected_loss": 0.0004,
                   "method": "Beta(1+s, 1+f) posteriors, 20,000 draws"},
                  {"arm": "terse", "p_best": 0.02, "expected_loss": 0.071,
                   "method": "Beta(1+s, 1+f) posteriors, 20,000 draws"}],
        "sequential_path": [
            {"arm": short, "at": "2026-11-03", "n": 500, "estimate": 0.08,
             "ci": [-0.08, 0.24]},
            {"arm": short, "at": "2026-11-06", "n": 1000, "estimate": 0.07,
             "ci": [-0.03, 0.17]},
            {"arm": short, "at": "2026-11-10", "n": 1490, "estimate": 0.06,
             "ci": [-0.01, 0.13]},
            {"arm": "terse", "at": "2026-11-03", "n": 510, "estimate": 0.01,
             "ci": [-0.15, 0.17]},
            {"arm": "terse", "at": "2026-11-06", "n": 1005, "estimate": -0.02,
             "ci": [-0.12, 0.08]},
            {"arm": "terse", "at": "2026-11-10", "n": 1500, "estimate": -0.01,
             "ci": [-0.08, 0.06]},
        ],
        "group_sequential": {"looks": [
            {"fraction": 0.25, "boundary": 4.3326, "z": 1.1},
            {"fraction": 0.5, "boundary": 2.9631, "z": 1.9},
            {"fraction": 0.75, "boundary": 2.3590, "z": None},
            {"fraction": 1.0, "boundary": 2.0141, "z": None}]},
        "stopping": {"fired": [], "recommendation": "continue",
                     "details": {"days": 9.1, "max_days": 28, "fraction_of_planned": 0.32}},
        "decision": None,
        "correction": "holm",
        "notes": ["latency_ok: terse against control is not estimable: zero variance in "
                  "both arms.", f"Coverage of helpful: 99% of exposed units rated {XSS}."],
    })


def decided(rationale: str = f"Ship it {XSS}") -> dict[str, Any]:
    """The fixture after a decision to ship the short arm."""
    a = analysis(status="decided")
    a["decision"] = {"decision": "ship", "arm": a["arms"][1]["name"],
                     "rationale": rationale, "decided_by": "max",
                     "created_at": "2026-11-10T12:30:00+00:00"}
    return a
