"""Run configuration: a YAML file whose list values expand into a grid.

Every list value of a model, task, corruption, bucket or method entry is a grid axis:
`{name: topk, keep_rate: [0.9, 0.5]}` is two methods. A parameter whose value is itself a list
is written as a list of lists: `layers: [[3, 6, 9]]`. Unknown keys are errors with did-you-mean.
"""
from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import yaml

from prunebench.core.feature_dtype import FEATURE_DTYPES, feature_storage as storage_for
from prunebench.core.errors import ConfigError, PluginError, did_you_mean
from prunebench.core.yaml_values import UniqueKeyLoader, load_yaml_value  # noqa: F401  re-exported
from prunebench.method_api import Method
from prunebench.models.execution import EXECUTIONS
from prunebench.run.speed_target import KEY as SPEED_KEY, SpeedTarget, speed_target
from prunebench.train.recipes import TRAIN_DEFAULTS, resolve_train  # noqa: F401  TRAIN_DEFAULTS re-exported
from prunebench.train.testbed import TestbedSettings, parse_testbed
from prunebench.core.registry import CORRUPTIONS, METHODS, MODELS, TASKS
from prunebench.tasks.buckets import LengthBucket
from prunebench.tasks.corruption import Corruption
from prunebench.tasks.base import Task
from prunebench.data.batching import DEFAULT_STRATEGY, check_strategy
from prunebench.data.variant import TaskVariant
from prunebench.tasks.lengths import lengths_from

TOP_KEYS = ("seed", "models", "tasks", "methods", "measure", "train", "on_bad_clip", "testbed")
MEASURE_DEFAULTS = {"throughput": True, "batch_size": 32, "device": "auto", "dtype": "float32", "warmup": 2, "repeats": 5,
                    "min_repeat_s": 0.2, "feature_dtype": "auto", "batching": DEFAULT_STRATEGY,
                    "execution": "auto"}
MODEL_KEYS = ("name", "checkpoint", "overrides", "frames")
# noisy_buckets: also every corruption at every length bucket (by default buckets are clean only).
# lengths: every variant's clips at their own length (prunebench.tasks.lengths).
TASK_EXTRA_KEYS = ("corruptions", "buckets", "include_clean", "noisy_buckets", "lengths")


@dataclass
class ModelEntry:
    name: str
    # None: train on the task, or reuse the cached default (one per split). A file; a pattern with
    # {split} (and {task}); or a mapping from split (or task/split) to file: one model per fold.
    checkpoint: Optional[Any] = None
    overrides: Dict[str, Any] = field(default_factory=dict)
    frames: Optional[int] = None  # the input length; None: the task's (prunebench.data.length)

    def checkpoint_for(self, task: Task) -> Optional[str]:
        """The checkpoint evaluated on `task` (None: the runner trains or reuses the default)."""
        ckpt = self.checkpoint
        if ckpt is None or ckpt == "":
            return None
        if isinstance(ckpt, dict):
            for key in (task.id, task.split):
                if key in ckpt:
                    return str(ckpt[key])
            raise ConfigError(f"model {self.name!r}: checkpoint mapping has no entry for {task.split!r} "
                              f"(of {task.name}); it has: {', '.join(map(str, ckpt))}")
        return str(ckpt).replace("{split}", task.split).replace("{task}", task.name)


@dataclass
class TaskEntry:
    task: Task
    variants: List[TaskVariant]


@dataclass
class RunConfig:
    seed: int
    models: List[ModelEntry]
    tasks: List[TaskEntry]
    methods: List[Method]  # methods at a given keep rate
    speed_targets: List[SpeedTarget]  # methods named by a measured speed, resolved per model and length
    measure: Dict[str, Any]
    train: Dict[str, Any]
    on_bad_clip: str
    raw: Dict[str, Any]
    testbed: Optional[TestbedSettings] = None  # effective robustness: unpruned probes after the grid

    @property
    def hash(self) -> str:
        return config_hash(self.raw)


