"""The local executor (the default): every unit in this process, one group after another.

Per (model, task): prepare the model once, resolve its speed targets and time the pending methods
once per input shape, then evaluate the variants in turn, each variant's features computed once
(and cached on disk).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from prunebench.run.config import RunConfig
from prunebench.run.plan import Plan
from prunebench.records.record import Failure
from prunebench.run.work import Work
from prunebench.run.executors.base import Sink


class LocalExecutor:
    name = "local"

    def __init__(self, echo: Callable[[str], None] = print, progress: bool = True):
        self.echo = echo
        self.progress = progress

    def info(self) -> Dict[str, Any]:
        return {"name": self.name}

    def execute(self, config: RunConfig, plan: Plan, sink: Sink, plugin_files: List[Tuple[str, str]]) -> None:
        work = Work(config, self.info(), echo=self.echo, progress=self.progress)
        for group in plan.groups:
            try:
                prepared = work.prepare(group.model_index, group.task_index)
            except Exception as exc:  # training or loading failed: every pair of the group fails
                failure = Failure.from_exception(exc, "prepare")
                for unit in group.units:
                    sink.evaluated(unit, None, work.failed_unit(unit, failure))
                continue
            sink.prepared(group, prepared.sha256, prepared.weights_sha256)
            model = prepared.build()
            if config.measure["throughput"]:  # speed targets need timing: the config requires it for them
                try:
                    speeds, model = work.time(prepared, model, group.units)
                    sink.timed(group, speeds)
                except Exception as exc:
                    sink.timed(group, None, Failure.from_exception(exc, "timing"))
                    model = prepared.build()
            for unit in group.units:
                try:
                    features = work.features(prepared, unit)
                except Exception as exc:  # the variant's data is unusable: its pairs fail
                    sink.evaluated(unit, None, work.failed_unit(unit, Failure.from_exception(exc, "features"), prepared))
                    continue
                records, model = work.evaluate(prepared, model, unit, features)
                sink.evaluated(unit, work.timing_frames(prepared, unit), records)
