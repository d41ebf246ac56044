"""The training loop: train or fine-tune a model on a task's training clips, resumable,
optionally pruning-aware, then score it on the test clips exactly as runs score a method
(prunebench.measure.evaluate).

From scratch (the default recipe: AdamW, warm-up + cosine, random crops, SpecAugment) or from a
checkpoint (`init`: AST, Transformers, AudioMAE, ImageNet DeiT, ours; see recipes.py for AST's
ESC-50 and AS-20K recipes). Used by `prunebench train` and by `prunebench run` when a model entry
has no checkpoint. Names, hashes and the resumable state are in checkpoints.py; augmentation in
augment.py; learning-rate and keep-rate schedules in schedule.py; the `probe` recipe in probe.py.

Pruning-aware training (`prune: topk:keep_rate=0.5`): the method prunes in every training forward,
its keep rate annealed on a cosine from 1 to the target (as EViT): 1 before `prune_start_epoch`,
the target after `prune_anneal_epochs` more epochs, per step in between.

Progress: a bar over optimizer steps (count, rate, time left); without one (`progress=False`, or
stderr not a terminal) one INFO line per epoch with its loss, seconds and the time left.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from tqdm import tqdm

from prunebench.core.errors import ConfigError
from prunebench.core.progress import log as progress_log  # the lines that replace the bar
from prunebench.core.device import autocast_for, resolve_device, resolve_dtype, training_dtype
from prunebench.core.registry import BASELINE, METHODS
from prunebench.data.features import FeatureSet, FeatureStore, frontend_for
from prunebench.data.variant import TaskVariant
from prunebench.measure.evaluate import evaluate
from prunebench.metrics.accuracy import Accuracy
from prunebench.method_api import Method
from prunebench.models import build_model, checkpoint_sha256, load_backbone
from prunebench.models.encoder import TokenEncoder
from prunebench.tasks.base import Task
from prunebench.train.augment import crop_length, mixup, random_crop, spec_augment, time_shift
from prunebench.train.checkpoints import (
    TRAIN_VERSION, TrainingSpec, TrainingState, finished_checkpoint, read_state, restore_state, save_epoch, save_final,
    training_spec, write_state,
)
from prunebench.train.probe import probe_and_save
from prunebench.train.recipes import prune_method, prune_target
from prunebench.train.schedule import freeze_below, keep_rate_at, lr_lambda, make_optimizer

log = logging.getLogger(__name__)
EVAL_BATCH_SIZE = 64
STEP_LOG_SECONDS = 60  # without a bar: a progress line at most this often within an epoch
RECENT_EPOCHS = 2  # time left is estimated at the pace of this many last epochs


def train_model(
    model_name: str,
    task: Task,
    train_cfg: Dict[str, Any],
    overrides: Optional[Dict[str, Any]] = None,
    *,
    out: Optional[Path] = None,
    store: Optional[FeatureStore] = None,
    progress: bool = True,
    on_epoch: Optional[Callable[[int, float], None]] = None,
    overwrite: bool = False,
) -> Tuple[Path, Dict[str, Any]]:
    """Train (or fine-tune) `model_name` on the task's training clips; save and return
    (checkpoint path, metadata). Resumes a matching partial state; returns at once when the very
    same training already finished (unless `overwrite`)."""
    if isinstance((train_cfg or {}).get("init"), dict):  # start from another training: that one first (or its cache)
        log.info("training the init of %s on %s first", model_name, task.id)
        train_model(model_name, task, train_cfg["init"], overrides, store=store, progress=progress)
    spec = training_spec(model_name, task, train_cfg, overrides, out)
    done = None if overwrite else finished_checkpoint(spec)
    if done is not None:
        path, meta = done
        log.info("%s: this training already finished, reusing it", path)
        return path, {**meta, "sha256": checkpoint_sha256(path), "reused": True}
    store = store or FeatureStore(progress=progress)
    if spec.cfg["recipe"] == "probe":
        return probe_and_save(spec, store, progress)
    training = set_up(spec, store, resume=not overwrite)
    run_epochs(training, progress, on_epoch)
    meta = final_metadata(training)
    path, meta["sha256"] = save_final(training.state.model.eval().cpu(), meta, spec)
    spec.partial.unlink(missing_ok=True)
    log.info("saved %s (sha256 %s), %s %s, %.0f s", path, meta["sha256"][:12], meta["test_metric"], meta["test_score"],
             meta["train_seconds"])
    return path, meta


# -- setting up --------------------------------------------------------------------------------
@dataclass
class Training:
    """A training set up: what it is, its features, its live state and what its steps read."""

    spec: TrainingSpec
    train: FeatureSet
    test: FeatureSet
    state: TrainingState
    steps_per_epoch: int
    mask_fill: float  # the value SpecAugment writes
    target: Optional[float]  # the keep rate pruning-aware training anneals to; None: not pruning

    @property
    def metric(self) -> str:
        """The task's metric (its registered name): the held-out score, as a run scores it."""
        return self.spec.task.metric

    @property
    def dtype(self) -> str:
        return training_dtype(self.state.device, self.spec.cfg["amp"])


