"""What a training writes and how it is named: config hashes, checkpoint names, the final
checkpoint, and the resumable training state saved after every epoch.

Checkpoints are named `<model>-<task>-<split>-<config hash>-<content hash>.pt`: the config hash
covers everything that defines the training (model, overrides, the init weights' sha256, task,
data, settings), the content hash is the sha256 of the trained weights. After every epoch the whole
training state (weights, optimizer, schedule, random generators, history) is saved beside it as
`....partial.pt`; rerunning the same command resumes from there, and gives the same weights as an
uninterrupted run on the same device. The hashes must stay stable: a training already cached is
found by them and reused.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from prunebench.core.cache import cache_dir
from prunebench.metrics import get_metric
from prunebench.models import checkpoint_sha256, resolve_checkpoint, save_checkpoint
from prunebench.models.checkpoint import atomic_save
from prunebench.models.encoder import TokenEncoder
from prunebench.tasks.base import Task
from prunebench.train.recipes import ADDED_KEYS, PROBE_KEYS, TRAIN_DEFAULTS, settings_for

log = logging.getLogger(__name__)
TRAIN_VERSION = 2
STATE_FORMAT = "prunebench-train-state-1"
# Where it runs does not define what is trained (a run may resume elsewhere), nor do the per-epoch
# scores and copies kept on the side.
NOT_HASHED = ("device", "epoch_checkpoints")
# `amp` as hashed: "gpu" (the default) is what `amp: true` meant before CPUs trained in bfloat16, so
# it keeps that name and every cached training its checkpoint; true now means bfloat16 on CPUs too.
AMP_HASHED = {"gpu": True, True: "bfloat16-where-available"}


# -- names and hashes ------------------------------------------------------------------------
def init_identity(init: Any, model_name: str, task: Task, overrides: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """What the fine-tuning starts from: the argument and the sha256 of the weights it names. An
    init that is a training's settings is identified by that training's config hash (stable whether
    or not it is trained yet: `train_model` trains it first), its checkpoint and sha256 named once trained."""
    if not init:
        return None
    if isinstance(init, dict):
        spec = training_spec(model_name, task, init, overrides, None)
        done = finished_checkpoint(spec)
        path = None if done is None else done[0]
        return {"source": "training", "training": spec.config_hash, "path": None if path is None else str(path),
                "sha256": None if path is None else checkpoint_sha256(path)}
    path = resolve_checkpoint(init)
    return {"source": str(init), "path": str(path), "sha256": checkpoint_sha256(path)}


def training_hash(model_name: str, overrides: Dict[str, Any], task: Task, cfg: Dict[str, Any],
                  init: Optional[Dict[str, str]]) -> str:
    """12 hex digits of the sha256 of everything that defines the training (not where it runs)."""
    spec = {
        "version": TRAIN_VERSION, "model": model_name, "overrides": overrides, "task": task.name, "split": task.split,
        "train": hashed_settings(cfg),
        "init": _init_hashed(init), "data": task.fingerprint(task.train_clips()),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _init_hashed(init: Optional[Dict[str, Any]]) -> Optional[str]:
    if not init:
        return None
    return f"training:{init['training']}" if init.get("training") else init["sha256"]


def hashed_settings(cfg: Dict[str, Any]) -> Dict[str, Any]:
    """The settings that define a training, as hashed: not where it runs, not the probe's keys
    (unless it is a probe), keys added later only when set, `amp` under its old names."""
    unhashed = NOT_HASHED + (() if cfg["recipe"] == "probe" else PROBE_KEYS) + ("init",)
    out = {k: v for k, v in cfg.items()
           if k not in unhashed and not (k in ADDED_KEYS and v == TRAIN_DEFAULTS[k])}
    if "amp" in out:
        out["amp"] = AMP_HASHED.get(out["amp"], out["amp"])
    return out


def checkpoint_stem(model_name: str, task: Task, config_hash: str) -> str:
    return f"{model_name}-{task.name}-{task.split}-{config_hash}"


def default_checkpoint_path(model_name: str, overrides: Dict[str, Any], task: Task, train_cfg: Dict[str, Any]) -> Path:
    """Where `prunebench run` keeps the checkpoint it trains for (model, task, settings, data):
    `<stem>.pt`, or the `<stem>-<content hash>.pt` that `prunebench train` made of the same training
    in the cache (the same weights: a run reuses them instead of training again)."""
    spec = training_spec(model_name, task, train_cfg, overrides, None)
    done = finished_checkpoint(spec)
    return spec.folder / f"{spec.stem}.pt" if done is None else done[0]


def output_paths(out: Optional[Path], stem: str) -> Tuple[Optional[Path], Path, Path]:
    """(final path if fixed, folder, partial-state path). A folder (an existing one, or a path
    without a file suffix; None: the cache) gets hash names; a file path is used as it is."""
    if out is None or out.is_dir() or str(out).endswith(("/", "\\")) or not out.suffix:
        folder = out if out is not None else cache_dir("checkpoints")
        return None, folder, folder / f"{stem}.partial.pt"
    return out, out.parent, out.with_name(out.name + ".partial")


@dataclass(frozen=True)
class TrainingSpec:
    """One training, identified: the model, the task, the complete settings, what it starts from,
    its config hash and where its checkpoint and partial state go."""

    model_name: str
    task: Task
    cfg: Dict[str, Any]
    overrides: Dict[str, Any]
    init: Optional[Dict[str, str]]
    config_hash: str
    stem: str
    fixed: Optional[Path]  # the checkpoint's path when the caller fixed it; None: a hash name in `folder`
    folder: Path
    partial: Path

    @property
    def multi_label(self) -> bool:
        return get_metric(self.task.metric).multi_label

    @property
    def init_source(self) -> Optional[str]:
        """What to load the starting weights from: the init as given, or the init training's checkpoint."""
        if not isinstance(self.cfg["init"], dict):
            return self.cfg["init"]
        if not self.init or not self.init["path"]:
            raise RuntimeError("the init training is not trained yet (train_model trains it first)")
        return self.init["path"]


