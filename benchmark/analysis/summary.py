"""The plain-text summary table printed at the end of a run: the leaderboard's main table as text.

The table is built by `prunebench.analysis.table.main_table` (one builder for the page and the
terminal); this module only lays it out with tabulate.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import List, Sequence, Tuple

from tabulate import tabulate

from prunebench.analysis.merge import merge
from prunebench.analysis.table import Table, main_table
from prunebench.records.record import RecordLike


def build_table(records: Sequence[RecordLike]) -> Table:
    merged = merge(records)
    return main_table(merged.records, merged.failed, merged.conflicts)


def pivot(records: Sequence[RecordLike]) -> Tuple[List[str], List[List[str]]]:
    """Headers and formatted rows of the main table: one row per (model, task, bucket, method)."""
    table = build_table(records)
    return table.headers(), table.text_rows()


def summary_table(records: Sequence[RecordLike]) -> str:
    table = build_table(records)
    align = ["right" if c.numeric else "left" for c in table.columns]
    return tabulate(table.text_rows(), headers=table.headers(), tablefmt="github", disable_numparse=True, colalign=align)


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
