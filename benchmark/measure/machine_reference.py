"""A fixed reference workload, timed beside a throughput measurement, that separates the machine's
drift from the measurement's.

If a plain matrix product, identical in every run, changes its rate by 12% between runs, then no
method's throughput can repeat within 5% on that machine, however it is timed. `prunebench
profile --runs N` times this reference before and after each run and reports its agreement next
to the methods'.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch

from prunebench.core.device import autocast_for, resolve_device, resolve_dtype
from prunebench.measure.throughput import steps_to_fill
from prunebench.measure.timing import StepTimer

# ast-tiny's MLP input projection at batch 32: 32 clips x 256 tokens, 192 -> 768.
REFERENCE_SHAPE = (8192, 192, 768)


@dataclass(frozen=True)
class ReferenceRate:
    gflops_per_s: List[float]  # one per timed repeat
    steps_per_repeat: int


def describe_reference(dtype: str) -> str:
    m, k, n = REFERENCE_SHAPE
    return f"a fixed {m}x{k} @ {k}x{n} {dtype} matrix product"


def reference_rate(device: str = "auto", dtype: str = "float32", repeats: int = 5,
                   min_repeat_s: float = 0.2) -> ReferenceRate:
    """GFLOP/s of the reference product, `repeats` timed repeats of at least `min_repeat_s`."""
    dev, dt = resolve_device(device), resolve_dtype(dtype)
    m, k, n = REFERENCE_SHAPE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(dev)
    b = torch.randn(k, n, generator=generator).to(dev)
    timer = StepTimer(dev)
    flops = 2.0 * m * k * n
    with torch.inference_mode(), autocast_for(dev, dt):
        step = lambda: torch.mm(a, b)  # noqa: E731
        one = timer.seconds(step, 1)  # warm-up, and the step time that sizes a repeat
        steps = steps_to_fill(min_repeat_s, one)
        rates = [flops * steps / timer.seconds(step, steps) / 1e9 for _ in range(max(1, repeats))]
    return ReferenceRate(rates, steps)