def training_spec(model_name: str, task: Task, train_cfg: Dict[str, Any], overrides: Optional[Dict[str, Any]],
                  out: Optional[Path]) -> TrainingSpec:
    """Settings completed, init identified, hashed and named, as `default_checkpoint_path` does."""
    cfg = settings_for(train_cfg, model_name, task, overrides)
    overrides = dict(overrides or {})
    init = init_identity(cfg["init"], model_name, task, overrides)
    config_hash = training_hash(model_name, overrides, task, cfg, init)
    stem = checkpoint_stem(model_name, task, config_hash)
    fixed, folder, partial = output_paths(Path(out).expanduser() if out else None, stem)
    return TrainingSpec(model_name, task, cfg, overrides, init, config_hash, stem, fixed, folder, partial)


def finished_checkpoint(spec: TrainingSpec) -> Optional[Tuple[Path, Dict[str, Any]]]:
    """A checkpoint this very training already produced, and its metadata, if any: at its fixed path,
    or in its folder under either name a training gets there, `<stem>.pt` (what `prunebench run`
    trains for a model) or `<stem>-<content hash>.pt` (`prunebench train`), so that a run's training
    named as another training's init is found, not trained again. (The glob cannot match the partial
    file `{stem}.partial.pt`, nor a fixed path's `.partial`.)"""
    candidates = ([spec.fixed] if spec.fixed is not None else
                  [spec.folder / f"{spec.stem}.pt"] + sorted(spec.folder.glob(f"{spec.stem}-*.pt")))
    for path in candidates:
        if path.is_file():
            try:
                meta = torch.load(str(path), map_location="cpu", weights_only=True).get("meta", {})
            except Exception:
                continue
            if meta.get("config_hash") == spec.config_hash:
                return path, meta
    return None


# -- the final checkpoint ------------------------------------------------------------------------
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


def save_final(model: TokenEncoder, meta: Dict[str, Any], spec: TrainingSpec) -> Tuple[Path, str]:
    """Write the checkpoint, named by the content hash of its weights unless its path is fixed;
    (path, file sha256). Sets meta["weights_sha256"]."""
    meta["weights_sha256"] = weights_sha256(model)
    path = spec.fixed if spec.fixed is not None else spec.folder / f"{spec.stem}-{meta['weights_sha256'][:12]}.pt"
    return path, save_checkpoint(model, path, meta)


# -- the epochs kept (epoch_checkpoints) -------------------------------------------------------
def epochs_folder(spec: TrainingSpec) -> Path:
    """Where a training's per-epoch checkpoints go: `epochs/<checkpoint stem>/` beside its final
    checkpoint (a subfolder, so finished_checkpoint's glob never meets them)."""
    return spec.folder / "epochs" / spec.stem


