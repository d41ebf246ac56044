"""The units of work of a run, shared by every executor (local and Ray call these same functions).

A run is a plan of units, one per (model, task variant, method batch); around them:
- prepare: resolve a model's checkpoint for a task (given, cached, or trained now) and load it;
- features: a variant's features, computed once and shared by every method;
- timing: throughput of the pending methods against `none`, interleaved, once per input shape;
- evaluate: every method of a unit on the variant's features, one record per pair.
Whatever raises inside a unit becomes a failed record (error, traceback, stage) for the pairs it
concerns; the rest of the grid goes on. A method that changes the model's weights is caught by a
comparison with the pristine weights after each pair, fails that pair, and the model is rebuilt from its pristine
weights.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from prunebench.run.config import ModelEntry, RunConfig, feature_storage
from prunebench.measure.evaluate import evaluate
from prunebench.data.features import FeatureSet, FeatureStore, frontend_for
from prunebench.audio.kaldi import FrontEnd
from prunebench.run.integrity import WeightsGuard
from prunebench.method_api import Method
from prunebench.data.examples import example_spectrograms
from prunebench.models import build_model, checkpoint_sha256, file_sha256, load_model, resolve_checkpoint
from prunebench.models.encoder import EncoderConfig, TokenEncoder
from prunebench.core.registry import METHODS
from prunebench.records.store import SCHEMA, failed_record, failure_info, provenance
from prunebench.core.device import resolve_device
from prunebench.core.errors import ConfigError
from prunebench.measure.shapes import InputShape
from prunebench.measure.throughput import TimingSettings, measure_interleaved
from prunebench.measure.tune import tune
from prunebench.run.speed_target import SpeedTarget
from prunebench.train.checkpoints import default_checkpoint_path
from prunebench.train.loop import train_model
from prunebench.data.length import check_frames, input_frames_for
from prunebench.data.variant import TaskVariant
from prunebench.tasks.base import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalUnit:
    """Methods (by index into the config) to evaluate on one task variant with one model."""

    model_index: int
    task_index: int
    variant_index: int
    method_indices: Tuple[int, ...]

    @property
    def group(self) -> Tuple[int, int]:
        return (self.model_index, self.task_index)

    def split(self, size: int) -> List["EvalUnit"]:
        """Method batches of at most `size` methods (0: one batch)."""
        if size <= 0 or size >= len(self.method_indices):
            return [self]
        return [replace(self, method_indices=self.method_indices[i:i + size]) for i in range(0, len(self.method_indices), size)]


@dataclass
class PreparedModel:
    """A model ready for a task: where its weights came from and the weights themselves.

    Plain data (a config dataclass and CPU tensors), so it travels between processes and
    machines; `build` makes a fresh model, and the weights stay pristine for the integrity check."""

    name: str
    checkpoint: str
    sha256: str
    config: EncoderConfig
    state_dict: Optional[Dict[str, torch.Tensor]] = None

    def without_weights(self) -> "PreparedModel":
        return replace(self, state_dict=None)

    def with_weights(self, state_dict: Dict[str, torch.Tensor]) -> "PreparedModel":
        return replace(self, state_dict=state_dict)

    def build(self) -> TokenEncoder:
        if self.state_dict is None:
            raise RuntimeError("PreparedModel.build needs the weights")
        params = {k: v for k, v in self.config.to_dict().items() if k != "name"}
        model = build_model(self.name, **params)
        model.load_state_dict(self.state_dict, strict=True)
        return model.eval()

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "checkpoint": self.checkpoint, "checkpoint_sha256": self.sha256,
                "config": self.config.to_dict()}


@dataclass
class Failure:
    """A unit's preparation step that raised: stands in for its result, carries the error."""

    error: Dict[str, Any]


