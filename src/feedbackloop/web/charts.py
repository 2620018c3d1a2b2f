"""Charts drawn on the server as inline SVG: no JavaScript, nothing fetched from elsewhere,
and the page reads the same in a browser without scripts."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from .overview import DayCount

__all__ = ["daily_bar_chart", "nice_ceiling"]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2 or 5 times 10^k at or above ``value`` (at least 1), so the axis ends
    on a round number."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def daily_bar_chart(days: Sequence[DayCount], *, title: str, width: int = 760,
                    height: int = 220) -> Markup:
    """A bar per day, with a round-numbered y axis and a date under every seventh bar,
    counted back from the last. Each bar carries a ``<title>``, so hovering shows the day
    and its count."""
    left, right, top, bottom = 44, 8, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_ceiling(max((d.count for d in days), default=0))
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.72, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        label = round(top_value * frac)
        if frac == 0.5 and top_value % 2:
            continue  # an odd top would give a fractional middle tick
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" '
                     f'y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" '
                     f'text-anchor="end">{label}</text>')
    for i, d in enumerate(days):
        h = plot_h * d.count / top_value
        x = left + i * slot + (slot - bar_w) / 2
        y = top + plot_h - h
        tip = f"{d.day.isoformat()}: {d.count} interaction{'s' if d.count != 1 else ''}"
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                     f'height="{h:.1f}" data-day="{d.day.isoformat()}" '
                     f'data-count="{d.count}"><title>{escape(tip)}</title></rect>')
        if (len(days) - 1 - i) % 7 == 0:
            parts.append(f'<text class="tick" x="{x + bar_w / 2:.1f}" y="{height - 8}" '
                         f'text-anchor="middle">{d.day.strftime("%b %d")}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