def save_epoch(model: TokenEncoder, spec: TrainingSpec, state: "TrainingState", meta: Dict[str, Any]) -> Path:
    """The weights after epoch `state.epoch` as a checkpoint `epoch-NN-of-MM.pt` (loadable as any
    prunebench checkpoint), and `scores.json` beside them: every kept epoch's held-out score."""
    from prunebench.core.files import atomic_write

    folder = epochs_folder(spec)
    path = folder / f"epoch-{state.epoch:02d}-of-{spec.cfg['epochs']:02d}.pt"
    meta = {**meta, "weights_sha256": weights_sha256(model)}
    save_checkpoint(model, path, meta)
    scores = {"config_hash": spec.config_hash, "metric": meta["test_metric"],
              "epochs": {f"epoch-{i + 1:02d}-of-{spec.cfg['epochs']:02d}.pt": s for i, s in enumerate(state.test_scores)}}
    atomic_write(folder / "scores.json", (json.dumps(scores, indent=1) + "\n").encode())
    log.info("epoch %d: %s %.4f, weights kept in %s", state.epoch, meta["test_metric"], meta["test_score"], path)
    return path


# -- the resumable state -------------------------------------------------------------------------
@dataclass
class TrainingState:
    """What a training changes as it runs; all of it is saved after every epoch."""

    model: TokenEncoder
    init_format: Optional[str]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    generator: torch.Generator
    device: torch.device
    epoch: int = 0  # epochs done
    history: List[float] = field(default_factory=list)  # mean training loss per epoch
    epoch_seconds: List[float] = field(default_factory=list)
    test_scores: List[float] = field(default_factory=list)  # held-out score per epoch (epoch_checkpoints)


def write_state(path: Path, config_hash: str, state: TrainingState) -> None:
    device = state.device
    atomic_save({
        "format": STATE_FORMAT, "config_hash": config_hash, "epoch": state.epoch,
        "model_config": {k: v for k, v in state.model.config.to_dict().items() if k != "name"},
        "model": {k: v.detach().cpu() for k, v in state.model.state_dict().items()}, "init_format": state.init_format,
        "optimizer": state.optimizer.state_dict(), "scheduler": state.schedule.state_dict(),
        "generator": state.generator.get_state(), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "history": state.history, "epoch_seconds": state.epoch_seconds, "test_scores": state.test_scores,
    }, path)


def read_state(path: Path, config_hash: str) -> Optional[Dict[str, Any]]:
    """The saved state of this training (same config hash), or None (none, damaged, another's)."""
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


def restore_state(saved: Dict[str, Any], state: TrainingState) -> None:
    """Put a saved state's optimizer, schedule, generators and history back (the weights are
    loaded when the model is built)."""
    state.optimizer.load_state_dict(saved["optimizer"])
    state.schedule.load_state_dict(saved["scheduler"])
    state.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    if state.device.type == "cuda" and saved.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(saved["cuda_rng"], state.device)
    state.history, state.epoch_seconds, state.epoch = saved["history"], saved["epoch_seconds"], saved["epoch"]
    state.test_scores = list(saved.get("test_scores", []))


@dataclass(frozen=True)
class KeptEpoch:
    """One per-epoch checkpoint a finished training kept (`epoch_checkpoints`)."""

    epoch: int
    epochs: int  # of the training's schedule
    path: Path
    weights_sha256: str
    test_score: Optional[float]
    is_final: bool  # its weights are the finished checkpoint's own (the last epoch)


def kept_epochs(checkpoint: Path) -> List[KeptEpoch]:
    """The per-epoch checkpoints kept by the training that made `checkpoint`, in epoch order ([]
    where it kept none): `epochs/<stem>/` beside it (epochs_folder), the stem ending in the config
    hash its metadata records, and each epoch's own metadata naming the same hash."""
    checkpoint = Path(checkpoint)
    final = _meta(checkpoint) if checkpoint.is_file() else {}  # a zoo folder: none kept
    config_hash = final.get("config_hash")
    if not config_hash:
        return []
    kept: List[KeptEpoch] = []
    for folder in sorted((checkpoint.parent / "epochs").glob(f"*-{config_hash}")):
        for path in sorted(folder.glob("epoch-*-of-*.pt")):
            meta = _meta(path)
            if meta.get("config_hash") == config_hash and isinstance(meta.get("epoch"), int):
                kept.append(KeptEpoch(meta["epoch"], int(meta["epochs"]), path, str(meta["weights_sha256"]),
                                      meta.get("test_score"), meta["weights_sha256"] == final.get("weights_sha256")))
    return sorted(kept, key=lambda k: k.epoch)


def _meta(path: Path) -> Dict[str, Any]:
    return torch.load(str(path), map_location="cpu", weights_only=True).get("meta") or {}
