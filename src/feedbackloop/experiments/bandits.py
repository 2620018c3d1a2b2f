"""Bandits: create one, choose an arm (logged with its propensity), reward a decision,
read its state.

A bandit is an ``experiments`` row of kind ``bandit`` (status ``running`` from creation)
whose design is ``{"arms": [{"name", "version"}], "policy": "thompson" | "ucb",
"reward_kind": "binary" | "mean", "reward_signal", "floor"}``. Its state is one
``bandit_arms`` row per arm (rewarded plays, sum and sum of squares of the rewards); every
decision is a ``bandit_decisions`` row with the arm, the probability it was played with and
the policy's whole distribution, and later its reward.

**Exploration floor.** Each arm keeps at least ``floor`` probability (:func:`~feedbackloop.
stats.bandits.with_floor`), so the policy never stops learning about an arm and every
decision stays usable for off-policy evaluation. The default comes from the project's risk
tier — low 0.01, medium 0.05, high 0.10: the higher the stakes, the more evidence is kept
on every arm — and a bandit may raise it (up to 1/K) but never set it below its tier's.

**Speed.** :func:`choose` answers from an in-process cache of the bandit's design and its
probability vector, keyed by (database, project, bandit). Within ``ttl`` seconds of the
last check a call only draws an arm and inserts the decision; after that one query reads
the arms' state and the probabilities are recomputed only when it changed. A reward given
through this process updates the entry at once (the reward pays for recomputing the
probabilities, not the next choice); rewards given elsewhere are seen within ``ttl``.
Probabilities are thus at most ``ttl`` old — a batched policy update, which Thompson
sampling tolerates well (Chapelle & Li 2011) — and the logged propensity is always the
probability the arm was actually drawn with.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection, event, func, select
from sqlalchemy.exc import IntegrityError

from ..capture.prepare import checked_text, pseudonymise, sqlite_timestamp
from ..capture.projects import Project, get_project
from ..errors import Conflict, InvalidInput, NotFound
from ..governance import audit
from ..governance.policy import check_exposure, policy_for
from ..stats import bandits as policy_math
from ..stats.intervals import wilson_interval
from ..store import Store, as_utc, utcnow
from ..store.tables import (
    bandit_arms,
    bandit_decisions,
    experiments,
    model_versions,
    signals,
)

__all__ = [
    "CACHE_TTL_SECONDS",
    "TIER_FLOORS",
    "Bandit",
    "bandit_status",
    "choose",
    "clear_bandit_cache",
    "create_bandit",
    "get_bandit",
    "reward",
]

TIER_FLOORS = {"low": 0.01, "medium": 0.05, "high": 0.10}
"""The default (and least) exploration floor of a bandit, by the project's risk tier."""
CACHE_TTL_SECONDS = 1.0
"""How long :func:`choose` trusts its cached probabilities before re-reading the state."""
MAX_CONTEXT_BYTES = 16_384
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,99}")
_ARM = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_REWARD_SIGNAL_TYPES = {"binary": ("binary",), "mean": ("binary", "ordinal", "numeric")}


@dataclass(frozen=True)
class Bandit:
    id: int
    project_id: int
    name: str
    status: str
    hypothesis: str
    component: str | None
    arms: list[dict[str, Any]]
    policy: str
    reward_kind: str
    reward_signal: str | None
    floor: float
    created_by: str
    created_at: datetime
    stopped_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": "bandit", "status": self.status,
                "hypothesis": self.hypothesis, "component": self.component,
                "arms": [dict(a) for a in self.arms], "policy": self.policy,
                "reward_kind": self.reward_kind, "reward_signal": self.reward_signal,
                "floor": self.floor, "created_by": self.created_by,
                "created_at": self.created_at.isoformat(),
                "stopped_at": self.stopped_at.isoformat() if self.stopped_at else None}


def _project(conn: Connection, project: Project | str | int) -> Project:
    return project if isinstance(project, Project) else get_project(conn, project)


