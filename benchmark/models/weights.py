"""What every weights format shares: the `Weights` a reader returns, the registry of readers that
model families register in files of their own (dinov2_onnx.py), finding the weights file of a
folder, and reading a torch or safetensors file safely. The format readers (formats.py for the
audio ViTs, whisper_formats.py for Whisper) import this module and not each other."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from prunebench.core.errors import DataError
from prunebench.models.audio_vit import AudioViTConfig

StateDict = Dict[str, torch.Tensor]
CHECKPOINT_FORMAT = "prunebench-checkpoint-1"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
PREFERRED_FILES = ("model.safetensors", "pytorch_model.bin")
TRUST_ENV = "PRUNEBENCH_TRUST_CHECKPOINTS"

@dataclass(frozen=True)
class WeightReader:
    """A weights format that a model family reads in a file of its own (dinov2_onnx.py) and
    registers here, so read_weights needs no branch per family."""

    name: str
    suffixes: Tuple[str, ...]  # file endings it reads (a folder's weights file is found by them)
    recognises: Callable[[Path], bool]  # from the file's first bytes, never its name
    read: Callable[[Path, AudioViTConfig], "Weights"]


WEIGHT_READERS: Dict[str, WeightReader] = {}
# model family -> the function that reads a checkpoint for a model of that family (path, arch)
FAMILY_READERS: Dict[str, Callable[[Path, Any], "Weights"]] = {}


def register_family_reader(family: str) -> Callable:
    """Decorator: the weights reader of a model family (`EncoderConfig.family`), declared in the
    family's own files, so loading a checkpoint switches on no family name."""
    def register(read: Callable[[Path, Any], "Weights"]) -> Callable[[Path, Any], "Weights"]:
        FAMILY_READERS[family] = read
        return read

    return register


def read_family_weights(path: Path, arch: Any) -> "Weights":
    """The weights at `path` read by the reader of `arch`'s family."""
    registered_readers()  # the built-in model modules, which import their family's reader, are loaded
    read = FAMILY_READERS.get(arch.family)
    if read is None:
        raise DataError(f"{path}: model family {arch.family!r} has no weights reader (register_family_reader)")
    return read(path, arch)


def register_weight_reader(reader: WeightReader) -> WeightReader:
    WEIGHT_READERS[reader.name] = reader
    return reader


def registered_readers() -> List[WeightReader]:
    """The registered readers, after the built-in model modules (which register theirs) loaded."""
    from prunebench.core.registry import MODELS

    MODELS.names()
    return list(WEIGHT_READERS.values())


@dataclass
class Weights:
    format: str
    state_dict: StateDict  # AudioViT names
    config: Dict[str, Any]  # AudioViTConfig fields the weights fix (structure, frames, classes, epsilons)
    has_head: bool  # False: a backbone (MAE pretraining, ImageNet), to fine-tune before use
    grid: Tuple[int, int]  # the (freq, time) grid the positional embeddings cover
    files: List[Path]  # the files read (their content defines the weights)
    meta: Dict[str, Any] = field(default_factory=dict)


def weight_files(path: Path) -> Tuple[Path, Optional[Path]]:
    """(weights file, Transformers config.json or None) of a file or folder."""
    if path.is_dir():
        suffixes = WEIGHT_SUFFIXES + tuple(s for r in registered_readers() for s in r.suffixes)
        candidates = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(suffixes))
        preferred = [path / name for name in PREFERRED_FILES if (path / name).is_file()]
        if preferred:
            weight_file = preferred[0]
        elif len(candidates) == 1:
            weight_file = candidates[0]
        elif not candidates:
            raise DataError(f"{path}: no weights file ({', '.join('*' + s for s in WEIGHT_SUFFIXES)}) in this folder")
        else:
            raise DataError(f"{path}: several weights files ({', '.join(p.name for p in candidates)}); name one of them")
    elif path.is_file():
        weight_file = path
    else:
        raise DataError(f"checkpoint not found: {path}")
    config_file = weight_file.parent / "config.json"
    return weight_file, config_file if config_file.is_file() else None


def load_file(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file as load_safetensors

        try:
            return load_safetensors(str(path))
        except Exception as exc:
            raise DataError(f"cannot read {path} as safetensors: {_first_line(exc)}") from None
    if os.environ.get(TRUST_ENV) == "1":
        loader = dict(weights_only=False)
    else:
        loader = dict(weights_only=True)
    try:
        # AudioMAE's training checkpoints also hold the run's argparse.Namespace.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", **loader)
    except Exception as exc:
        hint = "" if loader["weights_only"] is False else (
            f"; it holds more than tensors: if you trust the file, set {TRUST_ENV}=1 to unpickle it in full"
            if "weights_only" in str(exc) or "Unsupported global" in str(exc) else "")
        raise DataError(f"cannot read checkpoint {path}: {_first_line(exc)}{hint}") from None


def unwrap(raw: Any, source: Path) -> StateDict:
    """The state dict inside a training checkpoint, without DataParallel's `module.` prefix."""
    if isinstance(raw, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(raw.get(key), dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise DataError(f"{source}: holds no state dict of tensors")
    if all(k.startswith("module.") for k in raw):
        raw = {k[len("module."):]: v for k, v in raw.items()}
    return dict(raw)


def read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
