"""The page's figures, built from the main table: Pareto plots of score against GMACs and against
throughput (frontier marked), and score-against-SNR curves per method."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from markupsafe import Markup

from prunebench.analysis.schema import AXES, Measure, metric
from prunebench.analysis.table import CLEAN, Row, Table, group_title
from prunebench.core.registry import BASELINE
from prunebench.leaderboard.plots import Point, Series, line_plot, pareto_plot
from prunebench.records.record import RecordLike, as_records

Y_OPTIONS = (("clean", "clean score"), ("mean_noisy", "mean noisy score"))


@dataclass
class Figure:
    kind: str  # pareto-gmacs | pareto-throughput | snr
    svg: Markup
    option: str = ""  # which y the figure shows (pareto: clean or mean_noisy)


@dataclass
class FigureGroup:
    model: str
    task: str
    bucket: str
    figures: List[Figure] = field(default_factory=list)

    @property
    def title(self) -> str:
        return group_title(self.model, self.task, self.bucket)


def _groups(table: Table) -> Iterator[Tuple[FigureGroup, List[Row], Measure]]:
    """Each (model, task, bucket) of the table: an empty figure group, its rows, and their score."""
    groups: Dict[Tuple[str, str, str], List[Row]] = {}
    for row in table.rows:
        groups.setdefault(row.group, []).append(row)
    for (model, task, bucket), rows in groups.items():
        yield FigureGroup(model, task, bucket), rows, metric(rows[0].metric) if rows[0].metric else metric("score")


def _value(row: Row, key: str) -> Optional[float]:
    cell = row.cells.get(key)
    if cell is None or cell.status != "ok" or not isinstance(cell.value, (int, float)):
        return None
    return float(cell.value)


def point_label(row: Row) -> str:
    if row.method_name == BASELINE:
        return BASELINE
    if row.keep_rate is not None:
        return f"{row.method_name} {row.keep_rate:g}"
    params = row.cells.get("params")
    return row.method_name + (f" {params.text}" if params is not None and params.text else "")


def pareto_figures(table: Table, colors: Dict[str, str]) -> List[FigureGroup]:
    out = []
    for group, rows, score in _groups(table):
        for option, option_label in Y_OPTIONS:
            for x_key, kind in (("gmacs", "pareto-gmacs"), ("samples_per_s", "pareto-throughput")):
                x_measure = AXES[x_key]
                by_device: Dict[str, List[Row]] = {}
                for row in rows:
                    if _value(row, option) is not None and _value(row, x_key) is not None:
                        device = row.cells["device"].text if x_key == "samples_per_s" and "device" in row.cells else ""
                        by_device.setdefault(device, []).append(row)
                for device, plotted in sorted(by_device.items()):
                    points = [_point(r, option, x_key, x_measure, score, colors) for r in plotted]
                    title = f"{option_label} vs {x_measure.label}" + (f" on {device}" if device else "")
                    svg = pareto_plot(points, x_measure.heading, f"{option_label} ({score.unit})" if score.unit
                                      else option_label, title, bool(x_measure.higher_is_better))
                    group.figures.append(Figure(kind, svg, option))
        if group.figures:
            out.append(group)
    return out


def _point(row: Row, option: str, x_key: str, x_measure: Measure, score: Measure, colors: Dict[str, str]) -> Point:
    x = x_measure.display(_value(row, x_key))
    y = score.display(_value(row, option))
    tooltip = (f"{row.method} on {row.task}: {score.format(_value(row, option))}{score.unit} at "
               f"{x_measure.format(_value(row, x_key))} {x_measure.unit}")
    return Point(x, y, point_label(row), tooltip, colors.get(row.method, "#888888"))


def snr_figures(table: Table, records: Iterable[RecordLike], colors: Dict[str, str]) -> List[FigureGroup]:
    """Score against SNR, one plot per corruption type, one line per method; clean at the right."""
    snr_of: Dict[str, Tuple[str, float]] = {}
    for r in as_records(records):
        if r.corruption is not None and r.corruption.snr_db is not None:
            snr_of[r.corruption.id] = (r.corruption.name, r.corruption.snr_db)
    out = []
    for group, rows, score in _groups(table):
        kinds = sorted({name for cid, (name, _) in snr_of.items() if any(cid in r.cells for r in rows)})
        for kind in kinds:
            levels = sorted({snr for cid, (name, snr) in snr_of.items() if name == kind and any(cid in r.cells for r in rows)})
            if not levels:
                continue
            step = (levels[-1] - levels[0]) / max(len(levels) - 1, 1) or 10.0
            clean_x = levels[-1] + step
            series = []
            for row in rows:
                s = Series(point_label(row), colors.get(row.method, "#888888"))
                for cid, (name, snr) in snr_of.items():
                    if name == kind and _value(row, cid) is not None:
                        s.points.append(_snr_point(snr, row.cells[cid], score))
                if _value(row, CLEAN) is not None and s.points:
                    s.points.append(_snr_point(clean_x, row.cells[CLEAN], score))
                if s.points:
                    series.append(s)
            if not series:
                continue
            ticks = [(snr, f"{snr:g}") for snr in levels] + [(clean_x, "clean")]
            svg = line_plot(series, f"{kind} noise, {AXES['snr_db'].heading}", f"{score.label} ({score.unit})"
                            if score.unit else score.label, f"{score.label} vs SNR, {kind} noise", ticks)
            group.figures.append(Figure("snr", svg, kind))
        if group.figures:
            out.append(group)
    return out


def _snr_point(x: float, cell, score: Measure) -> Tuple[float, float, Optional[Tuple[float, float]]]:
    ci = (score.display(cell.ci[0]), score.display(cell.ci[1])) if cell.ci else None
    return (x, score.display(cell.value), ci)