def initial_model(spec: TrainingSpec) -> Tuple[TokenEncoder, Optional[str]]:
    """A fresh model (from scratch) or the init checkpoint's, at the training length."""
    model_name, task, cfg, overrides = spec.model_name, spec.task, spec.cfg, spec.overrides
    if cfg["init"]:
        model, weights = load_backbone(model_name, spec.init_source, task.num_classes, frames=cfg["frames"])
        if overrides:
            log.warning("model overrides %s are ignored when fine-tuning from %s", overrides, cfg["init"])
        if cfg["init_patch_scale"] != 1.0:
            scale_patch_filters(model, cfg["init_patch_scale"])
        return model, weights.format
    extra = {"target_frames": cfg["frames"]} if cfg["frames"] else {}
    return build_model(model_name, num_classes=task.num_classes, **{**overrides, **extra}), None


def set_up(spec: TrainingSpec, store: FeatureStore, resume: bool) -> Training:
    """The model (fresh, or the partial state's when `resume` finds one), features, optimizer,
    schedule and generator. The order of random draws is fixed: resuming depends on it."""
    cfg = spec.cfg
    torch.manual_seed(cfg["seed"])
    device = resolve_device(cfg["device"])  # a bad name is a ConfigError naming it
    saved = read_state(spec.partial, spec.config_hash) if resume else None
    if saved is not None:
        model = build_model(spec.model_name, **saved["model_config"])
        model.load_state_dict(saved["model"])
        init_format = saved["init_format"]
    else:
        model, init_format = initial_model(spec)
    if cfg["drop_path"] is not None:
        set_drop_path(model, cfg["drop_path"])
    freeze_below(model, cfg["freeze_blocks"])
    model.to(device)
    frontend = frontend_for(model.config, spec.task)
    train = store.get(TaskVariant(spec.task), frontend, split="train")
    test = store.get(TaskVariant(spec.task), frontend, split="test")
    steps_per_epoch = math.ceil(len(train) / cfg["batch_size"])
    optimizer = make_optimizer(model, cfg)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, steps_per_epoch))
    generator = torch.Generator().manual_seed(cfg["seed"])
    state = TrainingState(model, init_format, optimizer, schedule, generator, device)
    if saved is not None:
        restore_state(saved, state)
        log.info("resuming %s from epoch %d of %d", spec.partial, state.epoch, cfg["epochs"])
    fill = frontend.padding_value() if cfg["mask_fill"] == "logmel-zero" else 0.0
    target = prune_target(cfg["prune"]) if cfg["prune"] else None
    return Training(spec, train, test, state, steps_per_epoch, fill, target)


def scale_patch_filters(model: TokenEncoder, scale: float) -> None:
    """Multiply the patch embedding's filters (not its bias) by `scale`: the same as feeding the
    init `scale` times the input, so an image ViT sees the input scale it was trained on."""
    proj = getattr(getattr(getattr(model, "vit", None), "patch_embed", None), "proj", None)
    if proj is None:
        raise ConfigError(f"train: init_patch_scale: model {model.config.name!r} has no patch embedding to rescale")
    with torch.no_grad():
        proj.weight.mul_(scale)


def set_drop_path(model: TokenEncoder, rate: float) -> None:
    """Stochastic depth rising linearly over the blocks from 0 to `rate` (timm's rule), recorded in
    the model's config so a checkpoint or a resumed state rebuilds it alike."""
    from dataclasses import replace

    from timm.layers import DropPath

    if not hasattr(model.config, "drop_path_rate"):
        raise ConfigError(f"train: drop_path: model {model.config.name!r} has no stochastic depth")
    depth = len(model.blocks)
    for i, block in enumerate(model.blocks):
        r = rate * i / max(1, depth - 1)
        block.drop_path1 = DropPath(r) if r > 0 else torch.nn.Identity()
        block.drop_path2 = DropPath(r) if r > 0 else torch.nn.Identity()
    model.config = replace(model.config, drop_path_rate=float(rate))


