"""Deterministic assignment and exposure logging.

A unit (a pseudonymised user or session id, or an interaction id) lands in an arm by a
keyed hash: BLAKE2b of ``salt \\x00 unit`` read as a number ``u`` in [0, 1), and the arm is
the first whose cumulative weight exceeds ``u``. The same unit always gets the same arm
within an experiment; experiments with different salts split independently. The served
arm's propensity is its weight. The first exposure of each unit is logged (insert or
ignore: later calls change nothing).

User and session ids are pseudonymised with the capture key first, so that exposures join
the interactions and feedback logged for the same person.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from ..capture.prepare import pseudonymise
from ..capture.projects import Project
from ..errors import Conflict, InvalidInput
from ..store import Store, utcnow
from ..store.tables import experiment_exposures
from .design import cumulative_weights
from .service import check_name, get_experiment

__all__ = ["CACHE_TTL_SECONDS", "arm_index", "assign", "clear_assignment_cache",
           "insert_exposures", "unit_fraction"]

CACHE_TTL_SECONDS = 1.0
_SCALE = float(2**64)


def unit_fraction(salt: str, unit: str) -> float:
    """The unit's uniform position in [0, 1) for this salt."""
    digest = hashlib.blake2b(f"{salt}\x00{unit}".encode("utf-8", "surrogatepass"),
                             digest_size=8, person=b"fl-experiment").digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_index(salt: str, unit: str, cumulative: Sequence[float]) -> int:
    """The index of the unit's arm given the arms' cumulative weights (last = 1)."""
    i = bisect.bisect_right(cumulative, unit_fraction(salt, unit))
    return min(i, len(cumulative) - 1)


def insert_exposures(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert exposures, leaving a unit's existing (first) exposure alone."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        stmt: Any = postgresql.insert(experiment_exposures).on_conflict_do_nothing(
            index_elements=["experiment_id", "unit"])
    else:
        stmt = sqlite.insert(experiment_exposures).on_conflict_do_nothing()
    conn.execute(stmt, rows)


@dataclass
class _Entry:
    id: int
    status: str
    unit: str
    salt: str
    cumulative: list[float]
    arms: list[dict[str, Any]]
    checked: float


_cache: dict[tuple[str, str, str], _Entry] = {}
_lock = threading.Lock()


def clear_assignment_cache() -> None:
    """Forget cached experiments (tests; after editing the database by hand)."""
    with _lock:
        _cache.clear()


def _entry(store: Store, project: Project | str, name: str, ttl: float) -> _Entry:
    key = (str(store.engine.url),
           project.name if isinstance(project, Project) else str(project), name)
    entry = _cache.get(key)
    now = time.monotonic()
    if entry is None or now - entry.checked > ttl:
        with store.read() as conn:
            exp = get_experiment(conn, project, name)
        if exp.kind != "ab":
            raise InvalidInput(f"{name!r} is a bandit; bandits choose with choose()",
                               field="experiment")
        entry = _Entry(exp.id, exp.status, exp.design["unit"], exp.salt,
                       cumulative_weights(exp.design), exp.design["arms"], now)
        with _lock:
            _cache[key] = entry
    return entry


def assign(store: Store, project: Project | str, name: str, unit_id: str, *,
           covariate: float | None = None, log: bool = True,
           pseudonym_key: bytes | None = None,
           ttl: float = CACHE_TTL_SECONDS) -> dict[str, Any]:
    """The arm of a running experiment serving ``unit_id``: ``{"experiment", "arm",
    "version", "propensity", "unit"}`` (``unit``: the id as stored, pseudonymised for
    user and session units when ``pseudonym_key`` is given — pass the capture key, so
    exposures join the logged interactions). ``log`` records the unit's first exposure,
    with ``covariate`` (a pre-period value of the metric, for CUPED).

    The experiment is cached for ``ttl`` seconds, so a stop is seen within that time by
    other processes (at once by this one's :func:`clear_assignment_cache`)."""
    check_name(name, "experiment")
    if not isinstance(unit_id, str) or not unit_id or len(unit_id) > 200:
        raise InvalidInput("unit_id must be a non-empty string of at most 200 characters",
                           field="unit_id")
    if "\x00" in unit_id:
        raise InvalidInput("unit_id contains a NUL character", field="unit_id")
    if covariate is not None:
        if isinstance(covariate, bool) or not isinstance(covariate, int | float) \
                or not math.isfinite(covariate):
            raise InvalidInput(f"covariate must be a finite number, not {covariate!r}",
                               field="covariate")
        covariate = float(covariate)
    entry = _entry(store, project, name, ttl)
    if entry.status != "running":
        raise Conflict(f"experiment {name!r} is {entry.status}: only a running experiment "
                       "assigns units", field="experiment", status=entry.status)
    unit = unit_id
    if entry.unit != "interaction" and pseudonym_key is not None:
        unit = pseudonymise(pseudonym_key, unit_id)
    i = arm_index(entry.salt, unit, entry.cumulative)
    arm = entry.arms[i]
    if log:
        with store.transaction() as conn:
            insert_exposures(conn, [{"experiment_id": entry.id, "unit": unit, "arm": i,
                                     "propensity": float(arm["weight"]),
                                     "covariate": covariate, "exposed_at": utcnow()}])
    return {"experiment": name, "arm": arm["name"], "version": arm.get("version"),
            "propensity": float(arm["weight"]), "unit": unit}
