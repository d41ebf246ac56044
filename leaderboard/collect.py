"""Merging the records of a results folder: several runs and machines, one record per key.

The key is (model, method id, task variant). Records of the same key that agree on the results
(checkpoint, scores, per-clip outcomes, MACs) are duplicates, merged into one (the first by path;
throughput and provenance may differ between machines). Records of the same key that disagree are
a conflict: none of them is used, and the conflict is reported with what differs. A failed record
(`status` other than "ok") is reported as a failure unless a successful record of its key exists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

from benchmark.records.store import read_records

Key = Tuple[str, str, str]


@dataclass
class Conflict:
    key: Key
    paths: List[str]
    differences: List[str]
    records: List[Dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass
class Duplicate:
    key: Key
    paths: List[str]  # the first is the one used


@dataclass
class ResultSet:
    records: List[Dict[str, Any]] = field(default_factory=list)  # successful, one per key
    failed: List[Dict[str, Any]] = field(default_factory=list)  # failed, one per key without a success
    conflicts: List[Conflict] = field(default_factory=list)
    duplicates: List[Duplicate] = field(default_factory=list)
    files: int = 0


def collect(results_dir: str | Path) -> ResultSet:
    """Every record under the folder (any depth: several runs side by side), merged."""
    root = Path(results_dir)
    records = read_records(root)
    for r in records:  # paths relative to the folder: the page does not depend on where it lies
        r["_path"] = Path(r["_path"]).relative_to(root).as_posix()
    return merge(records)


def record_key(record: Dict[str, Any]) -> Key:
    return (str(record["model"]["name"]), str(record["method"]["id"]), str(record["task"]["variant"]))


def is_ok(record: Dict[str, Any]) -> bool:
    return record.get("status", "ok") == "ok"


def failure_message(record: Dict[str, Any]) -> str:
    error = record.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("type")
    return str(error or record.get("status") or "failed")


def merge(records: List[Dict[str, Any]]) -> ResultSet:
    by_key: Dict[Key, List[Dict[str, Any]]] = {}
    for r in sorted(records, key=lambda r: str(r.get("_path", ""))):
        by_key.setdefault(record_key(r), []).append(r)
    out = ResultSet(files=len(records))
    for key in sorted(by_key):
        group = by_key[key]
        ok = [r for r in group if is_ok(r)]
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
        out.records.append(ok[0])
        if len(group) > 1:
            out.duplicates.append(Duplicate(key, [_path(r) for r in ok] + [_path(r) for r in group if not is_ok(r)]))
    return out


def result_differences(a: Dict[str, Any], b: Dict[str, Any]) -> List[str]:
    """What makes two records of the same key different results (empty: the same results)."""
    diffs = []
    sha_a, sha_b = a["model"].get("checkpoint_sha256"), b["model"].get("checkpoint_sha256")
    if sha_a != sha_b:
        diffs.append(f"checkpoint {str(sha_a)[:12]} vs {str(sha_b)[:12]}")
    for name in sorted(set(a["metrics"]) | set(b["metrics"])):
        va = (a["metrics"].get(name) or {}).get("value")
        vb = (b["metrics"].get(name) or {}).get("value")
        if not _close(va, vb):
            diffs.append(f"{name} {_short(va)} vs {_short(vb)}")
    for part in ("ids", "correct", "pred", "scores"):
        if (a.get("per_clip") or {}).get(part) != (b.get("per_clip") or {}).get(part):
            diffs.append(f"per-clip {part}")
    ma, mb = (a.get("macs") or {}).get("per_sample"), (b.get("macs") or {}).get("per_sample")
    if not _close(ma, mb):
        diffs.append(f"MACs {_short(ma)} vs {_short(mb)}")
    return diffs


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def _short(value: Any) -> str:
    return "missing" if value is None else f"{float(value):.6g}"


def _path(record: Dict[str, Any]) -> str:
    return str(record.get("_path", "<memory>"))
