"""The central figure: per model and task, clean score and robustness effect against measured speedup,
one line per method, and the iso-speed table (each method at 1.25x, 1.5x, 2x).

The curves and the table come from `prunebench.analysis.speed` (the report prints the same table);
this module only draws them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from markupsafe import Markup

from prunebench.analysis.robustness import Comparison
from prunebench.analysis.speed import ISO_SPEEDS, SpeedCurve, iso_speed_table, speed_curves
from prunebench.analysis.table import group_title
from prunebench.core.registry import BASELINE
from prunebench.leaderboard.plots import Series, colors_for, line_plot
from prunebench.records.record import RecordLike


@dataclass
class SpeedGroup:
    model: str
    task: str
    bucket: str
    device: str
    figures: List[Markup] = field(default_factory=list)
    iso_rows: List[List[str]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return group_title(self.model, self.task, self.bucket) + (f", {self.device}" if self.device else "")


def speed_groups(records: Sequence[RecordLike], comparisons: Sequence[Comparison], seed: int = 0) -> List[SpeedGroup]:
    curves = speed_curves(records, seed, comparisons)
    colors = colors_for(list(dict.fromkeys(c.method for c in curves)))  # one color per method, not per keep rate
    grouped: Dict[tuple, List[SpeedCurve]] = {}
    for c in curves:
        grouped.setdefault((c.model, c.task, c.bucket or "full", c.device), []).append(c)
    out = []
    for (model, task, bucket, device), group in grouped.items():
        if not any(c.points and c.method != BASELINE for c in group):
            continue
        g = SpeedGroup(model, task, bucket, device)
        g.figures.append(_plot(group, colors, "clean", "clean score (%)", "clean score vs measured speedup"))
        if any(p.effect_ci is not None for c in group for p in c.points):
            kind = "flip" if group[0].effect_kind == "flip" else "drop"
            g.figures.append(_plot(group, colors, "effect", f"{kind} effect (points)",
                                   f"robustness ({kind} effect) vs measured speedup"))
        g.iso_rows = [row[3:] for row in iso_speed_table(group)]
        out.append(g)
    return out


def _plot(curves: List[SpeedCurve], colors: Dict[str, str], what: str, y_title: str, title: str) -> Markup:
    series = []
    for curve in curves:
        s = Series(curve.method, colors.get(curve.method, "#888888"))
        for p in curve.points:
            value, ci = (p.clean, p.clean_ci) if what == "clean" else (p.effect, p.effect_ci)
            if value is not None:
                s.points.append((p.speedup, 100 * value, (100 * ci[0], 100 * ci[1]) if ci else None))
        if s.points:
            series.append(s)
    return line_plot(series, "measured speedup vs none (x)", y_title, title)


ISO_HEADERS = ["method"] + [f"at {s:g}x" for s in ISO_SPEEDS]
