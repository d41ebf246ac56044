"""Inline SVG plots: Pareto scatter plots with the frontier marked, line plots and heatmaps.

Every string that reaches the SVG (labels, titles, tooltips) goes through markupsafe.escape; the
result is returned as Markup, so the template inserts it as is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from markupsafe import Markup, escape

from prunebench.core.registry import BASELINE

WIDTH, HEIGHT = 440, 290
LEFT, RIGHT, TOP, BOTTOM = 58, 18, 30, 46
PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]
BASELINE_COLOR = "#30343c"
LABEL_ALL_UP_TO = 8  # label every point of a plot this small; larger ones label the frontier only


@dataclass
class Point:
    x: float
    y: float
    label: str  # short, drawn beside frontier points
    tooltip: str
    color: str


@dataclass
class Series:
    label: str
    color: str
    points: List[Tuple[float, float, Optional[Tuple[float, float]]]] = field(default_factory=list)  # x, y, (lo, hi)


def colors_for(method_ids: Sequence[str]) -> Dict[str, str]:
    """One color per method id, stable across the page; the baseline is dark."""
    out, i = {}, 0
    for m in method_ids:
        if m == BASELINE:
            out[m] = BASELINE_COLOR
        elif m not in out:
            out[m] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def pareto_front(points: Sequence[Tuple[float, float]], x_higher_better: bool, y_higher_better: bool = True) -> Set[int]:
    """Indices of the points no other point dominates (at least as good on both axes, better on one)."""
    def better_eq(a: float, b: float, higher: bool) -> bool:
        return a >= b if higher else a <= b

    front = set()
    for i, (xi, yi) in enumerate(points):
        dominated = False
        for j, (xj, yj) in enumerate(points):
            if j == i:
                continue
            if (better_eq(xj, xi, x_higher_better) and better_eq(yj, yi, y_higher_better)
                    and (xj, yj) != (xi, yi)):
                dominated = True
                break
        if not dominated:
            front.add(i)
    return front


def nice_ticks(lo: float, hi: float, count: int = 5) -> List[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def _tick_text(value: float, ticks: Sequence[float]) -> str:
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    digits = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if step * 10 ** digits % 1 > 1e-6:
        digits += 1
    return f"{value:.{digits}f}"


class _Frame:
    """Axes, grid and scales of one plot."""

    def __init__(self, xs: Sequence[float], ys: Sequence[float], x_title: str, y_title: str, title: str,
                 x_ticks: Optional[List[Tuple[float, str]]] = None, y_ticks: Optional[List[Tuple[float, str]]] = None):
        self.x_lo, self.x_hi = _padded(xs)
        self.y_lo, self.y_hi = _padded(ys)
        self.parts: List[str] = []
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self._axes(x_title, y_title, title, x_ticks, y_ticks)

    def sx(self, x: float) -> float:
        return LEFT + (x - self.x_lo) / (self.x_hi - self.x_lo) * self.w

    def sy(self, y: float) -> float:
        return TOP + self.h - (y - self.y_lo) / (self.y_hi - self.y_lo) * self.h

    def _axes(self, x_title: str, y_title: str, title: str, x_ticks, y_ticks=None) -> None:
        p = self.parts
        p.append(f'<text class="title" x="{LEFT}" y="{TOP - 12}">{escape(title)}</text>')
        if y_ticks is None:
            yt = nice_ticks(self.y_lo, self.y_hi)
            y_ticks = [(t, _tick_text(t, yt)) for t in yt]
        for t, text in y_ticks:
            y = self.sy(t)
            p.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + self.w}" y1="{y:.1f}" y2="{y:.1f}"/>')
            p.append(f'<text class="tick" x="{LEFT - 6}" y="{y + 3.5:.1f}" text-anchor="end">{escape(text)}</text>')
        if x_ticks is None:
            xt = nice_ticks(self.x_lo, self.x_hi)
            x_ticks = [(t, _tick_text(t, xt)) for t in xt]
        for t, text in x_ticks:
            x = self.sx(t)
            p.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + self.h}"/>')
            p.append(f'<text class="tick" x="{x:.1f}" y="{TOP + self.h + 15}" text-anchor="middle">{escape(text)}</text>')
        p.append(f'<rect class="axes" x="{LEFT}" y="{TOP}" width="{self.w}" height="{self.h}"/>')
        p.append(f'<text class="axis-title" x="{LEFT + self.w / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(x_title)}</text>')
        p.append(f'<text class="axis-title" transform="translate(14 {TOP + self.h / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_title)}</text>')

    def svg(self, kind: str, aria: str) -> Markup:
        body = "".join(self.parts)
        return Markup(f'<svg class="plot {kind}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
                      f'role="img" aria-label="{escape(aria)}">{body}</svg>')


def _padded(values: Sequence[float]) -> Tuple[float, float]:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return 0.0, 1.0
    lo, hi = min(values), max(values)
    span = hi - lo or (abs(hi) * 0.1 or 1.0)
    return lo - 0.08 * span, hi + 0.08 * span


def pareto_plot(points: List[Point], x_title: str, y_title: str, title: str, x_higher_better: bool) -> Markup:
    """Scatter of (cost, score) points; the frontier's points are filled, joined and labelled
    (every point is labelled in small plots)."""
    frame = _Frame([p.x for p in points], [p.y for p in points], x_title, y_title, title)
    front = pareto_front([(p.x, p.y) for p in points], x_higher_better)
    ordered = sorted((points[i] for i in front), key=lambda p: p.x)
    if len(ordered) > 1:
        path = " ".join(f"{'M' if k == 0 else 'L'}{frame.sx(p.x):.1f},{frame.sy(p.y):.1f}" for k, p in enumerate(ordered))
        frame.parts.append(f'<path class="frontier" d="{path}"/>')
    placed: List[Tuple[float, float, float, float]] = []  # label boxes already drawn
    for i, p in enumerate(points):
        on_front = i in front
        cls = "point front" if on_front else "point"
        fill = p.color if on_front else "#ffffff"
        frame.parts.append(
            f'<circle class="{cls}" cx="{frame.sx(p.x):.1f}" cy="{frame.sy(p.y):.1f}" r="{5 if on_front else 4.2}" '
            f'fill="{fill}" stroke="{p.color}"><title>{escape(p.tooltip)}{" (on the Pareto frontier)" if on_front else ""}'
            f'</title></circle>')
        if on_front or len(points) <= LABEL_ALL_UP_TO:
            anchor = "end" if frame.sx(p.x) > LEFT + frame.w * 0.75 else "start"
            dx = -8 if anchor == "end" else 8
            x, y = frame.sx(p.x) + dx, _free_line(frame.sx(p.x) + dx, frame.sy(p.y), p.label, anchor, placed)
            frame.parts.append(f'<text class="point-label" x="{x:.1f}" y="{y:.1f}" '
                               f'text-anchor="{anchor}">{escape(p.label)}</text>')
    return frame.svg("pareto", title)


def _free_line(x: float, y: float, label: str, anchor: str, placed: List[Tuple[float, float, float, float]]) -> float:
    """A baseline for a label near (x, y) that overlaps no label placed before (greedy, 12 px steps)."""
    width = 6.0 * len(label)
    x0 = x - width if anchor == "end" else x
    for dy in (-6, 14, -18, 26, -30, 38, -42):
        box = (x0, y + dy - 10, x0 + width, y + dy + 2)
        if all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed):
            placed.append(box)
            return y + dy
    return y - 6


def line_plot(series: List[Series], x_title: str, y_title: str, title: str,
              x_ticks: Optional[List[Tuple[float, str]]] = None) -> Markup:
    """Lines with markers and optional interval whiskers, and a legend below the title."""
    xs = [x for s in series for x, _, _ in s.points]
    ys = [v for s in series for _, y, ci in s.points for v in ([y] + (list(ci) if ci else []))]
    frame = _Frame(xs, ys, x_title, y_title, title, x_ticks)
    for s in series:
        pts = sorted(s.points)
        if len(pts) > 1:
            d = " ".join(f"{'M' if k == 0 else 'L'}{frame.sx(x):.1f},{frame.sy(y):.1f}" for k, (x, y, _) in enumerate(pts))
            frame.parts.append(f'<path class="series" d="{d}" stroke="{s.color}"><title>{escape(s.label)}</title></path>')
        for x, y, ci in pts:
            if ci:
                frame.parts.append(f'<line class="whisker" x1="{frame.sx(x):.1f}" x2="{frame.sx(x):.1f}" '
                                   f'y1="{frame.sy(ci[0]):.1f}" y2="{frame.sy(ci[1]):.1f}" stroke="{s.color}"/>')
            frame.parts.append(f'<circle class="marker" cx="{frame.sx(x):.1f}" cy="{frame.sy(y):.1f}" r="3.2" '
                               f'fill="{s.color}"><title>{escape(s.label)}: {y:.1f}</title></circle>')
    svg = frame.svg("lines", title)
    legend = "".join(f'<li><span class="swatch" style="background:{s.color}"></span>{escape(s.label)}</li>' for s in series)
    return Markup(f'<figure class="plot-with-legend">{svg}<ul class="legend">{legend}</ul></figure>')


HEAT_STOPS = [(0.0, (247, 251, 255)), (0.5, (107, 174, 214)), (1.0, (8, 48, 107))]  # white -> blue


def heat_color(value: float) -> str:
    """A colour for a value in [0, 1] (light: low, dark blue: high)."""
    v = min(1.0, max(0.0, value))
    for (t0, c0), (t1, c1) in zip(HEAT_STOPS, HEAT_STOPS[1:]):
        if v <= t1:
            u = (v - t0) / (t1 - t0)
            return "#" + "".join(f"{round(a + u * (b - a)):02x}" for a, b in zip(c0, c1))
    return "#" + "".join(f"{c:02x}" for c in HEAT_STOPS[-1][1])


def heatmap_plot(panels: List[Tuple[str, List[List[Optional[float]]]]], x_title: str, y_title: str,
                 title: str) -> Markup:
    """Panels side by side, each a grid of shares in [0, 1] (rows drawn bottom-up: row 0 at the
    bottom), sharing one colour scale from 0 to the largest value (darkest); None cells are left
    blank. Each cell's tooltip: its panel, row and column (from 1) and its value in %."""
    top = max((v for _, grid in panels for row in grid for v in row if v is not None), default=0.0) or 1.0
    gap = 14
    width = (WIDTH - LEFT - RIGHT - gap * (len(panels) - 1)) / max(1, len(panels))
    height = HEIGHT - TOP - BOTTOM
    parts = [f'<text class="title" x="{LEFT}" y="{TOP - 12}">{escape(title)}</text>',
             f'<text class="tick" x="{WIDTH - RIGHT}" y="{TOP - 12}" text-anchor="end">darkest {top * 100:.0f}%</text>']
    for k, (name, grid) in enumerate(panels):
        x0 = LEFT + k * (width + gap)
        rows, cols = len(grid), max((len(r) for r in grid), default=0)
        if not rows or not cols:
            continue
        cw, ch = width / cols, height / rows
        label = escape(name)
        cells: List[str] = []
        for r, row in enumerate(grid):
            for c, value in enumerate(row):
                if value is None:
                    continue
                x, y = x0 + c * cw, TOP + height - (r + 1) * ch
                cells.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cw + 0.3:.1f}" height="{ch + 0.3:.1f}" '
                             f'fill="{heat_color(value / top)}"><title>{label} {r + 1}, {c + 1}: {value * 100:.0f}%'
                             f'</title></rect>')
        parts.append(f'<g class="cells">{"".join(cells)}</g>')
        parts.append(f'<rect class="axes" x="{x0:.1f}" y="{TOP}" width="{width:.1f}" height="{height}"/>')
        parts.append(f'<text class="tick" x="{x0 + width / 2:.1f}" y="{TOP + height + 15}" text-anchor="middle">'
                     f'{escape(name)}</text>')
    parts.append(f'<text class="axis-title" x="{LEFT + (WIDTH - LEFT - RIGHT) / 2:.1f}" y="{HEIGHT - 8}" '
                 f'text-anchor="middle">{escape(x_title)}</text>')
    parts.append(f'<text class="axis-title" transform="translate(14 {TOP + height / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">{escape(y_title)}</text>')
    return Markup(f'<svg class="plot heatmap" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
                  f'role="img" aria-label="{escape(title)}">{"".join(parts)}</svg>')
