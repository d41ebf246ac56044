"""The effective-robustness figure and table (the statistics: prunebench.analysis.effective).

One figure per model, task and noise condition, as Taori et al. and Miller et al. draw it: probit
axes labelled in accuracy, the testbed members as grey points (probes round, earlier epochs square), the fitted line with its 95% band
(the lines refitted over the bootstrap resamples), y = x dashed, and the grid's models (every
method, `none` included) as labelled coloured points. One table per model and task: each method's
effective robustness per condition and its mean over the conditions on a line.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Dict, List, Optional, Tuple

from markupsafe import Markup, escape

from prunebench.analysis.effective import Condition, EffectiveRobustness, probit
from prunebench.leaderboard.plots import BASELINE_COLOR, _Frame

MEMBER_COLOR = "#9a9ea6"
ACCURACY_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


@dataclass
class EffectiveGroup:
    model: str
    task: str
    title: str
    figures: List[Markup]
    headers: List[str]
    rows: List[List[str]]


def effective_groups(result: EffectiveRobustness, colors: Dict[str, str]) -> List[EffectiveGroup]:
    groups: List[EffectiveGroup] = []
    for model, task in sorted({(c.model, c.task) for c in result.conditions}):
        conditions = sorted((c for c in result.conditions if (c.model, c.task) == (model, task)),
                            key=lambda c: c.corruption_order)
        members = len(conditions[0].members)
        title = f"{model} on {task}: {members} testbed members, {conditions[0].clips} clips"
        figures = [effective_figure(c, colors) for c in conditions]
        headers, rows = _table(result, model, task, conditions)
        groups.append(EffectiveGroup(model, task, title, figures, headers, rows))
    return groups


def _table(result: EffectiveRobustness, model: str, task: str, conditions: List[Condition]
           ) -> Tuple[List[str], List[List[str]]]:
    headers = ["method", "keep"] + [c.corruption + ("" if c.no_verdict is None else " (no line)") for c in conditions]
    headers += ["mean ER [95% CI]", "could have detected", "verdict", "vs none [95% CI]"]
    methods: Dict[str, List[str]] = {}
    for i, c in enumerate(conditions):
        for m in sorted(c.methods, key=lambda m: m.sort_key):
            row = methods.setdefault(m.method, [m.method_name, "" if m.keep_rate is None else f"{m.keep_rate:g}"]
                                     + [""] * len(conditions))
            row[2 + i] = "" if m.er is None else f"{m.er * 100:+.1f} {_ci(m.ci95)}"
    pooled = {p.method: p for p in result.pooled if (p.model, p.task) == (model, task)}
    rows = []
    for method, row in methods.items():
        p = pooled.get(method)
        rows.append(row + ([f"{p.er * 100:+.1f} {_ci(p.ci95)}", "" if p.mde is None else f">= {p.mde * 100:.1f}",
                            p.verdict, "" if p.vs_none is None else f"{p.vs_none * 100:+.1f} {_ci(p.vs_none_ci95)}"]
                           if p else ["", "", "no verdict: no condition has a line", ""]))
    return headers, rows


def _ci(ci: Optional[Tuple[float, float]]) -> str:
    return "" if ci is None else f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"


def effective_figure(c: Condition, colors: Dict[str, str]) -> Markup:
    """Probit(noisy) against probit(clean): members, the line and its band, the grid's models."""
    n = c.clips
    xs = [probit(p.clean, n) for p in c.members] + [probit(m.clean, n) for m in c.methods]
    ys = [probit(p.noisy, n) for p in c.members] + [probit(m.noisy, n) for m in c.methods]
    lo_x, hi_x = min(xs, default=0.0), max(xs, default=1.0)
    lo_y, hi_y = min(ys, default=0.0), max(ys, default=1.0)
    ticks_x = _ticks(lo_x, hi_x, n)
    ticks_y = _ticks(lo_y, hi_y, n)
    fit = c.line
    if fit is None:
        title = f"{c.corruption}: no line"
    else:
        r2 = "n/a" if fit.r2 is None else f"{fit.r2:.2f}"
        title = f"{c.corruption}: R\u00b2 {r2}" + ("" if c.no_verdict is None else ", no verdict")
    frame = _Frame(xs, ys, "clean accuracy (probit scale)", f"{c.corruption} accuracy (probit scale)", title,
                   ticks_x, ticks_y)
    parts = frame.parts
    clip = _Clip(frame)
    d_lo, d_hi = max(frame.x_lo, frame.y_lo), min(frame.x_hi, frame.y_hi)
    if d_hi > d_lo:
        parts.append(f'<line class="diagonal" x1="{frame.sx(d_lo):.1f}" y1="{frame.sy(d_lo):.1f}" x2="{frame.sx(d_hi):.1f}" '
                     f'y2="{frame.sy(d_hi):.1f}" stroke="#c8ccd2" stroke-dasharray="4 3"><title>y = x: noise costs nothing</title></line>')
    if c.band:
        upper = [(probit(g, n), probit(hi, n)) for g, _, hi in c.band]
        lower = [(probit(g, n), probit(lo, n)) for g, lo, _ in reversed(c.band)]
        d = " ".join(f"{'M' if k == 0 else 'L'}{clip.x(x):.1f},{clip.y(y):.1f}" for k, (x, y) in enumerate(upper + lower))
        parts.append(f'<path class="band" d="{d} Z" fill="#4e79a7" fill-opacity="0.15" stroke="none">'
                     f'<title>95% band of the line (refitted over the bootstrap resamples)</title></path>')
    if fit is not None:  # dashed over the whole plot (extrapolated), solid over the members' range
        ends = _inside(fit.slope, fit.intercept, frame)
        if ends:
            (x0, x1) = ends
            parts.append(f'<path class="fit-extrapolated" d="M{frame.sx(x0):.1f},{frame.sy(fit.slope * x0 + fit.intercept):.1f} '
                         f'L{frame.sx(x1):.1f},{frame.sy(fit.slope * x1 + fit.intercept):.1f}" fill="none" '
                         f'stroke="#4e79a7" stroke-width="1" stroke-dasharray="5 3"/>')
        grid = [g for g, _, _ in c.band] or [p.clean for p in c.members]
        pts = [(probit(g, n), fit.slope * probit(g, n) + fit.intercept) for g in sorted(grid)]
        pts = [(x, y) for x, y in pts if frame.x_lo <= x <= frame.x_hi and frame.y_lo <= y <= frame.y_hi]
        d = " ".join(f"{'M' if k == 0 else 'L'}{frame.sx(x):.1f},{frame.sy(y):.1f}" for k, (x, y) in enumerate(pts))
        if pts:
            parts.append(f'<path class="fit" d="{d}" fill="none" stroke="#4e79a7" stroke-width="1.6">'
                         f'<title>{escape(_line_text(c))}</title></path>')
    for p in c.members:
        residual = "" if p.residual is None else f", residual {p.residual:+.2f}"
        x, y = frame.sx(probit(p.clean, n)), frame.sy(probit(p.noisy, n))
        title = f'<title>{escape(f"testbed {p.name}: clean {p.clean * 100:.1f}%, noisy {p.noisy * 100:.1f}%{residual}")}</title>'
        if p.epoch is None:  # a probe: a circle
            parts.append(f'<circle class="member" cx="{x:.1f}" cy="{y:.1f}" r="3.4" fill="{MEMBER_COLOR}" stroke="#ffffff">'
                         f'{title}</circle>')
        else:  # the fine-tuning after an earlier epoch: a square
            parts.append(f'<rect class="member epoch" x="{x - 3.4:.1f}" y="{y - 3.4:.1f}" width="6.8" height="6.8" '
                         f'fill="{MEMBER_COLOR}" stroke="#ffffff">{title}</rect>')
    placed: List[Tuple[float, float, float, float]] = []  # label boxes already drawn
    for m in sorted(c.methods, key=lambda m: m.sort_key):
        color = colors.get(m.method, BASELINE_COLOR)
        x, y = frame.sx(probit(m.clean, n)), frame.sy(probit(m.noisy, n))
        label = m.method_name + ("" if m.keep_rate is None else f" {m.keep_rate:g}")
        er = "" if m.er is None else f", ER {m.er * 100:+.1f} points {_ci(m.ci95)}: {m.verdict}"
        tip = f"{m.method}: clean {m.clean * 100:.1f}%, noisy {m.noisy * 100:.1f}%{er}"
        parts.append(f'<circle class="point front" cx="{x:.1f}" cy="{y:.1f}" r="4.6" fill="{color}" stroke="#ffffff">'
                     f'<title>{escape(tip)}</title></circle>')
        lx, ly, anchor = _label_place(x, y, label, frame, placed)
        parts.append(f'<text class="point-label" x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" fill="{color}">'
                     f'{escape(label)}</text>')
    return frame.svg("effective", f"effective robustness, {c.model} on {c.task}, {c.corruption}")


