"""The incremental refresh: logged interactions become exposures (with the logged
propensity), feedback on them becomes observations of the unit's arm; a second run adds
only what is new, never a row twice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from feedbackloop import experiments as ex
from feedbackloop.settings import Settings
from feedbackloop.store import Store
from feedbackloop.store.tables import experiment_exposures, experiment_observations

from .stored import DESIGN, log, shop


def _rows(store: Store, exp_id: int) -> tuple[list[Any], list[Any]]:
    x, o = experiment_exposures, experiment_observations
    with store.read() as conn:
        exposures = conn.execute(select(x.c.unit, x.c.arm, x.c.propensity)
                                 .where(x.c.experiment_id == exp_id).order_by(x.c.id)).all()
        obs = conn.execute(select(o.c.signal_id, o.c.unit, o.c.arm, o.c.value, o.c.feedback_id)
                           .where(o.c.experiment_id == exp_id).order_by(o.c.id)).all()
    return exposures, obs


def _interaction(k: int, arm: str | None, user: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": f"i{k}", "input": "q", "output": "a", "user_id": user,
            "experiment": "tone", "arm": arm, **extra}


def test_refresh_is_incremental_and_never_doubles(store: Store, settings: Settings) -> None:
    shop(store)
    design = {**DESIGN, "guardrails": [{"metric": "issue", "success": "solved",
                                        "allowed_change": 0.1}]}
    exp = ex.create_experiment(store, "shop", "tone", design=design)
    ex.start_experiment(store, "shop", "tone")
    log(store, settings, [
        _interaction(1, "control", "ann", propensity=0.25),
        _interaction(2, "treatment", "bob"),
        _interaction(3, "treatment", "ann"),  # ann keeps her first arm
        _interaction(4, "mystery", "cat"),  # not an arm of the design
        _interaction(5, "control", None),  # no user id: no unit
        {"id": "i6", "input": "q", "output": "a", "user_id": "dan"},  # not in the experiment
        {"id": "i7", "input": "q", "output": "a", "user_id": "eve", "experiment": "other",
         "arm": "control"},
    ], [
        {"id": "f1", "interaction_id": "i1", "signal": "thumbs", "value": True},
        {"id": "f2", "interaction_id": "i3", "signal": "thumbs", "value": False},
        {"id": "f3", "interaction_id": "i2", "signal": "thumbs", "value": True},
        {"id": "f4", "interaction_id": "i2", "signal": "issue", "value": "rude"},
        {"id": "f5", "interaction_id": "i1", "signal": "issue", "value": "solved"},
        {"id": "f6", "interaction_id": "i1", "signal": "rating", "value": 4},  # no metric
        {"id": "f7", "interaction_id": "i6", "signal": "thumbs", "value": True},
        {"id": "f8", "interaction_id": "i5", "signal": "thumbs", "value": True},
    ])
    first = ex.refresh(store, "shop", "tone")
    assert first == {"interactions": 5, "exposures": 2, "observations": 5,
                     "skipped_no_unit": 1, "skipped_unknown_arm": 1}
    exposures, obs = _rows(store, exp.id)
    key = settings.pseudonym_key_bytes()
    from feedbackloop.capture.prepare import pseudonymise

    ann, bob = pseudonymise(key, "ann"), pseudonymise(key, "bob")
    assert [(e.unit, e.arm, e.propensity) for e in exposures] == [(ann, 0, 0.25),
                                                                   (bob, 1, 0.5)]
    with store.read() as conn:
        from feedbackloop.capture.projects import get_signal

        thumbs = get_signal(conn, exp.project_id, "thumbs").id
        issue = get_signal(conn, exp.project_id, "issue").id
    fid = {f"f{k}": k for k in range(1, 11)}  # feedback ids follow the logging order
    # one unit row per unit (arm >= 0, the unit's mean); a unit seen twice also keeps each
    # observation (arm -1 - arm, with its feedback id)
    assert sorted((o.signal_id, o.unit, o.arm, o.value, o.feedback_id) for o in obs) == \
        sorted([(thumbs, ann, 0, 0.5, None),  # i3's feedback counts for ann's first arm
                (thumbs, ann, -1, 1.0, fid["f1"]), (thumbs, ann, -1, 0.0, fid["f2"]),
                (thumbs, bob, 1, 1.0, fid["f3"]), (issue, bob, 1, 0.0, fid["f4"]),
                (issue, ann, 0, 1.0, fid["f5"])])

    second = ex.refresh(store, "shop", "tone")
    assert second["interactions"] == second["exposures"] == second["observations"] == 0
    assert _rows(store, exp.id) == (exposures, obs)
    # looking again below the watermarks (what PostgreSQL does for late commits) copies
    # nothing twice
    again = ex.refresh(store, "shop", "tone", rescan=10**6)
    assert again["exposures"] == again["observations"] == 0
    assert _rows(store, exp.id) == (exposures, obs)

    # new rows: only they are copied, including feedback on an old interaction
    log(store, settings, [_interaction(8, "control", "fay")], [
        {"id": "f9", "interaction_id": "i8", "signal": "thumbs", "value": True},
        {"id": "f10", "interaction_id": "i2", "signal": "thumbs", "value": False}])
    third = ex.refresh(store, "shop", "tone", rescan=10**6)
    assert (third["interactions"], third["exposures"], third["observations"]) == (1, 1, 2)
    exposures3, obs3 = _rows(store, exp.id)
    assert exposures3[:2] == exposures
    fay = pseudonymise(key, "fay")
    assert sorted((o.unit, o.arm, o.value, o.feedback_id) for o in obs3
                  if o.signal_id == thumbs and o.unit in (bob, fay)) == sorted([
        (bob, 1, 0.5, None), (bob, -2, 1.0, fid["f3"]), (bob, -2, 0.0, fid["f10"]),
        (fay, 0, 1.0, fid["f9"])])
    stored = [o.feedback_id for o in obs3 if o.feedback_id is not None]
    assert sorted(stored) == sorted(fid[k] for k in ("f1", "f2", "f3", "f4", "f5", "f9",
                                                     "f10"))

    # the analysis averages per unit: bob (1, 0) counts once with 0.5
    analysis = ex.analyze(store, "shop", "tone")
    arms = {a["name"]: a for a in analysis["arms"]}
    assert (arms["treatment"]["n"], arms["treatment"]["mean"]) == (1, 0.5)
    assert (arms["control"]["n"], arms["control"]["mean"]) == (2, 0.75)
    assert (arms["control"]["exposed"], arms["treatment"]["exposed"]) == (2, 1)


def test_refresh_uses_exposures_from_assign(store: Store, settings: Settings) -> None:
    shop(store)
    exp = ex.create_experiment(store, "shop", "tone", design=DESIGN)
    ex.start_experiment(store, "shop", "tone")
    key = settings.pseudonym_key_bytes()
    arms = {u: ex.assign(store, "shop", "tone", u, pseudonym_key=key)["arm"]
            for u in ("u1", "u2", "u3")}
    # the SDK logs the served arm on the interaction too; feedback follows
    log(store, settings,
        [_interaction(k, arms[u], u) for k, u in enumerate(arms)],
        [{"id": f"f{k}", "interaction_id": f"i{k}", "signal": "thumbs", "value": k != 1}
         for k in range(3)])
    out = ex.refresh(store, "shop", "tone")
    assert (out["exposures"], out["observations"]) == (0, 3)  # exposed by assign already
    with store.read() as conn:
        n = conn.execute(select(func.count()).select_from(experiment_observations)
                         .where(experiment_observations.c.experiment_id == exp.id)).scalar()
    assert n == 3
