"""The table builder: records -> the main table, one row per (model, task, bucket, method).

Columns: model, task, bucket (when any record has one), method, params, the score on the clean
variant and under each corruption, the mean noisy score, GMACs, throughput, speedup and device.
Cells keep the raw value (for sorting and plots), the formatted text (per the display schema), a
note (interval, device, error) and a status: failed and conflicting records show as such, never
as a silent gap. One builder for the page and the terminal: the leaderboard lays this table out
as HTML, the run summary (`prunebench.analysis.summary`) as text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from prunebench.analysis.merge import Conflict
from prunebench.analysis.schema import COLUMNS, Measure, metric, score_measure
from prunebench.records.record import FULL, Record, RecordLike, as_records

CLEAN = "clean"
RowKey = Tuple[str, str, str, str]  # model, task (name/split), bucket, method id


@dataclass
class Column:
    key: str
    label: str
    measure: Optional[Measure] = None  # None: a text column
    group: str = "id"  # id | score | cost
    description: str = ""

    @property
    def numeric(self) -> bool:
        return self.measure is not None

    @property
    def heading(self) -> str:
        return self.label if self.measure is None or not self.measure.unit else f"{self.label} ({self.measure.unit})"


@dataclass
class Cell:
    value: Any = None  # raw value: number (stored units) or text
    text: str = ""
    note: str = ""
    status: str = "ok"  # ok | failed | conflict
    best: bool = False
    css: str = ""  # extra class of the cell, e.g. a verdict's colour
    ci: Optional[Tuple[float, float]] = None  # 95% interval of a score, stored units


@dataclass
class Row:
    model: str
    task: str
    bucket: str
    method: str  # method id
    method_name: str
    keep_rate: Optional[float]
    metric: str
    cells: Dict[str, Cell] = field(default_factory=dict)

    @property
    def group(self) -> Tuple[str, str, str]:
        """Rows whose scores are comparable: same model, task and bucket."""
        return (self.model, self.task, self.bucket)


@dataclass
class Table:
    columns: List[Column]
    rows: List[Row]

    def headers(self) -> List[str]:
        return [c.heading for c in self.columns]

    def text_rows(self) -> List[List[str]]:
        return [[row.cells.get(c.key, Cell()).text for c in self.columns] for row in self.rows]


def group_title(model: str, task: str, bucket: str) -> str:
    """The heading of a (model, task, bucket) figure group; the full-length bucket goes unnamed."""
    return " · ".join(p for p in (model, task, bucket if bucket != FULL else "") if p)


def row_key(record: Record) -> RowKey:
    return (record.model, record.task_id, record.bucket_label, record.method.id)


# -- the builder ------------------------------------------------------------------------------
def main_table(records: Iterable[RecordLike], failed: Iterable[RecordLike] = (),
               conflicts: Iterable[Conflict] = ()) -> Table:
    """The main table of successful records, with failed and conflicting ones marked in place."""
    records = as_records(records)
    marked = [(r, "failed", r.failure.text) for r in as_records(failed)]
    for conflict in conflicts:
        if conflict.records:
            marked.append((conflict.records[0], "conflict", "conflicting records: " + "; ".join(conflict.differences)
                           + " (" + ", ".join(conflict.paths) + ")"))
    everything = records + [r for r, _, _ in marked]
    corruption_records = sorted((r for r in everything if r.corruption), key=lambda r: r.corruption_order)
    corruptions = list(dict.fromkeys(r.corruption_id for r in corruption_records))
    metrics = {r.metric for r in records if r.metric}
    has_buckets = any(r.bucket is not None for r in everything)
    columns = _columns(corruptions, next(iter(metrics)) if len(metrics) == 1 else None, has_buckets, len(metrics) > 1)

    rows: Dict[RowKey, Row] = {}
    for r in sorted(everything, key=lambda r: (row_key(r)[:3], r.method_sort_key)):
        key = row_key(r)
        if key not in rows:
            rows[key] = Row(*key, r.method.name, r.method.keep_rate, r.metric or "", cells=id_cells(r, has_buckets))
        if not rows[key].metric and r.metric:
            rows[key].metric = r.metric
    for r in records:
        _fill_scores(rows[row_key(r)], r)
    for r, status, note in marked:
        cell = rows[row_key(r)].cells.setdefault(r.corruption_id or CLEAN, Cell())
        cell.status, cell.text, cell.note, cell.value = status, status, note, None
    _fill_mean_noisy(rows.values(), corruptions)
    for row in rows.values():
        if len(metrics) > 1:
            row.cells["metric"] = Cell(row.metric, metric(row.metric).label if row.metric else "")
        _format_scores(row, columns)
    table = Table(columns, list(rows.values()))
    _mark_best(table)
    return table


def _columns(corruptions: List[str], single_metric: Optional[str], has_buckets: bool, mixed: bool) -> List[Column]:
    columns = [Column("model", "model"), Column("task", "task")]
    if has_buckets:
        columns.append(Column("bucket", "bucket", description="length bucket; full: the whole clip"))
    columns += [Column("method", "method"), Column("params", "params")]
    if mixed:
        columns.append(Column("metric", "metric"))
    name = single_metric or "score"

    def score(key: str, label: str, description: str) -> Column:
        measure = score_measure(single_metric, key, label) if single_metric else Measure(key, label, "", 1.0, 3, True)
        return Column(key, label, measure, "score", description or f"{name} on the {label} variant")

    columns.append(score(CLEAN, CLEAN, f"{name} without corruption"))
    columns += [score(c, c, f"{name} under {c}") for c in corruptions]
    if corruptions:
        mean = COLUMNS["mean_noisy"]
        columns.append(Column("mean_noisy", mean.label, score_measure(single_metric, "mean_noisy", mean.label)
                              if single_metric else mean, "score", mean.description))
    for key in ("gmacs", "samples_per_s", "speedup"):
        m = COLUMNS[key]
        columns.append(Column(key, m.label, m, "cost", m.description))
    columns.append(Column("device", "device", description="where throughput was measured"))
    return columns


def id_cells(r: Record, with_bucket: bool) -> Dict[str, Cell]:
    """The cells that say what a row is: model, task, (bucket,) method and its parameters."""
    cells = {"model": Cell(r.model, r.model), "task": Cell(r.task_id, r.task_id),
             "method": Cell(r.method.name, r.method.name, note=r.method.id),
             "params": Cell(r.method.params_text, r.method.params_text)}
    if with_bucket:
        cells["bucket"] = Cell(r.bucket_label, r.bucket_label)
    return cells


def _fill_scores(row: Row, r: Record) -> None:
    ci = r.score_ci
    m = metric(r.metric)
    note = f"95% interval {m.format(ci[0])} to {m.format(ci[1])}" if ci else ""
    row.cells[r.corruption_id or CLEAN] = Cell(r.score, note=note, ci=ci)
    if r.corruption is None:  # cost of the clean variant stands for the row
        row.cells["gmacs"] = Cell(r.macs)
        speed = r.throughput
        row.cells["samples_per_s"] = Cell(speed.get("samples_per_s"), note=_speed_note(speed))
        row.cells["speedup"] = Cell(speed.get("speedup_vs_none"), note=_spread_note(speed))
        device = speed.get("device") or r.provenance.get("device") or ""
        row.cells["device"] = Cell(str(device), str(device))


def _speed_note(speed: Dict[str, Any]) -> str:
    if not speed:
        return "throughput not measured"
    parts = [f"{k} {speed[k]}" for k in ("device", "dtype", "batch_size", "threads", "repeats") if speed.get(k) is not None]
    return ", ".join(parts)


def _spread_note(speed: Dict[str, Any]) -> str:
    spread = speed.get("spread")
    return "" if spread is None else f"spread over repeats {100 * spread:.0f}%"


def _fill_mean_noisy(rows: Iterable[Row], corruptions: List[str]) -> None:
    rows = list(rows)
    expected: Dict[Tuple[str, str, str], set] = {}
    for row in rows:
        present = {c for c in corruptions if c in row.cells}
        expected.setdefault(row.group, set()).update(present)
    for row in rows:
        wanted = sorted(expected[row.group])
        if not wanted:
            continue
        values = [row.cells[c].value for c in wanted if c in row.cells and row.cells[c].status == "ok"]
        if len(values) == len(wanted):
            row.cells["mean_noisy"] = Cell(sum(values) / len(values), note=f"mean over {', '.join(wanted)}")
        else:
            missing = [c for c in wanted if c not in row.cells or row.cells[c].status != "ok"]
            row.cells["mean_noisy"] = Cell(None, note="incomplete: no result for " + ", ".join(missing))


def _format_scores(row: Row, columns: List[Column]) -> None:
    for column in columns:
        cell = row.cells.get(column.key)
        if column.measure is None or cell is None or cell.status != "ok":
            continue
        measure = column.measure
        if column.group == "score" and row.metric:
            measure = metric(row.metric)  # mixed tables: each row in its own metric
        cell.text = measure.format(cell.value)


def _mark_best(table: Table) -> None:
    """Bold the best value of each ranked column within rows of the same model, task and bucket."""
    groups: Dict[Tuple[str, str, str], List[Row]] = {}
    for row in table.rows:
        groups.setdefault(row.group, []).append(row)
    for column in table.columns:
        measure = column.measure
        if measure is None or measure.higher_is_better is None:
            continue
        for rows in groups.values():
            cells = [r.cells[column.key] for r in rows if column.key in r.cells and r.cells[column.key].status == "ok"
                     and isinstance(r.cells[column.key].value, (int, float))]
            if len(cells) < 2:
                continue
            best = max(c.value for c in cells) if measure.higher_is_better else min(c.value for c in cells)
            if all(c.value == best for c in cells):
                continue  # a tie of all: nothing stands out
            for c in cells:
                c.best = c.value == best
