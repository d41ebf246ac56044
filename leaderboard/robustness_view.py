"""The robustness tables: does pruning change what noise costs, per method and keep rate?

The statistics come from `benchmark.analysis.robustness.compare` (paired bootstrap interval of the
pruning effect, McNemar's test, the chance floor, selection Jaccard), the same the report shows;
this module only lays them out:
- the detailed table, one row per (model, task, bucket, method, corruption);
- the verdict table, one row per (model, task, bucket, method): under how many corruptions pruning
  degrades robustness, and the largest effect with its interval and p-value.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from benchmark.analysis.robustness import DEGRADES, FLOOR_NOTE, IMPROVES, NO_EFFECT, Comparison
from benchmark.analysis.schema import AXES, ROBUSTNESS, Measure
from benchmark.analysis.table import Cell, Column, Row, Table
from benchmark.records.record import FULL

CSS = {DEGRADES: "degrades", IMPROVES: "improves", NO_EFFECT: "neutral"}  # a verdict cell's class


def _id_columns(with_bucket: bool) -> List[Column]:
    cols = [Column("model", "model"), Column("task", "task")]
    if with_bucket:
        cols.append(Column("bucket", "bucket"))
    return cols + [Column("method", "method"), Column("keep_rate", "keep rate",
                                                      AXES["keep_rate"], "id")]


def _row(c: Comparison, with_bucket: bool) -> Row:
    bucket = c.bucket or FULL
    row = Row(c.model, c.task, bucket, c.method, c.method_name, c.keep_rate, c.metric)
    row.cells = {"model": Cell(c.model, c.model), "task": Cell(c.task, c.task),
                 "method": Cell(c.method_name, c.method_name, note=c.method),
                 "keep_rate": Cell(c.keep_rate, "" if c.keep_rate is None else f"{c.keep_rate:g}")}
    if with_bucket:
        row.cells["bucket"] = Cell(bucket, bucket)
    return row


def _interval_text(ci: Tuple[float, float]) -> str:
    m = ROBUSTNESS["effect"]
    return f"[{m.format(ci[0])}, {m.format(ci[1])}]"


def detail_table(comps: Sequence[Comparison]) -> Table:
    with_bucket = any(c.bucket for c in comps)
    columns = _id_columns(with_bucket) + [Column("corruption", "corruption")]
    for key in ("clips", "clean", "noisy", "drop", "none_drop", "effect"):
        m = ROBUSTNESS[key]
        columns.append(Column(key, m.label, m, "score", m.description))
    columns.append(Column("effect_ci95", "95% interval", None, "score", "paired bootstrap over clips"))
    for key in ("mcnemar_p", "retention", "consistency", "jaccard"):
        m = ROBUSTNESS[key]
        columns.append(Column(key, m.label, m, "score", m.description))
    columns.append(Column("verdict", "verdict"))
    rows = []
    for c in sorted(comps, key=lambda c: (c.model, c.task, c.bucket or "", c.method_sort_key, c.corruption_order)):
        row = _row(c, with_bucket)
        row.cells["corruption"] = Cell(c.corruption, c.corruption)
        for key in ("clips", "clean", "noisy", "drop", "none_drop", "effect", "mcnemar_p", "retention",
                    "consistency", "jaccard"):
            value = getattr(c, key)
            row.cells[key] = Cell(value, ROBUSTNESS[key].format(value))
        row.cells["effect_ci95"] = Cell(c.effect_ci95[0], _interval_text(c.effect_ci95))
        if c.jaccard is None:
            row.cells["jaccard"].note = "no kept-patch masks (no pruning)"
        row.cells["verdict"] = Cell(c.verdict, c.verdict, css=CSS[c.direction])
        rows.append(row)
    return Table(columns, rows)


def verdict_table(comps: Sequence[Comparison]) -> Table:
    """Per (model, task, bucket, method): the verdict over its corruptions, and the largest effect."""
    with_bucket = any(c.bucket for c in comps)
    groups: Dict[Tuple, List[Comparison]] = {}
    for c in comps:
        groups.setdefault((c.model, c.task, c.bucket, c.method), []).append(c)
    effect, p = ROBUSTNESS["effect"], ROBUSTNESS["mcnemar_p"]
    columns = _id_columns(with_bucket) + [
        Column("verdict", "verdict", description="degrades: the effect's interval lies above 0 under at least one corruption"),
        Column("degrades", "degrades under", Measure("degrades", "degrades under", "", 1.0, 0, None, "integer"), "score",
               "corruptions under which the interval of the effect lies above 0"),
        Column("compared", "of", Measure("compared", "of", "", 1.0, 0, None, "integer"), "score",
               "corruptions compared"),
        Column("worst_effect", "largest effect", effect, "score", effect.description),
        Column("worst_ci", "95% interval", None, "score", "paired bootstrap over clips"),
        Column("worst_p", "p", p, "score", p.description),
        Column("worst_at", "at"),
        Column("mean_jaccard", "selection Jaccard", ROBUSTNESS["jaccard"], "score",
               "mean over corruptions of the clean-vs-noisy kept-patch overlap"),
    ]
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1], k[2] or "", groups[k][0].method_sort_key)):
        cs = groups[key]
        row = _row(cs[0], with_bucket)
        degrades = sum(c.direction == DEGRADES for c in cs)
        worst = max(cs, key=lambda c: c.effect)
        row.cells["verdict"] = _verdict_cell(cs)
        row.cells["degrades"] = Cell(degrades, str(degrades))
        row.cells["compared"] = Cell(len(cs), str(len(cs)))
        row.cells["worst_effect"] = Cell(worst.effect, effect.format(worst.effect))
        row.cells["worst_ci"] = Cell(worst.effect_ci95[0], _interval_text(worst.effect_ci95))
        row.cells["worst_p"] = Cell(worst.mcnemar_p, p.format(worst.mcnemar_p))
        row.cells["worst_at"] = Cell(worst.corruption, worst.corruption)
        jaccards = [c.jaccard for c in cs if c.jaccard is not None]
        mean_j = sum(jaccards) / len(jaccards) if jaccards else None
        row.cells["mean_jaccard"] = Cell(mean_j, ROBUSTNESS["jaccard"].format(mean_j))
        rows.append(row)
    return Table(columns, rows)


def _verdict_cell(cs: List[Comparison]) -> Cell:
    """The verdict over a method's corruptions: it degrades robustness where it does under any of
    them, else it improves it where it does under any."""
    counts = {d: sum(c.direction == d for c in cs) for d in (DEGRADES, IMPROVES)}
    direction = next((d for d, n in counts.items() if n), NO_EFFECT)
    text = direction if direction == NO_EFFECT else f"{direction} under {counts[direction]} of {len(cs)}"
    floor = sum(c.near_chance for c in cs)
    if floor:
        text += f" ({floor} {FLOOR_NOTE})"
    return Cell(text, text, css=CSS[direction])
