"""The runner: every (model, task variant, method) pair of a config, resumable.

For each model and task: resolve the checkpoint (given, cached, or trained now), compute each
variant's features once, time every pending method against `none` interleaved (once per input
shape: noise does not change the shape), evaluate, and write one record per pair atomically.
Finished records are skipped unless `overwrite`.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from tqdm import tqdm

from .config import ModelEntry, RunConfig, TaskEntry
from .errors import DataError, PrunebenchError
from .evaluate import evaluate
from .examples import example_spectrograms
from .features import COUNTER, FeatureStore
from .frontend import FrontEnd
from .macs import model_macs
from .method import Method
from .models import checkpoint_sha256, file_sha256, load_model, resolve_checkpoint
from .models.audio_vit import AudioViT
from .registry import METHODS
from .robustness import annotate_run
from .results import SCHEMA, provenance, read_record, result_path, write_record
from .tasks.base import Task
from .throughput import Throughput, measure_interleaved, resolve_device
from .train import default_checkpoint_path, frontend_for, train_model
from .variant import TaskVariant

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    written: List[Path] = field(default_factory=list)
    skipped: List[Path] = field(default_factory=list)
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (pair, error)
    records: List[Dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class Runner:
    def __init__(self, config: RunConfig, out: str | Path, overwrite: bool = False, progress: bool = True,
                 echo: Callable[[str], None] = print):
        self.config = config
        self.out = Path(out)
        self.overwrite = overwrite
        self.progress = progress
        self.echo = echo
        self.store = FeatureStore(on_bad_clip=config.on_bad_clip, run_seed=config.seed)
        self.device = str(resolve_device(config.measure["device"]))

    def run(self) -> RunSummary:
        started = time.perf_counter()
        summary = RunSummary()
        for model_entry in self.config.models:
            for task_entry in self.config.tasks:
                self._run_model_task(model_entry, task_entry, summary)
        annotate_run(self.out, self.config)  # robustness block of every noisy record
        summary.seconds = time.perf_counter() - started
        self.echo(str(COUNTER))
        return summary

    # -- one model on one task ------------------------------------------------------------------
    def _run_model_task(self, entry: ModelEntry, task_entry: TaskEntry, summary: RunSummary) -> None:
        task = task_entry.task
        pending = self._pending_pairs(entry, task_entry, summary)
        if not pending:
            self.echo(f"{entry.name} on {task.id}: all {len(task_entry.variants) * len(self.config.methods)} records present, skipped")
            return
        checkpoint, sha = self._checkpoint(entry, task)
        model = load_model(entry.name, checkpoint, num_classes=task.num_classes)
        self._check_same_checkpoint(summary.skipped, sha, entry.name, task)
        base_frontend = frontend_for(model.config, task)
        bar = tqdm(total=sum(len(m) for m in pending.values()), desc=f"{entry.name} on {task.id}",
                   disable=not self.progress, leave=False)
        throughput_cache: Dict[int, Dict[str, Throughput]] = {}
        for variant in task_entry.variants:
            methods = pending.get(variant.id)
            if not methods:
                continue
            frontend = variant_frontend(base_frontend, variant)
            features = self.store.get(variant, frontend, min_frames=model.config.patch_size)
            self.echo(self.store.last)  # features are computed once per clip and variant: counted here
            frames = features.fbanks[0].shape[0]
            speeds = self._throughput(model, methods, frames, throughput_cache)
            for method in methods:
                pair = f"{entry.name} / {method.id} / {variant.id}"
                bar.set_postfix_str(f"{method.id} on {variant.id}")
                try:
                    record = self._evaluate_pair(model, entry, checkpoint, sha, method, variant, features, speeds.get(method.id))
                except PrunebenchError:
                    raise
                except Exception as exc:  # a broken method must not stop the grid
                    log.error("pair %s failed: %s", pair, exc)
                    summary.failed.append((pair, "".join(traceback.format_exception_only(type(exc), exc)).strip()))
                    bar.update(1)
                    continue
                path = result_path(self.out, entry.name, method.id, variant.id)
                write_record(path, record)
                summary.written.append(path)
                summary.records.append(record)
                bar.update(1)
        bar.close()

    def _pending_pairs(self, entry: ModelEntry, task_entry: TaskEntry, summary: RunSummary) -> Dict[str, List[Method]]:
        pending: Dict[str, List[Method]] = {}
        for variant in task_entry.variants:
            for method in self.config.methods:
                path = result_path(self.out, entry.name, method.id, variant.id)
                if path.exists() and not self.overwrite:
                    summary.records.append(read_record(path))
                    summary.skipped.append(path)
                    continue
                pending.setdefault(variant.id, []).append(method)
        return pending

    def _check_same_checkpoint(self, skipped: List[Path], sha: str, model_name: str, task: Task) -> None:
        for path in skipped:
            record = read_record(path)
            same_task = (record["task"]["name"], record["task"]["split"]) == (task.name, task.split)  # one model per fold
            if record["model"]["name"] == model_name and same_task and record["model"]["checkpoint_sha256"] != sha:
                raise DataError(
                    f"{path} was made with checkpoint {record['model']['checkpoint_sha256'][:12]}, this run uses "
                    f"{sha[:12]}: rerun with --overwrite or write to another --out"
                )

    def _checkpoint(self, entry: ModelEntry, task: Task) -> Tuple[Path, str]:
        given = entry.checkpoint_for(task)  # one per held-out split (fold): a file or folder, a Hub id or a zoo name
        if given:
            path = resolve_checkpoint(given)
            return path, checkpoint_sha256(path)
        path = default_checkpoint_path(entry.name, entry.overrides, task, self.config.train, self.store)
        if path.is_file():
            self.echo(f"reusing cached checkpoint {path}")
            return path, file_sha256(path)
        self.echo(f"training {entry.name} on {task.id} (no checkpoint given; cached at {path})")
        path, meta = train_model(entry.name, task, self.config.train, entry.overrides, out=path, store=self.store,
                                 progress=self.progress)
        accuracy = meta["test_accuracy"]
        self.echo(f"trained in {meta['train_seconds']:.0f} s"
                  + (f", held-out accuracy {accuracy:.1%}" if accuracy is not None else ""))
        return path, meta["sha256"]

    def _throughput(self, model: AudioViT, methods: List[Method], frames: int,
                    cache: Dict[int, Dict[str, Throughput]]) -> Dict[str, Throughput]:
        measure = self.config.measure
        if not measure["throughput"]:
            return {}
        known = cache.setdefault(frames, {})
        missing = [m for m in methods if m.id not in known]
        if missing:
            baseline = [METHODS.get("none")()]
            timed = baseline + [m for m in missing if m.id != "none"]
            self.echo(f"timing {len(timed)} methods at {frames} frames, batch {measure['batch_size']} on {self.device}")
            known.update(measure_interleaved(
                model, timed, frames, batch_size=measure["batch_size"], device=measure["device"], dtype=measure["dtype"],
                warmup=measure["warmup"], repeats=measure["repeats"], seed=self.config.seed,
            ))
        return known

    def _evaluate_pair(self, model: AudioViT, entry: ModelEntry, checkpoint: Path, sha: str, method: Method,
                       variant: TaskVariant, features, speed: Optional[Throughput]) -> Dict[str, Any]:
        task = variant.task
        measure = self.config.measure
        ev = evaluate(model, method, features, task.metric, batch_size=measure["batch_size"],
                      device=measure["device"], dtype=measure["dtype"], seed=self.config.seed)
        metric_key = "accuracy" if task.metric == "accuracy" else "map"
        return {
            "schema": SCHEMA,
            "model": {"name": entry.name, "checkpoint": str(checkpoint), "checkpoint_sha256": sha,
                      "config": model.config.to_dict()},
            "method": {"name": method.name, "params": method.params, "id": method.id},
            "task": variant.describe(),
            "metrics": {metric_key: ev.score},
            "data": {"clips": len(features), "skipped": [{"id": i, "reason": r} for i, r in features.skipped]},
            "per_clip": ev.per_clip,
            "macs": {"per_sample": sum(ev.macs_by_part.values()), "units": "MAC", "flops_per_mac": 2,
                     "by_part": ev.macs_by_part, "grid": list(model.grid_for_frames(features.fbanks[0].shape[0]))},
            "tokens": {"per_layer": ev.tokens_per_layer, "reduction_layers": list(method.reduction_layers(model.config.depth))},
            "selection": ev.selection,
            "throughput": None if speed is None else speed.to_dict(),
            # a few small input spectrograms, so the leaderboard can show the kept patches
            "examples": example_spectrograms(features.ids, features.fbanks, features.valid_frames,
                                             model.config.target_frames),
            "provenance": provenance(self.config.seed, self.config.raw, self.config.hash, self.device),
        }


def variant_frontend(base: FrontEnd, variant: TaskVariant) -> FrontEnd:
    """Native-length buckets keep the clip's own frame count; everything else is padded."""
    if variant.bucket is not None and variant.bucket.native:
        return FrontEnd(base.sample_rate, base.num_mel_bins, None, base.norm_mean, base.norm_std)
    return base
