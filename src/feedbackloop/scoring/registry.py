"""The scorer registry: every scorer, built-in or plug-in, is an entry point.

A distribution registers a scorer under the group ``feedbackloop.scorers``; the entry
point's name is the scorer's name and its value a factory (usually the class) taking
keyword options::

    [project.entry-points."feedbackloop.scorers"]
    toxicity = "acme_scorers.toxicity:Toxicity"

Built-ins register the same way in our own ``pyproject.toml``. The table is read once per
process; two distributions registering one name is a :class:`ConfigurationError` naming
both, because which of them would win is an accident of install order.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint
from typing import Any

from ..errors import ConfigurationError, InvalidInput
from ..plugins import PluginGroup, origin
from .base import Scorer, ScorerInfo

__all__ = ["GROUP", "available_scorers", "clear_scorer_cache", "get_scorer", "scorer_info"]

GROUP = "feedbackloop.scorers"


_PLUGINS = PluginGroup(GROUP, "scorer", "scorer")


def available_scorers() -> dict[str, EntryPoint]:
    """Every registered scorer by name (read once per process). Raises ConfigurationError
    when two distributions register the same name."""
    return _PLUGINS.table()


def clear_scorer_cache() -> None:
    """Forget the table, so the next call reads the installed entry points again (after
    installing a plug-in in a running process, and in tests)."""
    _PLUGINS.clear()


def get_scorer(name: str, **options: Any) -> Scorer:
    """A scorer built by its registered factory with ``options``.

    An unknown name is InvalidInput (field ``scorer``) listing the valid names; an unknown or
    missing option is InvalidInput naming the option; a factory that cannot be imported or
    does not return a Scorer named ``name`` is a ConfigurationError."""
    table = _PLUGINS.table()
    ep = table.get(name)
    if ep is None:
        valid = sorted(table)
        raise InvalidInput(f"unknown scorer {name!r}; valid names: {', '.join(valid)}",
                           field="scorer", valid=valid)
    try:
        factory = ep.load()
    except Exception as exc:  # an installed plug-in that fails to import, whatever the cause
        raise ConfigurationError(f"scorer {name!r} cannot be loaded from {origin(ep)}: "
                                 f"{type(exc).__name__}: {exc}", scorer=name) from exc
    _check_options(name, factory, options)
    scorer = factory(**options)
    info = getattr(scorer, "info", None)
    if not isinstance(info, ScorerInfo) or not callable(getattr(scorer, "score", None)):
        raise ConfigurationError(f"scorer {name!r} from {origin(ep)} is not a Scorer (it "
                                 "needs an info: ScorerInfo and a score method)", scorer=name)
    if info.name != name:
        raise ConfigurationError(f"scorer registered as {name!r} calls itself {info.name!r} "
                                 f"({origin(ep)}); the two names must agree", scorer=name)
    return scorer


def _check_options(name: str, factory: Any, options: dict[str, Any]) -> None:
    """InvalidInput naming the first unknown or missing option, from the factory's
    signature (a factory taking ``**kwargs`` checks its own)."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for option in options:
        if option not in accepted:
            listed = ", ".join(accepted) if accepted else "none"
            raise InvalidInput(f"scorer {name!r} has no option {option!r}; options: {listed}",
                               field=option, scorer=name)
    for option in accepted:
        if params[option].default is inspect.Parameter.empty and option not in options:
            raise InvalidInput(f"scorer {name!r} needs the option {option!r}", field=option,
                               scorer=name)


def scorer_info(name: str, **options: Any) -> ScorerInfo:
    """The self-description of scorer ``name`` built with ``options`` (its version may
    depend on them). Constructors must be cheap: load models on first ``score``."""
    return get_scorer(name, **options).info