def _bandit(row: Any) -> Bandit:
    d = row.design
    return Bandit(id=row.id, project_id=row.project_id, name=row.name, status=row.status,
                  hypothesis=row.hypothesis, component=row.component,
                  arms=list(d["arms"]), policy=d["policy"], reward_kind=d["reward_kind"],
                  reward_signal=d.get("reward_signal"), floor=float(d["floor"]),
                  created_by=row.created_by,
                  created_at=as_utc(row.created_at),  # type: ignore[arg-type]
                  stopped_at=as_utc(row.stopped_at))


def get_bandit(conn: Connection, project: Project | str, name: str) -> Bandit:
    p = _project(conn, project)
    e = experiments
    row = conn.execute(select(e).where(e.c.project_id == p.id, e.c.name == name)).first()
    if row is None or row.kind != "bandit":
        what = "no bandit" if row is None else "not a bandit:"
        raise NotFound(f"{what} {name!r} in project {p.name!r}", field="name", bandit=name)
    return _bandit(row)


# -- create -------------------------------------------------------------------------------

def _text(value: Any, field: str, limit: int) -> str:
    return checked_text(value, field, limit, none_as_empty=False)


def _check_arms(arms: Any) -> list[dict[str, Any]]:
    if not isinstance(arms, Sequence) or isinstance(arms, str | bytes):
        raise InvalidInput("arms must be a list of {name, version}", field="arms")
    if len(arms) < 2:
        raise InvalidInput(f"a bandit needs at least 2 arms, got {len(arms)}", field="arms")
    if len(arms) > 100:
        raise InvalidInput("at most 100 arms", field="arms")
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, arm in enumerate(arms):
        where = f"arms[{i}]"
        if isinstance(arm, str):
            arm = {"name": arm}
        if not isinstance(arm, Mapping):
            raise InvalidInput(f"{where} must be an object {{name, version}}", field=where)
        extra = set(arm) - {"name", "version"}
        if extra:
            raise InvalidInput(f"{where}: unknown key {sorted(extra)[0]!r} (an arm has name "
                               "and version)", field=f"{where}.{sorted(extra)[0]}")
        name = _text(arm.get("name"), f"{where}.name", 200)
        if not _ARM.fullmatch(name) or name != name.strip():
            raise InvalidInput(f"{where}.name must be 1-200 printable characters without "
                               "surrounding spaces", field=f"{where}.name")
        if name in seen:
            raise InvalidInput(f"{where}: arm name {name!r} appears twice",
                               field=f"{where}.name")
        seen.add(name)
        version = arm.get("version")
        if version is not None:
            version = _text(version, f"{where}.version", 200)
        clean.append({"name": name, "version": version})
    return clean


def _check_floor(floor: float | None, tier: str, k: int, least: float | None = None) -> float:
    if least is None:
        least = TIER_FLOORS.get(tier, TIER_FLOORS["high"])
    if floor is None:
        floor = least
    if isinstance(floor, bool) or not isinstance(floor, int | float) \
            or not math.isfinite(floor):
        raise InvalidInput("floor must be a number", field="floor")
    floor = float(floor)
    if floor < least - 1e-12:
        raise InvalidInput(f"floor {floor:g} is below {least:g}, the least exploration a "
                           f"{tier}-risk project keeps on every arm", field="floor",
                           risk_tier=tier)
    if floor > 1.0 / k + 1e-12:
        hint = f" (a {tier}-risk project allows at most {int(1 / least)} arms)" \
            if least > 1.0 / k else ""
        raise InvalidInput(f"floor {floor:g} is above 1/K = {1.0 / k:.4g} for {k} arms"
                           f"{hint}", field="floor")
    return floor


