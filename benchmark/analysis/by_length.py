"""Robustness per true length: every comparison's flip effect on short clips and on long ones.

From one run of a task whose clips have their own lengths (a task entry's `lengths:`, so each
record holds each clip's real frames, `per_clip.frames`): the clips of each (method, corruption)
comparison are split at `split_seconds` (default: the median length of the comparison's clips)
and the report's statistics (analysis.robustness: conditional flip rates, the flip effect with its
paired bootstrap interval, McNemar's p, the smallest detectable effect) are recomputed on each
part. Seconds are frames / 100: both front ends hop 10 ms.

Where the run has a testbed (`testbed:`, its members evaluated on the same clips), the
accuracy-matched measure is split the same way: each method's effective robustness
(prunebench.analysis.effective) on the short clips and on the long ones, the line refitted through
the members' accuracies on that part alone.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

from prunebench.analysis.effective import effective_robustness, task_label
from prunebench.analysis.robustness import _accuracy_stats, common_ids, index_records
from prunebench.core.registry import BASELINE
from prunebench.metrics import get_metric
from prunebench.records.record import RecordLike, as_records

FRAMES_PER_SECOND = 100


@dataclass
class LengthComparison:
    model: str
    task: str
    lengths: Optional[str]  # the record's bucket label: the lengths' id (`trim`)
    method: str
    corruption: str
    part: str  # "short" (<= split) or "long"
    split_seconds: float
    clips: int
    mean_seconds: float
    flip_clips: int
    flip_rate: Optional[float]
    none_flip_rate: Optional[float]
    flip_effect: Optional[float]
    flip_effect_ci95: Optional[Tuple[float, float]]
    flip_mcnemar_p: Optional[float]
    flip_mde: Optional[float]
    no_verdict: Optional[str]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LengthER:
    """One method's effective robustness (pooled over the noise conditions with a line) on one part."""
    model: str
    task: str
    method: str
    part: str
    split_seconds: float
    clips: int
    conditions: int  # noise conditions with a line (0: no verdict, `verdict` says why)
    er: Optional[float]
    ci95: Optional[Tuple[float, float]]
    mde: Optional[float]
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def by_length(records: Sequence[RecordLike], split_seconds: Optional[float] = None, seed: int = 0) -> List[LengthComparison]:
    """Short- and long-clip flip effects of every accuracy comparison whose records hold clip lengths
    (testbed members are left out: they are no comparison)."""
    index = index_records(r for r in as_records(records) if r.ok and r.testbed is None)
    out = []
    for key, noisy in sorted(index.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        *group, method_id, corruption = key
        if corruption is None or method_id == BASELINE:
            continue
        group = tuple(group)
        four = {"mc": index.get(group + (method_id, None)), "mn": noisy,
                "nc": index.get(group + (BASELINE, None)), "nn": index.get(group + (BASELINE, corruption))}
        if any(r is None for r in four.values()) or not get_metric(noisy.metric).flips:
            continue
        frames = four["nc"].clips.frames
        if frames is None:
            continue
        length = {i: f / FRAMES_PER_SECOND for i, f in zip(four["nc"].clips.ids, frames)}
        ids = [i for i in common_ids(list(four.values())) if i in length]
        split = split_seconds if split_seconds is not None else statistics.median(length[i] for i in ids)
        for part, sub in (("short", [i for i in ids if length[i] <= split]), ("long", [i for i in ids if length[i] > split])):
            if not sub:
                continue
            found = _accuracy_stats(four, sub, seed)
            out.append(LengthComparison(
                group[0], group[1], group[2], method_id, corruption, part, split, len(sub),
                statistics.mean(length[i] for i in sub), found["flip_clips"], found["flip_rate"],
                found["none_flip_rate"], found["flip_effect"], found["flip_effect_ci95"], found["flip_mcnemar_p"],
                found["flip_mde"], found["no_verdict"]))
    return out


def effective_by_length(records: Sequence[RecordLike], split_seconds: Optional[float] = None,
                        seed: int = 0) -> Tuple[List[LengthER], List[str]]:
    """Short- and long-clip effective robustness of every method of each (model, task) whose run has
    testbed members and clip lengths; the notes say where no line could be read."""
    every = [r for r in as_records(records) if r.ok]
    out: List[LengthER] = []
    notes: List[str] = []
    for reference in every:
        if reference.testbed is not None or reference.corruption is not None or reference.method.id != BASELINE:
            continue
        group = [r for r in every if (r.model, task_label(r)) == (reference.model, task_label(reference))]
        if reference.clips.frames is None or not any(r.testbed is not None for r in group):
            continue
        length = {i: f / FRAMES_PER_SECOND for i, f in zip(reference.clips.ids, reference.clips.frames)}
        split = split_seconds if split_seconds is not None else statistics.median(length.values())
        for part, ids in (("short", [i for i, s in length.items() if s <= split]), ("long", [i for i, s in length.items() if s > split])):
            result = effective_robustness(group, seed, clips=ids)
            notes += [f"{part} clips: {n}" for n in result.notes]
            out += _part_rows(result, part, split, len(ids))
    return out, notes


def _part_rows(result, part: str, split: float, clips: int) -> List[LengthER]:
    """Each method's pooled ER on one part; a method no condition gives a line to: no verdict, why."""
    rows = [LengthER(p.model, p.task, p.method, part, split, clips, p.conditions, p.er, p.ci95, p.mde, p.verdict)
            for p in result.pooled]
    pooled = {p.method for p in result.pooled}
    for c in result.conditions:
        for m in c.methods:
            if m.method not in pooled:
                pooled.add(m.method)
                rows.append(LengthER(c.model, c.task, m.method, part, split, clips, 0, None, None, None,
                                     c.no_verdict or m.verdict))
    return rows


def format_effective_by_length(rows: Sequence[LengthER]) -> str:
    from tabulate import tabulate

    def pts(v: Optional[float]) -> str:
        return "" if v is None else f"{100 * v:+.1f}"

    table = [[r.model, r.method, r.part, r.clips, r.conditions, pts(r.er),
              "" if r.ci95 is None else f"[{pts(r.ci95[0])}, {pts(r.ci95[1])}]",
              "" if r.mde is None else f"{100 * r.mde:.1f}", r.verdict] for r in rows]
    split = rows[0].split_seconds if rows else 0.0
    return (f"effective robustness (accuracy-matched), clips split at {split:.2f} s (short: <=)\n"
            + tabulate(table, headers=["model", "method", "part", "clips", "conditions with a line", "ER (points)",
                                       "95% CI", "detectable (points)", "verdict"], tablefmt="github"))


def format_by_length(rows: Sequence[LengthComparison]) -> str:
    from tabulate import tabulate

    def pct(v: Optional[float]) -> str:
        return "" if v is None else f"{100 * v:+.1f}"

    table = [[r.model, r.lengths or "", r.method, r.corruption, r.part, f"{r.mean_seconds:.2f}", r.clips, r.flip_clips,
              pct(r.flip_effect), "" if r.flip_effect_ci95 is None else f"[{pct(r.flip_effect_ci95[0])}, {pct(r.flip_effect_ci95[1])}]",
              "" if r.flip_mcnemar_p is None else f"{r.flip_mcnemar_p:.3f}",
              r.no_verdict or ("" if r.flip_mde is None else f"{100 * r.flip_mde:.1f}")]
             for r in rows]
    split = rows[0].split_seconds if rows else 0.0
    return (f"clips split at {split:.2f} s (short: <=)\n"
            + tabulate(table, headers=["model", "lengths", "method", "noise", "part", "mean s", "clips", "right clean",
                                       "flip effect (points)", "95% CI", "McNemar p", "detectable (points)"],
                       tablefmt="github"))
