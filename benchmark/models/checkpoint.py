"""Building registered models; loading any supported checkpoint; saving prunebench checkpoints.

`load_model` gives a ready classifier (the checkpoint's head, its classes, its frame count; a
backbone without a head given `num_classes`: its pretrained encoder with a fresh head, said in one
warning); `load_classifier` is what a run evaluates (a checkpoint's own trained head, never a fresh
one); `load_backbone` is the start of fine-tuning (a fresh head when the classes differ, positional
embeddings adapted to the fine-tuning length as AST does). Formats: see `formats.py`.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from prunebench.core.files import atomic_write, file_sha256
from prunebench.core.errors import DataError, PrunebenchError
from prunebench.core.registry import MODELS
from prunebench.models.audio_vit import AudioViT, adapt_positions
from prunebench.models.execution import resolve_execution, set_execution
from prunebench.models.weights import CHECKPOINT_FORMAT, StateDict, Weights, read_family_weights, weight_files
from prunebench.models.hub import resolve_checkpoint
from prunebench.models.registered import registered_config
from prunebench.models.whisper_formats import ctranslate2_split

log = logging.getLogger(__name__)


def build_model(name: str, **overrides: Any) -> AudioViT:
    """A randomly initialised registered model (`prunebench list` shows the names)."""
    return MODELS.get(name)(**overrides)




def read_checkpoint_weights(name: str, checkpoint: str | Path) -> Weights:
    """The weights a checkpoint argument (file, folder or Hub id) holds, mapped for model `name`."""
    arch = registered_config(name)
    path = resolve_checkpoint(checkpoint)
    return read_family_weights(path, arch)


def load_model(name: str, checkpoint: Optional[str | Path] = None, num_classes: Optional[int] = None,
               execution: str = "auto") -> AudioViT:
    """A model whose forward takes a normalised fbank (batch, frames, mel_bins) and returns logits.

    `checkpoint`: None (random weights), or a local file or folder (prunebench, official AST .pth,
    Transformers AST folder or safetensors, AudioMAE, Whisper in its formats), a Hugging Face Hub id
    or a zoo name. The checkpoint's own classes, frame count and layer-norm epsilons win over the
    registered defaults. A backbone without a classifier head (Whisper's CTranslate2 copies, an
    MAE-pretrained AudioMAE, an ImageNet ViT) needs `num_classes`: the pretrained encoder then gets a
    fresh, untrained head of that size and one warning says so, as timm's `create_model(...,
    num_classes=N)` does; without it, an error names what to pass.

    `execution`: the CPU path its inference runs on (prunebench.models.execution): "auto" (fast on
    a CPU with oneDNN), "fast" or "eager" (PyTorch's own modules); a path this build cannot run is
    a ConfigError. The model is returned on the CPU, in eval mode.
    """
    path = resolve_execution(execution, torch.device("cpu"), "load_model: execution")
    return set_execution(_load_model(name, checkpoint, num_classes), path)


def _load_model(name: str, checkpoint: Optional[str | Path], num_classes: Optional[int]) -> AudioViT:
    if checkpoint is None:
        overrides = {} if num_classes is None else {"num_classes": num_classes}
        return build_model(name, **overrides).eval()
    weights = read_checkpoint_weights(name, checkpoint)
    if not weights.has_head and num_classes is not None:
        model, _ = _backbone(name, checkpoint, weights, num_classes)
        log.warning("%s: the pretrained %s encoder of %s with a fresh %d-class head (random, untrained: fit or "
                    "fine-tune it before its predictions mean anything)", name, weights.format, checkpoint, num_classes)
        return model.eval()
    return _classifier(name, checkpoint, weights, num_classes, for_run=False)


def load_classifier(name: str, checkpoint: str | Path, num_classes: Optional[int] = None) -> AudioViT:
    """The checkpoint's own trained classifier, as a run evaluates it: a backbone without a head is
    refused whatever `num_classes` says (a fresh head would score chance)."""
    return _classifier(name, checkpoint, read_checkpoint_weights(name, checkpoint), num_classes, for_run=True)


def _classifier(name: str, checkpoint: Any, weights: Weights, num_classes: Optional[int], for_run: bool) -> AudioViT:
    if not weights.has_head:
        fine_tune = f"prunebench train --model {name} --init {checkpoint} --task ..."
        if for_run:
            how = (f"fine-tune it first ({fine_tune}), or give it as train: {{init: {checkpoint}}} with "
                   f"checkpoint: null so that the run trains its head")
        else:
            how = (f"pass num_classes=N for the pretrained encoder with a fresh, untrained head, or fine-tune it "
                   f"first ({fine_tune})")
        raise DataError(f"checkpoint {checkpoint} is a {weights.format} backbone without a classifier head: {how}")
    classes = weights.config["num_classes"]
    if num_classes is not None and num_classes != classes:
        raise PrunebenchError(f"checkpoint {checkpoint} has {classes} classes, the task has {num_classes}")
    model = build_model(name, **weights.config)
    load_state(model, weights.state_dict, checkpoint, name)
    return model.eval()


def load_backbone(name: str, checkpoint: str | Path, num_classes: int, frames: Optional[int] = None) -> Tuple[AudioViT, Weights]:
    """The start of fine-tuning: the checkpoint's weights, its head kept only if it already has
    `num_classes` outputs, positions adapted to `frames` (None: the checkpoint's own length; an
    ImageNet ViT: the registered length) with AST's middle cut or interpolation."""
    return _backbone(name, checkpoint, read_checkpoint_weights(name, checkpoint), num_classes, frames)


def _backbone(name: str, checkpoint: Any, weights: Weights, num_classes: int,
              frames: Optional[int] = None) -> Tuple[AudioViT, Weights]:
    sd: StateDict = dict(weights.state_dict)
    config = dict(weights.config)
    keep_head = weights.has_head and config.get("num_classes") == num_classes
    if not keep_head:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    config["num_classes"] = num_classes
    if weights.format == "timm-vit":  # a square image grid: adapt before loading
        config["target_frames"] = frames or registered_config(name).target_frames
        model = build_model(name, **config)
        p = model.num_prefix_tokens
        pos = sd["vit.pos_embed"]
        sd["vit.pos_embed"] = torch.cat([pos[:, :p], adapt_positions(pos[:, p:], weights.grid, model.grid, crop="center")], 1)
    else:
        model = build_model(name, **config)
    load_state(model, sd, checkpoint, name, head_optional=not keep_head)
    if frames and frames != model.config.target_frames:
        model.adapt_to_frames(frames, crop="center")
    return model, weights


def load_state(model: AudioViT, sd: StateDict, source: Any, name: str, head_optional: bool = False) -> None:
    """Load strictly; any missing, unexpected or misshapen key is one clear line."""
    try:
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise DataError(f"checkpoint {source} does not fit model {name!r}: {lines[0] if lines else str(exc).splitlines()[0]}") from None
    if head_optional:
        missing = [k for k in missing if not k.startswith("head.")]
    if missing or unexpected:
        raise DataError(
            f"checkpoint {source} does not fit model {name!r}: missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )


def save_checkpoint(model: AudioViT, path: str | Path, meta: Dict[str, Any]) -> str:
    """Write model weights, config and training metadata atomically; return the file's sha256."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    atomic_save(payload, path)
    return file_sha256(path)


def atomic_save(payload: Any, path: Path) -> None:
    """torch.save, never seen half-written (a checkpoint or a training state)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(payload, f))


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file; of a folder, over its weights and config files together (a
    model.bin split into parts counts as the joined file)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    split = None if (path / "model.bin").is_file() else ctranslate2_split(path)
    if split is not None:  # the joined bytes' hash: the same as for the parts joined by hand
        named = [(split.name, split.sha256())]
        config_file = path / "config.json"
    else:
        weight_file, config_file = weight_files(path)
        named = [(weight_file.name, file_sha256(weight_file))]
    if config_file is not None and config_file.is_file():
        named.append((config_file.name, file_sha256(config_file)))
    digest = hashlib.sha256()
    for name, sha in named:
        digest.update(f"{name}:{sha}\n".encode())
    return digest.hexdigest()