def create_bandit(store: Store, project: Project | str, name: str, *,
                  arms: Sequence[Mapping[str, Any] | str], policy: str = "thompson",
                  reward_kind: str = "binary", reward_signal: str | None = None,
                  floor: float | None = None, hypothesis: str = "",
                  component: str | None = None, created_by: str = "") -> Bandit:
    """A running bandit over ``arms`` (``{"name", "version"}``; a plain string is a name).

    ``policy``: ``thompson`` or ``ucb``; ``reward_kind``: ``binary`` (rewards 0/1: Beta-
    Bernoulli Thompson, UCB1) or ``mean`` (any number: normal-inverse-gamma Thompson,
    UCB1-NORMAL). ``reward_signal`` names the project signal the rewards stand for (checked
    to exist and to fit the kind). ``floor`` defaults to :data:`TIER_FLOORS` of the
    project's risk tier and may be raised up to 1/K, not lowered. With ``component``, every
    arm's version must be a registered version of it."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("a bandit name is 1-100 letters, digits or _ . : @ + -, starting "
                           f"with a letter or digit, not {name!r}", field="name")
    clean = _check_arms(arms)
    if policy not in policy_math.POLICIES:
        raise InvalidInput(f"policy must be one of {', '.join(policy_math.POLICIES)}, not "
                           f"{policy!r}", field="policy")
    if reward_kind not in policy_math.REWARD_KINDS:
        raise InvalidInput(f"reward_kind must be one of "
                           f"{', '.join(policy_math.REWARD_KINDS)}, not {reward_kind!r}",
                           field="reward_kind")
    _text(hypothesis, "hypothesis", 10_000)
    if reward_signal is not None:
        _text(reward_signal, "reward_signal", 100)
    if component is not None:
        _text(component, "component", 50)
    try:
        with store.transaction() as conn:
            p = _project(conn, project)
            # The risk-tier policy (project or component) sets the least floor; it defaults
            # to TIER_FLOORS and is raised or lowered by a policy override.
            tier_policy = policy_for(conn, p, component)
            chosen_floor = _check_floor(floor, tier_policy["risk_tier"], len(clean),
                                        tier_policy["bandit_exploration_cap"])
            if reward_signal is not None:
                kind = conn.execute(select(signals.c.type).where(
                    signals.c.project_id == p.id, signals.c.name == reward_signal)).scalar()
                if kind is None:
                    raise NotFound(f"no signal {reward_signal!r} in project {p.name!r}",
                                   field="reward_signal")
                if kind not in _REWARD_SIGNAL_TYPES[reward_kind]:
                    raise InvalidInput(
                        f"signal {reward_signal!r} is {kind}: a metric of the wrong type for "
                        f"{reward_kind} rewards (use "
                        f"{' or '.join(_REWARD_SIGNAL_TYPES[reward_kind])})",
                        field="reward_signal")
            if component is not None:
                known = set(conn.execute(select(model_versions.c.name).where(
                    model_versions.c.project_id == p.id,
                    model_versions.c.component == component)).scalars())
                for i, arm in enumerate(clean):
                    if arm["version"] is not None and arm["version"] not in known:
                        raise NotFound(f"arms[{i}]: no version {arm['version']!r} of "
                                       f"component {component!r}", field=f"arms[{i}].version")
                check_exposure(conn, p, component, [a["version"] for a in clean],
                               what=f"bandit {name!r}")
            e = experiments
            if conn.execute(select(e.c.id).where(e.c.project_id == p.id,
                                                 e.c.name == name)).first() is not None:
                raise Conflict(f"an experiment named {name!r} exists already in project "
                               f"{p.name!r}", field="name")
            design = {"arms": clean, "policy": policy, "reward_kind": reward_kind,
                      "reward_signal": reward_signal, "floor": chosen_floor}
            now = utcnow()
            new_id = int(conn.execute(e.insert().values(
                project_id=p.id, name=name, kind="bandit", status="running",
                hypothesis=hypothesis, component=component, design=design,
                design_hash=hashlib.sha256(orjson.dumps(
                    design, option=orjson.OPT_SORT_KEYS)).hexdigest(),
                salt=secrets.token_hex(16), created_by=created_by[:100], created_at=now,
                started_at=now)).inserted_primary_key[0])  # type: ignore[index]
            conn.execute(bandit_arms.insert(), [
                {"experiment_id": new_id, "arm": i, "n": 0, "reward_sum": 0.0,
                 "reward_sumsq": 0.0, "updated_at": now} for i in range(len(clean))])
            audit.record(conn, actor=created_by or "system", action="bandit.create",
                         entity_kind="experiment", entity_id=new_id, project_id=p.id,
                         after={"name": name, "component": component, **design})
            row = conn.execute(select(e).where(e.c.id == new_id)).one()
    except IntegrityError:
        raise Conflict(f"an experiment named {name!r} exists already", field="name") from None
    return _bandit(row)


# -- the cache ------------------------------------------------------------------------------

@dataclass
class _Entry:
    experiment_id: int
    project_id: int
    names: list[str]
    versions: list[str | None]
    policy: str
    reward_kind: str
    floor: float
    status: str
    state: tuple[Any, ...]
    # (vector, {arm: p}, the vector as JSON): replaced whole, so a reader never mixes two
    snapshot: tuple[np.ndarray, dict[str, float], str]
    checked: float
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache: dict[tuple[str, str, str], _Entry] = {}
_cache_lock = threading.Lock()
_local = threading.local()


def _rng() -> np.random.Generator:
    """One generator per thread (a Generator is not safe to share between threads)."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = np.random.default_rng()
    return rng


