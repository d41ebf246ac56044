"""Merging the records of a results folder: several runs and machines, one record per key.

The key is (model, method id, task variant). Records of the same key that agree on the results
(checkpoint, scores, per-clip outcomes, MACs) are duplicates, merged into one (the first by path;
throughput and provenance may differ between machines). Records of the same key that disagree are
a conflict: none of them is used, and the conflict is reported with what differs. A failed record
is reported as a failure unless a successful record of its key exists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List

import numpy as np

from prunebench.records.record import PairKey, Record, RecordLike, as_records


@dataclass
class Conflict:
    key: PairKey
    paths: List[str]
    differences: List[str]
    records: List[Record] = field(default_factory=list, repr=False)


@dataclass
class Duplicate:
    key: PairKey
    paths: List[str]  # the first is the one used


@dataclass
class ResultSet:
    records: List[Record] = field(default_factory=list)  # successful, one per key
    failed: List[Record] = field(default_factory=list)  # failed, one per key without a success
    conflicts: List[Conflict] = field(default_factory=list)
    duplicates: List[Duplicate] = field(default_factory=list)
    files: int = 0
    testbed: List[Record] = field(default_factory=list)  # testbed members (effective robustness), ok, one per key


def collect(results_dir: str | Path) -> ResultSet:
    """Every record under the folder (any depth: several runs side by side), merged."""
    # paths relative to the folder: the page does not depend on where it lies
    return merge(Record.read_folder(results_dir, relative=True))


def merge(records: Iterable[RecordLike]) -> ResultSet:
    records = as_records(records)
    by_key: Dict[PairKey, List[Record]] = {}
    for r in sorted(records, key=lambda r: r.path or ""):
        by_key.setdefault(r.key, []).append(r)
    out = ResultSet(files=len(records))
    for key in sorted(by_key):
        group = by_key[key]
        ok = [r for r in group if r.ok]
        if not ok:
            out.failed.append(group[0])
            if len(group) > 1:
                out.duplicates.append(Duplicate(key, [_path(r) for r in group]))
            continue
        differences = []
        for other in ok[1:]:
            differences += [d for d in result_differences(ok[0], other) if d not in differences]
        if differences:
            out.conflicts.append(Conflict(key, [_path(r) for r in ok], differences, ok))
            continue
        # testbed members feed effective robustness alone: no table or comparison sees them
        (out.testbed if ok[0].testbed is not None else out.records).append(ok[0])
        if len(group) > 1:
            out.duplicates.append(Duplicate(key, [_path(r) for r in ok] + [_path(r) for r in group if not r.ok]))
    return out


def result_differences(a: Record, b: Record) -> List[str]:
    """What makes two records of the same key different results (empty: the same results)."""
    diffs = []
    if a.checkpoint_sha256 != b.checkpoint_sha256:
        diffs.append(f"checkpoint {str(a.checkpoint_sha256)[:12]} vs {str(b.checkpoint_sha256)[:12]}")
    for name in sorted(set(a.metrics) | set(b.metrics)):
        va = (a.metrics.get(name) or {}).get("value")
        vb = (b.metrics.get(name) or {}).get("value")
        if not _close(va, vb):
            diffs.append(f"{name} {_short(va)} vs {_short(vb)}")
    for part in ("ids", "correct", "pred", "scores"):
        if not _same_list(getattr(a.clips, part), getattr(b.clips, part)):
            diffs.append(f"per-clip {part}")
    if not _close(a.macs, b.macs):
        diffs.append(f"MACs {_short(a.macs)} vs {_short(b.macs)}")
    return diffs


def _same_list(a: Any, b: Any) -> bool:
    """Per-clip lists equal; scores may be arrays (from a sidecar) or lists (inline)."""
    if a is None or b is None:
        return a is b
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32))
    return a == b


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _short(value: Any) -> str:
    return "missing" if value is None else f"{float(value):.6g}"


def _path(record: Record) -> str:
    return record.path or "<memory>"
