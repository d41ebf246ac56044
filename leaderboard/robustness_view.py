"""The robustness tables: does pruning change what noise costs, per method and keep rate?

The statistics come from `prunebench.analysis.robustness.compare` (the flip effect with its paired
bootstrap interval and McNemar's test on the clips both get right clean, the drop effect, the
chance floor, selection Jaccard), the same the report shows; this module only lays them out:
- the detailed table, one row per (model, task, bucket, method, corruption);
- the verdict table, one row per (model, task, bucket, method): under how many corruptions pruning
  degrades robustness by the flip effect (the drop effect for mAP tasks, whose clips are not right
  or wrong), and the largest effect with its interval and p-value.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from prunebench.analysis.robustness import DEGRADES, FLOOR_NOTE, IMPROVES, NO_EFFECT, Comparison
from prunebench.analysis.schema import AXES, ROBUSTNESS, Measure
from prunebench.analysis.table import Cell, Column, Row, Table
from prunebench.records.record import FULL

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
    columns += [Column("flip_effect", "flip effect", ROBUSTNESS["flip_effect"], "score", ROBUSTNESS["flip_effect"].description),
                Column("flip_ci95", "95% interval", None, "score", "paired bootstrap over clips"),
                Column("flip_p", "p (flips)", ROBUSTNESS["flip_p"], "score", ROBUSTNESS["flip_p"].description),
                Column("verdict", "verdict")]
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
        _answer_cells(row, c)
        row.cells["verdict"] = Cell(answer_verdict(c), answer_verdict(c), css=CSS[answer_direction(c)])
        rows.append(row)
    return Table(columns, rows)


def answer_direction(c: Comparison) -> str:
    """The answer's direction: the flip effect's where there is one (accuracy), else the drop effect's;
    none where the flip effect has no verdict (too few clips right clean for both)."""
    if c.no_verdict is not None:
        return NO_EFFECT
    return c.flip_direction if c.flip_effect is not None else c.direction


def answer_verdict(c: Comparison) -> str:
    """The answer in words; "no verdict: <why>" where the records cannot give one."""
    return c.flip_verdict if c.flip_effect is not None or c.no_verdict is not None else c.verdict


def _answer_effect(c: Comparison):
    """(effect, interval, p) the verdict rests on."""
    if c.flip_effect is not None:
        return c.flip_effect, c.flip_effect_ci95, c.flip_mcnemar_p
    return c.effect, c.effect_ci95, c.mcnemar_p


def _answer_cells(row: Row, c: Comparison) -> None:
    effect, ci, p = _answer_effect(c)
    m = ROBUSTNESS["flip_effect"]
    row.cells["flip_effect"] = Cell(effect, m.format(effect))
    row.cells["flip_ci95"] = Cell(ci[0] if ci else None, _interval_text(ci) if ci else "")
    row.cells["flip_p"] = Cell(p, ROBUSTNESS["flip_p"].format(p))


def verdict_table(comps: Sequence[Comparison]) -> Table:
    """Per (model, task, bucket, method): the verdict over its corruptions, and the largest effect."""
    with_bucket = any(c.bucket for c in comps)
    groups: Dict[Tuple, List[Comparison]] = {}
    for c in comps:
        groups.setdefault((c.model, c.task, c.bucket, c.method), []).append(c)
    effect, p = ROBUSTNESS["effect"], ROBUSTNESS["mcnemar_p"]
    columns = _id_columns(with_bucket) + [
        Column("verdict", "verdict", description="degrades: the flip effect's interval lies above 0 and p < 0.05 "
                                                 "under at least one corruption"),
        Column("degrades", "degrades under", Measure("degrades", "degrades under", "", 1.0, 0, None, "integer"), "score",
               "corruptions under which the flip effect's interval lies above 0 and p < 0.05"),
        Column("compared", "of", Measure("compared", "of", "", 1.0, 0, None, "integer"), "score",
               "corruptions compared"),
        Column("worst_effect", "largest effect", ROBUSTNESS["flip_effect"], "score",
               ROBUSTNESS["flip_effect"].description + " (drop effect for mAP tasks)"),
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
        degrades = sum(answer_direction(c) == DEGRADES for c in cs)
        worst = max(cs, key=lambda c: _answer_effect(c)[0])
        w_effect, w_ci, w_p = _answer_effect(worst)
        row.cells["verdict"] = _verdict_cell(cs)
        row.cells["degrades"] = Cell(degrades, str(degrades))
        row.cells["compared"] = Cell(len(cs), str(len(cs)))
        row.cells["worst_effect"] = Cell(w_effect, effect.format(w_effect))
        row.cells["worst_ci"] = Cell(w_ci[0] if w_ci else None, _interval_text(w_ci) if w_ci else "")
        row.cells["worst_p"] = Cell(w_p, p.format(w_p))
        row.cells["worst_at"] = Cell(worst.corruption, worst.corruption)
        jaccards = [c.jaccard for c in cs if c.jaccard is not None]
        mean_j = sum(jaccards) / len(jaccards) if jaccards else None
        row.cells["mean_jaccard"] = Cell(mean_j, ROBUSTNESS["jaccard"].format(mean_j))
        rows.append(row)
    return Table(columns, rows)


def _verdict_cell(cs: List[Comparison]) -> Cell:
    """The verdict over a method's corruptions: it degrades robustness where it does under any of
    them, else it improves it where it does under any."""
    counts = {d: sum(answer_direction(c) == d for c in cs) for d in (DEGRADES, IMPROVES)}
    direction = next((d for d, n in counts.items() if n), NO_EFFECT)
    text = direction if direction == NO_EFFECT else f"{direction} under {counts[direction]} of {len(cs)}"
    if all(c.no_verdict is not None for c in cs):
        text = answer_verdict(cs[0])  # "no verdict: <why>", the same for every corruption (the clean clips)
    floor = sum(c.near_chance for c in cs)
    if floor:
        text += f" ({floor} {FLOOR_NOTE})"
    return Cell(text, text, css=CSS[direction])