class Work:
    """The work of one run configuration in one process; executors call its methods."""

    def __init__(self, config: RunConfig, executor_info: Optional[Dict[str, Any]] = None,
                 echo: Callable[[str], None] = print, progress: bool = False):
        self.config = config
        self.executor_info = executor_info or {"name": "local"}
        self.echo = echo
        self.progress = progress
        self.store = FeatureStore(on_bad_clip=config.on_bad_clip, run_seed=config.seed, progress=progress,
                                  store_dtype=feature_storage(config.measure))
        self.device = str(resolve_device(config.measure["device"]))
        # SpeedTargets resolved by the timing pass: (checkpoint sha, frames, target id) -> (method, tuning)
        self.resolved: Dict[Tuple[str, int, str], Tuple[Method, Dict[str, Any]]] = {}
        self.tuning_errors: Dict[Tuple[str, int], Dict[str, Any]] = {}

    # -- the grid's parts, by index ---------------------------------------------------------
    def variant(self, unit: EvalUnit) -> TaskVariant:
        return self.config.tasks[unit.task_index].variants[unit.variant_index]

    def methods(self, unit: EvalUnit) -> List[Method]:
        return [self.config.methods[i] for i in unit.method_indices]

    # -- prepare ----------------------------------------------------------------------------
    def prepare(self, model_index: int, task_index: int) -> PreparedModel:
        entry = self.config.models[model_index]
        task = self.config.tasks[task_index].task
        checkpoint, sha = self._checkpoint(entry, task)
        # an entry's length: `frames:`, or a target_frames among its overrides (as training takes it)
        frames = entry.frames if entry.frames is not None else entry.overrides.get("target_frames")
        model = fit_to_task(load_model(entry.name, checkpoint, num_classes=task.num_classes), task, frames, checkpoint)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return PreparedModel(entry.name, str(checkpoint), sha, model.config, state)

    def _checkpoint(self, entry: ModelEntry, task) -> Tuple[Path, str]:
        given = entry.checkpoint_for(task)  # one per held-out split (fold): a file or folder, a Hub id or a zoo name
        if given:
            path = resolve_checkpoint(given)
            return path, checkpoint_sha256(path)
        train = {**self.config.train, "frames": entry.frames} if entry.frames else self.config.train
        path = default_checkpoint_path(entry.name, entry.overrides, task, train)
        if path.is_file():
            self.echo(f"reusing cached checkpoint {path}")
            return path, file_sha256(path)
        self.echo(f"training {entry.name} on {task.id} (no checkpoint given; cached at {path})")
        path, meta = train_model(entry.name, task, train, entry.overrides, out=path, store=self.store, progress=self.progress)
        accuracy = meta["test_accuracy"]
        self.echo(f"trained in {meta['train_seconds']:.0f} s"
                  + (f", held-out accuracy {accuracy:.1%}" if accuracy is not None else ""))
        return path, meta["sha256"]

    # -- features ---------------------------------------------------------------------------
    def frontend(self, prepared: PreparedModel, unit: EvalUnit) -> FrontEnd:
        variant = self.variant(unit)
        return variant_frontend(frontend_for(prepared.config, variant.task), variant, prepared.config.target_frames)

    def features(self, prepared: PreparedModel, unit: EvalUnit) -> FeatureSet:
        # clips shorter than one patch are bad clips (an error naming the file, or a counted skip)
        features = self.store.get(self.variant(unit), self.frontend(prepared, unit), min_frames=prepared.config.patch_size)
        self.echo(self.store.last)  # features are computed once per clip and variant: counted here
        return features

    # -- timing -----------------------------------------------------------------------------
    def timing_frames(self, prepared: PreparedModel, unit: EvalUnit) -> int:
        return input_frames(self.frontend(prepared, unit), self.variant(unit))

    def time(self, prepared: PreparedModel, model: TokenEncoder, units: List[EvalUnit]) -> Tuple[Dict[int, Dict[str, Any]], TokenEncoder]:
        """{frames: {method id: throughput dict or {"error": ...}}} for every method of `units`,
        timed once per input shape against `none`; returns the (possibly rebuilt) model too."""
        groups: Dict[int, List[Method]] = {}
        for unit in units:
            group = groups.setdefault(self.timing_frames(prepared, unit), [])
            for method in self.methods(unit):
                if method.id not in [m.id for m in group]:
                    group.append(method)
        speeds = {}
        for frames, methods in groups.items():
            methods, tuned = self._resolve_speed_targets(prepared, model, frames, methods)
            speeds[frames], model = self._time_group(prepared, model, frames, methods)
            speeds[frames].update({t.id: speeds[frames].get(self.resolved[(prepared.sha256, frames, t.id)][0].id)
                                   for t in tuned})
            speeds[frames].update(self.tuning_errors.pop((prepared.sha256, frames), {}))
        return speeds, model

    def _resolve_speed_targets(self, prepared: PreparedModel, model: TokenEncoder, frames: int,
                               methods: List[Any]) -> Tuple[List[Method], List[SpeedTarget]]:
        """Each SpeedTarget tuned (prunebench.measure.tune) to a concrete method at this input length,
        kept for evaluation; the concrete methods timed with the others."""
        concrete, tuned = [m for m in methods if not isinstance(m, SpeedTarget)], []
        measure = self.config.measure
        settings = TimingSettings(batch_size=measure["batch_size"], device=measure["device"], dtype=measure["dtype"],
                                  warmup=measure["warmup"], repeats=measure["repeats"], seed=self.config.seed,
                                  min_repeat_s=measure["min_repeat_s"])
        for target in (m for m in methods if isinstance(m, SpeedTarget)):
            self.echo(f"tuning {target.name} to {target.target:g}x at {frames} frames")
            try:
                result = tune(model, target.name, target.other_params, target.target,
                              InputShape(frames, frames, "timed"), settings)
            except Exception as exc:
                self.tuning_errors.setdefault((prepared.sha256, frames), {})[target.id] = {"error": failure_info(exc, "timing")}
                continue
            method = target.resolve(result.keep_rate)
            tuned_info = {"keep_rate": result.keep_rate, "speedup": result.speedup, "mac_ratio": result.mac_ratio,
                          "tolerance": result.tolerance, "reached": result.reached, "steps": result.steps}
            self.resolved[(prepared.sha256, frames, target.id)] = (method, tuned_info)
            tuned.append(target)
            if method.id not in [m.id for m in concrete]:
                concrete.append(method)
        return concrete, tuned

    def _time_group(self, prepared: PreparedModel, model: TokenEncoder, frames: int,
                    methods: List[Method]) -> Tuple[Dict[str, Any], TokenEncoder]:
        measure = self.config.measure
        baseline = next((m for m in methods if m.id == "none"), None) or METHODS.get("none")()
        result: Dict[str, Any] = {}
        guard = WeightsGuard(prepared.state_dict)
        timed = [baseline]
        # One probe forward per method first: a method that raises or changes the weights is
        # excluded (and fails), so it cannot spoil the timing of the others.
        device = resolve_device(measure["device"])
        probe = torch.randn(2, frames, prepared.config.num_mel_bins, generator=torch.Generator().manual_seed(self.config.seed))
        for method in methods:
            if method.id == baseline.id:
                continue
            try:
                with torch.inference_mode():
                    model.to(device)(probe.to(device), method)
            except Exception as exc:
                result[method.id] = {"error": failure_info(exc, "timing")}
                continue
            changed = guard.check(model)
            if changed:
                result[method.id] = {"error": integrity_error(method, changed, "timing")}
                model = prepared.build()
                continue
            timed.append(method)
        self.echo(f"timing {len(timed)} methods at {frames} frames, batch {measure['batch_size']} on {self.device}")
        try:
            speeds = measure_interleaved(
                model, timed, frames, batch_size=measure["batch_size"], device=measure["device"], dtype=measure["dtype"],
                warmup=measure["warmup"], repeats=measure["repeats"], seed=self.config.seed,
                min_repeat_s=measure["min_repeat_s"], progress=self.progress,
            )
            changed = guard.check(model)
            if changed:
                raise RuntimeError(f"the model's weights changed during the timing pass ({changed})")
        except Exception as exc:
            error = failure_info(exc, "timing")
            result.update({m.id: {"error": error} for m in timed})
            return result, prepared.build()
        result.update({method_id: t.to_dict() for method_id, t in speeds.items()})
        return result, model

    # -- evaluate ---------------------------------------------------------------------------
    def evaluate(self, prepared: PreparedModel, model: TokenEncoder, unit: EvalUnit,
                 features: FeatureSet) -> Tuple[List[Dict[str, Any]], TokenEncoder]:
        """One record per method of the unit (ok or failed) and the model for the next unit."""
        variant = self.variant(unit)
        records = []
        guard = WeightsGuard(prepared.state_dict)
        # a few small input spectrograms, so the leaderboard can show the kept patches (same for every method)
        examples = example_spectrograms(features.ids, features.fbanks, features.valid_frames, model.config.target_frames)
        for method in self.methods(unit):
            try:
                record = self._record(prepared, model, method, unit, features, examples)
            except Exception as exc:  # a broken method must not stop the grid
                log.error("%s / %s / %s failed: %s", prepared.name, method.id, variant.id, exc)
                record = self.failed(unit, method, failure_info(exc, "evaluate"), prepared)
            changed = guard.check(model)
            if changed:
                error = integrity_error(method, changed, "evaluate")
                log.error("%s / %s / %s: %s", prepared.name, method.id, variant.id, error["message"])
                record = self.failed(unit, method, error, prepared)
                model = prepared.build()
            records.append(record)
        return records, model

    def _record(self, prepared: PreparedModel, model: TokenEncoder, method: Any, unit: EvalUnit,
                features: FeatureSet, examples: Dict[str, Any]) -> Dict[str, Any]:
        """The pair's record; a SpeedTarget runs as the method the timing pass resolved it to."""
        if not isinstance(method, SpeedTarget):
            return self.pair_record(prepared, model, method, self.variant(unit), features, examples)
        resolved = self.resolved.get((prepared.sha256, self.timing_frames(prepared, unit), method.id))
        if resolved is None:
            raise ConfigError(f"method {method.id}: not tuned (the timing pass failed or did not run for this length)")
        concrete, tuned = resolved
        record = self.pair_record(prepared, model, concrete, self.variant(unit), features, examples)
        record["method"] = method.describe(concrete, tuned)
        return record

    def pair_record(self, prepared: PreparedModel, model: TokenEncoder, method: Method, variant: TaskVariant,
                    features: FeatureSet, examples: Dict[str, Any]) -> Dict[str, Any]:
        """The record of one (model, method, task variant) pair; throughput is attached later."""
        task = variant.task
        measure = self.config.measure
        ev = evaluate(model, method, features, task.metric, batch_size=measure["batch_size"],
                      device=measure["device"], dtype=measure["dtype"], seed=self.config.seed, progress=self.progress)
        metric_key = "accuracy" if task.metric == "accuracy" else "map"
        return {
            "schema": SCHEMA,
            "status": "ok",
            "model": prepared.describe(),
            "method": {"name": method.name, "params": method.params, "id": method.id},
            "task": variant.describe(),
            "metrics": {metric_key: ev.score},
            "data": {"clips": len(features), "skipped": [{"id": i, "reason": r} for i, r in features.skipped],
                     "cropped": len(features.cropped)},
            "per_clip": ev.per_clip,
            "macs": {"per_sample": sum(ev.macs_by_part.values()), "units": "MAC", "flops_per_mac": 2,
                     "by_part": ev.macs_by_part, "grid": list(model.grid_for_frames(features.fbanks[0].shape[0]))},
            "tokens": {"per_layer": ev.tokens_per_layer, "reduction_layers": list(method.reduction_layers(model.config.depth))},
            "selection": ev.selection,
            "throughput": None,
            "examples": examples,
            "provenance": self.provenance(),
        }

    # -- failures ---------------------------------------------------------------------------
    def failed(self, unit: EvalUnit, method: Method, error: Dict[str, Any],
               prepared: Optional[PreparedModel] = None) -> Dict[str, Any]:
        return failed_unit_records(self.config, unit, error, prepared, self.provenance(), methods=[method])[0]

    def failed_unit(self, unit: EvalUnit, error: Dict[str, Any], prepared: Optional[PreparedModel] = None) -> List[Dict[str, Any]]:
        return failed_unit_records(self.config, unit, error, prepared, self.provenance())

    def provenance(self) -> Dict[str, Any]:
        return provenance(self.config.seed, self.config.raw, self.config.hash, self.device, self.executor_info)


