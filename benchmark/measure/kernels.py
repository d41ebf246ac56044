"""One scaled-dot-product attention kernel for every method of a measurement.

PyTorch picks an SDPA kernel per call from the inputs: a method that adds an attention bias (ToMe's
proportional attention) can silently run on another kernel than `none` (on CUDA, flash attention
takes no bias, so it falls back to memory-efficient or math). A speedup measured across kernels
measures the kernels. So a measurement pins one backend with `sdpa_kernel` for all methods and
records its name; `auto` picks the first backend of a preference list on which every method runs.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Dict, Iterator, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from prunebench.core.errors import ConfigError

BACKENDS: Dict[str, SDPBackend] = {
    "flash": SDPBackend.FLASH_ATTENTION,  # on CPU: the fused flash-attention CPU kernel
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "math": SDPBackend.MATH,  # plain matmul + softmax: every FLOP visible to counters
}
# Fastest first. On CPU only flash and math exist; on CUDA flash needs half precision and no bias.
PREFERENCE = ("flash", "efficient", "cudnn", "math")


def backend_names() -> Sequence[str]:
    return ("auto",) + tuple(BACKENDS)


def _check_backend(name: str) -> None:
    if name not in BACKENDS:
        raise ConfigError(f"attention backend {name!r}: expected one of {', '.join(backend_names())}")


@contextmanager
def attention_backend(name: str) -> Iterator[None]:
    """Run attention on exactly this backend (an error, not a fallback, where it cannot run)."""
    _check_backend(name)
    with sdpa_kernel([BACKENDS[name]]):
        yield


def choose_backend(requested: str, runs_on: Callable[[str], None]) -> str:
    """The backend to measure with: `requested`, or for `auto` the first in PREFERENCE on which
    `runs_on(name)` (one forward of every method under that backend) raises nothing."""
    if requested != "auto":
        _check_backend(requested)
        return requested
    errors = []
    for name in PREFERENCE:
        try:
            runs_on(name)
            return name
        except RuntimeError as exc:
            if is_out_of_memory(exc):
                raise
            errors.append(f"{name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    raise ConfigError("no attention backend runs every method: " + "; ".join(errors))


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure (a RuntimeError with its message)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