def clear_bandit_cache() -> None:
    """Forget every cached bandit (tests; after editing the database by hand)."""
    with _cache_lock:
        _cache.clear()


def _key(store: Store, project: Project | str, name: str) -> tuple[str, str, str]:
    return (str(store.engine.url), project.name if isinstance(project, Project)
            else str(project), name)


def _read_state(conn: Connection, experiment_id: int) -> tuple[str, tuple[Any, ...]]:
    e, a = experiments, bandit_arms
    rows = conn.execute(
        select(e.c.status, a.c.n, a.c.reward_sum, a.c.reward_sumsq)
        .join(a, a.c.experiment_id == e.c.id)
        .where(e.c.id == experiment_id).order_by(a.c.arm)).all()
    if not rows:
        raise NotFound("the bandit was deleted", field="name")
    return rows[0].status, tuple((r.n, r.reward_sum, r.reward_sumsq) for r in rows)


def _stats(state: tuple[Any, ...]) -> policy_math.ArmStats:
    return policy_math.ArmStats.of([s[0] for s in state], [s[1] for s in state],
                                   [s[2] for s in state])


def _compute(entry: _Entry, rng: np.random.Generator) -> None:
    p = policy_math.probabilities(_stats(entry.state), entry.policy,  # type: ignore[arg-type]
                                  entry.reward_kind, rng=rng,  # type: ignore[arg-type]
                                  floor=entry.floor)
    entry.snapshot = (p, {n: float(x) for n, x in zip(entry.names, p, strict=True)},
                      orjson.dumps([float(x) for x in p]).decode())


def _entry(store: Store, project: Project | str, name: str, ttl: float,
           rng: np.random.Generator) -> _Entry:
    key = _key(store, project, name)
    entry = _cache.get(key)
    now = time.monotonic()
    if entry is not None and now - entry.checked <= ttl:
        return entry
    with store.read() as conn:
        if entry is None:
            b = get_bandit(conn, project, name)
            status, state = _read_state(conn, b.id)
            fresh = _Entry(b.id, b.project_id, [a["name"] for a in b.arms],
                           [a.get("version") for a in b.arms], b.policy, b.reward_kind,
                           b.floor, status, state, (np.empty(0), {}, "[]"), now)
            _compute(fresh, rng)
            with _cache_lock:
                _cache[key] = fresh
            return fresh
        status, state = _read_state(conn, entry.experiment_id)
    with entry.lock:
        if state != entry.state:
            entry.state = state
            _compute(entry, rng)
        entry.status = status
        entry.checked = now
    return entry


def _refresh_after_reward(store: Store, project: Project | str, name: str) -> None:
    """Bring this process's cached entry up to date after a reward: re-read the state and
    recompute the probabilities here, so the redraw of the Thompson posteriors (a
    millisecond or two) is paid by the reward, not by the next choice."""
    entry = _cache.get(_key(store, project, name))
    if entry is None:
        return
    with store.read() as conn:
        status, state = _read_state(conn, entry.experiment_id)
    with entry.lock:
        entry.status = status
        if state != entry.state:
            entry.state = state
            _compute(entry, _rng())
        entry.checked = time.monotonic()


