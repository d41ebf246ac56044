"""Pruning-aware against off the shelf, at one tuned keep rate per method (docs/pruning-aware.md).

Two kinds of results folder: one run *off the shelf* (the unpruned model's head or weights, `none`
and every method at its keep rate) and, per method, one run of the *pruning-aware* model (trained
with that method in place at that keep rate, `train: prune`), evaluated with the same method. Both
hold the same clips and noise variants; folds pool by clip id. Per method and per model:

- clean accuracy of `none`, of the method off the shelf and pruning-aware, and the pruning-aware
  model's gap to `none` (the target: within 2 points) with a paired bootstrap interval over clips;
- the mean noisy accuracy over the noise variants, and the flip effect against `none` pooled over
  them (prunebench.analysis.paired: flip(M) - flip(none) on the clips both get right clean), for
  both regimes, so that robustness is read apart from clean accuracy;
- where a folder holds a testbed (unpruned probes on the off-the-shelf model's encoder,
  docs/effective-robustness.md): each regime's effective robustness against the testbed's line, per
  noise (prunebench.analysis.effective.testbed_line: the line refitted on every resample), averaged
  over the noises whose line gives a verdict, with its interval and what could have been detected.

The records come from different checkpoints (that is the point), so they are paired here by clip id,
not through the report's one-checkpoint groups.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from tabulate import tabulate

from prunebench.analysis.effective import TestbedLine, detectable, testbed_line
from prunebench.analysis.paired import bootstrap_draws, flip_effect, paired_bootstrap
from prunebench.core.errors import DataError
from prunebench.metrics.bootstrap import bootstrap_interval
from prunebench.records.record import Record
from prunebench.records.studies import aware_method

CLEAN = "clean"
TARGET_GAP = 0.02  # the target: pruning-aware within 2 points of none, clean


@dataclass(frozen=True)
class Outcomes:
    """One model's per-clip correctness in every condition, pooled over folds: condition -> clip id -> 0/1."""

    by_condition: Dict[str, Dict[str, int]]

    def vector(self, condition: str, ids: Sequence[str]) -> torch.Tensor:
        have = self.by_condition.get(condition) or {}
        missing = [c for c in ids if c not in have]
        if missing:
            raise DataError(f"no outcome for clip {missing[0]} in condition {condition} ({len(missing)} missing)")
        return torch.tensor([bool(have[c]) for c in ids])


@dataclass(frozen=True)
class ER:
    """A model's effective robustness, the mean over the noises whose line gives a verdict."""

    value: float
    ci: Optional[Tuple[float, float]]
    mde: Optional[float]  # the smallest |ER| the clips could have detected (80% power)


@dataclass(frozen=True)
class Row:
    method: str
    keep_rate: Optional[float]
    clips: int
    none_clean: float
    off_clean: float
    aware_clean: float
    gap: float  # aware - none, clean
    gap_ci: Optional[Tuple[float, float]]
    off_noisy: float
    aware_noisy: float
    none_noisy: float
    off_flip: float
    off_flip_ci: Optional[Tuple[float, float]]
    aware_flip: float
    aware_flip_ci: Optional[Tuple[float, float]]
    off_er: Optional[ER] = None  # None: no testbed, or no noise whose line gives a verdict
    aware_er: Optional[ER] = None


def outcomes(records: List[Record], method_id: str) -> Outcomes:
    """The ok records of `method_id` in a folder (testbed members left out), pooled over splits by clip id."""
    mine = [r for r in records if r.ok and r.method.id == method_id and r.testbed is None]
    if not mine:
        raise DataError(f"no ok record of {method_id}")
    return pooled_outcomes(mine)


def pooled_outcomes(records: List[Record]) -> Outcomes:
    """One model's records (its conditions, its splits) as per-clip outcomes by condition."""
    by: Dict[str, Dict[str, int]] = {}
    for r in records:
        if r.clips.correct is None:
            raise DataError(f"{r.path}: the record holds no per-clip outcomes")
        condition = r.corruption_id or CLEAN
        by.setdefault(condition, {}).update(zip(r.clips.ids, (int(c) for c in r.clips.correct)))
    return Outcomes(by)


@dataclass(frozen=True)
class Baseline:
    """The off-the-shelf `none`: its outcomes, the clips (sorted ids), the noise variants and the
    bootstrap's resamples every comparison shares."""

    none: Outcomes
    ids: List[str]
    noises: List[str]
    draws: torch.Tensor


def baseline(off: List[Record], seed: int = 0) -> Baseline:
    method = next((r.method.id for r in off if r.ok and r.method.is_baseline and r.testbed is None), None)
    if method is None:
        raise DataError("the off-the-shelf folder holds no ok record of none")
    none = outcomes(off, method)
    ids = sorted(none.by_condition[CLEAN])
    noises = sorted(c for c in none.by_condition if c != CLEAN)
    if not noises:
        raise DataError("the off-the-shelf folder holds no noisy variant")
    return Baseline(none, ids, noises, bootstrap_draws(len(ids), seed))


