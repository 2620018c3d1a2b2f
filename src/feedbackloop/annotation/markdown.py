"""Safe Markdown for guidelines, rubric examples and comments.

CommonMark with raw HTML disabled: a ``<script>`` in the text is shown as text, never run.
Links and images may point only to http, https, mailto or relative addresses (no
``javascript:``, ``data:``, ``vbscript:`` or ``file:``). Links open with
``rel="nofollow noopener noreferrer"``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from markupsafe import Markup

__all__ = ["render_markdown", "safe_link"]

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_ALLOWED = frozenset({"http", "https", "mailto"})
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def safe_link(url: str) -> bool:
    """True for http, https and mailto addresses and for relative ones."""
    # Browsers ignore tabs, newlines and control characters inside a scheme
    # ("java\tscript:"), so they are dropped before the scheme is read.
    cleaned = _CONTROL.sub("", url)
    match = _SCHEME.match(cleaned)
    if match is None:
        return True
    return match.group(1).lower() in _ALLOWED


@functools.cache
def _parser() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.validateLink = safe_link  # type: ignore[method-assign]
    renderer: Any = md.renderer
    default_link_open = renderer.rules.get("link_open")

    def link_open(tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
        if default_link_open is not None:
            return str(default_link_open(tokens, idx, options, env))
        return str(renderer.renderToken(tokens, idx, options, env))

    renderer.rules["link_open"] = link_open
    return md


def render_markdown(text: str | None) -> Markup:
    """HTML for ``text`` (Markdown), safe to insert into a page."""
    if not text:
        return Markup("")
    return Markup(_parser().render(text))
