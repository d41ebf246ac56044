"""Where and in what precision a model runs: device names, dtypes and autocast, in one place for
evaluation, timing, training and probes."""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch

from prunebench.core.errors import ConfigError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when there is one), `cpu`, `cuda` or `cuda:N`; a ConfigError naming a bad one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: this torch build sees no CUDA device")
    return device


def resolve_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"dtype {name!r}: expected one of {', '.join(DTYPES)}")
    return DTYPES[name]


def autocast_for(device: torch.device, dtype: torch.dtype) -> ContextManager:
    """float32: no autocast; bfloat16/float16: autocast on the device (weights stay float32)."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def training_dtype(device: torch.device, amp: bool) -> str:
    """Training's `amp: true` is bfloat16 autocast on a GPU; on a CPU training stays float32."""
    return "bfloat16" if amp and device.type == "cuda" else "float32"
