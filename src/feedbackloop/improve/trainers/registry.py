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

from importlib.metadata import EntryPoint
from typing import Any

from ...errors import ConfigurationError, InvalidInput
from ...plugins import PluginGroup, origin

__all__ = ["GROUP", "available_trainers", "clear_trainer_cache", "get_trainer"]

GROUP = "feedbackloop.trainers"


_PLUGINS = PluginGroup(GROUP, "trainer", "trainer")


def available_trainers() -> dict[str, EntryPoint]:
    """Every registered trainer by name. Raises ConfigurationError when two distributions
    register the same name."""
    return _PLUGINS.table()


def clear_trainer_cache() -> None:
    """Forget the table (after installing a plug-in in a running process, and in tests)."""
    _PLUGINS.clear()


def get_trainer(name: str) -> Any:
    """The trainer registered as ``name``. Unknown: InvalidInput (field ``trainer``)
    listing the valid names; one that cannot be imported or is no Trainer:
    ConfigurationError."""
    table = _PLUGINS.table()
    ep = table.get(name)
    if ep is None:
        valid = sorted(table)
        raise InvalidInput(f"unknown trainer {name!r}; valid names: {', '.join(valid)}",
                           field="trainer", valid=valid)
    try:
        factory = ep.load()
        trainer = factory()
    except Exception as exc:  # an installed plug-in that fails to import, whatever the cause
        raise ConfigurationError(f"trainer {name!r} cannot be loaded from {origin(ep)}: "
                                 f"{type(exc).__name__}: {exc}", trainer=name) from exc
    missing = [a for a in ("fit", "load") if not callable(getattr(trainer, a, None))]
    missing += [a for a in ("name", "tasks", "component", "params")
                if not hasattr(trainer, a)]
    if missing:
        raise ConfigurationError(f"trainer {name!r} from {origin(ep)} is not a Trainer "
                                 f"(missing {', '.join(missing)})", trainer=name)
    if trainer.name != name:
        raise ConfigurationError(f"trainer registered as {name!r} calls itself "
                                 f"{trainer.name!r} ({origin(ep)}); the two names must "
                                 "agree", trainer=name)
    return trainer
