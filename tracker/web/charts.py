"""SVG charts rendered on the server for the stats page: no JavaScript, no files from elsewhere.

Each function returns an `<svg>` element as text, with every label escaped. Values carry a
native tooltip (`<title>`), so hovering a bar shows its day and value without any script.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

#: Size of a daily chart, in CSS pixels (the SVG scales to its container's width).
WIDTH, HEIGHT = 880, 170
#: Room around the plot for the axis labels (px).
LEFT, RIGHT, TOP, BOTTOM = 58, 10, 10, 24
#: Most date labels under a chart; the others are skipped evenly.
MAX_X_LABELS = 12
#: Horizontal grid lines above zero.
Y_TICKS = 4

Format = Callable[[float], str]


def nice_step(top: float, integer: bool) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) such that Y_TICKS steps cover `top`."""
    if top <= 0:
        return 1
    raw = top / Y_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return max(1, math.ceil(step)) if integer else step


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def daily_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *, color: str,
                fmt: Format, style: str = "bar", integer: bool = True) -> str:
    """Bars (or a line, with gaps where a value is None) of one value per day."""
    known = [v for v in values if v is not None]
    step = nice_step(max(known, default=0), integer)
    top = step * Y_TICKS
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    band = plot_w / max(len(values), 1)

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    parts += _grid(step, y, fmt)
    parts += _x_labels(labels, band)
    tooltips = [f"{label}: {'–' if v is None else fmt(v)}" for label, v in zip(labels, values)]
    if style == "bar":
        parts += _bars(values, tooltips, band, y, color)
    else:
        parts += _line(values, tooltips, band, y, color)
    if not known or not any(known):
        parts.append(f'<text class="empty" x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" '
                     f'text-anchor="middle">nothing counted in this range</text>')
    parts.append("</svg>")
    return "".join(parts)


def _grid(step: float, y: Callable[[float], float], fmt: Format) -> list[str]:
    out = []
    for i in range(Y_TICKS + 1):
        value = step * i
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y(value))}" y2="{_num(y(value))}"/>'
                   f'<text class="axis" x="{LEFT - 6}" y="{_num(y(value) + 4)}" text-anchor="end">'
                   f'{escape(fmt(value))}</text>')
    return out


def _x_labels(labels: Sequence[str], band: float) -> list[str]:
    every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
    return [f'<text class="axis" x="{_num(LEFT + band * (i + 0.5))}" y="{HEIGHT - 6}" text-anchor="middle">'
            f'{escape(label)}</text>' for i, label in enumerate(labels) if i % every == 0]


def _bars(values, tooltips, band, y, color) -> list[str]:
    width = max(1.0, band * 0.7)
    out = []
    for i, (value, tip) in enumerate(zip(values, tooltips)):
        top = y(value or 0)
        out.append(f'<rect x="{_num(LEFT + band * i + (band - width) / 2)}" y="{_num(top)}" width="{_num(width)}" '
                   f'height="{_num(y(0) - top)}" fill="{color}"><title>{escape(tip)}</title></rect>')
    return out


def _line(values, tooltips, band, y, color) -> list[str]:
    out, run = [], []
    for i, (value, tip) in enumerate(list(zip(values, tooltips)) + [(None, "")]):
        if value is None:  # a day without impressions has no CTR: the line breaks there
            if len(run) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(run)}"/>')
            run = []
            continue
        x, top = _num(LEFT + band * (i + 0.5)), _num(y(value))
        run.append(f"{x},{top}")
        out.append(f'<circle cx="{x}" cy="{top}" r="3" fill="{color}"><title>{escape(tip)}</title></circle>')
    return out


def sparkline(values: Sequence[float], *, color: str, label: str, width: int = 120, height: int = 26) -> str:
    """A small trend line of `values` scaled to their own maximum."""
    top = max(values, default=0) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{_num(i * step)},{_num(height - 2 - (height - 4) * v / top)}" for i, v in enumerate(values))
    return (f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/></svg>')
