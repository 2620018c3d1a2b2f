"""Plug-ins by entry point: scorers, trainers, selection policies. Built-ins register the
same way as third-party plug-ins; one name registered twice fails at start-up."""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points

from .errors import ConfigurationError

__all__ = ["PluginGroup", "origin"]


def origin(ep: EntryPoint) -> str:
    """Who registered an entry point: distribution, version and target."""
    dist = ep.dist
    where = f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"
    return f"{where} ({ep.value})"


class PluginGroup:
    """The entry points of one group by name, read once per process (``clear`` reads them
    again: after installing a plug-in in a running process, and in tests)."""

    def __init__(self, group: str, kind: str, detail: str) -> None:
        self.group, self.kind, self.detail = group, kind, detail
        self._table: dict[str, EntryPoint] | None = None
        self._lock = threading.Lock()

    def table(self) -> dict[str, EntryPoint]:
        """Every registered name, sorted; ConfigurationError when two distributions
        register the same name."""
        with self._lock:
            if self._table is None:
                found: dict[str, EntryPoint] = {}
                for ep in entry_points(group=self.group):
                    seen = found.get(ep.name)
                    if seen is not None:
                        raise ConfigurationError(
                            f"{self.kind} {ep.name!r} is registered twice: by "
                            f"{origin(seen)} and by {origin(ep)}; uninstall one of them",
                            registered_by=[origin(seen), origin(ep)],
                            **{self.detail: ep.name})
                    found[ep.name] = ep
                self._table = dict(sorted(found.items()))
            return dict(self._table)

    def clear(self) -> None:
        with self._lock:
            self._table = None
