"""The trainer registry: every trainer, built-in or plug-in, is an entry point.

A distribution registers a trainer under the group ``feedbackloop.trainers``; the entry
point's name is the trainer's name and its value a class built without arguments::

    [project.entry-points."feedbackloop.trainers"]
    lora-sft = "acme_trainers.lora:LoraSFT"

Built-ins (``reward-model``, ``reranker``, ``classifier``, ``external``) register the same
way in our own ``pyproject.toml``. The table is read once per process; two distributions
registering one name is a :class:`ConfigurationError` naming both.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ...errors import ConfigurationError, InvalidInput

__all__ = ["GROUP", "available_trainers", "clear_trainer_cache", "get_trainer"]

GROUP = "feedbackloop.trainers"


def _origin(ep: EntryPoint) -> str:
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"
    return f"{where} ({ep.value})"


@functools.cache
def _table() -> dict[str, EntryPoint]:
    table: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        seen = table.get(ep.name)
        if seen is not None:
            raise ConfigurationError(
                f"trainer {ep.name!r} is registered twice: by {_origin(seen)} and by "
                f"{_origin(ep)}; uninstall one of them", trainer=ep.name,
                registered_by=[_origin(seen), _origin(ep)])
        table[ep.name] = ep
    return table


def available_trainers() -> dict[str, EntryPoint]:
    """Every registered trainer by name. Raises ConfigurationError when two distributions
    register the same name."""
    return dict(sorted(_table().items()))


def clear_trainer_cache() -> None:
    """Forget the table (after installing a plug-in in a running process, and in tests)."""
    _table.cache_clear()


def get_trainer(name: str) -> Any:
    """The trainer registered as ``name``. Unknown: InvalidInput (field ``trainer``)
    listing the valid names; one that cannot be imported or is no Trainer:
    ConfigurationError."""
    table = _table()
    ep = table.get(name)
    if ep is None:
        valid = sorted(table)
        raise InvalidInput(f"unknown trainer {name!r}; valid names: {', '.join(valid)}",
                           field="trainer", valid=valid)
    try:
        factory = ep.load()
        trainer = factory()
    except Exception as exc:  # an installed plug-in that fails to import, whatever the cause
        raise ConfigurationError(f"trainer {name!r} cannot be loaded from {_origin(ep)}: "
                                 f"{type(exc).__name__}: {exc}", trainer=name) from exc
    missing = [a for a in ("fit", "load") if not callable(getattr(trainer, a, None))]
    missing += [a for a in ("name", "tasks", "component", "params")
                if not hasattr(trainer, a)]
    if missing:
        raise ConfigurationError(f"trainer {name!r} from {_origin(ep)} is not a Trainer "
                                 f"(missing {', '.join(missing)})", trainer=name)
    if trainer.name != name:
        raise ConfigurationError(f"trainer registered as {name!r} calls itself "
                                 f"{trainer.name!r} ({_origin(ep)}); the two names must "
                                 "agree", trainer=name)
    return trainer
