"""analyze() on SQLite and PostgreSQL: the per-unit SQL aggregates give exactly what the
statistics functions give on the same per-unit values; SRM is flagged on a skewed log; an
arm with no units is "not estimable", not a crash; looks draw the sequential path; a
decision keeps the analysis it was made on."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from feedbackloop import experiments as ex
from feedbackloop.capture.projects import get_signal
from feedbackloop.errors import Conflict, InvalidInput
from feedbackloop.stats.experiments import (
    ArmSummary,
    SequentialConfig,
    adjust_p_values,
    compare,
    srm_test,
)
from feedbackloop.store import Store
from feedbackloop.store.tables import experiment_decisions, experiment_exposures
from feedbackloop.store.tables import experiment_observations as obs_table

from .stored import DESIGN, shop

KEYS = {"experiment", "as_of", "planned", "arms", "srm", "primary", "guardrails", "bayes",
        "sequential_path", "group_sequential", "stopping", "decision", "correction", "notes"}


def _fill(store: Store, exp: ex.Experiment, units: dict[str, Any], *,
          signal: str = "thumbs") -> None:
    """Exposures for every unit; observations ``values`` (several per unit allowed)."""
    with store.read() as conn:
        sid = get_signal(conn, exp.project_id, signal).id
    now = datetime.now(UTC)
    with store.transaction() as conn:
        if signal == exp.design["primary"]["metric"]:
            conn.execute(experiment_exposures.insert(), [
                {"experiment_id": exp.id, "unit": u, "arm": d["arm"], "propensity": 0.5,
                 "covariate": d.get("x"), "exposed_at": now} for u, d in units.items()])
        # the refresh's shape: a unit row holding the unit's mean, and each observation
        # apart (arm -1 - arm) when there are several
        rows = [{"experiment_id": exp.id, "signal_id": sid, "unit": u, "arm": d["arm"],
                 "value": float(np.mean(d["values"])), "observed_at": now,
                 "feedback_id": None} for u, d in units.items() if len(d["values"])]
        rows += [{"experiment_id": exp.id, "signal_id": sid, "unit": u, "arm": -1 - d["arm"],
                  "value": float(v), "observed_at": now, "feedback_id": None}
                 for u, d in units.items() if len(d["values"]) > 1 for v in d["values"]]
        if rows:
            conn.execute(obs_table.insert(), rows)


def _units(rng: np.random.Generator, n: int, means: list[float], *, binary: bool,
           covariate: bool = False) -> dict[str, Any]:
    out = {}
    for i in range(n):
        arm = int(rng.integers(len(means)))
        k = int(rng.integers(1, 4))  # one to three observations per unit
        x = float(rng.normal(3, 1))
        if binary:
            values = (rng.random(k) < means[arm]).astype(float)
        else:
            values = np.round(means[arm] + (0.8 * (x - 3) if covariate else 0)
                              + rng.normal(0, 1, k), 3)
        out[f"u{i:05d}"] = {"arm": arm, "values": list(values),
                            "x": x if covariate else None}
    return out


def _expected(units: dict[str, Any], names: list[str]) -> list[ArmSummary]:
    per_arm: list[list[float]] = [[] for _ in names]
    for d in units.values():
        if d["values"]:
            per_arm[d["arm"]].append(float(np.mean(d["values"])))
    return [ArmSummary.from_values(nm, v) if v else ArmSummary(nm, 0, 0.0, 0.0)
            for nm, v in zip(names, per_arm, strict=True)]


def _same(got: Any, want: Any, path: str = "") -> None:
    if isinstance(want, dict):
        assert set(got) >= set(want), path
        for k, v in want.items():
            _same(got[k], v, f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


def test_analysis_equals_the_statistics_on_the_same_unit_values(store: Store) -> None:
    shop(store)
    design = copy.deepcopy(DESIGN)
    design["arms"] = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    design["correction"] = "bh"
    exp = ex.create_experiment(store, "shop", "t", design=design)
    ex.start_experiment(store, "shop", "t")
    rng = np.random.default_rng(7)
    units = _units(rng, 1500, [0.30, 0.36, 0.31], binary=True)
    ratings = {u: {"arm": d["arm"], "values": list(rng.integers(1, 6, 2).astype(float))}
               for u, d in list(units.items())[:900]}
    _fill(store, exp, units)
    _fill(store, exp, ratings, signal="rating")
    got = ex.analyze(store, "shop", "t")
    assert set(got) == KEYS
    json.dumps(got, allow_nan=False)  # JSON-clean: no NaN anywhere

    names = ["a", "b", "c"]
    want = _expected(units, names)
    for row, s in zip(got["arms"], want, strict=True):
        assert (row["name"], row["n"]) == (s.name, s.n)
        assert row["mean"] == pytest.approx(s.mean, rel=1e-12)
        assert row["sd"] == pytest.approx(s.sd, rel=1e-9)
    exposed = np.bincount([d["arm"] for d in units.values()], minlength=3).tolist()
    assert [r["exposed"] for r in got["arms"]] == exposed
    _same(got["srm"], srm_test(exposed, [1 / 3] * 3).to_dict())

    config = SequentialConfig(method="asymptotic-cs",
                              tuning_n=exp.design["planned"]["total"])
    primary = [compare(want[0], want[i], kind="proportion", sequential=config).to_dict()
               for i in (1, 2)]
    guard_summ = _expected(ratings, names)
    guard = [compare(guard_summ[0], guard_summ[i], kind="mean", sequential=config).to_dict()
             for i in (1, 2)]
    p = [c["absolute"]["p_value"] for c in primary + guard]
    adjusted = adjust_p_values(p, "bh")
    for g, w, q in zip(got["primary"]["comparisons"], primary, adjusted[:2], strict=True):
        _same(g, w)
        assert g["adjusted_p_value"] == pytest.approx(q)
    for g, w, q in zip(got["guardrails"][0]["comparisons"], guard, adjusted[2:], strict=True):
        _same(g, w)
        assert g["adjusted_p_value"] == pytest.approx(q)
    assert got["guardrails"][0]["status"] in ("ok", "at_risk", "breached")
    assert {b["arm"] for b in got["bayes"]} == set(names)
    assert sum(b["p_best"] for b in got["bayes"]) == pytest.approx(1)
    assert got["stopping"]["recommendation"] in ("stop", "continue")
    assert got["decision"] is None and got["correction"] == "bh"
    assert any("covers 1,500 of 1,500 exposed units" in n for n in got["notes"])
    # the same analysis twice: identical but for the time (the Bayesian draws are seeded)
    again = ex.analyze(store, "shop", "t")
    assert {**again, "as_of": None, "sequential_path": None} == \
        {**got, "as_of": None, "sequential_path": None}


def test_cuped_uses_the_exposure_covariates(store: Store) -> None:
    shop(store)
    design = {**DESIGN, "primary": {"metric": "rating"}, "guardrails": [], "sd": 1.0,
              "mde": 0.2, "cuped": True}
    exp = ex.create_experiment(store, "shop", "c", design=design)
    ex.start_experiment(store, "shop", "c")
    units = _units(np.random.default_rng(3), 800, [3.0, 3.2], binary=False, covariate=True)
    _fill(store, exp, units, signal="rating")
    got = ex.analyze(store, "shop", "c")
    per_arm: list[tuple[list[float], list[float]]] = [([], []), ([], [])]
    for d in units.values():
        per_arm[d["arm"]][0].append(float(np.mean(d["values"])))
        per_arm[d["arm"]][1].append(d["x"])
    want = [ArmSummary.from_values(nm, ys, covariate=xs)
            for nm, (ys, xs) in zip(["control", "treatment"], per_arm, strict=True)]
    config = SequentialConfig(tuning_n=exp.design["planned"]["total"])
    expected = compare(want[0], want[1], kind="mean", cuped=True, sequential=config)
    (comp,) = got["primary"]["comparisons"]
    _same(comp, expected.to_dict())
    assert comp["cuped"]["variance_reduction"] > 0.2


def test_srm_flagged_on_a_skewed_log(store: Store) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "s", design=DESIGN)
    ex.start_experiment(store, "shop", "s")
    units = {f"u{i}": {"arm": 0 if i % 10 < 6 else 1, "values": [i % 3 == 0]}
             for i in range(4000)}  # 60 / 40 where 50 / 50 was planned
    _fill(store, exp, units)
    got = ex.analyze(store, "shop", "s")
    assert got["srm"]["flagged"] is True and got["srm"]["p_value"] < 1e-10
    assert got["srm"]["observed"] == [2400, 1600]
    assert any("sample ratio mismatch" in n for n in got["notes"])


def test_arm_without_units_is_not_estimable(store: Store) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "e", design=DESIGN)
    got = ex.analyze(store, "shop", "e")  # nothing at all yet
    assert set(got) == KEYS
    (comp,) = got["primary"]["comparisons"]
    assert comp["absolute"] == {"estimable": False,
                                "reason": "arm 'control' has no units with primary "
                                          "metric 'thumbs'"}
    assert got["srm"]["p_value"] is None and got["bayes"] == []
    ex.start_experiment(store, "shop", "e")
    _fill(store, exp, {f"u{i}": {"arm": 0, "values": [i % 2]} for i in range(50)})
    got = ex.analyze(store, "shop", "e")
    assert got["arms"][1] == {"name": "treatment", "version": None, "weight": 0.5,
                              "exposed": 0, "n": 0, "mean": None, "sd": None}
    assert any("arm 'treatment' has no units with the primary metric 'thumbs': not "
               "estimable" in n for n in got["notes"])
    assert got["primary"]["comparisons"][0]["adjusted_p_value"] is None
    json.dumps(got, allow_nan=False)
    # all successes in both arms: zero variance, an honest reason rather than NaN
    same = ex.create_experiment(store, "shop", "same", design=DESIGN)
    _fill(store, same, {f"v{i}": {"arm": i % 2, "values": [1]} for i in range(60)})
    got = ex.analyze(store, "shop", "same")
    (comp,) = got["primary"]["comparisons"]
    assert comp["absolute"]["estimable"] is False
    assert "zero variance" in comp["absolute"]["reason"]
    assert got["arms"][0]["sd"] == 0.0
    json.dumps(got, allow_nan=False)


def test_looks_draw_the_sequential_path_and_group_sequential_boundaries(store: Store
                                                                        ) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "g", design={**DESIGN, "baseline": 0.3,
                                                          "mde": 0.1,
                                                          "looks": [0.5, 1.0]})
    ex.start_experiment(store, "shop", "g")
    rng = np.random.default_rng(1)
    total = exp.design["planned"]["total"]
    first = _units(rng, total // 2, [0.3, 0.4], binary=True)
    _fill(store, exp, first)
    one = ex.analyze(store, "shop", "g", record_look=True)
    ex.analyze(store, "shop", "g", record_look=True)  # the same sample: not a new look
    more = {f"x{k}": d for k, d in _units(rng, total // 2, [0.3, 0.4], binary=True).items()}
    _fill(store, exp, more)
    two = ex.analyze(store, "shop", "g", record_look=True)
    path = two["sequential_path"]
    assert [pt["n"] for pt in path] == [sum(a["n"] for a in one["arms"]),
                                        sum(a["n"] for a in two["arms"])]
    widths = [pt["ci"][1] - pt["ci"][0] for pt in path]
    assert widths[1] < widths[0]  # the interval tightens as data arrives
    looks = two["group_sequential"]["looks"]
    assert [round(lk["fraction"], 2) for lk in looks] == [
        round(min(1.0, pt["n"] / total), 2) for pt in path]
    assert looks[0]["boundary"] > looks[1]["boundary"] > 1.9  # O'Brien-Fleming shape
    assert set(two["stopping"]) >= {"fired", "recommendation", "details"}


def test_decision_keeps_its_analysis(store: Store) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "d", design=DESIGN)
    with pytest.raises(Conflict):
        ex.decide(store, "shop", "d", "ship", "too early", arm="treatment")
    ex.start_experiment(store, "shop", "d")
    _fill(store, exp, _units(np.random.default_rng(2), 300, [0.3, 0.5], binary=True))
    for kwargs, field in [({"decision": "launch", "rationale": "x"}, "decision"),
                          ({"decision": "ship", "rationale": " "}, "rationale"),
                          ({"decision": "ship", "rationale": "x"}, "arm"),
                          ({"decision": "ship", "rationale": "x", "arm": "z"}, "arm")]:
        with pytest.raises(InvalidInput) as err:
            ex.decide(store, "shop", "d", **kwargs)
        assert err.value.details["field"] == field
    before = ex.analyze(store, "shop", "d")
    made = ex.decide(store, "shop", "d", "ship", "treatment wins on thumbs",
                     arm="treatment", decided_by="ann")
    assert (made["decision"], made["arm"], made["decided_by"]) == ("ship", "treatment",
                                                                   "ann")
    with store.read() as conn:
        row = conn.execute(select(experiment_decisions)).one()
        status = ex.get_experiment(conn, "shop", "d").status
    assert status == "decided"
    assert row.analysis["arms"] == before["arms"]
    assert row.analysis["primary"] == before["primary"]
    after = ex.analyze(store, "shop", "d")
    assert after["decision"] == made and after["experiment"]["status"] == "decided"
    with pytest.raises(Conflict):
        ex.decide(store, "shop", "d", "abandon", "changed my mind")
