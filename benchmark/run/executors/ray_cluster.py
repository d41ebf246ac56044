"""The Ray executor: the grid as Ray tasks, on a local Ray instance or an existing cluster.

Per (model, task):
  prepare  (one task: checkpoint resolved or trained, weights into the object store)
  features (one task per task variant: computed once, shared through the object store, and
            cached in the cache folder for later runs)
  timing   (one task: every pending method against `none`, interleaved, once per input shape)
  evaluate (one task per task variant and method batch; starts once timing is done, so records
            are written as they arrive and timing never shares its machine with this group)
Tasks that need a GPU ask for one where the cluster has GPUs; elsewhere evaluation takes one CPU
and prepare/timing a whole node (training and timing use every core, as in a local run).
Workers run the same functions as the local executor (prunebench.run.work); the driver writes every
record, atomically, in the same layout, so resume and the leaderboard are unchanged. A task
whose worker or node is lost is retried by Ray (`max_retries`); a unit that still cannot finish,
or raises, becomes failed records as in a local run.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

from prunebench.run.config import RunConfig, parse_config
from prunebench.core.errors import ConfigError
from prunebench.run.plan import Plan
from prunebench.records.record import Failure
from prunebench.run.work import EvalUnit, PreparedModel, Work
from prunebench.run.executors.base import Sink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSetup:
    """What every task needs to rebuild the run in its worker: config, plugins, cache, cwd."""

    raw_config: Dict[str, Any]
    config_hash: str
    plugins: Tuple[Tuple[str, str], ...]  # (path, source) of plugin files loaded in the driver
    cache_root: Optional[str]
    cwd: str  # relative paths in the config are relative to the driver's folder
    executor_info: Dict[str, Any]

    @property
    def key(self) -> str:
        digest = hashlib.sha256(repr((self.config_hash, self.plugins, self.cache_root, self.cwd)).encode())
        return digest.hexdigest()[:16]


# -- in the workers ---------------------------------------------------------------------------
_WORKS: Dict[str, Work] = {}


def _work(setup: WorkerSetup) -> Work:
    """This worker's Work for the run (built once per worker process)."""
    work = _WORKS.get(setup.key)
    if work is not None:
        return work
    from prunebench.core.plugins import load_entry_point_plugins, load_plugin_file

    if setup.cache_root:
        os.environ["PRUNEBENCH_CACHE"] = setup.cache_root
    if os.path.isdir(setup.cwd):
        os.chdir(setup.cwd)
    load_entry_point_plugins()
    for path, source in setup.plugins:
        load_plugin_file(path, source=source)
    config = parse_config(setup.raw_config, "<run config>")
    work = Work(config, setup.executor_info, echo=log.info, progress=False)
    _WORKS[setup.key] = work
    return work


