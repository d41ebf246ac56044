"""The units of work of a run, shared by every executor (local and Ray call these same functions).

A run is a plan of units, one per (model, task variant, method batch); around them, one step each:
- prepare: resolve a model's checkpoint for a task (given, cached, or trained now) and load it;
- resolve: each speed target (`topk` at 1.5x) tuned to a concrete method at each input length;
- timing: throughput of the pending methods against `none`, interleaved, once per input shape;
- features: a variant's features, computed once and shared by every method;
- evaluate: every method of a unit on the variant's features;
- record: one `Record` per pair (prunebench.records.record), ok or failed.
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
from prunebench.run.measure_settings import resolve_measure
from prunebench.method_api import Method
from prunebench.data.examples import example_spectrograms
from prunebench.models import build_model, checkpoint_sha256, file_sha256, load_classifier, resolve_checkpoint
from prunebench.models.encoder import EncoderConfig, TokenEncoder
from prunebench.models.execution import set_execution
from prunebench.core.registry import METHODS
from prunebench.records.record import Failure, Pair, Record
from prunebench.records.store import provenance
from prunebench.core.device import resolve_device
from prunebench.measure.shapes import InputShape
from prunebench.measure.strategies import measure_strategies
from prunebench.measure.throughput import TimingSettings, measure_interleaved
from prunebench.measure.tune import tune
from prunebench.run.speed_target import SpeedTarget
from prunebench.train.checkpoints import default_checkpoint_path, weights_sha256
from prunebench.train.loop import train_model
from prunebench.data.length import check_frames, input_frames_for
from prunebench.data.variant import TaskVariant
from prunebench.data.batching import DEFAULT_STRATEGY, MASKED, Batching
from prunebench.core.errors import ConfigError
from prunebench.tasks.base import Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalUnit:
    """Methods (by index into the config's methods and speed targets) to evaluate on one task
    variant with one model."""

    model_index: int
    task_index: int
    variant_index: int
    method_indices: Tuple[int, ...]
    target_indices: Tuple[int, ...] = ()

    @property
    def group(self) -> Tuple[int, int]:
        return (self.model_index, self.task_index)

    @property
    def size(self) -> int:
        """The pairs of the unit."""
        return len(self.method_indices) + len(self.target_indices)

    def split(self, size: int) -> List["EvalUnit"]:
        """Method batches of at most `size` methods (0: one batch); speed targets stay with the first."""
        if size <= 0 or size >= self.size:
            return [self]
        chunks = [self.method_indices[i:i + size] for i in range(0, len(self.method_indices), size)] or [()]
        return [replace(self, method_indices=c, target_indices=self.target_indices if k == 0 else ())
                for k, c in enumerate(chunks)]


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
    execution: str = "eager"  # the path a built model runs on (prunebench.models.execution)
    # The checkpoint's weights alone (train/checkpoints.weights_sha256): equal for two trainings
    # that made equal weights, whatever timings their files' metadata hold (a track pins it).
    weights_sha256: Optional[str] = None

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
        return set_execution(model.eval(), self.execution)

    def describe(self) -> Dict[str, Any]:
        described = {"name": self.name, "checkpoint": self.checkpoint, "checkpoint_sha256": self.sha256,
                     "config": self.config.to_dict()}
        return described if self.weights_sha256 is None else {**described, "weights_sha256": self.weights_sha256}


@dataclass(frozen=True)
class Job:
    """One pair's method to run, and the method block its record states (a speed target's block
    names the target, the keep rate it resolved to and the tuning)."""

    method: Method
    block: Dict[str, Any]


@dataclass(frozen=True)
class Resolved:
    """A speed target tuned to a concrete method at one input length."""

    method: Method
    tuning: Dict[str, Any]


class Work:
    """The work of one run configuration in one process; executors call its methods."""

    def __init__(self, config: RunConfig, executor_info: Optional[Dict[str, Any]] = None,
                 echo: Callable[[str], None] = print, progress: bool = False):
        self.config = config
        self.executor_info = executor_info or {"name": "local"}
        self.echo = echo
        self.progress = progress
        measure = config.measure
        self.store = FeatureStore(on_bad_clip=config.on_bad_clip, run_seed=config.seed, progress=progress,
                                  store_dtype=feature_storage(measure))
        self.measure = resolve_measure(measure)
        self.device = str(self.measure.device)
        self.measure_block = self.measure.block
        self.timing_settings = TimingSettings(batch_size=measure["batch_size"], device=measure["device"],
                                              dtype=measure["dtype"], warmup=measure["warmup"],
                                              repeats=measure["repeats"], seed=config.seed,
                                              min_repeat_s=measure["min_repeat_s"], progress=progress)
        # speed targets resolved by the resolve step: (checkpoint sha, frames, target id) -> Resolved,
        # or the Failure of its tuning
        self.resolved: Dict[Tuple[str, int, str], Any] = {}

    # -- the grid's parts, by index ---------------------------------------------------------
    def variant(self, unit: EvalUnit) -> TaskVariant:
        return self.config.tasks[unit.task_index].variants[unit.variant_index]

    def methods(self, unit: EvalUnit) -> List[Method]:
        return [self.config.methods[i] for i in unit.method_indices]

    def targets(self, unit: EvalUnit) -> List[SpeedTarget]:
        return [self.config.speed_targets[i] for i in unit.target_indices]

    def pair(self, unit: EvalUnit, model: Dict[str, Any], method_block: Dict[str, Any]) -> Pair:
        variant = self.variant(unit)
        return Pair(model, method_block, variant.describe(), self.measure_block, tuple(variant.listed_clip_ids()),
                    self.config.seed)

    # -- prepare ----------------------------------------------------------------------------
    def prepare(self, model_index: int, task_index: int) -> PreparedModel:
        entry = self.config.models[model_index]
        task = self.config.tasks[task_index].task
        checkpoint, sha = self._checkpoint(entry, task)
        # an entry's length: `frames:`, or a target_frames among its overrides (as training takes it)
        frames = entry.frames if entry.frames is not None else entry.overrides.get("target_frames")
        loaded = load_classifier(entry.name, checkpoint, num_classes=task.num_classes)
        weights = weights_sha256(loaded)  # before fit_to_task: the checkpoint's weights as trained
        model = fit_to_task(loaded, task, frames, checkpoint)
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return PreparedModel(entry.name, str(checkpoint), sha, model.config, state, self.measure.execution, weights)

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

    def batching(self, prepared: PreparedModel, unit: EvalUnit, model: TokenEncoder) -> Batching:
        """The run's batching strategy for a unit; true-length clips pad (pad-fixed) to the model's
        input. A masked strategy on a model without key-padding support is one line naming both."""
        strategy = self.config.measure.get("batching", DEFAULT_STRATEGY)
        if strategy in MASKED and not getattr(model, "supports_key_padding", False):
            raise ConfigError(f"measure: batching {strategy!r} needs a key-padding mask, which model "
                              f"{prepared.name!r} does not support (use pad-fixed or native)")
        frames = prepared.config.target_frames if self.variant(unit).lengths is not None else None
        return Batching(strategy, self.timing_settings.batch_size, frames)

    def tuning_frames(self, prepared: PreparedModel, unit: EvalUnit) -> int:
        """The input length a speed target is tuned at: the model input's frames."""
        return input_frames(self.frontend(prepared, unit), self.variant(unit))

    def timing_frames(self, prepared: PreparedModel, unit: EvalUnit) -> Any:
        """The key a unit's pairs are timed under: the input's frame count (one fixed shape), or
        for clips at their own length or a strategy other than pad-fixed, the strategy and the
        clean variant ("sorted:esc50/fold5+trim"): timed over the clips' own lengths."""
        strategy = self.config.measure.get("batching", DEFAULT_STRATEGY)
        variant = self.variant(unit)
        if variant.lengths is None and strategy == DEFAULT_STRATEGY:
            return self.tuning_frames(prepared, unit)
        return f"{strategy}:{variant.clean.id}"

    # -- resolve: speed targets to concrete methods, before timing and evaluation --------------
    def resolve(self, prepared: PreparedModel, model: TokenEncoder, units: List[EvalUnit]) -> None:
        """Each speed target of `units` tuned (prunebench.measure.tune) to a keep rate at each input
        length it is evaluated at; a tuning that raises stands as the failure of its pairs."""
        for unit in units:
            frames = self.tuning_frames(prepared, unit)
            for target in self.targets(unit):
                key = (prepared.sha256, frames, target.id)
                if key in self.resolved:
                    continue
                self.echo(f"tuning {target.name} to {target.target:g}x at {frames} frames")
                try:
                    result = tune(model, target.name, target.other_params, target.target,
                                  InputShape(frames, frames, "timed"), replace(self.timing_settings, progress=False))
                except Exception as exc:
                    self.resolved[key] = Failure.from_exception(exc, "timing")
                    continue
                tuning = {"keep_rate": result.keep_rate, "speedup": result.speedup, "mac_ratio": result.mac_ratio,
                          "tolerance": result.tolerance, "reached": result.reached, "steps": result.steps}
                self.resolved[key] = Resolved(target.resolve(result.keep_rate), tuning)

    def jobs(self, prepared: PreparedModel, unit: EvalUnit) -> List[Tuple[Dict[str, Any], Any]]:
        """The unit's pairs in order, each as (the method block of its spec, a Job to run, or the
        Failure of a speed target that could not be tuned)."""
        frames = self.tuning_frames(prepared, unit)
        jobs: List[Tuple[Dict[str, Any], Any]] = [(m.describe(), Job(m, m.describe())) for m in self.methods(unit)]
        for target in self.targets(unit):
            resolved = self.resolved.get((prepared.sha256, frames, target.id),
                                         Failure(f"method {target.id}: not tuned (the resolve step did not run for "
                                                 f"{frames} frames)", "ConfigError", "timing", input_error=True))
            jobs.append((target.spec_block(), resolved if isinstance(resolved, Failure) else
                         Job(resolved.method, target.describe(resolved.method, resolved.tuning))))
        return jobs

    # -- timing -----------------------------------------------------------------------------
    def time(self, prepared: PreparedModel, model: TokenEncoder, units: List[EvalUnit]) -> Tuple[Dict[int, Dict[str, Any]], TokenEncoder]:
        """{frames: {pair's method id: throughput dict or {"error": ...}}} for every pair of `units`,
        timed once per input shape against `none`; returns the (possibly rebuilt) model too.
        Speed targets are resolved first (their tuning failures stand as their timing errors)."""
        self.resolve(prepared, model, units)
        groups: Dict[Any, Dict[str, Any]] = {}  # timing key -> {pair's method id: Job or Failure}
        first_unit: Dict[Any, EvalUnit] = {}
        for unit in units:
            key = self.timing_frames(prepared, unit)
            first_unit.setdefault(key, unit)
            groups.setdefault(key, {}).update((spec["id"], job) for spec, job in self.jobs(prepared, unit))
        speeds = {}
        for frames, jobs in groups.items():
            methods: Dict[str, Method] = {}
            for job in jobs.values():
                if isinstance(job, Job):
                    methods.setdefault(job.method.id, job.method)
            if isinstance(frames, str):  # clips at their own lengths, batched by the strategy
                timed, model = self._time_strategy(prepared, model, first_unit[frames], list(methods.values()))
            else:
                timed, model = self._time_group(prepared, model, frames, list(methods.values()))
            speeds[frames] = {pair_id: ({"error": job.to_dict()} if isinstance(job, Failure) else timed.get(job.method.id))
                              for pair_id, job in jobs.items()}
        return speeds, model

    def _time_group(self, prepared: PreparedModel, model: TokenEncoder, frames: int,
                    methods: List[Method]) -> Tuple[Dict[str, Any], TokenEncoder]:
        baseline = next((m for m in methods if m.id == "none"), None) or METHODS.get("none")()
        result: Dict[str, Any] = {}
        guard = WeightsGuard(prepared.state_dict)
        timed = [baseline]
        # One probe forward per method first: a method that raises or changes the weights is
        # excluded (and fails), so it cannot spoil the timing of the others.
        device = resolve_device(self.timing_settings.device)
        probe = torch.randn(2, frames, prepared.config.num_mel_bins, generator=torch.Generator().manual_seed(self.config.seed))
        for method in methods:
            if method.id == baseline.id:
                continue
            try:
                with torch.inference_mode():
                    model.to(device)(probe.to(device), method)
            except Exception as exc:
                result[method.id] = {"error": Failure.from_exception(exc, "timing").to_dict()}
                continue
            changed = guard.check(model)
            if changed:
                result[method.id] = {"error": integrity_failure(method, changed, "timing").to_dict()}
                model = prepared.build()
                continue
            timed.append(method)
        self.echo(f"timing {len(timed)} methods at {frames} frames, batch {self.timing_settings.batch_size} on {self.device}")
        try:
            speeds = measure_interleaved(model, timed, frames, self.timing_settings)
            changed = guard.check(model)
            if changed:
                raise RuntimeError(f"the model's weights changed during the timing pass ({changed})")
        except Exception as exc:
            error = Failure.from_exception(exc, "timing").to_dict()
            result.update({m.id: {"error": error} for m in timed})
            return result, prepared.build()
        result.update({method_id: t.to_dict() for method_id, t in speeds.items()})
        return result, model

    def _time_strategy(self, prepared: PreparedModel, model: TokenEncoder, unit: EvalUnit,
                       methods: List[Method]) -> Tuple[Dict[str, Any], TokenEncoder]:
        """Clips/s of the methods over the variant's own clip lengths under the run's strategy,
        interleaved with `none` under it and under pad-fixed (prunebench.measure.strategies)."""
        strategy = self.config.measure.get("batching", DEFAULT_STRATEGY)
        baseline = next((m for m in methods if m.id == "none"), None) or METHODS.get("none")()
        timed = [baseline] + [m for m in methods if m.id != baseline.id]
        guard = WeightsGuard(prepared.state_dict)
        try:
            lengths = [int(v) for v in self.features(prepared, unit).valid_frames.tolist()]
            self.echo(f"timing {len(timed)} methods over {len(lengths)} clips at their own lengths, {strategy}, "
                      f"batch {self.timing_settings.batch_size} on {self.device}")
            results = measure_strategies(model, timed, lengths, [strategy], self.timing_settings,
                                         frames=prepared.config.target_frames)
            changed = guard.check(model)
            if changed:
                raise RuntimeError(f"the model's weights changed during the timing pass ({changed})")
        except Exception as exc:
            error = Failure.from_exception(exc, "timing").to_dict()
            return {m.id: {"error": error} for m in timed}, prepared.build()
        out = {}
        for m in timed:
            r = results[(strategy, m.id)]
            out[m.id] = {"samples_per_s": r.clips_per_s, "spread": r.spread, "batch_size": r.batch_size,
                         "repeats": self.timing_settings.repeats, "device": self.device, "dtype": self.timing_settings.dtype,
                         "threads": torch.get_num_threads(), "speedup_vs_none": r.speedup_vs_none,
                         "samples_per_s_repeats": r.clips_per_s_rounds, "batching": strategy, "clips": r.clips,
                         "batches": r.batches, "speedup_vs_pad_fixed_none": r.speedup_vs_pad_fixed_none,
                         "pad_fixed_none_clips_per_s": results[(DEFAULT_STRATEGY, "none")].clips_per_s,
                         "padding_mac_share": r.padding_share}
        return out, model

    # -- evaluate ---------------------------------------------------------------------------
    def evaluate(self, prepared: PreparedModel, model: TokenEncoder, unit: EvalUnit,
                 features: FeatureSet) -> Tuple[List[Record], TokenEncoder]:
        """One record per pair of the unit (ok or failed) and the model for the next unit."""
        variant = self.variant(unit)
        records = []
        guard = WeightsGuard(prepared.state_dict)
        # a few small input spectrograms, so the leaderboard can show the kept patches (same for every method)
        examples = example_spectrograms(features.ids, features.fbanks, features.valid_frames, model.config.target_frames)
        for spec, job in self.jobs(prepared, unit):
            if isinstance(job, Failure):  # a speed target whose tuning failed
                records.append(self.failed_pair(unit, spec, job, prepared))
                continue
            try:
                record = self.pair_record(prepared, model, job, unit, features, examples)
            except Exception as exc:  # a broken method must not stop the grid
                log.error("%s / %s / %s failed: %s", prepared.name, spec["id"], variant.id, exc)
                record = self.failed_pair(unit, spec, Failure.from_exception(exc, "evaluate"), prepared)
            changed = guard.check(model)
            if changed:
                failure = integrity_failure(job.method, changed, "evaluate")
                log.error("%s / %s / %s: %s", prepared.name, spec["id"], variant.id, failure.message)
                record = self.failed_pair(unit, spec, failure, prepared)
                model = prepared.build()
            records.append(record)
        return records, model

    def pair_record(self, prepared: PreparedModel, model: TokenEncoder, job: Job, unit: EvalUnit,
                    features: FeatureSet, examples: Dict[str, Any]) -> Record:
        """The record of one (model, method, task variant) pair; throughput is attached later."""
        settings = self.timing_settings
        batching = self.batching(prepared, unit, model)
        check_padding_support(job.method, batching.strategy)
        ev = evaluate(model, job.method, features, self.variant(unit).task.metric, batch_size=settings.batch_size,
                      device=settings.device, dtype=settings.dtype, seed=self.config.seed, progress=self.progress,
                      batching=batching, padder=self.frontend(prepared, unit))
        outcome = {
            "metrics": {ev.metric: ev.score},  # keyed by the metric's registered name
            "data": {"clips": len(features), "skipped": [{"id": i, "reason": r} for i, r in features.skipped],
                     "cropped": len(features.cropped)},
            "per_clip": ev.per_clip,
            "macs": {"per_sample": sum(ev.macs_by_part.values()), "units": "MAC", "flops_per_mac": 2,
                     "by_part": ev.macs_by_part, "grid": list(model.grid_for_frames(features.fbanks[0].shape[0])),
                     **padding_macs(sum(ev.macs_by_part.values()), ev.real_macs)},
            "tokens": {"per_layer": ev.tokens_per_layer, "reduction_layers": list(job.method.reduction_layers(model.config.depth))},
            "selection": ev.selection,
            "examples": examples,
        }
        return Record.ok_result(self.pair(unit, prepared.describe(), job.block), outcome, self.provenance())

    # -- failures ---------------------------------------------------------------------------
    def failed_pair(self, unit: EvalUnit, method_block: Dict[str, Any], failure: Failure,
                    prepared: Optional[PreparedModel] = None) -> Record:
        return Record.failed(self.pair(unit, self.model_block(unit, prepared), method_block), failure, self.provenance())

    def failed_unit(self, unit: EvalUnit, failure: Failure, prepared: Optional[PreparedModel] = None) -> List[Record]:
        """Failed records for every pair of a unit (its preparation or features failed)."""
        return [self.failed_pair(unit, m.describe(), failure, prepared) for m in self.methods(unit)] + \
            [self.failed_pair(unit, t.spec_block(), failure, prepared) for t in self.targets(unit)]

    def model_block(self, unit: EvalUnit, prepared: Optional[PreparedModel]) -> Dict[str, Any]:
        if prepared is not None:
            return prepared.describe()
        entry = self.config.models[unit.model_index]
        return {"name": entry.name, "checkpoint": entry.checkpoint, "checkpoint_sha256": None}

    def provenance(self) -> Dict[str, Any]:
        return provenance(self.config.seed, self.config.raw, self.config.hash, self.device, self.executor_info)


