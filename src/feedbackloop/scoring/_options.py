"""Option checks and versions shared by the built-in scorers.

A scorer's cache key is (name, version, content hash), so ``version`` must change whenever
the output for the same content could change. Built-ins therefore publish
``"<base>+<hash>"``: ``base`` is bumped by hand when the scorer's own code changes what it
returns, and ``hash`` is the first 10 hex digits of SHA-256 over the canonical JSON of the
options that change results and the versions of the libraries that compute them (a
``rouge-score`` upgrade or a new profanity word list refreshes the cache by itself). A
scorer with neither publishes ``base`` alone. ``ScorerInfo.options`` holds the same options
in the clear.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from typing import Any

from ..errors import InvalidInput
from .base import ScoreError, ScoreItem

__all__ = ["NO_REFERENCE", "field_reader", "scorer_version", "want_bool", "want_choice"]

NO_REFERENCE = ScoreError("no reference")


def scorer_version(base: str, options: Mapping[str, Any] | None = None,
                   libraries: Sequence[str] = ()) -> str:
    """``base``, or ``base+hash`` of the options and library versions (see the module)."""
    libs = {name: _installed(name) for name in libraries}
    if not options and not libs:
        return base
    canonical = json.dumps({"options": dict(options or {}), "libraries": libs},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{base}+{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def _installed(distribution: str) -> str:
    try:
        return dist_version(distribution)
    except PackageNotFoundError:
        return "unknown"


def want_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool; otherwise InvalidInput naming the option."""
    if not isinstance(value, bool):
        raise InvalidInput(f"option {name!r} must be true or false, not {value!r}", field=name)
    return value


def want_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``; otherwise InvalidInput listing them."""
    if isinstance(value, bool) or value not in choices:
        raise InvalidInput(f"option {name!r} must be one of {', '.join(map(str, choices))}; "
                           f"got {value!r}", field=name, choices=list(choices))
    return value


def field_reader(name: str, option: str = "field") -> Any:
    """A function returning the text a scorer reads from an item (``None`` when the item has
    no reference, or no textual context). JSON context is read as its compact JSON text."""
    want_choice(name, option, ("input", "output", "reference", "context"))
    if name == "input":
        return lambda item: item.input
    if name == "output":
        return lambda item: item.output
    if name == "reference":
        return lambda item: item.reference

    def context(item: ScoreItem) -> str | None:
        value = item.context
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    return context
