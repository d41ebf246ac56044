"""What an executor is: it runs a plan's units somewhere and hands every outcome to a sink.

The runner plans (which pairs are pending), an executor executes (in this process, or as Ray
tasks on a cluster), and the sink - the runner, in the driver process - attaches throughput,
checks and writes each record atomically. Executors never write results themselves, so the
layout, resume and the leaderboard are the same whatever ran the work.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Tuple

from prunebench.records.record import Failure, Record
from prunebench.run.config import RunConfig
from prunebench.run.plan import Group, Plan
from prunebench.run.work import EvalUnit


class Sink(Protocol):
    def prepared(self, group: Group, checkpoint_sha256: str, weights_sha256: Optional[str] = None) -> None:
        """The group's model is ready (checked against the records already present)."""

    def timed(self, group: Group, speeds: Optional[Dict[int, Dict[str, Any]]], failure: Optional[Failure] = None) -> None:
        """Throughput of the group's methods by input frames (or the failure that prevented it)."""

    def evaluated(self, unit: EvalUnit, frames: Optional[int], records: List[Record]) -> None:
        """Records (ok or failed) of a unit's pairs; `frames` keys the unit's throughput."""

    def status(self, text: str) -> None:
        """A short progress note (for example tasks running across a cluster)."""


class Executor(Protocol):
    name: str

    def info(self) -> Dict[str, Any]:
        """What provenance records about the executor."""

    def execute(self, config: RunConfig, plan: Plan, sink: Sink, plugin_files: List[Tuple[str, str]]) -> None:
        """Run every unit of `plan`, reporting to `sink`; returns when all are reported."""
