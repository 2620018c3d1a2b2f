"""Off-policy evaluation from stored logs: what a candidate policy would have earned, from
the decisions a bandit logged or the exposures of an A/B experiment, each with the
propensity it was served with.

The candidate (*target*) is either a fixed split ``{arm: probability}`` over the logged arms
(a toggle-like allocation; arms left out get 0) or a callable given each row's context
(``bandit_decisions.context``; ``{"unit": ...}`` for an A/B exposure) that returns such a
mapping. The estimators are :func:`feedbackloop.stats.offpolicy.evaluate` (IPS, SNIPS, DM,
DR with percentile-bootstrap intervals and the effective sample size). DM and DR need a
reward model: here it is each arm's mean logged reward (no context), fitted on the same log
— say so when you report them.

Rows: a bandit's rewarded decisions (arm, reward, propensity); an A/B experiment's exposed
units that have at least one observation of the metric (the unit's mean value is its
reward; the exposure's propensity). Units without an observation are left out and
counted in the notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from ..capture.projects import Project, get_project
from ..errors import InvalidInput, NotFound
from ..stats.offpolicy import OffPolicyInputError, OffPolicyLog, evaluate
from ..store import Store
from ..store.tables import (
    bandit_decisions,
    experiment_exposures,
    experiment_observations,
    experiments,
    signals,
)

__all__ = ["MAX_BOOTSTRAP", "Target", "estimate_stored", "target_split"]

MAX_BOOTSTRAP = 10_000
Target = Mapping[str, float] | Callable[[Mapping[str, Any] | None], Mapping[str, float]]


def target_split(target: Mapping[str, Any], arms: list[str], *,
                 field: str = "target") -> np.ndarray:
    """``{arm: probability}`` as a vector over ``arms``: unknown arms, negative or
    non-numeric values and a total other than 1 are refused, naming the arm."""
    if not isinstance(target, Mapping) or not target:
        raise InvalidInput(f"{field} must map arm names to probabilities", field=field)
    vec = np.zeros(len(arms))
    index = {a: i for i, a in enumerate(arms)}
    for arm, p in target.items():
        if arm not in index:
            raise InvalidInput(f"{field}: no arm {arm!r} (arms: {', '.join(arms)})",
                               field=field, arm=str(arm)[:200])
        if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p) \
                or not 0.0 <= p <= 1.0:
            raise InvalidInput(f"{field}: the probability of {arm!r} must be a number in "
                               f"[0, 1], got {p!r}", field=field, arm=arm)
        vec[index[arm]] = float(p)
    total = float(vec.sum())
    if abs(total - 1.0) > 1e-6:
        raise InvalidInput(f"{field}: probabilities sum to {total:.6g}, not 1", field=field)
    return vec / total


def _project(conn: Connection, project: Project | str) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _bandit_rows(conn: Connection, experiment_id: int) -> tuple[Any, ...]:
    d = bandit_decisions
    rows = conn.execute(select(d.c.arm, d.c.reward, d.c.propensity, d.c.context)
                        .where(d.c.experiment_id == experiment_id, d.c.reward.is_not(None))
                        .order_by(d.c.id)).all()
    unrewarded = conn.execute(select(func.count()).where(
        d.c.experiment_id == experiment_id, d.c.reward.is_(None))).scalar_one()
    return ([r.arm for r in rows], [r.reward for r in rows], [r.propensity for r in rows],
            [r.context for r in rows], int(unrewarded))


def _ab_rows(conn: Connection, project_id: int, experiment_id: int,
             metric: str) -> tuple[Any, ...]:
    signal_id = conn.execute(select(signals.c.id).where(
        signals.c.project_id == project_id, signals.c.name == metric)).scalar()
    if signal_id is None:
        raise NotFound(f"no signal {metric!r} in this project", field="metric")
    o, x = experiment_observations, experiment_exposures
    per_unit = (select(o.c.unit, func.avg(o.c.value).label("value"))
                .where(o.c.experiment_id == experiment_id, o.c.signal_id == signal_id)
                .group_by(o.c.unit).subquery())
    rows = conn.execute(select(x.c.unit, x.c.arm, x.c.propensity, per_unit.c.value)
                        .join(per_unit, per_unit.c.unit == x.c.unit)
                        .where(x.c.experiment_id == experiment_id).order_by(x.c.id)).all()
    exposed = conn.execute(select(func.count()).where(
        x.c.experiment_id == experiment_id)).scalar_one()
    return ([r.arm for r in rows], [float(r.value) for r in rows],
            [r.propensity for r in rows], [{"unit": r.unit} for r in rows],
            int(exposed) - len(rows))


def estimate_stored(store: Store, project: Project | str, name: str, target: Target, *,
                    metric: str | None = None, bootstrap: int = 1000,
                    seed: int = 0) -> dict[str, Any]:
    """Estimate ``target`` on the stored log of the bandit or A/B experiment ``name``.

    ``metric``: for an A/B experiment, the signal whose per-unit mean is the reward
    (default: the design's primary metric); bandits use their rewards. Returns
    :func:`~feedbackloop.stats.offpolicy.evaluate`'s dict plus ``{"experiment", "kind",
    "arms", "target", "reward_model", "notes"}``."""
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) \
            or not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise InvalidInput(f"bootstrap must be an integer in [0, {MAX_BOOTSTRAP:,}]",
                           field="bootstrap")
    with store.read() as conn:
        p = _project(conn, project)
        e = experiments
        row = conn.execute(select(e).where(e.c.project_id == p.id, e.c.name == name)).first()
        if row is None:
            raise NotFound(f"no experiment or bandit {name!r} in project {p.name!r}",
                           field="experiment")
        arms = [a["name"] for a in row.design.get("arms", [])]
        if row.kind == "bandit":
            actions, rewards, props, contexts, left_out = _bandit_rows(conn, row.id)
            what = "decisions without a reward yet"
        else:
            chosen = metric or (row.design.get("primary") or {}).get("metric")
            if not chosen:
                raise InvalidInput("name the metric: the design has no primary metric",
                                   field="metric")
            actions, rewards, props, contexts, left_out = _ab_rows(conn, p.id, row.id,
                                                                    chosen)
            what = "exposed units without an observation of the metric"
    k = len(arms)
    fixed = None if callable(target) else target_split(target, arms)
    if not actions:
        raise InvalidInput(f"{name!r} has no logged rows with a reward to evaluate on",
                           field="experiment")
    if fixed is None:
        assert callable(target)
        vectors = np.stack([target_split(target(c), arms) for c in contexts])
        described: Any = "a callable of the context"
    else:
        vectors = np.broadcast_to(fixed, (len(actions), k))
        described = {a: float(v) for a, v in zip(arms, fixed, strict=True)}
    acts = np.asarray(actions, dtype=np.int64)
    rew = np.asarray(rewards, dtype=np.float64)
    sums = np.bincount(acts, weights=rew, minlength=k)
    counts = np.bincount(acts, minlength=k)
    means = np.divide(sums, counts, out=np.full(k, float(rew.mean())), where=counts > 0)
    predicted = np.broadcast_to(means, (len(actions), k))
    try:
        log = OffPolicyLog.of(acts, rew, props, vectors, predicted)
    except OffPolicyInputError as exc:
        raise InvalidInput(f"stored log of {name!r}: {exc}", field=exc.field) from None
    result = evaluate(log, rng=np.random.default_rng(seed), bootstrap=bootstrap)
    notes = list(result.pop("notes"))
    if left_out:
        notes.insert(0, f"{left_out:,} {what} left out.")
    notes.append("DM and DR use each arm's mean logged reward as the reward model (no "
                 "context), fitted on the same log.")
    return {"experiment": name, "kind": row.kind, "arms": arms, "target": described,
            **result, "reward_model": {a: float(m) for a, m in zip(arms, means, strict=True)},
            "notes": notes}
