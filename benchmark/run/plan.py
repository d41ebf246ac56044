"""Planning a run: which (model, task variant, method) pairs are still to do.

A run resumes pair by pair. A pair whose record in the results folder is ok and has the same
identity (prunebench.records.identity: checkpoint, task variant and its clips, normalised method,
the measure settings that change results, protocol) is done and skipped; a failed record is
retried; a pair without a record is new. A pair whose record has another identity has changed: it
is recomputed with `overwrite`, and otherwise the run stops before any work with one line naming
the pair and what changed. Records of other pairs in the folder (other runs) are left alone, but
a record of the same model and task made with other measure settings is refused likewise, since
the report would compare the two. The checkpoint's hash is known once the model is prepared: the
runner checks it then (`RecordSink.prepared`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

from prunebench.core.errors import DataError
from prunebench.records.identity import Identity, same_measure
from prunebench.records.record import Pair, Record
from prunebench.records.store import iter_result_files, result_path
from prunebench.run.config import RunConfig
from prunebench.run.measure_settings import resolve_measure
from prunebench.run.work import EvalUnit


@dataclass
class Group:
    """The pending units of one model on one task (they share a prepared model)."""

    model_index: int
    task_index: int
    units: List[EvalUnit] = field(default_factory=list)

    @property
    def key(self) -> Tuple[int, int]:
        return (self.model_index, self.task_index)


@dataclass
class Plan:
    groups: List[Group]  # only groups with pending units
    done: List[Tuple[Path, Record]]  # finished ok records, skipped
    retried: List[Path]  # failed records that are run again
    total: int  # pairs in the grid

    @property
    def pending(self) -> int:
        return sum(u.size for g in self.groups for u in g.units)


@dataclass
class _Changed:
    """Pairs whose record has another identity than this run asks for."""

    lines: List[str] = field(default_factory=list)

    def add(self, path: Path, what: str, difference: str) -> None:
        self.lines.append(f"{path}: {what} changed ({difference})")

    def check(self) -> None:
        if self.lines:
            more = f" (and {len(self.lines) - 1} more)" if len(self.lines) > 1 else ""
            raise DataError(f"{self.lines[0]}{more}: rerun with --overwrite to recompute, or write to another --out")


def plan_run(config: RunConfig, out: str | Path, overwrite: bool = False) -> Plan:
    out = Path(out)
    measure_block = resolve_measure(config.measure).block
    groups: List[Group] = []
    done: List[Tuple[Path, Record]] = []
    retried: List[Path] = []
    grid_paths: Set[Path] = set()
    changed = _Changed()
    total = 0
    for mi, entry in enumerate(config.models):
        for ti, task_entry in enumerate(config.tasks):
            group = Group(mi, ti)
            for vi, variant in enumerate(task_entry.variants):
                clip_ids = tuple(variant.listed_clip_ids())
                specs = [m.describe() for m in config.methods] + [t.spec_block() for t in config.speed_targets]
                pending: List[int] = []
                for index, spec in enumerate(specs):
                    total += 1
                    pair = Pair({"name": entry.name, "checkpoint_sha256": None}, spec, variant.describe(), measure_block,
                                clip_ids, config.seed)
                    path = result_path(out, *pair.key)
                    grid_paths.add(path)
                    if overwrite or not path.exists():
                        pending.append(index)
                        continue
                    record = Record.read(path)
                    if not record.ok:
                        retried.append(path)
                        pending.append(index)
                        continue
                    differences = record.identity.without_checkpoint().differences(pair.identity.without_checkpoint())
                    if differences:
                        changed.add(path, "pair " + " / ".join(pair.key), differences[0])
                    else:
                        done.append((path, record))
                if pending:
                    methods = len(config.methods)
                    group.units.append(EvalUnit(mi, ti, vi, tuple(i for i in pending if i < methods),
                                                tuple(i - methods for i in pending if i >= methods)))
            if group.units:
                groups.append(group)
    if out.is_dir() and not overwrite:
        _check_comparable(out, grid_paths, config, measure_block, changed)
    changed.check()
    return Plan(groups, done, retried, total)


def _check_comparable(out: Path, grid_paths: Set[Path], config: RunConfig, measure_block: Dict[str, Any],
                      changed: _Changed) -> None:
    """Records of other pairs in the folder, of a model and task of this run, were made with the same
    measure settings (the report compares them with this run's)."""
    ours = {(entry.name, t.task.id) for entry in config.models for t in config.tasks}
    for path in iter_result_files(out):
        if path in grid_paths:
            continue
        record = Record.read(path)
        if record.ok and (record.model, record.task_id) in ours and not same_measure(record.measure, measure_block):
            first = Identity({"measure": record.measure}).differences(Identity({"measure": measure_block}))[0]
            changed.add(path, f"the measure settings of {record.model} on {record.task_id}", first)
