"""Training and fine-tuning a model on a task's training clips, resumable, optionally pruning-aware.

From scratch (the default recipe: AdamW, warm-up + cosine, random crops, SpecAugment) or from a
checkpoint (`init`: AST, Transformers, AudioMAE, ImageNet DeiT, ours; see recipes.py for AST's
ESC-50 and AS-20K recipes). Used by `prunebench train` and by `prunebench run` when a model entry
has no checkpoint.

Checkpoints are named `<model>-<task>-<split>-<config hash>-<content hash>.pt`: the config hash
covers everything that defines the training (model, overrides, the init weights' sha256, task,
data, settings), the content hash is the sha256 of the trained weights. After every epoch the whole training
state (weights, optimizer, schedule, random generators, history) is saved beside it as
`....partial.pt`; rerunning the same command resumes from there, and gives the same weights as an
uninterrupted run on the same device.

Pruning-aware training (`prune: topk:keep_rate=0.5`): the method prunes in every training forward,
its keep rate annealed on a cosine from 1 to the target (as EViT): 1 before `prune_start_epoch`,
the target after `prune_anneal_epochs` more epochs, per step in between.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.core.cache import cache_dir
from benchmark.data.features import FeatureSet, FeatureStore, frontend_for
from benchmark.measure.metrics import mean_average_precision
from benchmark.models import build_model, checkpoint_sha256, load_backbone, resolve_checkpoint, save_checkpoint
from benchmark.models.encoder import TokenEncoder
from benchmark.models.checkpoint import atomic_save
from benchmark.train.recipes import PROBE_KEYS, prune_method, prune_target, resolve_train
from benchmark.tasks.base import Task
from benchmark.core.device import resolve_device
from benchmark.data.variant import TaskVariant

log = logging.getLogger(__name__)
TRAIN_VERSION = 2
STATE_FORMAT = "prunebench-train-state-1"
NOT_HASHED = ("device",)  # where it runs does not define what is trained (a run may resume elsewhere)


# -- names and hashes ------------------------------------------------------------------------
def init_identity(init: Optional[str]) -> Optional[Dict[str, str]]:
    """What the fine-tuning starts from: the argument and the sha256 of the weights it names."""
    if not init:
        return None
    path = resolve_checkpoint(init)
    return {"source": str(init), "path": str(path), "sha256": checkpoint_sha256(path)}


def training_hash(model_name: str, overrides: Dict[str, Any], task: Task, cfg: Dict[str, Any],
                  init: Optional[Dict[str, str]]) -> str:
    unhashed = NOT_HASHED + (() if cfg["recipe"] == "probe" else PROBE_KEYS)
    spec = {
        "version": TRAIN_VERSION, "model": model_name, "overrides": overrides, "task": task.name, "split": task.split,
        "train": {k: v for k, v in cfg.items() if k not in unhashed and k != "init"},
        "init": init["sha256"] if init else None, "data": task.fingerprint(task.train_clips()),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def checkpoint_stem(model_name: str, task: Task, config_hash: str) -> str:
    return f"{model_name}-{task.name}-{task.split}-{config_hash}"


def default_checkpoint_path(model_name: str, overrides: Dict[str, Any], task: Task, train_cfg: Dict[str, Any]) -> Path:
    """Where `prunebench run` keeps the checkpoint it trains for (model, task, settings, data)."""
    cfg = resolve_train(train_cfg, multi_label=task.metric != "accuracy", family=_family(model_name))
    digest = training_hash(model_name, dict(overrides or {}), task, cfg, init_identity(cfg["init"]))
    return cache_dir("checkpoints") / f"{checkpoint_stem(model_name, task, digest)}.pt"


def output_paths(out: Optional[Path], stem: str) -> Tuple[Optional[Path], Path, Path]:
    """(final path if fixed, folder, partial-state path). A folder (an existing one, or a path
    without a file suffix; None: the cache) gets hash names; a file path is used as it is."""
    if out is None or out.is_dir() or str(out).endswith(("/", "\\")) or not out.suffix:
        folder = out if out is not None else cache_dir("checkpoints")
        return None, folder, folder / f"{stem}.partial.pt"
    return out, out.parent, out.with_name(out.name + ".partial")


def finished_checkpoint(fixed: Optional[Path], folder: Path, stem: str,
                        config_hash: str) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """A checkpoint this very training already produced, and its metadata, if any. (The glob
    cannot match the partial file `{stem}.partial.pt`, nor a fixed path's `.partial`.)"""
    candidates = [fixed] if fixed is not None else sorted(folder.glob(f"{stem}-*.pt"))
    for path in candidates:
        if path.is_file():
            try:
                meta = torch.load(str(path), map_location="cpu", weights_only=True).get("meta", {})
            except Exception:
                continue
            if meta.get("config_hash") == config_hash:
                return path, meta
    return None


# -- augmentation ------------------------------------------------------------------------------
def spec_augment(x: torch.Tensor, freq_mask: int, time_mask: int, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """One frequency and one time mask per example, widths uniform in [0, max), set to `fill`
    (0: the normalised mean; AST masks before normalisation, which is the padding value after)."""
    b, frames, mel = x.shape
    x = x.clone()
    for axis, size, max_width in ((2, mel, freq_mask), (1, frames, time_mask)):
        if max_width <= 0:
            continue
        width = torch.randint(0, max_width, (b, 1), generator=generator)
        start = (torch.rand(b, 1, generator=generator) * (size - width).clamp(min=1)).long()
        pos = torch.arange(size).unsqueeze(0)
        mask = ((pos >= start) & (pos < start + width)).to(x.device)
        x = x.masked_fill(mask.unsqueeze(1) if axis == 2 else mask.unsqueeze(2), fill)
    return x


def mixup(x: torch.Tensor, y: torch.Tensor, share: float, pool: Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]],
          n_pool: int, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """AST's mixup on features: each example, with probability `share`, is mixed with a random
    training example, lambda ~ Beta(10, 10); labels (multi-hot or one-hot) mixed alike."""
    b = x.shape[0]
    chosen = torch.rand(b, generator=generator) < share
    partners = torch.randint(0, n_pool, (b,), generator=generator)
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    lam = torch.from_numpy(rng.beta(10.0, 10.0, size=b)).float()
    if not chosen.any():
        return x, y
    lam = torch.where(chosen, lam, torch.ones(b))
    px, py = pool(partners)
    lx = lam.view(b, 1, 1).to(x.device)
    ly = lam.view(b, 1).to(y.device)
    return lx * x + (1 - lx) * px, ly * y + (1 - ly) * py


def random_crop(x: torch.Tensor, frames: int, model: TokenEncoder, generator: torch.Generator) -> Tuple[torch.Tensor, int]:
    """A random window of `frames` frames, starting on a patch column (so it keeps its own
    positional embeddings); the whole input when `frames` is 0 or not shorter. Training on crops
    costs a fraction of full clips and acts as time-shift augmentation; the last epochs run on full
    clips (`full_length_epochs`): measured on synth-esc, a crop-only model lost 10 points of
    accuracy on full-length input."""
    stride = model.dims().stride[1]
    if not frames or frames >= x.shape[1] or frames < model.config.patch_size:
        return x, 0
    columns = model.grid[1] - model.grid_for_frames(frames)[1]
    offset = int(torch.randint(0, columns + 1, (1,), generator=generator))
    return x[:, offset * stride: offset * stride + frames], offset


# -- schedules -------------------------------------------------------------------------------
def warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def ast_step_factor(step: int, steps_per_epoch: int, cfg: Dict[str, Any]) -> float:
    """AST's schedule: MultiStepLR(milestones=range(start, 1000, every), gamma) stepped per epoch,
    and, if `warmup_steps`, its warm-up (lr * step / warmup_steps, updated every 50 steps)."""
    epoch = step // steps_per_epoch
    start, every = cfg["lr_decay_start"], cfg["lr_decay_every"]
    decays = 0 if epoch < start else (epoch - start) // every + 1
    factor = cfg["lr_decay"] ** decays
    warmup = cfg["warmup_steps"]
    if warmup and step < warmup:
        factor *= (step - step % 50) / warmup
    return factor


def keep_rate_at(step: int, steps_per_epoch: int, cfg: Dict[str, Any], target: float) -> float:
    """EViT's keep-rate schedule: 1 until `prune_start_epoch`, then a cosine down to the target over
    `prune_anneal_epochs` (None: half the remaining epochs), per step; the target after."""
    start_epoch = cfg["prune_start_epoch"]
    anneal = cfg["prune_anneal_epochs"]
    if anneal is None:
        anneal = max(1, math.ceil((cfg["epochs"] - start_epoch) / 2))
    start, end = start_epoch * steps_per_epoch, (start_epoch + anneal) * steps_per_epoch
    if step < start:
        return 1.0
    if step >= end:
        return target
    progress = (step - start) / (end - start)
    return target + (1 - target) * 0.5 * (1 + math.cos(math.pi * progress))


# -- evaluation --------------------------------------------------------------------------------
def evaluate(model: TokenEncoder, features: FeatureSet, multi_label: bool, method=None, batch_size: int = 64,
             device: torch.device = torch.device("cpu"), amp: bool = False) -> float:
    """Accuracy (single-label) or mAP (multi-label) on a feature set."""
    model.eval()
    scores: List[torch.Tensor] = []
    order: List[int] = []
    with torch.inference_mode(), _autocast(device, amp):
        for idx, fbank, _ in features.batches(batch_size):
            scores.append(model(fbank.to(device), method).float().cpu())
            order += list(idx)
    logits = torch.cat(scores)
    labels = features.labels[order]
    if multi_label:
        return mean_average_precision(logits.sigmoid(), labels)
    return float((logits.argmax(-1) == labels).float().mean())


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


# -- the training run -----------------------------------------------------------------------------
def initial_model(model_name: str, task: Task, cfg: Dict[str, Any], overrides: Dict[str, Any]) -> Tuple[TokenEncoder, Optional[str]]:
    """A fresh model (from scratch) or the init checkpoint's, at the training length."""
    if cfg["init"]:
        model, weights = load_backbone(model_name, cfg["init"], task.num_classes, frames=cfg["frames"])
        if overrides:
            log.warning("model overrides %s are ignored when fine-tuning from %s", overrides, cfg["init"])
        return model, weights.format
    extra = {"target_frames": cfg["frames"]} if cfg["frames"] else {}
    return build_model(model_name, num_classes=task.num_classes, **{**overrides, **extra}), None


def train_model(
    model_name: str,
    task: Task,
    train_cfg: Dict[str, Any],
    overrides: Optional[Dict[str, Any]] = None,
    out: Optional[Path] = None,
    store: Optional[FeatureStore] = None,
    progress: bool = True,
    on_epoch: Optional[Callable[[int, float], None]] = None,
    overwrite: bool = False,
) -> Tuple[Path, Dict[str, Any]]:
    """Train (or fine-tune) `model_name` on the task's training clips; save and return
    (checkpoint path, metadata). Resumes a matching partial state; returns at once when the very
    same training already finished (unless `overwrite`)."""
    cfg = resolve_train(train_cfg, multi_label=task.metric != "accuracy", family=_family(model_name))
    overrides = dict(overrides or {})
    store = store or FeatureStore()
    init = init_identity(cfg["init"])
    config_hash = training_hash(model_name, overrides, task, cfg, init)
    stem = checkpoint_stem(model_name, task, config_hash)
    fixed, folder, partial_path = output_paths(Path(out).expanduser() if out else None, stem)
    done = None if overwrite else finished_checkpoint(fixed, folder, stem, config_hash)
    if done is not None:
        path, meta = done
        log.info("%s: this training already finished, reusing it", path)
        return path, {**meta, "sha256": checkpoint_sha256(path), "reused": True}
    if cfg["recipe"] == "probe":
        return _probe_and_save(model_name, task, cfg, overrides, init, config_hash, (fixed, folder, stem), store, progress)

    torch.manual_seed(cfg["seed"])
    device = resolve_device(cfg["device"])  # a bad name is a ConfigError naming it
    resumed = None if overwrite else _read_state(partial_path, config_hash)
    if resumed is not None:
        model = build_model(model_name, **resumed["model_config"])
        model.load_state_dict(resumed["model"])
        init_format = resumed["init_format"]
    else:
        model, init_format = initial_model(model_name, task, cfg, overrides)
    model.to(device)
    frontend = frontend_for(model.config, task)
    train = store.get(TaskVariant(task), frontend, split="train")
    test = store.get(TaskVariant(task), frontend, split="test")
    multi_label = task.metric != "accuracy"

    batch_size = cfg["batch_size"]
    steps_per_epoch = math.ceil(len(train) / batch_size)
    optimizer = _optimizer(model, cfg)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, steps_per_epoch))
    generator = torch.Generator().manual_seed(cfg["seed"])
    history: List[float] = []
    epoch_seconds: List[float] = []
    start_epoch = 0
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        schedule.load_state_dict(resumed["scheduler"])
        generator.set_state(resumed["generator"])
        torch.set_rng_state(resumed["torch_rng"])
        if device.type == "cuda" and resumed.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(resumed["cuda_rng"], device)
        history, epoch_seconds, start_epoch = resumed["history"], resumed["epoch_seconds"], resumed["epoch"]
        log.info("resuming %s from epoch %d of %d", partial_path, start_epoch, cfg["epochs"])

    fill = frontend.padding_value() if cfg["mask_fill"] == "logmel-zero" else 0.0
    target = prune_target(cfg["prune"]) if cfg["prune"] else None
    soft_labels = multi_label or cfg["mixup"] > 0
    labels_all = train.labels if multi_label else F.one_hot(train.labels, task.num_classes).float()

    def pool(idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        batch = torch.stack([train.fbanks[i] for i in idx.tolist()]).to(device)
        return batch, (labels_all[idx] if soft_labels else train.labels[idx]).to(device)

    total = steps_per_epoch * cfg["epochs"]
    bar = tqdm(total=total, initial=steps_per_epoch * start_epoch, desc=f"train {model_name} on {task.id}",
               disable=not progress, leave=False)
    for epoch in range(start_epoch, cfg["epochs"]):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train), generator=generator)
        running = 0.0
        for start in range(0, len(train), batch_size):
            step = epoch * steps_per_epoch + start // batch_size
            idx = order[start:start + batch_size]
            x, y = pool(idx)
            x = spec_augment(x, cfg["freq_mask"], cfg["time_mask"], generator, fill)
            if cfg["mixup"] > 0:
                x, y = mixup(x, y, cfg["mixup"], pool, len(train), generator)
            cropping = epoch < cfg["epochs"] - cfg["full_length_epochs"]
            x, offset = random_crop(x, cfg["crop_frames"] if cropping else 0, model, generator)
            method = prune_method(cfg["prune"], keep_rate_at(step, steps_per_epoch, cfg, target)) if target else None
            with _autocast(device, cfg["amp"]):
                logits = model.forward_with_state(x, method, time_offset=offset)[0].float()
            if multi_label:
                loss = F.binary_cross_entropy_with_logits(logits, y)
            else:
                loss = F.cross_entropy(logits, y, label_smoothing=cfg["label_smoothing"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["clip_grad"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad"])
            optimizer.step()
            schedule.step()
            running += float(loss.detach()) * len(idx)
            bar.update(1)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_seconds.append(round(time.perf_counter() - started, 2))
        history.append(running / len(train))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
        _write_state(partial_path, config_hash, epoch + 1, model, init_format, optimizer, schedule, generator,
                     history, epoch_seconds, device)
        if on_epoch:
            on_epoch(epoch, history[-1])
    bar.close()

    amp = cfg["amp"]
    score = evaluate(model, test, multi_label, device=device, amp=amp)
    pruned = evaluate(model, test, multi_label, prune_method(cfg["prune"], target), device=device, amp=amp) if target else None
    train_seconds = float(sum(epoch_seconds))
    meta = {
        "model": model_name, "overrides": overrides, "task": task.describe(), "train": dict(cfg),
        "init": None if init is None else {**init, "format": init_format}, "config_hash": config_hash,
        "frames": model.config.target_frames, "train_clips": len(train), "test_clips": len(test),
        "loss_history": history, "epoch_seconds": epoch_seconds, "train_seconds": round(train_seconds, 1),
        "samples_per_s": round(len(train) * len(epoch_seconds) / train_seconds, 2) if train_seconds else None,
        "device": str(device), "test_metric": "map" if multi_label else "accuracy", "test_score": score,
        "test_accuracy": None if multi_label else score,
        "prune": None if target is None else {"spec": cfg["prune"], "target_keep_rate": target, "test_score": pruned},
        "norm_stats": list(task.norm_stats), "version": TRAIN_VERSION,
    }
    path, meta["sha256"] = _save_final(model.eval().cpu(), meta, fixed, folder, stem)
    partial_path.unlink(missing_ok=True)
    log.info("saved %s (sha256 %s), %s %s, %.0f s", path, meta["sha256"][:12], meta["test_metric"], score, train_seconds)
    return path, meta


def _family(model_name: str) -> str:
    from benchmark.models import registered_config

    return registered_config(model_name).family


def _probe_and_save(model_name: str, task: Task, cfg: Dict[str, Any], overrides: Dict[str, Any],
                    init: Optional[Dict[str, str]], config_hash: str, where: Tuple[Optional[Path], Path, str],
                    store: Optional[FeatureStore], progress: bool) -> Tuple[Path, Dict[str, Any]]:
    """The probe recipe (benchmark/probe.py): a head fitted on the frozen encoder, saved as any checkpoint."""
    from benchmark.train.probe import train_probe

    target = prune_target(cfg["prune"]) if cfg["prune"] else None
    method = prune_method(cfg["prune"], target) if target else None
    model, fitted = train_probe(model_name, task, cfg, method, store or FeatureStore(), progress)
    seconds = fitted["encode_seconds"] + fitted["fit_seconds"]
    meta = {
        "model": model_name, "overrides": overrides, "task": task.describe(), "train": dict(cfg),
        "init": {**init, "format": fitted.pop("init_format")}, "config_hash": config_hash,
        "frames": model.config.target_frames, "loss_history": [], "epoch_seconds": [], "train_seconds": round(seconds, 1),
        "samples_per_s": None, "device": str(resolve_device(cfg["device"])), "test_metric": "accuracy",
        "test_accuracy": fitted["test_score"], "version": TRAIN_VERSION, "norm_stats": list(task.norm_stats),
        "prune": None if target is None else {"spec": cfg["prune"], "target_keep_rate": target, "test_score": fitted["test_score"]},
        **fitted,
    }
    path, meta["sha256"] = _save_final(model.eval(), meta, *where)
    log.info("saved probe %s, accuracy %.3f, %.0f s", path, meta["test_score"], seconds)
    return path, meta


def _optimizer(model: TokenEncoder, cfg: Dict[str, Any]) -> torch.optim.Optimizer:
    cls = torch.optim.Adam if cfg["optimizer"] == "adam" else torch.optim.AdamW
    return cls([p for p in model.parameters() if p.requires_grad], lr=cfg["lr"], weight_decay=cfg["weight_decay"],
               betas=tuple(cfg["betas"]))


def _lr_lambda(cfg: Dict[str, Any], steps_per_epoch: int) -> Callable[[int], float]:
    if cfg["schedule"] == "step":
        return lambda s: ast_step_factor(s, steps_per_epoch, cfg)
    total = steps_per_epoch * cfg["epochs"]
    warmup = steps_per_epoch * cfg["warmup_epochs"]
    return lambda s: warmup_cosine(s, warmup, total)


def weights_sha256(model: TokenEncoder, skip_prefix: str = "\0") -> str:
    """sha256 of the weights alone (names, shapes, dtypes, values): equal weights, equal hash,
    whatever the metadata beside them (timings) says. Keys starting with `skip_prefix` are left out
    (the probe hashes its encoder without the head it fits)."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        if key.startswith(skip_prefix):
            continue
        t = value.detach().cpu().contiguous()
        digest.update(f"{key}|{tuple(t.shape)}|{t.dtype}\n".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _save_final(model: TokenEncoder, meta: Dict[str, Any], fixed: Optional[Path], folder: Path,
                stem: str) -> Tuple[Path, str]:
    """Write the checkpoint, in a folder named by the content hash of its weights; (path, file sha256)."""
    meta["weights_sha256"] = weights_sha256(model)
    path = fixed if fixed is not None else folder / f"{stem}-{meta['weights_sha256'][:12]}.pt"
    return path, save_checkpoint(model, path, meta)


def _write_state(path: Path, config_hash: str, epoch: int, model: TokenEncoder, init_format: Optional[str],
                 optimizer, schedule, generator: torch.Generator, history, epoch_seconds, device: torch.device) -> None:
    atomic_save({
        "format": STATE_FORMAT, "config_hash": config_hash, "epoch": epoch,
        "model_config": {k: v for k, v in model.config.to_dict().items() if k != "name"},
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "init_format": init_format,
        "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(), "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(), "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "history": history, "epoch_seconds": epoch_seconds,
    }, path)


def _read_state(path: Path, config_hash: str) -> Optional[Dict[str, Any]]:
    if not path.is_file():
        return None
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged state is not trusted: start over
        log.warning("training state %s unreadable (%s); starting over", path, exc)
        return None
    if state.get("format") != STATE_FORMAT or state.get("config_hash") != config_hash:
        log.warning("training state %s belongs to another training; starting over", path)
        return None
    return state