def _use_assigned_cpus() -> None:
    """torch's threads = the CPUs Ray gave this task (Ray sets no thread count for torch)."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def warm_task() -> int:
    """Start a worker and import torch and the benchmark in it (seconds on a small machine)."""
    from prunebench.run import work  # noqa: F401  (the import is the point)

    return os.getpid()


def prepare_task(setup: WorkerSetup, group_key: Tuple[int, int]) -> Tuple[Any, Any]:
    work = _work(setup)
    _use_assigned_cpus()
    try:
        prepared = work.prepare(*group_key)
    except Exception as exc:
        return Failure.from_exception(exc, "prepare"), None
    return prepared.without_weights(), prepared.state_dict


def _guarded(stage: str, setup: WorkerSetup, info: Any, step: Callable[[Any], Any]) -> Any:
    """`step(work)` on this worker, passing on an earlier failure and turning its own into one."""
    if isinstance(info, Failure):
        return info
    work = _work(setup)
    _use_assigned_cpus()
    try:
        return step(work)
    except Exception as exc:
        return Failure.from_exception(exc, stage)


def features_task(setup: WorkerSetup, info: Any, unit: EvalUnit) -> Any:
    return _guarded("features", setup, info, lambda work: work.features(info, unit))


def timing_task(setup: WorkerSetup, info: Any, weights: Any, units: List[EvalUnit]) -> Any:
    def time_units(work):
        prepared = info.with_weights(weights)
        return work.time(prepared, prepared.build(), units)[0]

    return _guarded("timing", setup, info, time_units)


def evaluate_task(setup: WorkerSetup, info: Any, weights: Any, unit: EvalUnit, features: Any,
                  timing_done: Any = None) -> Tuple[Optional[int], List[Dict[str, Any]], Dict[str, Any]]:
    """(input frames, records, stats) of one unit; `timing_done` only orders it after timing."""
    started = time.perf_counter()
    work = _work(setup)
    _use_assigned_cpus()
    stats = {"node": platform.node(), "eval_s": 0.0}
    if isinstance(info, Failure):
        return None, work.failed_unit(unit, info), stats
    prepared: PreparedModel = info.with_weights(weights)
    if isinstance(features, Failure):
        return None, work.failed_unit(unit, features, prepared), stats
    model = prepared.build()
    evaluating = time.perf_counter()
    records, _ = work.evaluate(prepared, model, unit, features)
    stats["eval_s"] = time.perf_counter() - evaluating
    stats["task_s"] = time.perf_counter() - started
    return work.timing_frames(prepared, unit), records, stats


# -- in the driver ----------------------------------------------------------------------------
def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'prunebench[ray]' (or pip install ray)") from None
    return ray


# For a local instance that this run starts (an existing cluster keeps its own settings). Measured
# on the default grid, 2 CPUs: Ray's default worker niceness of 15 lets its own daemons starve
# the workers, and its idle-worker reaper killed a warm worker while timing held the node, so an
# evaluation waited ~9 s for a fresh worker to import torch again. Together they took the run
# (after ray.init) from 77.9 s to 65.4 s.
LOCAL_INSTANCE_CONFIG = {"worker_niceness": 0, "kill_idle_workers_interval_ms": 0}


class RayExecutor:
    name = "ray"

    def __init__(self, address: Optional[str] = None, methods_per_task: int = 0, max_retries: int = 3,
                 num_cpus: Optional[int] = None, echo: Callable[[str], None] = print):
        if methods_per_task < 0 or max_retries < 0:
            raise ConfigError("--methods-per-task and --max-retries must be >= 0")
        self.address = address
        self.methods_per_task = methods_per_task
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.echo = echo
        self.stats: List[Dict[str, Any]] = []  # per evaluate task: node, eval_s, task_s, round_trip_s

    def info(self) -> Dict[str, Any]:
        return {"name": self.name, "address": self.address or "local instance", "methods_per_task": self.methods_per_task}

    def execute(self, config: RunConfig, plan: Plan, sink: Sink, plugin_files: List[Tuple[str, str]]) -> None:
        tuned = [t.id for t in config.speed_targets]
        if tuned:  # the keep rate a timing task finds would have to travel to the evaluation tasks
            raise ConfigError(f"methods {', '.join(tuned)}: target_speedup runs on the local executor only")
        ray = import_ray()
        started_here = self.connect(ray)
        try:
            self._execute(ray, config, plan, sink, plugin_files)
        finally:
            if started_here:
                ray.shutdown()

    def connect(self, ray) -> bool:
        """Join the cluster at `address`, or start a local instance; True if this call started Ray."""
        if ray.is_initialized():
            return False
        options = dict(include_dashboard=False, logging_level=logging.WARNING)
        try:
            if self.address:
                ray.init(address=self.address, **options)
            else:
                try:
                    ray.init(num_cpus=self.num_cpus, _system_config=LOCAL_INSTANCE_CONFIG, **options)
                except Exception as exc:  # e.g. a Ray release that no longer knows one of these settings
                    ray.shutdown()
                    self.echo(f"ray: retrying with Ray's default settings after: {str(exc).strip()[:200]}")
                    ray.init(num_cpus=self.num_cpus, **options)
        except Exception as exc:  # no cluster there, a version mismatch...
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            text = str(exc).strip().splitlines()
            raise ConfigError(f"cannot start or join {where}: {text[0] if text else type(exc).__name__}") from None
        return True

    def _execute(self, ray, config: RunConfig, plan: Plan, sink: Sink, plugin_files: List[Tuple[str, str]]) -> None:
        setup = WorkerSetup(config.raw, config.hash, tuple(plugin_files), os.environ.get("PRUNEBENCH_CACHE"),
                            os.getcwd(), self.info())
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0) > 0 and str(config.measure["device"]) != "cpu"
        node_cpus = max(int(n["Resources"].get("CPU", 1)) for n in nodes) if nodes else 1
        retries = {"max_retries": self.max_retries}
        whole_node = dict(num_cpus=1, num_gpus=1, **retries) if gpus else dict(num_cpus=node_cpus, **retries)
        one_slot = dict(num_cpus=1, num_gpus=1, **retries) if gpus else dict(num_cpus=1, **retries)
        self.echo(f"ray: {len(nodes)} node(s), {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
                  f"evaluation tasks on {'one GPU' if gpus else 'one CPU'} each")
        prepare = ray.remote(prepare_task).options(num_returns=2, **whole_node)
        features = ray.remote(features_task).options(num_cpus=1, **retries)
        timing = ray.remote(timing_task).options(**whole_node)
        evaluate = ray.remote(evaluate_task).options(**one_slot)

        setup_ref = ray.put(setup)
        if not self.address:
            # One worker per CPU starts importing now, in parallel, instead of one by one as tasks
            # reach them (the first tasks depend on each other, so workers would start late).
            warm = ray.remote(warm_task).options(num_cpus=1)
            for _ in range(int(resources.get("CPU", 1))):
                warm.remote()  # not awaited: a task runs whether or not its result is kept
        driver = Work(config, self.info(), echo=self.echo)  # builds the records of tasks Ray lost
        pending: Dict[Any, Tuple[str, Any, float]] = {}
        for group in plan.groups:
            info_ref, weights_ref = prepare.remote(setup_ref, group.key)
            pending[info_ref] = ("prepared", group, time.perf_counter())
            timing_ref = None
            if config.measure["throughput"]:
                timing_ref = timing.remote(setup_ref, info_ref, weights_ref, group.units)
                pending[timing_ref] = ("timed", group, time.perf_counter())
            for unit in group.units:
                features_ref = features.remote(setup_ref, info_ref, unit)
                for batch in unit.split(self.methods_per_task):
                    ref = evaluate.remote(setup_ref, info_ref, weights_ref, batch, features_ref, timing_ref)
                    pending[ref] = ("evaluated", batch, time.perf_counter())
        total = len(pending)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
                for ref in ready:
                    kind, item, submitted = pending.pop(ref)
                    self._handle(ray, ref, kind, item, submitted, driver, sink)
                evaluating = sum(1 for kind, _, _ in pending.values() if kind == "evaluated")
                sink.status(f"ray: {total - len(pending)}/{total} tasks done, {evaluating} evaluations to go, "
                            f"{len(nodes)} node(s)")
        except BaseException:
            for ref in pending:
                ray.cancel(ref)
            raise
        busy = sum(s["eval_s"] for s in self.stats)
        self.echo(f"ray: {total} tasks; {len(self.stats)} evaluation tasks spent {busy:.1f} s evaluating")

    def _handle(self, ray, ref, kind: str, item: Any, submitted: float, driver: Work, sink: Sink) -> None:
        try:
            value = ray.get(ref)
            lost = None
        except Exception as exc:  # the task's worker or node was lost beyond its retries, or it was cancelled
            value, lost = None, _executor_error(exc)
        if kind == "prepared":
            if isinstance(value, PreparedModel):
                sink.prepared(item, value.sha256, value.weights_sha256)
            return  # a failed preparation is reported by the group's evaluation tasks
        if kind == "timed":
            if lost is not None:
                sink.timed(item, None, lost)
            elif isinstance(value, Failure):
                sink.timed(item, None, value)
            else:
                sink.timed(item, value)
            return
        unit: EvalUnit = item
        if lost is not None:
            sink.evaluated(unit, None, driver.failed_unit(unit, lost))
            return
        frames, records, stats = value
        stats["round_trip_s"] = time.perf_counter() - submitted
        self.stats.append(stats)
        sink.evaluated(unit, frames, records)


def _executor_error(exc: BaseException) -> Failure:
    text = str(exc).strip()
    return Failure(f"Ray task lost: {text.splitlines()[0] if text else type(exc).__name__}", type(exc).__name__,
                   "executor", text)
