"""Length-bucket throughput: per (model, task, method), throughput and speedup at each clip length
(the clean variant of each bucket; `full` is the whole clip), so the effect of pruning on short and
variable-length input is read off one row."""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from benchmark.leaderboard.schema import COLUMNS
from benchmark.leaderboard.table import FULL, Cell, Column, Row, Table, bucket_id, corruption_of, keep_rate_of, method_sort_key, \
    params_text, task_id


def bucket_sort_key(record: Dict[str, Any]) -> Tuple:
    bucket = record["task"].get("bucket") or {}
    params = bucket.get("params") or {}
    seconds = params.get("seconds")
    return (bool(bucket), str(params.get("mode", "")), float(seconds) if isinstance(seconds, (int, float)) else 0.0,
            bucket_id(record))


def bucket_table(records: List[Dict[str, Any]]) -> Table:
    clean = [r for r in records if corruption_of(r) is None]
    buckets = list(dict.fromkeys(bucket_id(r) for r in sorted(clean, key=bucket_sort_key)))
    speed, speedup, gmacs = COLUMNS["samples_per_s"], COLUMNS["speedup"], COLUMNS["gmacs"]
    columns = [Column("model", "model"), Column("task", "task"), Column("method", "method"), Column("params", "params")]
    for b in buckets:
        columns.append(Column(f"{b}:speed", f"{b} {speed.label}", speed, "cost", f"{speed.description}; clips of {b}"))
        columns.append(Column(f"{b}:speedup", f"{b} {speedup.label}", speedup, "cost", speedup.description))
        columns.append(Column(f"{b}:gmacs", f"{b} {gmacs.label}", gmacs, "cost", gmacs.description))
    rows: Dict[Tuple[str, str, str], Row] = {}
    for r in sorted(clean, key=lambda r: (str(r["model"]["name"]), task_id(r), method_sort_key(r))):
        key = (str(r["model"]["name"]), task_id(r), str(r["method"]["id"]))
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(key[0], key[1], FULL, key[2], str(r["method"]["name"]), keep_rate_of(r), "")
            row.cells = {"model": Cell(key[0], key[0]), "task": Cell(key[1], key[1]),
                         "method": Cell(str(r["method"]["name"]), str(r["method"]["name"]), note=key[2]),
                         "params": Cell(params_text(r), params_text(r))}
        b = bucket_id(r)
        t = r.get("throughput") or {}
        row.cells[f"{b}:speed"] = Cell(t.get("samples_per_s"), speed.format(t.get("samples_per_s")),
                                       note=str(t.get("device") or ""))
        row.cells[f"{b}:speedup"] = Cell(t.get("speedup_vs_none"), speedup.format(t.get("speedup_vs_none")))
        per_sample = (r.get("macs") or {}).get("per_sample")
        row.cells[f"{b}:gmacs"] = Cell(per_sample, gmacs.format(per_sample))
    return Table(columns, list(rows.values()))
