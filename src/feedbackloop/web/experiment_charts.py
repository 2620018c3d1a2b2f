"""The plots of an experiment, drawn on the server as inline SVG: the confidence sequence
over time (per treatment arm, the estimated difference to control and its always-valid
interval as a band, against the units analysed, with a zero line and the minimum
detectable effect), and a bandit's arm probabilities as bars.

Colours are presentation attributes, not CSS classes only, so the same markup works in the
self-contained HTML report. Numbers in the markup are formatted here; arm names go through
``escape``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["SERIES_COLOURS", "nice_ticks", "probability_bars", "sequence_plot"]

_W, _H = 720, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 60, 160, 14, 40
SERIES_COLOURS = ("#2f5bd3", "#c2571a", "#067647", "#7a2eb8", "#b42318", "#0e7490",
                  "#a16207", "#475467")


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _tick(v: float, kind: str) -> str:
    if kind == "proportion":
        return f"{v * 100:+.3g} pp" if v else "0"
    if v == 0:
        return "0"
    return f"{v:+.3g}"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    span = hi - lo
    if not span > 0:
        return [lo]
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def sequence_plot(path: Sequence[Mapping[str, Any]], *, mde: float | None, kind: str,
                  title: str) -> Markup | None:
    """One band and line per treatment arm: the sequential interval ``ci`` and the
    ``estimate`` at each look (``n`` units analysed; ``at`` in the tooltip). An open end
    of a one-sided interval (null) runs to the edge of the plot. None without points."""
    series: dict[str, list[tuple[float, float, float | None, float | None,
                                 Mapping[str, Any]]]] = {}
    for k, p in enumerate(path):
        est = _finite(p.get("estimate"))
        if est is None:
            continue
        x = _finite(p.get("n"))
        ci = p.get("ci") if isinstance(p.get("ci"), Sequence) else None
        lo = _finite(ci[0]) if ci and len(ci) == 2 else None
        hi = _finite(ci[1]) if ci and len(ci) == 2 else None
        series.setdefault(str(p.get("arm", "")), []).append(
            (x if x is not None else float(k), est, lo, hi, p))
    if not series:
        return None
    for pts in series.values():
        pts.sort(key=lambda t: t[0])
    xs = [t[0] for pts in series.values() for t in pts]
    ys = [0.0] + [v for pts in series.values() for t in pts for v in t[1:4]
                  if v is not None]
    if mde is not None and math.isfinite(mde):
        ys.append(mde)
    x0, x1 = min(0.0, min(xs)), max(xs)
    if x1 <= x0:
        x1 = x0 + 1
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.06 or 0.05
    y0, y1 = y0 - pad, y1 + pad
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def px(v: float) -> float:
        return _LEFT + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return _TOP + (1 - (v - y0) / (y1 - y0)) * ph

    parts = [f'<svg class="chart sequence" viewBox="0 0 {_W} {_H}" width="100%" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="system-ui, sans-serif">', f"<title>{escape(title)}</title>"]
    for v in nice_ticks(y0, y1):
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + pw}" y1="{py(v):.1f}" '
                     f'y2="{py(v):.1f}" stroke="#e4e7ec"/><text class="tick" x="{_LEFT - 6}" '
                     f'y="{py(v) + 4:.1f}" text-anchor="end" font-size="11" fill="#667085">'
                     f"{escape(_tick(v, kind))}</text>")
    for v in nice_ticks(x0, x1):
        parts.append(f'<text class="tick" x="{px(v):.1f}" y="{_TOP + ph + 16}" '
                     f'text-anchor="middle" font-size="11" fill="#667085">{round(v):,}</text>')
    parts.append(f'<text class="axis-label" x="{_LEFT + pw / 2:.1f}" y="{_H - 4}" '
                 f'text-anchor="middle" font-size="11" fill="#667085">units analysed '
                 f"(treatment and control)</text>")
    parts.append(f'<text class="axis-label" x="12" y="{_TOP + ph / 2:.1f}" '
                 f'text-anchor="middle" font-size="11" fill="#667085" '
                 f'transform="rotate(-90 12 {_TOP + ph / 2:.1f})">difference to control</text>')
    parts.append(f'<line class="zero" x1="{_LEFT}" x2="{_LEFT + pw}" y1="{py(0):.1f}" '
                 f'y2="{py(0):.1f}" stroke="#1d2330" stroke-width="1"><title>no difference'
                 f"</title></line>")
    if mde is not None and math.isfinite(mde):
        parts.append(f'<line class="mde" x1="{_LEFT}" x2="{_LEFT + pw}" y1="{py(mde):.1f}" '
                     f'y2="{py(mde):.1f}" stroke="#b54708" stroke-dasharray="6 4" '
                     f'stroke-width="1.5"><title>minimum detectable effect '
                     f"{escape(_tick(mde, kind))}</title></line>"
                     f'<text class="legend" x="{_LEFT + pw + 6}" y="{py(mde) + 4:.1f}" '
                     f'font-size="11" fill="#b54708">MDE</text>')
    for k, (arm, pts) in enumerate(series.items()):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        last = pts[-1]
        width = (last[3] - last[2]) if last[2] is not None and last[3] is not None else None
        attrs = (f' data-arm="{escape(arm)}" data-looks="{len(pts)}"'
                 + (f' data-last-width="{width:.6g}"' if width is not None else ""))
        parts.append(f'<g class="arm series-{k % len(SERIES_COLOURS)}"{attrs}>')
        lows = [(px(x), py(lo if lo is not None else y0)) for x, _, lo, _, _ in pts]
        highs = [(px(x), py(hi if hi is not None else y1)) for x, _, _, hi, _ in pts]
        if len(pts) > 1:
            ring = lows + highs[::-1]
            parts.append('<polygon class="band" points="'
                         + " ".join(f"{a:.1f},{b:.1f}" for a, b in ring)
                         + f'" fill="{colour}" fill-opacity="0.15" stroke="none"/>')
            parts.append('<polyline class="estimate" points="'
                         + " ".join(f"{px(x):.1f},{py(e):.1f}" for x, e, *_ in pts)
                         + f'" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, e, lo, hi, p), (lx, ly), (_, hy) in zip(pts, lows, highs, strict=True):
            ci_text = (f"[{_tick(lo, kind) if lo is not None else '-∞'}, "
                       f"{_tick(hi, kind) if hi is not None else '+∞'}]")
            tip = f"{arm}: {_tick(e, kind)} {ci_text} at n = {round(x):,}"
            if p.get("at"):
                tip += f" ({str(p.get('at'))[:16].replace('T', ' ')})"
            parts.append(f'<g class="look"><title>{escape(tip)}</title>'
                         f'<line x1="{lx:.1f}" x2="{lx:.1f}" y1="{ly:.1f}" y2="{hy:.1f}" '
                         f'stroke="{colour}" stroke-width="1" stroke-opacity="0.6"/>'
                         f'<circle cx="{px(x):.1f}" cy="{py(e):.1f}" r="3" '
                         f'fill="{colour}"/></g>')
        ly = _TOP + 14 + 16 * k
        parts.append(f'<line x1="{_LEFT + pw + 40}" x2="{_LEFT + pw + 58}" y1="{ly - 4}" '
                     f'y2="{ly - 4}" stroke="{colour}" stroke-width="2"/>'
                     f'<text class="legend" x="{_LEFT + pw + 62}" y="{ly}" font-size="11" '
                     f'fill="#1d2330">{escape(arm[:14])}</text></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def probability_bars(arms: Sequence[Mapping[str, Any]], *, floor: float | None,
                     title: str) -> Markup | None:
    """A bandit's current probability of choosing each arm, with the exploration floor
    as a dashed line. ``arms``: ``name`` and ``probability``."""
    rows = [(str(a.get("name", "")), p) for a in arms
            if (p := _finite(a.get("probability"))) is not None]
    if not rows:
        return None
    row_h, left, width = 26, 150, 520
    height = _TOP + row_h * len(rows) + 30
    scale = width - left - 20

    def px(v: float) -> float:
        return left + max(0.0, min(1.0, v)) * scale

    parts = [f'<svg class="chart probabilities" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'font-family="system-ui, sans-serif">', f"<title>{escape(title)}</title>"]
    for k, (name, p) in enumerate(rows):
        y = _TOP + k * row_h
        parts.append(f'<g class="arm" data-arm="{escape(name)}" data-probability="{p:.6g}">'
                     f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12" '
                     f'fill="#1d2330">{escape(name[:22])}</text>'
                     f'<rect class="bar" x="{left}" y="{y + 3}" width="{px(p) - left:.1f}" '
                     f'height="{row_h - 8}" fill="#2f5bd3"><title>{escape(name)}: '
                     f"{p * 100:.1f} %</title></rect>"
                     f'<text x="{px(p) + 4:.1f}" y="{y + 15}" font-size="11" fill="#667085">'
                     f"{p * 100:.1f} %</text></g>")
    bottom = _TOP + row_h * len(rows)
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text class="tick" x="{px(v):.1f}" y="{bottom + 14}" '
                     f'text-anchor="middle" font-size="11" fill="#667085">{v:.0%}</text>')
    f = _finite(floor)
    if f is not None:
        parts.append(f'<line class="floor" x1="{px(f):.1f}" x2="{px(f):.1f}" y1="{_TOP}" '
                     f'y2="{bottom}" stroke="#b54708" stroke-dasharray="4 3">'
                     f"<title>exploration floor {f * 100:.1f} %</title></line>")
    parts.append("</svg>")
    return Markup("".join(parts))
