"""Length-bucket throughput: per (model, task, method), throughput and speedup at each clip length
(the clean variant of each bucket; `full` is the whole clip), so the effect of pruning on short and
variable-length input is read off one row."""
from __future__ import annotations

from typing import Dict, Iterable, Tuple

from prunebench.analysis.schema import COLUMNS
from prunebench.analysis.table import Cell, Column, Row, Table, id_cells
from prunebench.records.record import FULL, Record, RecordLike, as_records


def bucket_table(records: Iterable[RecordLike]) -> Table:
    clean = [r for r in as_records(records) if r.corruption is None]
    buckets = list(dict.fromkeys(r.bucket_label for r in sorted(clean, key=lambda r: r.bucket_order)))
    speed, speedup, gmacs = COLUMNS["samples_per_s"], COLUMNS["speedup"], COLUMNS["gmacs"]
    columns = [Column("model", "model"), Column("task", "task"), Column("method", "method"), Column("params", "params")]
    for b in buckets:
        columns.append(Column(f"{b}:speed", f"{b} {speed.label}", speed, "cost", f"{speed.description}; clips of {b}"))
        columns.append(Column(f"{b}:speedup", f"{b} {speedup.label}", speedup, "cost", speedup.description))
        columns.append(Column(f"{b}:gmacs", f"{b} {gmacs.label}", gmacs, "cost", gmacs.description))
    rows: Dict[Tuple[str, str, str], Row] = {}
    for r in sorted(clean, key=lambda r: (r.model, r.task_id, r.method_sort_key)):
        key = (r.model, r.task_id, r.method.id)
        if key not in rows:
            rows[key] = _row(r, key)
        _fill(rows[key], r)
    return Table(columns, list(rows.values()))


def _row(r: Record, key: Tuple[str, str, str]) -> Row:
    return Row(key[0], key[1], FULL, key[2], r.method.name, r.method.keep_rate, "", cells=id_cells(r, with_bucket=False))


def _fill(row: Row, r: Record) -> None:
    """The bucket's cells of a method's row, from its clean record of that bucket."""
    speed, speedup, gmacs = COLUMNS["samples_per_s"], COLUMNS["speedup"], COLUMNS["gmacs"]
    b, t = r.bucket_label, r.throughput
    row.cells[f"{b}:speed"] = Cell(t.get("samples_per_s"), speed.format(t.get("samples_per_s")),
                                   note=str(t.get("device") or ""))
    row.cells[f"{b}:speedup"] = Cell(t.get("speedup_vs_none"), speedup.format(t.get("speedup_vs_none")))
    row.cells[f"{b}:gmacs"] = Cell(r.macs, gmacs.format(r.macs))