def compare(off: List[Record], aware: Dict[str, List[Record]], seed: int = 0,
            testbed: Optional[List[Record]] = None, lines: Optional[Dict[str, TestbedLine]] = None) -> List[Row]:
    """One row per pruning-aware folder (method id -> its records) against the off-the-shelf folder;
    `testbed`: records of testbed members on the same clips (effective robustness of both regimes),
    or `lines`: their lines, already fitted on this baseline's clips and resamples (testbed_lines)."""
    base = baseline(off, seed)
    lines = lines if lines is not None else testbed_lines(testbed or [], base)
    rows = []
    for method_id, records in sorted(aware.items()):
        ref = next(r.method for r in records if r.ok)
        regimes = {"off": outcomes(off, method_id), "aware": outcomes(records, method_id)}
        row = _row(method_id, ref.params.get("keep_rate"), base.ids, base.noises, base.none, regimes, base.draws)
        ers = {name: pooled_er(o, lines, base.ids) for name, o in regimes.items()}
        rows.append(replace(row, off_er=ers["off"], aware_er=ers["aware"]))
    return rows


def testbed_lines(testbed: List[Record], base: Baseline) -> Dict[str, TestbedLine]:
    """Noise -> the line through the testbed members on `ids` (folds pooled by clip id); {} without members."""
    members: Dict[str, List[Record]] = {}
    for r in testbed:
        if r.ok and r.testbed is not None:
            members.setdefault(r.testbed.member, []).append(r)
    if not members:
        return {}
    outcome = {name: pooled_outcomes(records) for name, records in sorted(members.items())}
    lines = {}
    for noise in base.noises:
        have = [o for o in outcome.values() if CLEAN in o.by_condition and noise in o.by_condition]
        if have:
            lines[noise] = testbed_line(torch.stack([o.vector(CLEAN, base.ids) for o in have]),
                                        torch.stack([o.vector(noise, base.ids) for o in have]), base.draws)
    return lines


def pooled_er(model: Outcomes, lines: Dict[str, TestbedLine], ids: List[str]) -> Optional[ER]:
    """The model's ER averaged over the noises whose line gives a verdict (the same resamples)."""
    usable = [(noise, tl) for noise, tl in lines.items() if tl.no_verdict is None]
    if not usable:
        return None
    clean = model.vector(CLEAN, ids)
    results = [tl.er(clean, model.vector(noise, ids)) for noise, tl in usable]
    values = torch.stack([v for _, _, v in results]).mean(0)
    finite = values[~torch.isnan(values)]
    ci = tuple(bootstrap_interval(finite.tolist())) if finite.numel() else None
    return ER(sum(er for _, er, _ in results) / len(results), ci, detectable(values))


def _row(method_id: str, keep: Optional[float], ids: List[str], noises: List[str], none: Outcomes,
         regimes: Dict[str, Outcomes], draws: torch.Tensor) -> Row:
    nc = none.vector(CLEAN, ids)
    acc = lambda o, c: float(o.vector(c, ids).double().mean())  # noqa: E731
    noisy = lambda o: sum(acc(o, c) for c in noises) / len(noises)  # noqa: E731
    aware_clean = regimes["aware"].vector(CLEAN, ids)
    gap_ci = paired_bootstrap({"a": aware_clean, "n": nc}, lambda v, mean: mean(v["a"]) - mean(v["n"]), draws)
    flips = {name: _pooled_flip(o, none, ids, noises, draws) for name, o in regimes.items()}
    return Row(method_id, keep, len(ids), acc(none, CLEAN), acc(regimes["off"], CLEAN), float(aware_clean.double().mean()),
               float(aware_clean.double().mean() - nc.double().mean()), gap_ci, noisy(regimes["off"]),
               noisy(regimes["aware"]), noisy(none), *flips["off"], *flips["aware"])


def _pooled_flip(model: Outcomes, none: Outcomes, ids: List[str], noises: List[str], draws: torch.Tensor
                 ) -> Tuple[float, Optional[Tuple[float, float]]]:
    """The flip effect against none, the mean over the noise conditions (the same resamples for all)."""
    vectors = {"mc": model.vector(CLEAN, ids), "nc": none.vector(CLEAN, ids)}
    for k, c in enumerate(noises):
        vectors[f"mn{k}"], vectors[f"nn{k}"] = model.vector(c, ids), none.vector(c, ids)

    def pooled(v, mean):
        return sum(flip_effect({"mc": v["mc"], "nc": v["nc"], "mn": v[f"mn{k}"], "nn": v[f"nn{k}"]}, mean)
                   for k in range(len(noises))) / len(noises)

    point = float(pooled({k: t.double() for k, t in vectors.items()}, lambda x: x.mean(-1)))
    return point, paired_bootstrap(vectors, pooled, draws)


