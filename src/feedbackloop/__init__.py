"""feedbackloop: close the loop between a model in production and the people who judge it.

``import feedbackloop`` stays cheap: the SDK (:class:`feedbackloop.Client`) and the version
are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client, FlushResult, RejectedRecord

__all__ = ["Client", "FlushResult", "RejectedRecord", "__version__"]

_FROM_CLIENT = ("Client", "FlushResult", "RejectedRecord")


def __getattr__(name: str) -> Any:
    if name in _FROM_CLIENT:
        from . import client

        return getattr(client, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("feedbackloop")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'feedbackloop' has no attribute {name!r}")
