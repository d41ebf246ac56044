"""The runner: every (model, task variant, method) pair of a config, resumable, fault isolated.

plan (which pairs are pending, pair by pair: records of the same identity are skipped unless
`overwrite`, failed ones are retried, new pairs are computed; prunebench.run.plan) -> execute (an executor runs the units: in this process by default, or on Ray) ->
write (here, in the driver: throughput attached, each record checked and written atomically).
A kill at any moment loses at most the pairs in flight; rerunning finishes the missing ones.
A pair that raises is written as a failed record (error, traceback) and the grid goes on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from tqdm import tqdm

from prunebench.run.config import RunConfig
from prunebench.core.errors import DataError
from prunebench.run.executors import Executor, make_executor
from prunebench.data.features import COUNTER
from prunebench.models import resolve_checkpoint
from prunebench.run.plan import Group, Plan, plan_run
from prunebench.core.plugins import loaded_plugin_sources
from prunebench.records.identity import same_model
from prunebench.records.record import Failure, Record
from prunebench.records.store import InvalidRecord, remove_stale_temporaries
from prunebench.run.testbed import TestbedSummary, run_testbed
from prunebench.run.work import EvalUnit

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    written: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (pair, one-line error)
    records: List[Record] = field(default_factory=list)  # ok records, new and skipped
    failed_records: List[Record] = field(default_factory=list)
    retried: List[Path] = field(default_factory=list)  # failed records of an earlier run, run again
    testbed: TestbedSummary = field(default_factory=TestbedSummary)  # the testbed's records (effective robustness)
    seconds: float = 0.0

    @property
    def only_input_errors(self) -> bool:
        """Every failure was bad input (config, data): the CLI exits 2 rather than 1."""
        return bool(self.failed_records) and all(r.failure.input_error for r in self.failed_records)

    @property
    def all_failed(self) -> List[Tuple[str, str]]:
        """(pair, one-line error) of the grid's and the testbed's failed pairs."""
        return self.failed + self.testbed.failed


class Runner:
    def __init__(self, config: RunConfig, out: str | Path, overwrite: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print, executor: Optional[Executor] = None):
        self.config = config
        self.out = Path(out)
        self.overwrite = overwrite
        self.progress = progress
        self.echo = echo
        self.executor = executor or make_executor("local", echo=echo, progress=progress)

    def run(self) -> RunSummary:
        started = time.perf_counter()
        summary = RunSummary()
        for tmp in remove_stale_temporaries(self.out):
            log.info("removed %s, left by a killed run", tmp)
        plan = plan_run(self.config, self.out, self.overwrite)
        summary.skipped = [path for path, _ in plan.done]
        summary.records = [record for _, record in plan.done]
        summary.retried = list(plan.retried)
        if not plan.pending:
            self.echo(f"all {plan.total} records present, skipped")
        else:
            preflight(self.config, plan)
            if plan.done or plan.retried:
                self.echo(f"{len(plan.done)} of {plan.total} records present; {plan.pending} to do"
                          + (f" ({len(plan.retried)} failed before, retried)" if plan.retried else ""))
            sink = RecordSink(self.config, self.out, plan, summary, self.progress)
            try:
                self.executor.execute(self.config, plan, sink, loaded_plugin_sources())
                sink.finish()
            finally:
                sink.close()
            if self.executor.name == "local":
                self.echo(str(COUNTER))
        if self.config.testbed is not None:  # after the grid: its records stand whatever the testbed does
            summary.testbed = run_testbed(self.config, self.out, self.overwrite, self.progress, self.echo)
            self.echo(f"testbed: {len(summary.testbed.written)} records written, {summary.testbed.skipped} already present"
                      + (f", {len(summary.testbed.failed)} failed" if summary.testbed.failed else ""))
        summary.seconds = time.perf_counter() - started
        return summary


def preflight(config: RunConfig, plan: Plan) -> None:
    """Fail fast, before any work, on input that would fail every pair: a missing checkpoint, a
    dataset root or metadata file that is absent or malformed, a listed audio file that is not
    there. (Generated datasets are generated here, once, not by concurrent workers.)"""
    for mi, ti in sorted({(g.model_index, g.task_index) for g in plan.groups}):
        given = config.models[mi].checkpoint_for(config.tasks[ti].task)  # one per held-out split
        if given:
            resolve_checkpoint(given)  # a file or folder, a Hub id or a zoo name; else "checkpoint not found"
    for ti in sorted({g.task_index for g in plan.groups}):
        task = config.tasks[ti].task
        if not task.test_clips():
            raise DataError(f"task {task.id}: no clips in the evaluated split")


class RecordSink:
    """Receives executors' outcomes in the driver; attaches throughput and writes every record."""

    def __init__(self, config: RunConfig, out: Path, plan: Plan, summary: RunSummary, progress: bool):
        self.config = config
        self.out = out
        self.plan = plan
        self.summary = summary
        self.timing = bool(config.measure["throughput"])
        self.speeds: Dict[Tuple[int, int], Dict[int, Dict[str, Any]]] = {}
        self.timing_errors: Dict[Tuple[int, int], Failure] = {}
        self.waiting: Dict[Tuple[int, int], List[Tuple[Optional[int], Record]]] = {}
        self.expected: Set[Tuple[str, str, str]] = set()
        for group in plan.groups:
            for unit in group.units:
                self.expected.update(_unit_keys(config, unit))
        self.bar = tqdm(total=plan.pending, desc="pairs", disable=not progress, leave=False)

    # -- what executors report --------------------------------------------------------------
    def prepared(self, group: Group, checkpoint_sha256: str, weights_sha256: Optional[str] = None) -> None:
        """Refuse to add to records another model made (a file of equal weights is the same model)."""
        name = self.config.models[group.model_index].name
        task = self.config.tasks[group.task_index].task
        for path, record in self.plan.done:
            made_with = record.checkpoint_sha256
            same_task = record.task_id == task.id  # one model per fold
            if (record.model == name and same_task
                    and not same_model(made_with, record.weights_sha256, checkpoint_sha256, weights_sha256)):
                raise DataError(f"{path} was made with checkpoint {made_with[:12]}, this run uses "
                                f"{checkpoint_sha256[:12]}: rerun with --overwrite or write to another --out")

    def timed(self, group: Group, speeds: Optional[Dict[int, Dict[str, Any]]], failure: Optional[Failure] = None) -> None:
        if speeds is None:
            self.timing_errors[group.key] = failure or Failure("timing failed", stage="timing")
        else:
            self.speeds[group.key] = speeds
        for frames, record in self.waiting.pop(group.key, []):
            self._write(self._with_throughput(group.key, frames, record))

    def evaluated(self, unit: EvalUnit, frames: Optional[int], records: List[Record]) -> None:
        for record in records:
            if not record.ok or not self.timing:
                self._write(record)
            elif unit.group in self.speeds or unit.group in self.timing_errors:
                self._write(self._with_throughput(unit.group, frames, record))
            else:
                self.waiting.setdefault(unit.group, []).append((frames, record))

    def status(self, text: str) -> None:
        self.bar.set_postfix_str(text, refresh=False)

    # -- end of the run ---------------------------------------------------------------------
    def finish(self) -> None:
        """Pairs that never got an outcome (an executor lost them) become failed records."""
        for key, waiting in list(self.waiting.items()):
            failure = Failure("the timing of this group never arrived", stage="timing")
            self.timing_errors[key] = failure
            self.timed(_group(key), None, failure)
        if self.expected:
            missing = sorted(self.expected)
            raise RuntimeError(f"executor finished without reporting {len(missing)} pairs, e.g. {' / '.join(missing[0])}")

    def close(self) -> None:
        self.bar.close()

    # -- writing ----------------------------------------------------------------------------
    def _with_throughput(self, key: Tuple[int, int], frames: Optional[int], record: Record) -> Record:
        failure = self.timing_errors.get(key)
        speed = None
        if failure is None:
            speed = self.speeds.get(key, {}).get(frames, {}).get(record.method.id)
            if speed is None:
                failure = Failure(f"no throughput measured for {record.method.id} at {frames} frames", stage="timing")
            elif "error" in speed:
                failure = Failure.read(speed["error"])
        if failure is not None:
            return record.as_failed(failure)
        return record.with_throughput(speed)

    def _write(self, record: Record) -> None:
        try:
            path = record.write(self.out)
        except InvalidRecord as exc:  # a record that does not fit the schema is a failure, not a row
            if not record.ok:
                raise
            record = record.as_failed(Failure.from_exception(exc, "validate", trace=""))
            path = record.write(self.out)
        self.expected.discard(record.key)
        self.summary.written.append(path)
        if record.ok:
            self.summary.records.append(record)
        else:
            self.summary.failed_records.append(record)
            self.summary.failed.append((" / ".join(record.key), record.failure.first_line))
        self.bar.update(1)


def _unit_keys(config: RunConfig, unit: EvalUnit) -> List[Tuple[str, str, str]]:
    variant = config.tasks[unit.task_index].variants[unit.variant_index]
    name = config.models[unit.model_index].name
    ids = [config.methods[i].id for i in unit.method_indices] + [config.speed_targets[i].id for i in unit.target_indices]
    return [(name, method_id, variant.id) for method_id in ids]


def _group(key: Tuple[int, int]) -> Group:
    return Group(key[0], key[1])
