"""Planning a run: which (model, task variant, method) pairs are still to do.

A pair whose result file holds an ok record of this configuration is done and skipped (unless
`overwrite`); a failed record is retried. Before any work, the results folder is checked: a
corrupted record, an unknown schema version or a record of another run configuration stops the
run with an error naming the file, so one folder never mixes configurations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

from prunebench.run.config import RunConfig
from prunebench.core.errors import DataError
from prunebench.records.store import is_ok, iter_result_files, read_record, result_path
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
    done: List[Tuple[Path, Dict[str, Any]]]  # finished ok records, skipped
    retried: List[Path]  # failed records that are run again
    total: int  # pairs in the grid

    @property
    def pending(self) -> int:
        return sum(len(u.method_indices) for g in self.groups for u in g.units)


def plan_run(config: RunConfig, out: str | Path, overwrite: bool = False) -> Plan:
    out = Path(out)
    groups: List[Group] = []
    done: List[Tuple[Path, Dict[str, Any]]] = []
    retried: List[Path] = []
    grid_paths: Set[Path] = set()
    total = 0
    for mi, entry in enumerate(config.models):
        for ti, task_entry in enumerate(config.tasks):
            group = Group(mi, ti)
            for vi, variant in enumerate(task_entry.variants):
                pending = []
                for ki, method in enumerate(config.methods):
                    total += 1
                    path = result_path(out, entry.name, method.id, variant.id)
                    grid_paths.add(path)
                    if overwrite or not path.exists():
                        pending.append(ki)
                        continue
                    record = read_record(path)
                    _check_same_config(record, config, path)
                    if is_ok(record):
                        done.append((path, record))
                    else:
                        retried.append(path)
                        pending.append(ki)
                if pending:
                    group.units.append(EvalUnit(mi, ti, vi, tuple(pending)))
            if group.units:
                groups.append(group)
    if out.is_dir():
        _check_no_foreign_records(out, grid_paths, config)
    return Plan(groups, done, retried, total)


def _check_same_config(record: Dict[str, Any], config: RunConfig, path: Path) -> None:
    if _config_of(record) != config.hash:
        raise DataError(f"result {path} was made by run configuration {_config_of(record)}, this run is {config.hash}: "
                        f"write to another --out, or rerun with --overwrite to recompute it")


def _config_of(record: Dict[str, Any]) -> str:
    return record["provenance"]["config_hash"]


def _check_no_foreign_records(out: Path, grid_paths: Set[Path], config: RunConfig) -> None:
    """Records outside this run's grid must be of this configuration too (else the folder mixes two)."""
    for path in iter_result_files(out):
        if path in grid_paths:
            continue
        found = _config_of(read_record(path))
        if found != config.hash:
            raise DataError(f"results folder {out} holds {path} of run configuration {found}, not part of this "
                            f"run ({config.hash}): write to another --out or remove it")
