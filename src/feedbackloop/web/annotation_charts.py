"""The rater-drift plot of a campaign page, drawn on the server as inline SVG: each rater's
agreement with the consensus of the others, window by window over time, against the
campaign's drift threshold. Numbers in the markup are formatted here; rater names go
through ``escape``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup, escape

__all__ = ["drift_plot"]

_W, _H = 720, 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 150, 14, 34
_SERIES = 8  # CSS classes series-0 .. series-7


def _time(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def drift_plot(raters: list[dict[str, Any]], *, threshold: float | None,
               title: str) -> Markup | None:
    """One line per rater (points at the end of each window), the threshold dashed.
    None when no rater has a window with a value."""
    series = []
    for r in raters:
        points = []
        for k, w in enumerate(r.get("windows") or []):
            y = _finite(w.get("consensus_agreement"))
            if y is None:
                continue
            t = _time(w.get("end"))
            points.append((t if t is not None else float(k), y, w))
        if points:
            series.append((r, points))
    if not series:
        return None
    xs = [p[0] for _, pts in series for p in pts]
    ys = [p[1] for _, pts in series for p in pts]
    if threshold is not None and math.isfinite(threshold):
        ys.append(threshold)
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = min(0.0, min(ys)), max(1.0, max(ys))
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(v: float) -> float:
        return _LEFT + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return _TOP + (1 - (v - y0) / (y1 - y0)) * ph

    parts = [f'<svg class="chart drift" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for k in range(5):
        v = y0 + (y1 - y0) * k / 4
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + pw}" y1="{py(v):.1f}" '
                     f'y2="{py(v):.1f}"/><text class="tick" x="{_LEFT - 6}" '
                     f'y="{py(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    timed = all(_time(p[2].get("end")) is not None for _, pts in series for p in pts)
    for k in range(3):
        v = x0 + (x1 - x0) * k / 2
        label = (datetime.fromtimestamp(v, UTC).strftime("%b %d %H:%M") if timed
                 else f"window {v + 1:.0f}")
        parts.append(f'<text class="tick" x="{px(v):.1f}" y="{_TOP + ph + 16}" '
                     f'text-anchor="middle">{escape(label)}</text>')
    parts.append(f'<text class="axis-label" x="{_LEFT + pw / 2:.1f}" y="{_H - 2}" '
                 f'text-anchor="middle">{"time (end of window)" if timed else "window"}'
                 f"</text>")
    if threshold is not None and math.isfinite(threshold):
        parts.append(f'<line class="threshold" x1="{_LEFT}" x2="{_LEFT + pw}" '
                     f'y1="{py(threshold):.1f}" y2="{py(threshold):.1f}">'
                     f"<title>drift threshold {threshold:.2f}</title></line>")
    for k, (r, pts) in enumerate(series):
        name = str(r.get("rater", ""))
        cls = f"series-{k % _SERIES}" + (" drifting" if r.get("drift") else "")
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
        parts.append(f'<g class="rater {cls}" data-rater="{escape(name)}">'
                     f'<polyline points="{coords}"/>')
        for x, y, w in pts:
            tip = f"{name}: {y:.2f} over {w.get('n', '?')} items"
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3">'
                         f"<title>{escape(tip)}</title></circle>")
        ly = _TOP + 14 + 16 * k
        parts.append(f'<line x1="{_LEFT + pw + 12}" x2="{_LEFT + pw + 30}" y1="{ly - 4}" '
                     f'y2="{ly - 4}"/><text class="legend" x="{_LEFT + pw + 34}" y="{ly}">'
                     f"{escape(name[:18])}{' ⚠' if r.get('drift') else ''}</text></g>")
    parts.append("</svg>")
    return Markup("".join(parts))
