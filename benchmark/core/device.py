"""Where and in what precision a model runs: device names, dtypes and autocast, in one place for
evaluation, timing, training and probes."""
from __future__ import annotations

import logging
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path
from typing import ContextManager, FrozenSet, Tuple, Union

import torch

from prunebench.core.errors import ConfigError

log = logging.getLogger(__name__)
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


# The /proc/cpuinfo flags that give a CPU native bfloat16 (dot products) or float16 arithmetic;
# without them oneDNN emulates the type in float32 and autocast is slower than float32 itself.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
FP16_FLAGS = ("avx512_fp16", "amx_fp16")
# `amp` in a training: True (bfloat16 autocast where the device has it, float32 on a CPU without
# it), "gpu" (bfloat16 on CUDA only: the default, what `amp: true` meant before CPUs had it),
# "bfloat16" (required: a ConfigError where the device lacks it), False (float32).
AMP_VALUES = (True, False, "gpu", "bfloat16")


@lru_cache(maxsize=1)
def cpu_flags() -> FrozenSet[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none: not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_dtypes() -> Tuple[str, ...]:
    """The dtypes this CPU runs natively: float32, and bfloat16 / float16 where its flags (or, off
    Linux, oneDNN's own check) say so."""
    flags = cpu_flags()
    bf16 = any(f in flags for f in BF16_FLAGS) if flags else bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    fp16 = any(f in flags for f in FP16_FLAGS)
    return ("float32",) + (("bfloat16",) if bf16 else ()) + (("float16",) if fp16 else ())


def cpu_capability() -> str:
    """What this CPU's kernels can use, as a record states it: ATen's vector ISA level
    (torch.backends.cpu.get_cpu_capability: avx512, avx2, default, ...) and the native low-precision
    flags it has (`avx512+avx512_bf16+amx_bf16`)."""
    isa = torch.backends.cpu.get_cpu_capability().lower()
    return "+".join([isa, *(f for f in BF16_FLAGS + FP16_FLAGS if f in cpu_flags())])


def check_dtype(device: torch.device, dtype: str, setting: str) -> None:
    """ConfigError naming `setting` when `dtype` was asked for a CPU that cannot run it natively."""
    if device.type == "cpu" and dtype not in cpu_dtypes():
        raise ConfigError(f"{setting}: {dtype} asked, this CPU runs {', '.join(cpu_dtypes())} "
                          f"(it lacks {' / '.join(BF16_FLAGS if dtype == 'bfloat16' else FP16_FLAGS)})")


def training_dtype(device: torch.device, amp: Union[bool, str]) -> str:
    """The autocast dtype of a training: see AMP_VALUES. CUDA: bfloat16 for any amp but False;
    CPU: bfloat16 for True and "bfloat16" where the CPU has it (True on a CPU without it:
    float32, said in the log once)."""
    if amp not in AMP_VALUES:
        raise ConfigError(f"train: amp must be one of true, false, gpu, bfloat16, got {amp!r}")
    if amp is False:
        return "float32"
    if device.type == "cuda":
        return "bfloat16"
    if amp == "gpu" or device.type != "cpu":
        return "float32"
    if amp == "bfloat16":
        check_dtype(device, "bfloat16", "train: amp")
        return "bfloat16"
    if "bfloat16" in cpu_dtypes():
        return "bfloat16"
    _say_float32_once()
    return "float32"


@lru_cache(maxsize=1)
def _say_float32_once() -> None:
    log.info("train: amp is true, and this CPU has no native bfloat16 (%s): training in float32", " / ".join(BF16_FLAGS))
