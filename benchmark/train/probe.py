"""A linear probe on a frozen pretrained encoder: the `probe` training recipe.

The encoder (any family; Whisper's is the one that runs here) is frozen; its pooled output (the
same size-weighted mean the model's head reads) is computed once per clip and cached, and a
multinomial logistic regression is fitted on it by L-BFGS in seconds: standardised inputs, L2
penalty `probe_l2` on the weights (mean cross-entropy + probe_l2 * ||W||^2), the standardisation
folded into the head afterwards, so the saved model is the encoder plus one `nn.Linear`, exactly
what `prunebench run` evaluates.

With `prune: SPEC` the pooled outputs come from the pruned encoder at the spec's keep rate (no
annealing: nothing in the encoder learns), so the head is fitted on what the pruned model
produces: a pruning-aware probe, to compare with the off-the-shelf head (fitted unpruned).

Pooled outputs are cached per clip (keyed by the encoder's weights, the front end, the method and
the task variant; each entry checked against the clip's own features key), so the five folds of
ESC-50 encode each of the 2000 clips once, not five times.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from prunebench.core.progress import Progress

from prunebench.core.cache import cache_dir
from prunebench.core.errors import ConfigError
from prunebench.data.features import FeatureSet, FeatureStore, frontend_for
from prunebench.metrics import get_metric
from prunebench.metrics.accuracy import Accuracy
from prunebench.method_api import Method
from prunebench.models.checkpoint import atomic_save, load_backbone
from prunebench.models.encoder import TokenEncoder
from prunebench.tasks.base import Task, clip_content
from prunebench.core.file_digest import remember
from prunebench.core.device import resolve_device
from prunebench.train.checkpoints import TRAIN_VERSION, TrainingSpec, save_final, weights_sha256
from prunebench.train.recipes import prune_method, prune_target
from prunebench.data.variant import TaskVariant

log = logging.getLogger(__name__)
POOLED_VERSION = 1


def probe_and_save(spec: TrainingSpec, store: FeatureStore, progress: bool) -> Tuple[Path, Dict[str, Any]]:
    """The probe recipe: a head fitted on the frozen encoder, saved as any checkpoint; (path, metadata)."""
    cfg = spec.cfg
    target = prune_target(cfg["prune"]) if cfg["prune"] else None
    method = prune_method(cfg["prune"], target) if target else None
    model, fitted = train_probe(spec, method, store, progress)
    seconds = fitted["encode_seconds"] + fitted["fit_seconds"]
    meta = {
        "model": spec.model_name, "overrides": spec.overrides, "task": spec.task.describe(), "train": dict(cfg),
        "init": {**spec.init, "format": fitted.pop("init_format")}, "config_hash": spec.config_hash,
        "frames": model.config.target_frames, "loss_history": [], "epoch_seconds": [], "train_seconds": round(seconds, 1),
        "samples_per_s": None, "device": str(resolve_device(cfg["device"])), "test_metric": spec.task.metric,
        "test_accuracy": fitted["test_score"] if spec.task.metric == Accuracy.name else None,  # older readers: top-1 only
        "version": TRAIN_VERSION, "norm_stats": list(spec.task.norm_stats),
        "prune": None if target is None else {"spec": cfg["prune"], "target_keep_rate": target, "test_score": fitted["test_score"]},
        **fitted,
    }
    path, meta["sha256"] = save_final(model.eval(), meta, spec)
    log.info("saved probe %s, %s %.3f, %.0f s", path, spec.task.metric, meta["test_score"], seconds)
    return path, meta


def train_probe(spec: TrainingSpec, method: Optional[Method], store: FeatureStore,
                progress: bool = True) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Fit the head of `cfg["init"]`'s frozen encoder on the task's training clips; return the
    model (encoder + fitted head, on the CPU, eval mode) and what the training metadata adds."""
    model_name, task, cfg = spec.model_name, spec.task, spec.cfg
    if not cfg["init"]:
        raise ConfigError("train: recipe 'probe' fits a head on a pretrained encoder: give init (e.g. --init whisper-tiny.en)")
    metric = get_metric(task.metric)
    if metric.multi_label:
        raise ConfigError(f"train: recipe 'probe' fits a single-label head; task {task.name!r} is multi-label")
    started = time.perf_counter()
    model, weights = load_backbone(model_name, spec.init_source, task.num_classes, frames=cfg["frames"])
    device = resolve_device(cfg["device"])
    model = model.to(device).eval().requires_grad_(False)
    frontend = frontend_for(model.config, task)
    pooled = PooledCache(model, frontend, method, TaskVariant(task), store=store, device=device, progress=progress)
    train_x, train_y, _ = pooled.split(task, "train", cfg["batch_size"])
    test_x, test_y, test_ids = pooled.split(task, "test", cfg["batch_size"])
    encode_seconds = time.perf_counter() - started
    model = model.cpu()
    prefix, linear = head_parts(model)  # AST's head: a LayerNorm, kept as loaded, then the Linear fitted here
    with torch.no_grad():
        train_x, test_x = prefix(train_x), prefix(test_x)
    weight, bias = fit_logistic(train_x, train_y, task.num_classes, cfg["probe_l2"], cfg["probe_max_iter"])
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)
    # Scored on the cached pooled outputs, not through prunebench.measure.evaluate: that would
    # encode every test clip a second time. The head reads the same pooled vector in a run, so
    # these are the predictions a run's `none` makes (tests/test_whisper_probe.py checks it).
    logits = test_x @ weight.T + bias
    predictions = logits.argmax(dim=1)
    score = metric.value(logits, test_y)
    return model.requires_grad_(True), {
        "init_format": weights.format, "train_clips": len(train_y), "test_clips": len(test_y),
        "test_score": score, "test_predictions": dict(zip(test_ids, predictions.tolist())),
        "encode_seconds": round(encode_seconds, 1), "fit_seconds": round(time.perf_counter() - started - encode_seconds, 2),
        "pooled_computed": pooled.computed, "pooled_reused": pooled.reused,
        "probe": {"method": None if method is None else method.id, "l2": cfg["probe_l2"]},
    }