def table_cells(rows: List[Row]) -> Tuple[List[str], List[List[str]]]:
    """The comparison as headers and text cells (accuracies in %, gaps, flip effects and ER in points)."""
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    ci = lambda c: "—" if c is None else f"[{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]"  # noqa: E731
    er = lambda e: "—" if e is None else (f"{100 * e.value:+.1f} {ci(e.ci)}"  # noqa: E731
                                          + ("" if e.mde is None else f" (detectable {100 * e.mde:.1f})"))
    with_er = any(r.off_er is not None or r.aware_er is not None for r in rows)
    body = [[r.method, str(r.clips), pct(r.none_clean), pct(r.off_clean), pct(r.aware_clean),
             f"{100 * r.gap:+.1f} {ci(r.gap_ci)}", "yes" if r.gap >= -TARGET_GAP else f"no, by {100 * (-TARGET_GAP - r.gap):.1f}",
             f"{pct(r.none_noisy)} / {pct(r.off_noisy)} / {pct(r.aware_noisy)}",
             f"{100 * r.off_flip:+.1f} {ci(r.off_flip_ci)}", f"{100 * r.aware_flip:+.1f} {ci(r.aware_flip_ci)}"]
            + ([er(r.off_er), er(r.aware_er)] if with_er else [])
            for r in rows]
    headers = ["method", "clips", "none clean", "off-shelf clean", "aware clean", "aware - none [95% CI]", "within 2 pts",
               "noisy: none / off / aware", "flip effect off [CI]", "flip effect aware [CI]"]
    return headers + (["ER off [CI] (detectable)", "ER aware [CI] (detectable)"] if with_er else []), body


def table(rows: List[Row]) -> str:
    headers, body = table_cells(rows)
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def line_notes(lines: Dict[str, TestbedLine]) -> List[str]:
    """One line per noise: the testbed's size and fit, or why it gives no verdict."""
    out = []
    for noise, tl in lines.items():
        fit = "" if tl.line is None else (f": slope {tl.line.slope:.2f}, intercept {tl.line.intercept:+.2f}, "
                                          f"R^2 {'-' if tl.line.r2 is None else f'{tl.line.r2:.2f}'}")
        out.append(f"testbed at {noise}: {len(tl.clean)} members{fit}" + (f" ({tl.no_verdict})" if tl.no_verdict else ""))
    return out


def against_control(off: List[Record], control: List[Record], where: str) -> List[Record]:
    """The off-the-shelf records with `none` replaced by the control's (the unpruned model given the
    same extra training), so that what the extra schedule does is not credited to pruning-awareness."""
    nones = [r for r in control if r.ok and r.method.is_baseline and r.testbed is None]
    if not nones:
        raise DataError(f"{where}: no ok record of none")
    return [r for r in off if not r.method.is_baseline] + nones


def read_aware(folders: Sequence[str]) -> Dict[str, List[Record]]:
    """Method id -> the ok records of each pruning-aware folder (one method per folder)."""
    aware: Dict[str, List[Record]] = {}
    for folder in folders:
        records = [r for r in Record.read_folder(folder) if r.ok and r.testbed is None]
        aware[aware_method(records, Path(folder))] = records
    return aware


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prunebench.analysis.pruning_aware",
                                     description="pruning-aware runs against the off-the-shelf run")
    parser.add_argument("off_the_shelf", help="results folder: none and every method, off the shelf")
    parser.add_argument("aware", nargs="+", help="results folders of the pruning-aware runs, one method each")
    parser.add_argument("--baseline", help="results folder whose none is the baseline instead of the off-the-shelf "
                        "folder's (e.g. the unpruned model trained the same extra schedule: a control)")
    parser.add_argument("--testbed", help="results folder holding testbed members on the same clips (default: the "
                        "off-the-shelf folder's own, if it has any): effective robustness of both regimes")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        off = Record.read_folder(args.off_the_shelf)
        if args.baseline:
            off = against_control(off, Record.read_folder(args.baseline), args.baseline)
        testbed = [r for r in Record.read_folder(args.testbed or args.off_the_shelf) if r.ok and r.testbed is not None]
        base = baseline(off, args.seed)
        lines = testbed_lines(testbed, base)
        print(table(compare(off, read_aware(args.aware), args.seed, lines=lines)))
        if testbed:
            none = pooled_er(base.none, lines, base.ids)
            print("\n".join(line_notes(lines) + ([] if none is None else [f"none's own ER: {100 * none.value:+.1f} points"])))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