class Examples:
    """The training clips, batched on the device with the targets the loss reads: class indices,
    or soft targets (multi-hot, or one-hot so that mixup can mix them)."""

    def __init__(self, training: Training):
        train, multi_label = training.train, training.spec.multi_label
        soft = multi_label or training.spec.cfg["mixup"] > 0
        self.fbanks, self.device = train.fbanks, training.state.device
        if not soft:
            self.targets = train.labels
        else:
            self.targets = train.labels if multi_label else F.one_hot(train.labels, training.spec.task.num_classes).float()

    def __len__(self) -> int:
        return len(self.fbanks)

    def __call__(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        batch = torch.stack([self.fbanks[i] for i in idx.tolist()]).to(self.device)
        return batch, self.targets[idx].to(self.device)


# -- training ----------------------------------------------------------------------------------
def run_epochs(training: Training, progress: bool, on_epoch: Optional[Callable[[int, float], None]]) -> None:
    """The remaining epochs, the state saved after each (so an interrupted training resumes)."""
    spec, state = training.spec, training.state
    epochs = spec.cfg["epochs"]
    examples = Examples(training)
    # disable=None: tqdm's own rule, no bar when stderr is not a terminal (the epoch lines instead)
    bar = tqdm(total=training.steps_per_epoch * epochs, initial=training.steps_per_epoch * state.epoch, unit="step",
               desc=f"train {spec.model_name} on {spec.task.id}", disable=None if progress else True, leave=False)
    for epoch in range(state.epoch, epochs):
        started = time.perf_counter()
        loss = run_epoch(training, epoch, examples, bar)
        if state.device.type == "cuda":
            torch.cuda.synchronize(state.device)
        state.epoch_seconds.append(round(time.perf_counter() - started, 2))
        state.history.append(loss)
        state.epoch = epoch + 1
        bar.set_postfix(loss=f"{loss:.3f}")
        if spec.cfg["epoch_checkpoints"]:
            state.test_scores.append(score_on_test(training, METHODS.get(BASELINE)()))
            save_epoch(state.model, spec, state, epoch_metadata(training))
        write_state(spec.partial, spec.config_hash, state)
        if bar.disable:
            log_epoch(training)
        if on_epoch:
            on_epoch(epoch, loss)
    bar.close()


def run_epoch(training: Training, epoch: int, examples: Examples, bar: tqdm) -> float:
    """One pass over the training clips in a fresh random order; the mean training loss."""
    cfg = training.spec.cfg
    batch_size = cfg["batch_size"]
    training.state.model.train()
    order = torch.randperm(len(examples), generator=training.state.generator)
    cropping = epoch < cfg["epochs"] - cfg["full_length_epochs"]
    running = 0.0
    started = last_line = time.perf_counter()
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        step = epoch * training.steps_per_epoch + start // batch_size
        running += train_step(training, examples, idx, step, cropping) * len(idx)
        bar.update(1)
        now = time.perf_counter()
        if bar.disable and now - last_line >= STEP_LOG_SECONDS:
            last_line = now
            log_step(training, epoch, start // batch_size + 1, now - started, running / (start + len(idx)))
    return running / len(order)


def train_step(training: Training, examples: Examples, idx: torch.Tensor, step: int, cropping: bool) -> float:
    """Augment one batch, forward (pruning at this step's keep rate), backward, step; the loss."""
    cfg, state = training.spec.cfg, training.state
    model, generator = state.model, state.generator
    x, y = examples(idx)
    x = time_shift(x, cfg["time_shift"], generator)
    x = spec_augment(x, cfg["freq_mask"], cfg["time_mask"], generator, training.mask_fill)
    if cfg["mixup"] > 0:
        x, y = mixup(x, y, cfg["mixup"], examples, generator)
    crop = crop_length(cfg["crop_frames"], model.config.target_frames, model.config.patch_size) if cropping else 0
    x, offset = random_crop(x, crop, model, generator)
    method = prune_method(cfg["prune"], keep_rate_at(step, training.steps_per_epoch, cfg, training.target)) if training.target else None
    with autocast_for(state.device, resolve_dtype(training.dtype)):
        logits = model.forward_with_state(x, method, time_offset=offset)[0].float()
    if training.spec.multi_label:
        loss = F.binary_cross_entropy_with_logits(logits, y)
    else:
        loss = F.cross_entropy(logits, y, label_smoothing=cfg["label_smoothing"])
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg["clip_grad"]:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad"])
    state.optimizer.step()
    state.schedule.step()
    return float(loss.detach())


def log_epoch(training: Training) -> None:
    """The progress line when there is no bar: epoch i/N, loss, seconds, time left (at the pace of
    the last RECENT_EPOCHS epochs: a shared machine's load changes)."""
    state, epochs = training.state, training.spec.cfg["epochs"]
    seconds = state.epoch_seconds
    recent = seconds[-RECENT_EPOCHS:]
    left = (epochs - state.epoch) * sum(recent) / len(recent)
    held_out = f", held-out {training.metric} {state.test_scores[-1]:.4f}" if state.test_scores else ""
    progress_log.info("train %s on %s: epoch %d/%d, loss %.4f%s, %.1f s, about %s left", training.spec.model_name,
             training.spec.task.id, state.epoch, epochs, state.history[-1], held_out, seconds[-1], _duration(left))


def log_step(training: Training, epoch: int, steps: int, seconds: float, loss: float) -> None:
    """A progress line within an epoch: steps done, seconds per step, time left in the training
    (at this epoch's pace, plus the remaining epochs at the last finished epochs' pace)."""
    state, epochs, per_epoch = training.state, training.spec.cfg["epochs"], training.steps_per_epoch
    done = state.epoch_seconds[-RECENT_EPOCHS:]
    epoch_pace = sum(done) / len(done) if done else seconds / steps * per_epoch
    left = seconds / steps * (per_epoch - steps) + (epochs - epoch - 1) * epoch_pace
    progress_log.info("train %s on %s: epoch %d/%d, step %d/%d, %.2f s/step (%s), loss %.4f, about %s left",
             training.spec.model_name, training.spec.task.id, epoch + 1, epochs, steps, per_epoch, seconds / steps,
             training.dtype, loss, _duration(left))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds // 60:.0f} min {seconds % 60:02.0f} s"


# -- the end -----------------------------------------------------------------------------------
def score_on_test(training: Training, method: Method) -> float:
    """The test split's score with `method`, through the scoring path of runs."""
    ev = evaluate(training.state.model, method, training.test, training.metric, EVAL_BATCH_SIZE, str(training.state.device), training.dtype)
    return ev.score["value"]


def epoch_metadata(training: Training) -> Dict[str, Any]:
    """What an epoch's checkpoint records: the training's identity, the epoch, its held-out score."""
    spec, state = training.spec, training.state
    return {
        "model": spec.model_name, "task": spec.task.describe(), "train": dict(spec.cfg), "config_hash": spec.config_hash,
        "init": None if spec.init is None else {**spec.init, "format": state.init_format},
        "epoch": state.epoch, "epochs": spec.cfg["epochs"], "loss_history": list(state.history),
        "test_metric": training.metric, "test_score": state.test_scores[-1], "test_scores": list(state.test_scores),
        "epoch_seconds": list(state.epoch_seconds), "train_dtype": training.dtype, "device": str(state.device),
        "frames": state.model.config.target_frames, "norm_stats": list(spec.task.norm_stats), "version": TRAIN_VERSION,
    }


def final_metadata(training: Training) -> Dict[str, Any]:
    """What the checkpoint records: the training, its timings and its test scores (unpruned, and
    at the target keep rate of pruning-aware training)."""
    spec, state, cfg = training.spec, training.state, training.spec.cfg
    score = score_on_test(training, METHODS.get(BASELINE)())
    pruned = score_on_test(training, prune_method(cfg["prune"], training.target)) if training.target else None
    train_seconds = float(sum(state.epoch_seconds))
    return {
        "model": spec.model_name, "overrides": spec.overrides, "task": spec.task.describe(), "train": dict(cfg),
        "init": None if spec.init is None else {**spec.init, "format": state.init_format},
        "config_hash": spec.config_hash, "frames": state.model.config.target_frames,
        "train_clips": len(training.train), "test_clips": len(training.test),
        "loss_history": state.history, "epoch_seconds": state.epoch_seconds, "train_seconds": round(train_seconds, 1),
        "samples_per_s": round(len(training.train) * len(state.epoch_seconds) / train_seconds, 2) if train_seconds else None,
        "device": str(state.device), "train_dtype": training.dtype, "test_metric": training.metric, "test_score": score,
        "epoch_test_scores": list(state.test_scores) or None,
        "test_accuracy": score if training.metric == Accuracy.name else None,  # older readers: top-1 only
        "prune": None if training.target is None else {"spec": cfg["prune"], "target_keep_rate": training.target, "test_score": pruned},
        "norm_stats": list(spec.task.norm_stats), "version": TRAIN_VERSION,
    }