def config_hash(raw: Dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_config_text() -> str:
    return resources.files("prunebench").joinpath("default.yaml").read_text(encoding="utf-8")


def load_config(path: Optional[str | Path] = None) -> RunConfig:
    """Parse and validate a config file (None: the embedded default)."""
    if path is None:
        text, source = default_config_text(), "<default config>"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        text, source = p.read_text(encoding="utf-8"), str(p)
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{where}: malformed YAML: {problem}") from None
    return parse_config(raw, source)




def parse_config(raw: Any, source: str = "<config>") -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys ({', '.join(TOP_KEYS)})")
    _check_keys(raw, TOP_KEYS, source)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{source}: seed must be an integer, got {seed!r}")
    models = [_model(e, f"{source}: models[{i}]") for i, e in enumerate(_list(raw, "models", source))]
    on_bad_clip = raw.get("on_bad_clip", "error")
    if on_bad_clip not in ("error", "skip"):
        raise ConfigError(f"{source}: on_bad_clip must be 'error' or 'skip', got {on_bad_clip!r}")
    tasks = [t for i, e in enumerate(_list(raw, "tasks", source)) for t in _tasks(e, f"{source}: tasks[{i}]", on_bad_clip)]
    for i, model in enumerate(models):
        _check_checkpoints(model, tasks, f"{source}: models[{i}]")
    measure = _section(raw, "measure", MEASURE_DEFAULTS, source)
    _check_measure(measure, f"{source}: measure")
    methods, targets = [], []
    for i, entry in enumerate(_list(raw, "methods", source)):
        for params in expand(_entry(entry, f"{source}: methods[{i}]")):
            where, name = f"{source}: methods[{i}]", params.pop("name")
            cls = _lookup(METHODS, name, where)
            if SPEED_KEY in params:  # a measured speed instead of a keep rate
                targets.append(speed_target(name, params, where, bool(measure["throughput"])))
            else:
                methods.append(cls(**params))
    _require_unique([m.id for m in [*methods, *targets]], f"{source}: methods")
    train = raw.get("train") or {}
    if not isinstance(train, dict):
        raise ConfigError(f"{source}: train must be a mapping")
    resolve_train(train, f"{source}: train")  # checked now; completed per task when one is trained
    testbed = parse_testbed(raw.get("testbed"), f"{source}: testbed")
    return RunConfig(seed, models, tasks, methods, targets, measure, train, on_bad_clip, raw, testbed)


def _require_unique(ids: List[str], where: str) -> None:
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"{where}: {', '.join(duplicates)} listed more than once")


def expand(entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Cartesian product over list values: {a: [1, 2], b: 3} -> [{a: 1, b: 3}, {a: 2, b: 3}]."""
    keys = list(entry)
    axes = [entry[k] if isinstance(entry[k], list) else [entry[k]] for k in keys]
    if any(len(a) == 0 for a in axes):
        empty = [k for k, a in zip(keys, axes) if len(a) == 0]
        raise ConfigError(f"empty list for {empty[0]!r}")
    return [dict(zip(keys, combo)) for combo in itertools.product(*axes)]


def _model(entry: Any, where: str) -> ModelEntry:
    entry = _entry(entry, where)
    _check_keys(entry, MODEL_KEYS, where)
    _lookup(MODELS, entry["name"], where)
    overrides = entry.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}: overrides must be a mapping")
    from dataclasses import fields

    from prunebench.models.checkpoint import registered_config

    allowed = [f.name for f in fields(registered_config(entry["name"])) if f.name not in ("name", "family")]
    for key in overrides:
        if key not in allowed:
            raise ConfigError(f"{where}: overrides has no key {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
    checkpoint = entry.get("checkpoint")
    if checkpoint is not None and not isinstance(checkpoint, (str, dict)):
        raise ConfigError(f"{where}: checkpoint must be a file, a pattern with {{split}}, or a mapping split -> file")
    return ModelEntry(entry["name"], checkpoint, overrides, _frames(entry.get("frames"), registered_config(entry["name"]), where))


def _frames(frames: Any, arch: Any, where: str) -> Optional[int]:
    """An explicit input length: whole patches' worth at least, within what the positions cover;
    not for a family with a fixed window (Whisper's pad30)."""
    if frames is None:
        return None
    patch, limit = arch.patch_size, arch.max_frames
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < patch:
        raise ConfigError(f"{where}: frames must be a whole number of at least one patch ({patch} frames), got {frames!r}")
    if limit is not None and frames > limit:
        raise ConfigError(f"{where}: frames {frames} exceed the {limit} frames {arch.name}'s positions cover")
    if arch.fixed_frames is not None:
        raise ConfigError(f"{where}: frames: {arch.name} always runs at {arch.fixed_frames} frames")
    return frames


def _check_checkpoints(model: ModelEntry, tasks: List[TaskEntry], where: str) -> None:
    """One checkpoint per held-out split: the same file on several folds of a task would evaluate
    each fold with a model trained on it (except one)."""
    for entry in tasks:
        model.checkpoint_for(entry.task)  # a mapping without this split is an error here
    if isinstance(model.checkpoint, str) and "{split}" not in model.checkpoint:
        splits: Dict[str, List[str]] = {}
        for entry in tasks:
            splits.setdefault(entry.task.name, []).append(entry.task.split)
        for name, names in splits.items():
            if len(set(names)) > 1:
                raise ConfigError(f"{where}: one checkpoint for {len(set(names))} splits of {name} ({', '.join(names)}) "
                                  f"would test each fold on a model trained on it: give checkpoint a {{split}} pattern "
                                  f"or a mapping split -> file, or leave it null to train one per fold")


def _tasks(entry: Any, where: str, on_bad_clip: str) -> List[TaskEntry]:
    """One task entry, or one per split for `split: all` (the folds) or a list of splits."""
    entry = _entry(entry, where)
    split = entry.get("split")
    if split == "all" or isinstance(split, list):
        if split == "all":
            probe = _make_task({k: v for k, v in entry.items() if k != "split"}, where, on_bad_clip)
            try:
                split = probe.cross_validation_splits()
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        if not split:
            raise ConfigError(f"{where}: split: empty list")
        return [_task({**entry, "split": s}, where, on_bad_clip) for s in split]
    return [_task(entry, where, on_bad_clip)]


def _make_task(entry: Dict[str, Any], where: str, on_bad_clip: str) -> Task:
    params = {k: v for k, v in entry.items() if k not in TASK_EXTRA_KEYS and k != "name"}
    task_cls = _lookup(TASKS, entry["name"], where)
    unknown = [k for k in params if k not in task_cls.defaults]
    if unknown:
        allowed = list(task_cls.defaults) + list(TASK_EXTRA_KEYS)
        raise ConfigError(f"{where}: task {entry['name']!r} has no key {unknown[0]!r}{did_you_mean(unknown[0], allowed)}")
    task = task_cls(**params)
    task.on_bad_clip = on_bad_clip
    return task


def _task(entry: Any, where: str, on_bad_clip: str) -> TaskEntry:
    entry = _entry(entry, where)
    task = _make_task(entry, where, on_bad_clip)
    corruptions: List[Corruption] = []
    for j, c in enumerate(entry.get("corruptions") or []):
        for p in expand(_entry(c, f"{where}.corruptions[{j}]")):
            corruptions.append(_lookup(CORRUPTIONS, p.pop("name"), f"{where}.corruptions[{j}]")(**p))
    buckets: List[LengthBucket] = []
    for j, b in enumerate(entry.get("buckets") or []):
        if not isinstance(b, dict):
            raise ConfigError(f"{where}.buckets[{j}]: expected a mapping like {{seconds: [1, 2], mode: pad}}")
        b = dict(b)
        if b.get("seconds") is None:  # the task's defaults: 1, 2, 5 s (ESC-50); 2.5, 5, 10 s (AudioSet)
            b["seconds"] = list(task.default_bucket_seconds)
        for p in expand(b):
            buckets.append(LengthBucket(**p))
    lengths = lengths_from(entry.get("lengths"), where)
    variants = []
    if entry.get("include_clean", True):
        variants.append(TaskVariant(task, lengths=lengths))
    variants += [TaskVariant(task, corruption=c, lengths=lengths) for c in corruptions]
    for b in buckets:
        variants.append(TaskVariant(task, bucket=b, lengths=lengths))
        if entry.get("noisy_buckets", False):
            variants += [TaskVariant(task, corruption=c, bucket=b, lengths=lengths) for c in corruptions]
    _require_unique([v.id for v in variants], f"{where}: variants")
    return TaskEntry(task, variants)


def _lookup(registry, name: Any, where: str):
    try:
        return registry.get(name)
    except PluginError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _entry(entry: Any, where: str) -> Dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry}
    if not isinstance(entry, dict) or "name" not in entry:
        raise ConfigError(f"{where}: expected a mapping with a 'name' key, got {entry!r}")
    return dict(entry)


def _list(raw: Dict[str, Any], key: str, source: str) -> List[Any]:
    value = raw.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: {key} must be a non-empty list")
    return value


def _section(raw: Dict[str, Any], key: str, defaults: Dict[str, Any], source: str) -> Dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key} must be a mapping")
    _check_keys(value, tuple(defaults), f"{source}: {key}")
    return {**defaults, **value}