class _Clip:
    """Screen coordinates held inside the plot's box (a band or line may run past the points)."""

    def __init__(self, frame: _Frame):
        self.frame = frame

    def x(self, value: float) -> float:
        f = self.frame
        return f.sx(min(max(value, f.x_lo), f.x_hi))

    def y(self, value: float) -> float:
        f = self.frame
        return f.sy(min(max(value, f.y_lo), f.y_hi))


def _inside(slope: float, intercept: float, frame: _Frame) -> Optional[Tuple[float, float]]:
    """The x range over which the line y = slope x + intercept lies inside the plot's box."""
    lo, hi = frame.x_lo, frame.x_hi
    if slope != 0:
        a, b = sorted(((frame.y_lo - intercept) / slope, (frame.y_hi - intercept) / slope))
        lo, hi = max(lo, a), min(hi, b)
    elif not frame.y_lo <= intercept <= frame.y_hi:
        return None
    return (lo, hi) if hi > lo else None


def _label_place(x: float, y: float, label: str, frame: _Frame,
                 placed: List[Tuple[float, float, float, float]]) -> Tuple[float, float, str]:
    """(x, y, anchor) of a label near the point (x, y): inside the plot, clear of the labels placed
    before, right of the point first, then left, at growing distances (the first try if none is free)."""
    width = 5.6 * len(label)
    left, right = frame.sx(frame.x_lo), frame.sx(frame.x_hi)
    top, bottom = frame.sy(frame.y_hi), frame.sy(frame.y_lo)
    for dy in (4, -6, 14, -16, 24, -26, 34, -36, 44, -46):
        for anchor, lx in (("start", x + 7), ("end", x - 7)):
            x0 = lx if anchor == "start" else lx - width
            box = (x0, y + dy - 9, x0 + width, y + dy + 2)
            inside = box[0] >= left and box[2] <= right and box[1] >= top and box[3] <= bottom
            if inside and all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed):
                placed.append(box)
                return lx, y + dy, anchor
    return x + 7, y - 6, "start"


def _ticks(lo: float, hi: float, n: int) -> List[Tuple[float, str]]:
    """Accuracy ticks (in %) whose probits fall in [lo, hi] (with a margin)."""
    span = (hi - lo) or 1.0
    inside = [(probit(a, n), f"{a * 100:g}") for a in ACCURACY_TICKS
              if lo - 0.08 * span <= NormalDist().inv_cdf(a) <= hi + 0.08 * span]
    return inside


def _line_text(c: Condition) -> str:
    fit = c.line
    r2 = "n/a" if fit.r2 is None else f"{fit.r2:.3f}"
    return (f"probit(noisy) = {fit.slope:.3f} probit(clean) {fit.intercept:+.3f}; R\u00b2 {r2}, rmse {fit.rmse:.3f}"
            + ("" if c.no_verdict is None else f"; {c.no_verdict}"))