# -- choose and reward ------------------------------------------------------------------------

def _check_context(context: Any) -> Any:
    if context is None:
        return None
    if not isinstance(context, Mapping):
        raise InvalidInput("context must be an object (or null)", field="context")
    try:
        blob = orjson.dumps(context)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidInput(f"context is not JSON: {exc}", field="context") from None
    if len(blob) > MAX_CONTEXT_BYTES:
        raise InvalidInput(f"context over {MAX_CONTEXT_BYTES:,} bytes of JSON",
                           field="context")
    if b"\\u0000" in blob:
        raise InvalidInput("context contains a NUL character", field="context")
    return orjson.loads(blob)


def choose(store: Store, project: Project | str, name: str, *, unit_id: str | None = None,
           context: Mapping[str, Any] | None = None, pseudonym_key: bytes | None = None,
           ttl: float = CACHE_TTL_SECONDS,
           rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Draw an arm for one decision and log it: ``{"decision_id", "arm", "version",
    "propensity", "probabilities": {arm: p}}``. ``propensity`` is exactly
    ``probabilities[arm]``, the probability the arm was drawn with.

    ``unit_id`` is stored pseudonymised with ``pseudonym_key`` (the capture key, so it
    joins with interactions; without it, the key of the environment's settings);
    ``context`` (a JSON object, at most 16 KB) is stored with the decision. Only a running
    bandit chooses. See the module for the cache (``ttl``)."""
    gen = rng if rng is not None else _rng()
    ctx = _check_context(context)
    unit = None
    if unit_id is not None:
        if not isinstance(unit_id, str) or not unit_id:
            raise InvalidInput("unit_id must be a non-empty string", field="unit_id")
        _text(unit_id, "unit_id", 200)
        if pseudonym_key is None:
            from ..settings import load_settings

            pseudonym_key = load_settings().pseudonym_key_bytes()
        unit = pseudonymise(pseudonym_key, unit_id)
    entry = _entry(store, project, name, ttl, gen)
    if entry.status != "running":
        raise Conflict(f"bandit {name!r} is {entry.status}: only a running bandit chooses",
                       field="name", status=entry.status)
    p, as_dict, p_json = entry.snapshot
    arm = policy_math.draw(p, gen)
    propensity = float(p[arm])
    decision_id = _insert_decision(store, entry.experiment_id, unit, arm, propensity, p_json,
                                   ctx)
    return {"decision_id": decision_id, "arm": entry.names[arm],
            "version": entry.versions[arm], "propensity": propensity,
            "probabilities": dict(as_dict)}


_INSERT = ("INSERT INTO bandit_decisions (experiment_id, unit, arm, propensity, "
           "probabilities, context, decided_at) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0})")
_INSERT_SQLITE = _INSERT.format("?")
_INSERT_PG = _INSERT.format("%s") + " RETURNING id"


def _insert_decision(store: Store, experiment_id: int, unit: str | None, arm: int,
                     propensity: float, probabilities: str, context: Any) -> int:
    """One decision row, as one INSERT through the driver.

    The hot path of :func:`choose`, and one statement, so it needs no transaction of its
    own. SQLite runs it on a pooled connection in autocommit (the store's connections have
    the driver's implicit transactions off). PostgreSQL runs it on this thread's own
    autocommit connection (:func:`_pg_connection`): one round trip, where a pooled
    connection cost three (the pool's liveness ping, the INSERT, the COMMIT) and put the
    99th percentile over a millisecond. A SQLAlchemy insert built per call cost ten times
    the INSERT itself. JSON columns get orjson text, as the engine's serializer writes
    them; SQLite timestamps the text SQLAlchemy stores."""
    ctx = orjson.dumps(context).decode() if context is not None else None
    now = utcnow()
    if store.dialect != "sqlite":
        params = (experiment_id, unit, arm, propensity, probabilities, ctx, now)
        for attempt in (0, 1):
            pg = _pg_connection(store)
            try:
                row = pg.execute(_INSERT_PG, params).fetchone()
                return int(row[0])
            except Exception as exc:
                if pg.closed or pg.broken:  # the server went away: one fresh try
                    _forget_pg(store)
                    if attempt == 0:
                        continue
                raise exc
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(_INSERT_SQLITE, (experiment_id, unit, arm, propensity, probabilities,
                                     ctx, sqlite_timestamp(now)))
        decision_id = int(cur.lastrowid)
        cur.close()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    return decision_id


_pg_local = threading.local()
# Every thread's decision connection by store, so that disposing the store closes them all
# (a server's worker threads outlive no engine, and none is left to the garbage collector).
_pg_all: dict[tuple[int, str], list[Any]] = {}
_pg_lock = threading.Lock()


def _pg_key(store: Store) -> tuple[int, str]:
    return os.getpid(), store.engine.url.render_as_string(hide_password=True)


def _pg_connection(store: Store) -> Any:
    """This thread's autocommit psycopg connection to the store's database (per process:
    a forked child opens its own). All are closed when the store's engine is disposed."""
    conns: dict[tuple[int, str], Any] = _pg_local.__dict__.setdefault("conns", {})
    key = _pg_key(store)
    conn = conns.get(key)
    if conn is None or conn.closed:
        import psycopg

        url = store.engine.url.set(drivername="postgresql")
        conn = conns[key] = psycopg.connect(url.render_as_string(hide_password=False),
                                            autocommit=True)
        with _pg_lock:
            _pg_all.setdefault(key, []).append(conn)
            if not getattr(store.engine, "_fl_decision_conns", False):
                store.engine._fl_decision_conns = True  # type: ignore[attr-defined]
                event.listen(store.engine, "engine_disposed",
                             lambda _e: _close_pg(key))
    return conn


def _close_pg(key: tuple[int, str]) -> None:
    with _pg_lock:
        conns = _pg_all.pop(key, [])
    for conn in conns:
        with contextlib.suppress(Exception):  # already gone
            conn.close()


def _forget_pg(store: Store) -> None:
    """Drop this thread's connection (broken: the next call opens a fresh one)."""
    key = _pg_key(store)
    conn = _pg_local.__dict__.get("conns", {}).pop(key, None)
    if conn is not None:
        with _pg_lock:
            if conn in _pg_all.get(key, []):
                _pg_all[key].remove(conn)
        with contextlib.suppress(Exception):
            conn.close()


def _check_reward(value: Any, kind: str) -> float:
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise InvalidInput("reward must be a finite number", field="reward")
    value = float(value)
    if kind == "binary" and value not in (0.0, 1.0):
        raise InvalidInput(f"a binary bandit takes rewards 0 or 1, got {value:g}",
                           field="reward")
    if abs(value) > 1e12:
        raise InvalidInput("reward larger than 1e12 in size", field="reward")
    return value


def reward(store: Store, project: Project | str, name: str, decision_id: int,
           reward: float) -> dict[str, Any]:
    """Record the reward of a decision and add it to its arm's state: ``{"decision_id",
    "arm", "reward", "n", "mean"}`` (the arm's rewarded plays and mean after it).

    Sending the same reward again changes nothing (a retry); a different reward for a
    rewarded decision is a Conflict."""
    if isinstance(decision_id, bool) or not isinstance(decision_id, int) \
            or not 0 < decision_id < 2**63:
        raise InvalidInput("decision_id must be a positive integer", field="decision_id")
    with store.transaction() as conn:
        b = get_bandit(conn, project, name)
        value = _check_reward(reward, b.reward_kind)
        d = bandit_decisions
        row = conn.execute(select(d.c.arm, d.c.reward).where(
            d.c.id == decision_id, d.c.experiment_id == b.id)).first()
        if row is None:
            raise NotFound(f"bandit {name!r} has no decision {decision_id}",
                           field="decision_id", decision_id=decision_id)
        a = bandit_arms
        if row.reward is not None:
            if float(row.reward) != value:
                raise Conflict(f"decision {decision_id} was rewarded {row.reward:g} already",
                               field="reward", decision_id=decision_id)
        else:
            now = utcnow()
            conn.execute(d.update().where(d.c.id == decision_id).values(
                reward=value, rewarded_at=now))
            conn.execute(a.update().where(a.c.experiment_id == b.id, a.c.arm == row.arm)
                         .values(n=a.c.n + 1, reward_sum=a.c.reward_sum + value,
                                 reward_sumsq=a.c.reward_sumsq + value * value,
                                 updated_at=now))
        state = conn.execute(select(a.c.n, a.c.reward_sum).where(
            a.c.experiment_id == b.id, a.c.arm == row.arm)).one()
    _refresh_after_reward(store, project, name)
    return {"decision_id": decision_id, "arm": b.arms[row.arm]["name"], "reward": value,
            "n": int(state.n), "mean": float(state.reward_sum) / state.n}


# -- status -----------------------------------------------------------------------------------

def _mean_interval(n: int, total: float, total_sq: float, kind: str) -> dict[str, Any]:
    if n == 0:
        return {"estimate": None, "ci95": None, "method": None,
                "reason": "no rewarded decisions yet"}
    mean = total / n
    if kind == "binary":
        est = wilson_interval(round(total), n)
        return {"estimate": est.value, "ci95": list(est.ci) if est.ci else None,
                "method": "Wilson score interval", "reason": None}
    if n < 2:
        return {"estimate": mean, "ci95": None, "method": "t interval",
                "reason": "one reward: no spread to make an interval from"}
    from scipy.stats import t as student_t

    var = max(total_sq - n * mean * mean, 0.0) / (n - 1)
    half = float(student_t.ppf(0.975, n - 1)) * math.sqrt(var / n)
    if half == 0.0:
        return {"estimate": mean, "ci95": [mean, mean], "method": "t interval",
                "reason": "every reward is the same"}
    return {"estimate": mean, "ci95": [mean - half, mean + half], "method": "t interval",
            "reason": None}


def bandit_status(store: Store, project: Project | str, name: str, *,
                  rng: np.random.Generator | None = None) -> dict[str, Any]:
    """The bandit with, per arm, its decisions, rewarded plays, mean reward with a 95 %
    interval (Wilson for binary rewards, t otherwise) and its current probability of
    being played (floor included)."""
    with store.read() as conn:
        b = get_bandit(conn, project, name)
        status, state = _read_state(conn, b.id)
        d = bandit_decisions
        counts = {r.arm: (int(r.decisions), int(r.rewarded)) for r in conn.execute(
            select(d.c.arm, func.count().label("decisions"),
                   func.count(d.c.reward).label("rewarded"))
            .where(d.c.experiment_id == b.id).group_by(d.c.arm))}
    gen = rng if rng is not None else _rng()
    p = policy_math.probabilities(_stats(state), b.policy, b.reward_kind,  # type: ignore[arg-type]
                                  rng=gen, floor=b.floor)
    kind = {("thompson", "binary"): "Thompson sampling, Beta-Bernoulli (uniform prior)",
            ("thompson", "mean"): "Thompson sampling, normal-inverse-gamma prior",
            ("ucb", "binary"): "UCB1 (Auer et al. 2002)",
            ("ucb", "mean"): "UCB1-NORMAL (Auer et al. 2002)"}[(b.policy, b.reward_kind)]
    arms = []
    for i, arm in enumerate(b.arms):
        n, total, total_sq = state[i]
        decisions, rewarded = counts.get(i, (0, 0))
        arms.append({"name": arm["name"], "version": arm.get("version"),
                     "decisions": decisions, "rewarded": rewarded, "n": int(n),
                     "mean": _mean_interval(int(n), float(total), float(total_sq),
                                            b.reward_kind),
                     "probability": float(p[i])})
    out = b.to_dict()
    out["status"] = status
    return {"bandit": out, "arms": arms, "policy_method": kind,
            "probability_method": (f"Monte Carlo over {policy_math.DEFAULT_DRAWS:,} "
                                   "posterior draws" if b.policy == "thompson"
                                   else "argmax (ties shared)")
            + f", mixed with the exploration floor {b.floor:g}",
            "decisions": sum(a["decisions"] for a in arms),
            "rewarded": sum(a["rewarded"] for a in arms)}