def _check_measure(measure: Dict[str, Any], where: str) -> None:
    if not isinstance(measure["throughput"], bool):
        raise ConfigError(f"{where}: throughput must be true or false, got {measure['throughput']!r}")
    for key, lo in (("batch_size", 1), ("warmup", 0), ("repeats", 1)):
        value = measure[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < lo:
            raise ConfigError(f"{where}: {key} must be an integer >= {lo}, got {value!r}")
    seconds = measure["min_repeat_s"]
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 600:
        raise ConfigError(f"{where}: min_repeat_s must be a number of seconds in [0, 600], got {seconds!r}")
    if measure["dtype"] not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"{where}: dtype must be float32, float16 or bfloat16, got {measure['dtype']!r}")
    if measure["execution"] not in EXECUTIONS:
        raise ConfigError(f"{where}: execution must be one of {', '.join(EXECUTIONS)}, got {measure['execution']!r}")
    check_strategy(measure["batching"], where)
    if measure["feature_dtype"] not in FEATURE_DTYPES:
        raise ConfigError(f"{where}: feature_dtype must be one of {', '.join(FEATURE_DTYPES)}, got {measure['feature_dtype']!r}")
    device = measure["device"]
    if device != "auto":
        import torch

        try:
            torch.device(device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"{where}: device must be auto, cpu, cuda or cuda:N, got {device!r}") from None


def feature_storage(measure: Dict[str, Any]) -> str:
    """The feature cache's dtype for a run's measure settings (prunebench.core.feature_dtype)."""
    return storage_for(measure["dtype"], measure["feature_dtype"])


def _check_keys(mapping: Dict[str, Any], allowed, where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
