"""The plain-text summary table printed at the end of a run (and by `prunebench report`)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Tuple

from tabulate import tabulate


def score_of(record: Dict[str, Any]) -> Tuple[str, float]:
    name, value = next(iter(record["metrics"].items()))
    return name, value["value"]


def pivot(records: List[Dict[str, Any]]) -> Tuple[List[str], List[List[Any]]]:
    """One row per (model, task, method), one column per task variant, plus GMACs and speed.
    Failed records are no row (see `failure_lines`)."""
    records = [r for r in records if r.get("status", "ok") == "ok"]
    rows: "OrderedDict[Tuple[str, str, str], Dict[str, Any]]" = OrderedDict()
    variants: List[str] = []
    for r in sorted(records, key=lambda r: (r["model"]["name"], r["task"]["name"], _method_order(r), r["task"]["variant"])):
        key = (r["model"]["name"], r["task"]["name"] + "/" + r["task"]["split"], r["method"]["id"])
        suffix = r["task"]["variant"].split("/", 1)[1]
        column = suffix.partition("+")[2] or "clean"
        if column not in variants:
            variants.append(column)
        row = rows.setdefault(key, {})
        metric, value = score_of(r)
        row[column] = value
        if column == "clean":
            row["gmacs"] = r["macs"]["per_sample"] / 1e9
            speed = r.get("throughput") or {}
            row["speed"] = speed.get("samples_per_s")
            row["speedup"] = speed.get("speedup_vs_none")
    variants.sort(key=lambda v: (v != "clean", v))
    headers = ["model", "task", "method"] + variants + ["GMACs", "samples/s", "speedup"]
    table = []
    for (model, task, method), row in rows.items():
        table.append([model, task, method] + [_pct(row.get(v)) for v in variants]
                     + [_num(row.get("gmacs"), 3), _num(row.get("speed"), 1), _num(row.get("speedup"), 2)])
    return headers, table


def summary_table(records: List[Dict[str, Any]]) -> str:
    headers, table = pivot(records)
    return tabulate(table, headers=headers, tablefmt="github")


def _method_order(record: Dict[str, Any]) -> Tuple[int, str, float]:
    keep = record["method"]["params"].get("keep_rate")
    return (record["method"]["name"] != "none", record["method"]["name"], -(keep or 0))


def _pct(value: Any) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _num(value: Any, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def failure_lines(failed: List[Tuple[str, str]]) -> List[str]:
    """One line per distinct error: the pairs it hit (the first few named) and the error."""
    by_error: "OrderedDict[str, List[str]]" = OrderedDict()
    for pair, error in failed:
        by_error.setdefault(error, []).append(pair)
    lines = []
    for error, pairs in by_error.items():
        named = ", ".join(pairs[:3]) + (f" and {len(pairs) - 3} more" if len(pairs) > 3 else "")
        lines.append(f"{named}: {error}" if len(pairs) == 1 else f"{len(pairs)} pairs ({named}): {error}")
    return lines
