"""Building registered models and saving / loading prunebench checkpoints."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from ..errors import DataError, PrunebenchError
from ..registry import MODELS
from .audio_vit import AudioViT, AudioViTConfig

CHECKPOINT_FORMAT = "prunebench-checkpoint-1"


def build_model(name: str, **overrides: Any) -> AudioViT:
    """A randomly initialised registered model (`prunebench list` shows the names)."""
    return MODELS.get(name)(**overrides)


def load_model(name: str, checkpoint: Optional[str | Path] = None, num_classes: Optional[int] = None) -> AudioViT:
    """A model whose forward takes a normalised fbank (batch, frames, mel_bins) and returns logits.

    `checkpoint`: None (random weights) or a prunebench checkpoint file. The checkpoint's own
    config (classes, frames, strides) wins over the registered defaults.
    """
    if checkpoint is None:
        overrides = {} if num_classes is None else {"num_classes": num_classes}
        return build_model(name, **overrides).eval()
    payload = read_checkpoint(checkpoint)
    config = dict(payload["config"])
    if num_classes is not None and num_classes != config["num_classes"]:
        raise PrunebenchError(
            f"checkpoint {checkpoint} has {config['num_classes']} classes, the task has {num_classes}"
        )
    config.pop("name", None)
    model = build_model(name, **config)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise DataError(
            f"checkpoint {checkpoint} does not fit model {name!r}: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    return model.eval()


def read_checkpoint(path: str | Path) -> Dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"checkpoint {path} is not a prunebench checkpoint (format {CHECKPOINT_FORMAT})")
    return payload


def save_checkpoint(model: AudioViT, path: str | Path, meta: Dict[str, Any]) -> str:
    """Write model weights, config and training metadata atomically; return the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta,
    }
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return file_sha256(path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_config(model: AudioViT) -> AudioViTConfig:
    return model.config