def head_parts(model: TokenEncoder) -> Tuple[nn.Module, nn.Module]:
    """(what the head applies before its last layer, that layer): the probe is fitted on the first
    part's output and replaces the last layer's weight and bias (an `nn.Linear`, or any module
    holding a (classes, width) `weight` and a `bias`, as a packed linear does)."""
    head = model.head
    last = head[-1] if isinstance(head, nn.Sequential) else head
    if not (_is_linear(last)):
        raise ConfigError(f"probe: the head of {model.config.name} does not end in a linear layer")
    return (head[:-1] if isinstance(head, nn.Sequential) else nn.Identity()), last


def _is_linear(module: nn.Module) -> bool:
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    return isinstance(weight, torch.Tensor) and weight.dim() == 2 and isinstance(bias, torch.Tensor)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, max_iter: int = 500) -> Tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on standardised inputs by L-BFGS (deterministic, float64);
    returns (weight (classes, dim), bias) for the raw inputs."""
    x = x.double()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-8)
    z = (x - mean) / std
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                                  history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        weight = w / std
        bias = b - weight @ mean
    return weight.float(), bias.float()


class PooledCache:
    """Pooled encoder outputs per clip: computed once, kept on disk in one file per task variant
    (clip id -> vector, with the key of the features it came from)."""

    def __init__(self, model, frontend, method: Optional[Method], variant: TaskVariant, *, store: FeatureStore,
                 device: torch.device, progress: bool):
        self.model, self.frontend, self.method, self.variant, self.store = model, frontend, method, variant, store
        self.device, self.progress = device, progress
        self.computed = self.reused = 0
        spec = {"version": POOLED_VERSION, "weights": weights_sha256(model, skip_prefix="head."), "frontend": frontend.config(),
                "method": None if method is None else method.id, "task": variant.task.name,
                "params": {k: str(v) for k, v in variant.task.params.items() if k not in ("root", "split")},
                "seed": store.run_seed}
        self.path = cache_dir("pooled") / (hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:24] + ".pt")
        self.saved = self._read()

    def split(self, task: Task, which: str, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
        """(pooled (n, dim), labels (n,), clip ids) of the task's 'train' or 'test' clips."""
        clips = task.test_clips() if which == "test" else task.train_clips()
        stamps = {c.id: clip_stamp(c) for c in clips}
        remember()
        saved = self.saved
        if all(saved.get(i, (None,))[0] == s for i, s in stamps.items()):
            self.reused += len(clips)
            vectors = torch.stack([saved[c.id][1] for c in clips])
            return vectors, torch.tensor([c.labels[0] for c in clips]), [c.id for c in clips]
        features = self.store.get(self.variant, self.frontend, split=which)
        vectors = self._encode(features, batch_size, which)
        saved.update({i: (stamps[i], v) for i, v in zip(features.ids, vectors)})
        self._write(saved)
        return vectors, features.labels, list(features.ids)

    def _encode(self, features: FeatureSet, batch_size: int, which: str) -> torch.Tensor:
        out: List[Optional[torch.Tensor]] = [None] * len(features)
        with Progress(len(features), f"encode {which} clips of {self.variant.id}", self.progress, unit="clip") as bar, \
                torch.inference_mode():
            for idx, fbank, valid in features.batches(batch_size):
                pooled, _ = self.model.encode(fbank.to(self.device), self.method, valid.to(self.device))
                for row, i in enumerate(idx):
                    out[i] = pooled[row].float().cpu()
                bar.update(len(idx))
        self.computed += len(features)
        return torch.stack(out)

    def _read(self) -> Dict[str, Tuple[str, torch.Tensor]]:
        if not self.path.is_file():
            return {}
        try:
            payload = torch.load(str(self.path), map_location="cpu", weights_only=True)
            return {i: (s, v) for i, s, v in zip(payload["ids"], payload["stamps"], payload["vectors"])}
        except Exception as exc:  # a damaged cache is rebuilt, never trusted
            log.warning("pooled-output cache %s unreadable (%s); recomputing", self.path, exc)
            return {}

    def _write(self, saved: Dict[str, Tuple[str, torch.Tensor]]) -> None:
        ids = sorted(saved)
        atomic_save({"ids": ids, "stamps": [saved[i][0] for i in ids], "vectors": torch.stack([saved[i][1] for i in ids])},
                    Path(self.path))


def clip_stamp(clip) -> str:
    """What identifies a clip's audio whatever split it is in: id, labels and the file's content."""
    return f"{clip.id}|{clip.labels}|{clip_content(clip)}"
