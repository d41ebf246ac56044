"""Pruning-aware against off the shelf, at one tuned keep rate per method (docs/pruning-aware.md).

Two kinds of results folder: one run *off the shelf* (the unpruned model's head or weights, `none`
and every method at its keep rate) and, per method, one run of the *pruning-aware* model (trained
with that method in place at that keep rate, `train: prune`), evaluated with the same method. Both
hold the same clips and noise variants; folds pool by clip id. Per method and per model:

- clean accuracy of `none`, of the method off the shelf and pruning-aware, and the pruning-aware
  model's gap to `none` (the target: within 2 points) with a paired bootstrap interval over clips;
- the mean noisy accuracy over the noise variants, and the flip effect against `none` pooled over
  them (prunebench.analysis.paired: flip(M) - flip(none) on the clips both get right clean), for
  both regimes, so that robustness is read apart from clean accuracy.

The records come from different checkpoints (that is the point), so they are paired here by clip id,
not through the report's one-checkpoint groups.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from tabulate import tabulate

from prunebench.analysis.paired import bootstrap_draws, flip_effect, paired_bootstrap
from prunebench.core.errors import DataError
from prunebench.records.record import Record

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


def outcomes(records: List[Record], method_id: str) -> Outcomes:
    """The ok records of `method_id` in a folder, pooled over splits by clip id."""
    by: Dict[str, Dict[str, int]] = {}
    for r in records:
        if not r.ok or r.method.id != method_id:
            continue
        if r.clips.correct is None:
            raise DataError(f"{r.path}: the record holds no per-clip outcomes")
        condition = r.corruption_id or CLEAN
        by.setdefault(condition, {}).update(zip(r.clips.ids, (int(c) for c in r.clips.correct)))
    if not by:
        raise DataError(f"no ok record of {method_id}")
    return Outcomes(by)


def compare(off: List[Record], aware: Dict[str, List[Record]], seed: int = 0) -> List[Row]:
    """One row per pruning-aware folder (method id -> its records) against the off-the-shelf folder."""
    baseline = next((r.method.id for r in off if r.ok and r.method.is_baseline), None)
    if baseline is None:
        raise DataError("the off-the-shelf folder holds no ok record of none")
    none = outcomes(off, baseline)
    ids = sorted(none.by_condition[CLEAN])
    noises = sorted(c for c in none.by_condition if c != CLEAN)
    if not noises:
        raise DataError("the off-the-shelf folder holds no noisy variant")
    draws = bootstrap_draws(len(ids), seed)
    rows = []
    for method_id, records in sorted(aware.items()):
        ref = next(r.method for r in records if r.ok)
        regimes = {"off": outcomes(off, method_id), "aware": outcomes(records, method_id)}
        rows.append(_row(method_id, ref.params.get("keep_rate"), ids, noises, none, regimes, draws))
    return rows


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


def table(rows: List[Row]) -> str:
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    ci = lambda c: "—" if c is None else f"[{100 * c[0]:+.1f}, {100 * c[1]:+.1f}]"  # noqa: E731
    body = [[r.method, r.clips, pct(r.none_clean), pct(r.off_clean), pct(r.aware_clean), f"{100 * r.gap:+.1f} {ci(r.gap_ci)}",
             "yes" if r.gap >= -TARGET_GAP else f"no, by {100 * (-TARGET_GAP - r.gap):.1f}",
             f"{pct(r.none_noisy)} / {pct(r.off_noisy)} / {pct(r.aware_noisy)}",
             f"{100 * r.off_flip:+.1f} {ci(r.off_flip_ci)}", f"{100 * r.aware_flip:+.1f} {ci(r.aware_flip_ci)}"]
            for r in rows]
    return tabulate(body, headers=["method", "clips", "none clean", "off-shelf clean", "aware clean",
                                   "aware - none [95% CI]", "within 2 pts", "noisy: none / off / aware",
                                   "flip effect off [CI]", "flip effect aware [CI]"],
                    tablefmt="github", disable_numparse=True)


def read_aware(folders: Sequence[str]) -> Dict[str, List[Record]]:
    """Method id -> the ok records of each pruning-aware folder (one method per folder)."""
    aware: Dict[str, List[Record]] = {}
    for folder in folders:
        records = [r for r in Record.read_folder(folder) if r.ok]
        methods = {r.method.id for r in records}
        if len(methods) != 1:
            raise DataError(f"{folder}: a pruning-aware folder holds one method, found {sorted(methods) or 'none'}")
        aware[methods.pop()] = records
    return aware


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prunebench.analysis.pruning_aware",
                                     description="pruning-aware runs against the off-the-shelf run")
    parser.add_argument("off_the_shelf", help="results folder: none and every method, off the shelf")
    parser.add_argument("aware", nargs="+", help="results folders of the pruning-aware runs, one method each")
    parser.add_argument("--baseline", help="results folder whose none is the baseline instead of the off-the-shelf "
                        "folder's (e.g. the unpruned model trained the same extra schedule: a control)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        off = Record.read_folder(args.off_the_shelf)
        if args.baseline:
            control = [r for r in Record.read_folder(args.baseline) if r.ok and r.method.is_baseline]
            if not control:
                raise DataError(f"{args.baseline}: no ok record of none")
            off = [r for r in off if not r.method.is_baseline] + control
        print(table(compare(off, read_aware(args.aware), args.seed)))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
