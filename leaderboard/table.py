"""The table builder: records -> the main table, one row per (model, task, bucket, method).

Columns: model, task, bucket (when any record has one), method, params, the score on the clean
variant and under each corruption, the mean noisy score, GMACs, throughput, speedup and device.
Cells keep the raw value (for sorting and plots), the formatted text (per the display schema), a
note (interval, device, error) and a status: failed and conflicting records show as such, never
as a silent gap. The run summary (`benchmark.analysis.summary`) prints this same table as text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from benchmark.leaderboard.collect import Conflict, failure_message
from benchmark.leaderboard.schema import COLUMNS, Measure, metric, score_measure

CLEAN = "clean"
FULL = "full"  # the bucket label of unbucketed variants
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
    def group(self) -> Tuple[str, str]:
        """Rows whose scores are comparable: same task and bucket."""
        return (self.task, self.bucket)


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


# -- record fields ----------------------------------------------------------------------------
def task_id(record: Dict[str, Any]) -> str:
    return f"{record['task']['name']}/{record['task']['split']}"


def bucket_id(record: Dict[str, Any]) -> str:
    bucket = record["task"].get("bucket")
    return FULL if not bucket else str(bucket.get("id", FULL))


def corruption_of(record: Dict[str, Any]) -> Optional[str]:
    corruption = record["task"].get("corruption")
    return None if not corruption else str(corruption["id"])


def corruption_sort_key(record: Dict[str, Any]) -> Tuple:
    """White before pink, cleanest first: (name, -SNR, id)."""
    c = record["task"].get("corruption") or {}
    snr = (c.get("params") or {}).get("snr_db")
    return (str(c.get("name", "")), -float(snr) if isinstance(snr, (int, float)) else 0.0, str(c.get("id", "")))


def metric_of(record: Dict[str, Any]) -> Optional[str]:
    metrics = record.get("metrics") or {}
    return next(iter(metrics), None)


def score_of(record: Dict[str, Any]) -> Tuple[str, float]:
    name = metric_of(record)
    return name, record["metrics"][name]["value"]


def keep_rate_of(record: Dict[str, Any]) -> Optional[float]:
    keep = (record["method"].get("params") or {}).get("keep_rate")
    return float(keep) if isinstance(keep, (int, float)) else None


def params_text(record: Dict[str, Any]) -> str:
    """The parameters that differ from the method's defaults, as its id names them."""
    name, ident = str(record["method"]["name"]), str(record["method"]["id"])
    if ident == name:
        return ""
    if ident.startswith(name + "-"):
        return ", ".join(re.split(r"-(?=[A-Za-z_]\w*=)", ident[len(name) + 1:]))
    params = record["method"].get("params") or {}
    return ", ".join(f"{k}={_param(v)}" for k, v in sorted(params.items()))


def method_sort_key(record: Dict[str, Any]) -> Tuple:
    keep = keep_rate_of(record)
    return (record["method"]["name"] != "none", str(record["method"]["name"]), -(keep if keep is not None else 2.0),
            str(record["method"]["id"]))


def row_key(record: Dict[str, Any]) -> RowKey:
    return (str(record["model"]["name"]), task_id(record), bucket_id(record), str(record["method"]["id"]))


def _param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param(v) for v in value) + "]"
    return str(value)


# -- the builder ------------------------------------------------------------------------------
def main_table(records: Iterable[Dict[str, Any]], failed: Iterable[Dict[str, Any]] = (),
               conflicts: Iterable[Conflict] = ()) -> Table:
    """The main table of successful records, with failed and conflicting ones marked in place."""
    records = list(records)
    marked = [(r, "failed", failure_message(r)) for r in failed]
    for conflict in conflicts:
        first = _first_record(conflict)
        if first is not None:
            marked.append((first, "conflict", "conflicting records: " + "; ".join(conflict.differences)
                           + " (" + ", ".join(conflict.paths) + ")"))
    everything = records + [r for r, _, _ in marked]
    order = sorted(everything, key=lambda r: (row_key(r)[:3], method_sort_key(r)))

    corruption_records = sorted((r for r in everything if corruption_of(r)), key=corruption_sort_key)
    corruptions = list(dict.fromkeys(corruption_of(r) for r in corruption_records))
    metrics = {metric_of(r) for r in records if metric_of(r)}
    single_metric = next(iter(metrics)) if len(metrics) == 1 else None
    has_buckets = any(bucket_id(r) != FULL for r in everything)
    columns = _columns(corruptions, single_metric, has_buckets, len(metrics) > 1)

    rows: Dict[RowKey, Row] = {}
    for r in order:
        key = row_key(r)
        if key not in rows:
            rows[key] = Row(key[0], key[1], key[2], key[3], str(r["method"]["name"]), keep_rate_of(r),
                            metric_of(r) or "", cells=_id_cells(r, key, has_buckets))
        row = rows[key]
        if not row.metric and metric_of(r):
            row.metric = metric_of(r)
    for r in records:
        _fill_scores(rows[row_key(r)], r)
    for r, status, note in marked:
        column = corruption_of(r) or CLEAN
        cell = rows[row_key(r)].cells.setdefault(column, Cell())
        cell.status, cell.text, cell.note, cell.value = status, status, note, None
    _fill_mean_noisy(rows.values(), corruptions)
    for row in rows.values():
        if len(metrics) > 1:
            row.cells["metric"] = Cell(row.metric, metric(row.metric).label if row.metric else "")
        _format_scores(row, columns)
    table = Table(columns, list(rows.values()))
    _mark_best(table)
    return table


def _first_record(conflict: Conflict) -> Optional[Dict[str, Any]]:
    return conflict.records[0] if conflict.records else None


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


def _id_cells(r: Dict[str, Any], key: RowKey, has_buckets: bool) -> Dict[str, Cell]:
    cells = {"model": Cell(key[0], key[0]), "task": Cell(key[1], key[1]), "method": Cell(
        str(r["method"]["name"]), str(r["method"]["name"]), note=key[3]), "params": Cell(params_text(r), params_text(r))}
    if has_buckets:
        cells["bucket"] = Cell(key[2], key[2])
    return cells


def _fill_scores(row: Row, r: Dict[str, Any]) -> None:
    name, value = score_of(r)
    ci = r["metrics"][name].get("ci95")
    m = metric(name)
    note = f"95% interval {m.format(ci[0])} to {m.format(ci[1])}" if ci else ""
    row.cells[corruption_of(r) or CLEAN] = Cell(value, note=note, ci=tuple(ci) if ci else None)
    if corruption_of(r) is None:  # cost of the clean variant stands for the row
        row.cells["gmacs"] = Cell((r.get("macs") or {}).get("per_sample"))
        speed = r.get("throughput") or {}
        row.cells["samples_per_s"] = Cell(speed.get("samples_per_s"), note=_speed_note(speed))
        row.cells["speedup"] = Cell(speed.get("speedup_vs_none"), note=_spread_note(speed))
        device = speed.get("device") or (r.get("provenance") or {}).get("device") or ""
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
        expected.setdefault((row.model,) + row.group, set()).update(present)
    for row in rows:
        wanted = sorted(expected[(row.model,) + row.group])
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
        groups.setdefault((row.model,) + row.group, []).append(row)
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