def check_padding_support(method: Method, strategy: str) -> None:
    """ConfigError naming the strategy and the method when a masked strategy meets a method that
    does not declare it keeps the padding contract (Method.supports_padding)."""
    if strategy in MASKED and not method.supports_padding:
        raise ConfigError(f"measure: batching {strategy!r}: method {method.id!r} does not declare supports_padding "
                          f"(it may keep or mix padding under a key-padding mask); use pad-fixed or native")


def padding_macs(spent: float, alone: Optional[float]) -> Dict[str, Any]:
    """The record's split of the MACs a clip cost into its own (`real_per_sample`: the clip alone at
    its length) and padding's (the rest: `padding_per_sample`, `padding_share`)."""
    if alone is None or spent <= 0:
        return {}
    padding = spent - alone
    padding = 0.0 if padding <= 1e-9 * spent else padding  # sums of the same MACs in another order
    return {"real_per_sample": alone, "padding_per_sample": padding, "padding_share": padding / spent}


def integrity_failure(method: Method, changed: str, stage: str) -> Failure:
    message = (f"method {method.id!r} changed the model's weights ({changed}): its result is void, and the model "
               f"was reloaded for the next pair")
    return Failure(message, "IntegrityError", stage)


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
    if variant.lengths is not None or (variant.bucket is not None and variant.bucket.native):
        return replace(base, target_frames=None)  # each clip at its own length
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
