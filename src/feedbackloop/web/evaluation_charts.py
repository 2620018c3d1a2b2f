"""The plots of an evaluation page, drawn on the server as inline SVG: metric against the
human judgement (box plot or scatter) and the reliability diagram. Every number placed in
the markup is formatted by us; every label from users goes through ``escape``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

__all__ = ["agreement_plot", "reliability_plot"]

_W, _H = 460, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 12, 40


class _Axes:
    """A linear map from data to the plot area, with ticks and labels."""

    def __init__(self, xr: tuple[float, float], yr: tuple[float, float]) -> None:
        self.x0, self.x1 = xr if xr[1] > xr[0] else (xr[0] - 0.5, xr[0] + 0.5)
        self.y0, self.y1 = yr if yr[1] > yr[0] else (yr[0] - 0.5, yr[0] + 0.5)
        self.pw, self.ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(self, v: float) -> float:
        return _LEFT + (v - self.x0) / (self.x1 - self.x0) * self.pw

    def y(self, v: float) -> float:
        return _TOP + (1 - (v - self.y0) / (self.y1 - self.y0)) * self.ph

    def frame(self, title: str, xlabel: str, ylabel: str, xticks: Sequence[tuple[float, str]],
              css: str) -> list[str]:
        parts = [f'<svg class="chart {css}" viewBox="0 0 {_W} {_H}" width="100%" '
                 f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
                 f"<title>{escape(title)}</title>"]
        for k in range(5):
            v = self.y0 + (self.y1 - self.y0) * k / 4
            yy = self.y(v)
            parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{yy:.1f}" '
                         f'y2="{yy:.1f}"/><text class="tick" x="{_LEFT - 6}" y="{yy + 4:.1f}" '
                         f'text-anchor="end">{_num(v)}</text>')
        for v, label in xticks:
            parts.append(f'<text class="tick" x="{self.x(v):.1f}" y="{_H - _BOTTOM + 16}" '
                         f'text-anchor="middle">{escape(label)}</text>')
        parts.append(f'<text class="axis-label" x="{_LEFT + self.pw / 2:.1f}" y="{_H - 4}" '
                     f'text-anchor="middle">{escape(xlabel)}</text>')
        parts.append(f'<text class="axis-label" x="12" y="{_TOP + self.ph / 2:.1f}" '
                     f'text-anchor="middle" transform="rotate(-90 12 {_TOP + self.ph / 2:.1f})">'
                     f"{escape(ylabel)}</text>")
        return parts


def _num(v: float) -> str:
    if abs(v) >= 1000 or (v != 0 and abs(v) < 0.01):
        return f"{v:.2g}"
    return f"{v:.2f}".rstrip("0").rstrip(".") if "." in f"{v:.2f}" else f"{v:g}"


def _level_label(level: float, human_type: str) -> str:
    if human_type == "binary":
        return "approved" if level >= 0.5 else "not approved"
    return f"{level:g}"


def agreement_plot(plot: dict[str, Any], *, human: str, human_type: str, metric: str
                   ) -> Markup | None:
    """Metric values by human judgement: a box per level (binary, ordinal) or a scatter
    of a sample of the pairs (numeric)."""
    if plot.get("kind") == "box" and plot.get("boxes"):
        return _box_plot(plot["boxes"], human=human, human_type=human_type, metric=metric)
    if plot.get("kind") == "scatter" and plot.get("points"):
        return _scatter(plot["points"], human=human, metric=metric)
    return None


def _box_plot(boxes: list[dict[str, Any]], *, human: str, human_type: str,
              metric: str) -> Markup:
    lo = min(b["min"] for b in boxes)
    hi = max(b["max"] for b in boxes)
    pad = (hi - lo) * 0.05 or 0.5
    ax = _Axes((-0.5, len(boxes) - 0.5), (lo - pad, hi + pad))
    ticks = [(float(k), _level_label(b["level"], human_type)) for k, b in enumerate(boxes)]
    parts = ax.frame(f"{metric} by {human}", f"{human} (human)", f"{metric} (metric)", ticks,
                     "box-plot")
    half = min(40.0, ax.pw / len(boxes) * 0.3)
    for k, b in enumerate(boxes):
        cx = ax.x(k)
        tip = (f"{_level_label(b['level'], human_type)}: n={b['n']}, median {b['median']:.3g},"
               f" quartiles {b['q1']:.3g}-{b['q3']:.3g}, range {b['min']:.3g}-{b['max']:.3g}")
        parts.append(
            f'<g class="box" data-level="{b["level"]:g}" data-n="{b["n"]}">'
            f"<title>{escape(tip)}</title>"
            f'<line class="whisker" x1="{cx:.1f}" x2="{cx:.1f}" y1="{ax.y(b["max"]):.1f}" '
            f'y2="{ax.y(b["min"]):.1f}"/>'
            f'<rect x="{cx - half:.1f}" y="{ax.y(b["q3"]):.1f}" width="{2 * half:.1f}" '
            f'height="{max(ax.y(b["q1"]) - ax.y(b["q3"]), 1):.1f}"/>'
            f'<line class="median" x1="{cx - half:.1f}" x2="{cx + half:.1f}" '
            f'y1="{ax.y(b["median"]):.1f}" y2="{ax.y(b["median"]):.1f}"/></g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _scatter(points: list[list[float]], *, human: str, metric: str) -> Markup:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    ax = _Axes((min(xs), max(xs)), (min(ys), max(ys)))
    ticks = [(ax.x0 + (ax.x1 - ax.x0) * k / 4, _num(ax.x0 + (ax.x1 - ax.x0) * k / 4))
             for k in range(5)]
    parts = ax.frame(f"{metric} against {human}", f"{human} (human)", f"{metric} (metric)",
                     ticks, "scatter")
    parts.append('<g class="points">')
    parts += [f'<circle cx="{ax.x(x):.1f}" cy="{ax.y(y):.1f}" r="2"/>' for x, y in points]
    parts.append("</g></svg>")
    return Markup("".join(parts))


def reliability_plot(calibration: dict[str, Any], *, metric: str) -> Markup | None:
    """Observed approval per bin of the metric taken at face value (on [0, 1]), with
    Wilson intervals, the isotonic map, and the diagonal where a calibrated metric lies."""
    if not calibration.get("available"):
        return None
    ax = _Axes((0.0, 1.0), (0.0, 1.0))
    ticks = [(v, f"{v:g}") for v in (0.0, 0.25, 0.5, 0.75, 1.0)]
    parts = ax.frame(f"Reliability of {metric}", f"{metric} on [0, 1]",
                     "share approved by humans", ticks, "reliability")
    parts.append(f'<line class="diagonal" x1="{ax.x(0):.1f}" y1="{ax.y(0):.1f}" '
                 f'x2="{ax.x(1):.1f}" y2="{ax.y(1):.1f}"/>')
    curve = " ".join(f"{ax.x(x):.1f},{ax.y(p):.1f}" for x, p in calibration["isotonic"])
    parts.append(f'<polyline class="isotonic" points="{curve}"><title>isotonic map'
                 f"</title></polyline>")
    for b in calibration["bins"]:
        if not b["n"]:
            continue
        cx = ax.x(b["mean_predicted"])
        lo, hi = b["ci95"]
        tip = (f"{b['lo']:.2f}-{b['hi']:.2f}: {b['n']} items, {b['observed']:.1%} approved "
               f"(95% CI {lo:.1%}-{hi:.1%})")
        parts.append(f'<g class="bin" data-n="{b["n"]}"><title>{escape(tip)}</title>'
                     f'<line class="ci" x1="{cx:.1f}" x2="{cx:.1f}" y1="{ax.y(lo):.1f}" '
                     f'y2="{ax.y(hi):.1f}"/><circle cx="{cx:.1f}" cy="{ax.y(b["observed"]):.1f}"'
                     f' r="4"/></g>')
    parts.append("</svg>")
    return Markup("".join(parts))