def failed_unit_records(config: RunConfig, unit: EvalUnit, error: Dict[str, Any], prepared: Optional[PreparedModel],
                        provenance_: Dict[str, Any], methods: Optional[List[Method]] = None) -> List[Dict[str, Any]]:
    """Failed records for the methods of a unit (all of them unless `methods` is given)."""
    variant = config.tasks[unit.task_index].variants[unit.variant_index]
    entry = config.models[unit.model_index]
    model = prepared.describe() if prepared is not None else {"name": entry.name, "checkpoint": entry.checkpoint,
                                                               "checkpoint_sha256": None}
    methods = methods if methods is not None else [config.methods[i] for i in unit.method_indices]
    return [failed_record(model, {"name": m.name, "params": m.params, "id": m.id}, variant.describe(), error, provenance_)
            for m in methods]


def integrity_error(method: Method, changed: str, stage: str) -> Dict[str, Any]:
    message = (f"method {method.id!r} changed the model's weights ({changed}): its result is void, and the model "
               f"was reloaded for the next pair")
    return {"type": "IntegrityError", "message": message, "traceback": "", "stage": stage, "input_error": False}


def fit_to_task(model: TokenEncoder, task: Task, frames: Optional[int], source: Any) -> TokenEncoder:
    """The model at the task's input length (`frames` when the entry fixes one): positions cut
    from the start (a shorter input's frames sat at the start of the padded one) or interpolated;
    a DataError naming the checkpoint and both lengths when its positions cannot be adapted."""
    want = input_frames_for(task, model.config, frames)
    if want == model.config.target_frames:
        return model
    check_frames(want, model.config, f"checkpoint {source}", task)
    return model.adapt_to_frames(want, crop="start")


def variant_frontend(base: FrontEnd, variant: TaskVariant, nominal_frames: Optional[int] = None) -> FrontEnd:
    """Native-length buckets keep the clip's own frame count; pad buckets pad to the model's
    nominal length (`nominal_frames`, for a model whose own mode is native); the rest as `base`."""
    if variant.bucket is not None and variant.bucket.native:
        return replace(base, target_frames=None)
    if variant.bucket is not None and base.target_frames is None and nominal_frames:
        return replace(base, target_frames=nominal_frames)
    return base


def input_frames(frontend: FrontEnd, variant: TaskVariant) -> int:
    """The model input's frame count for a variant: the padded length, or for a native-length
    input the front end's frame count of the bucket's (or task's) duration (timing needs no features)."""
    if frontend.target_frames is not None:
        return frontend.target_frames
    seconds = variant.bucket.params["seconds"] if variant.bucket is not None else variant.task.clip_seconds
    return max(1, frontend.frames_for_seconds(seconds))
