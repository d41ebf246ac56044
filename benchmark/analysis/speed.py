"""Methods at equal measured speed: the answer's central view.

Per (model, task, bucket, device), each method is a curve of points, one per configuration: its
measured speedup against `none` (interleaved, same process), its clean score with interval, and
its robustness effect (the flip effect pooled over the noise conditions, with interval; the drop
effect for mAP tasks). The iso-speed table reads each curve at 1.25x, 1.5x and 2x: a record tuned
to that speed (`target_speedup`) where there is one within 5%, else linear interpolation between
the two configurations that bracket it (a method's keep rate 1 is the baseline, 1x); outside a
curve's range, nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from prunebench.analysis.robustness import Comparison, compare, index_records, pool
from prunebench.core.registry import BASELINE
from prunebench.metrics import get_metric
from prunebench.records.record import Record, RecordLike, as_records

ISO_SPEEDS = (1.25, 1.5, 2.0)
TUNED_WITHIN = 0.05  # a tuned record this close to a speed is read as it is


@dataclass(frozen=True)
class SpeedPoint:
    method_id: str
    keep_rate: Optional[float]
    speedup: float
    clean: float
    clean_ci: Optional[Tuple[float, float]]
    effect: Optional[float]  # robustness effect, > 0: pruning makes noise cost more
    effect_ci: Optional[Tuple[float, float]]
    target_speedup: Optional[float] = None  # set on records tuned to a speed


@dataclass
class SpeedCurve:
    model: str
    task: str
    bucket: Optional[str]
    device: str
    method: str  # method name
    effect_kind: str  # "flip" (accuracy) or "drop" (mAP)
    points: List[SpeedPoint] = field(default_factory=list)  # by speedup


@dataclass(frozen=True)
class IsoCell:
    speed: float
    keep_rate: Optional[float]
    clean: Optional[float]
    effect: Optional[float]
    how: str  # "tuned", "interpolated", "measured" or "out of range"


def speed_curves(records: Sequence[RecordLike], seed: int = 0,
                 comparisons: Optional[Sequence[Comparison]] = None) -> List[SpeedCurve]:
    """One curve per (model, task, bucket, device, method name), from the clean records that carry
    a measured speedup; the baseline is the point (1, its score, 0). `comparisons`: `compare`'s
    output for these records, where the caller has it already."""
    ok = [r for r in as_records(records) if r.ok]
    index = index_records(ok)
    by_method: Dict[Tuple, List[Comparison]] = {}
    for c in (comparisons if comparisons is not None else compare(ok, seed)):
        if not c.near_chance:
            by_method.setdefault((c.model, c.task, c.bucket, c.method), []).append(c)
    curves: Dict[Tuple, SpeedCurve] = {}
    for r in ok:
        speedup = r.throughput.get("speedup_vs_none")
        if r.corruption is not None or speedup is None or r.score is None:
            continue
        kind = "flip" if get_metric(r.metric).flips else "drop"
        key = (r.model, r.task_id, r.bucket, str(r.throughput.get("device") or ""), r.method.name)
        curve = curves.setdefault(key, SpeedCurve(*key, effect_kind=kind))
        curve.points.append(_point(r, float(speedup), by_method.get((r.model, r.task_id, r.bucket, r.method.id)),
                                   index, seed))
    for curve in curves.values():
        curve.points.sort(key=lambda p: p.speedup)
    _anchor_at_the_baseline(curves)
    order = lambda k: (k[0], k[1], k[2] or "", k[3], k[4] != BASELINE, k[4])  # noqa: E731  (no bucket sorts first)
    return [curves[k] for k in sorted(curves, key=order)]


def _anchor_at_the_baseline(curves: Dict[Tuple, SpeedCurve]) -> None:
    """A method with a keep rate is the baseline at keep rate 1 (every built-in reproduces `none`'s
    logits there, `validate-method` checks it): its curve starts at the baseline's point, so a
    single measured configuration can still be read between 1x and its speedup."""
    for key, curve in curves.items():
        base = curves.get(key[:4] + (BASELINE,))
        if curve.method == BASELINE or base is None or not base.points:
            continue
        if not curve.points or any(p.keep_rate is None for p in curve.points):
            continue
        b = base.points[0]
        curve.points.insert(0, SpeedPoint(b.method_id, 1.0, 1.0, b.clean, b.clean_ci, 0.0, None))


def _point(r: Record, speedup: float, comparisons: Optional[List[Comparison]], index, seed: int) -> SpeedPoint:
    effect, effect_ci = (0.0, None) if r.method.is_baseline else (None, None)
    if comparisons:
        if get_metric(comparisons[0].metric).flips:
            pooled = pool(index, comparisons, seed)
            effect, effect_ci = pooled.flip_effect, pooled.flip_effect_ci95
        else:
            effect = sum(c.effect for c in comparisons) / len(comparisons)
    target = r.target_speedup
    return SpeedPoint(r.method.id, r.method.keep_rate, speedup, r.score, r.score_ci, effect, effect_ci, target)


def iso_speed_table(curves: Sequence[SpeedCurve], speeds: Sequence[float] = ISO_SPEEDS) -> List[List[str]]:
    """Text rows: model, task, bucket, method, then per speed `keep 0.57: 70.1%, +2.3` (the keep
    rate, clean score in percent, robustness effect in points; `~` marks an interpolated cell)."""
    rows = []
    for curve in curves:
        if curve.method == BASELINE:
            continue
        cells = [_cell_text(c) for c in iso_speed(curve, speeds)]
        if any(cells):
            rows.append([curve.model, curve.task, curve.bucket or "full", curve.method] + cells)
    return rows


def _cell_text(cell: IsoCell) -> str:
    if cell.clean is None:
        return ""
    mark = "~" if cell.how == "interpolated" else ""
    keep = f"keep {mark}{cell.keep_rate:.2f}: " if cell.keep_rate is not None else ""
    effect = f", {100 * cell.effect:+.1f}" if cell.effect is not None else ""
    return f"{keep}{mark}{100 * cell.clean:.1f}%{effect}"


def iso_speed(curve: SpeedCurve, speeds: Sequence[float] = ISO_SPEEDS) -> List[IsoCell]:
    """The curve read at each speed (see the module docstring)."""
    return [_read_at(curve.points, s) for s in speeds]


def _read_at(points: List[SpeedPoint], speed: float) -> IsoCell:
    tuned = [p for p in points if p.target_speedup == speed and abs(p.speedup / speed - 1) <= TUNED_WITHIN]
    if tuned:
        p = tuned[0]
        return IsoCell(speed, p.keep_rate, p.clean, p.effect, "tuned")
    for a, b in zip(points, points[1:]):
        if a.speedup <= speed <= b.speedup and b.speedup > a.speedup:
            t = (speed - a.speedup) / (b.speedup - a.speedup)
            mix = lambda x, y: None if x is None or y is None else x + t * (y - x)  # noqa: E731
            return IsoCell(speed, mix(a.keep_rate, b.keep_rate), mix(a.clean, b.clean), mix(a.effect, b.effect),
                           "interpolated")
    exact = [p for p in points if p.speedup == speed]
    if exact:
        return IsoCell(speed, exact[0].keep_rate, exact[0].clean, exact[0].effect, "measured")
    return IsoCell(speed, None, None, None, "out of range")
