"""Throughput in the manner of timm's benchmark.py, with methods interleaved against `none`.

Eval mode, inference mode, warm-up, synchronised timing, the median over repeats. Every method is
timed in the same rounds as the baseline (round r: none, m1, m2, ...), so drift of the machine
(thermal, other load) hits all of them alike; speedup = median throughput / that of `none`.
"""
from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence

import torch

from .method import Method


@dataclass
class Throughput:
    samples_per_s: float
    spread: float  # (max - min) / median of the per-repeat throughputs
    batch_size: int
    repeats: int
    device: str
    dtype: str
    threads: int
    speedup_vs_none: Optional[float] = None

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_for(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def measure_interleaved(
    model: torch.nn.Module,
    methods: Sequence[Method],
    frames: int,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "float32",
    warmup: int = 2,
    repeats: int = 5,
    steps_per_repeat: int = 1,
    seed: int = 0,
) -> Dict[str, Throughput]:
    """Samples per second for each method on a random fbank batch of `frames` frames.

    The first method should be `none`; speedups are relative to the method with id "none".
    """
    dev = resolve_device(device)
    torch_dtype = getattr(torch, dtype)
    model = model.to(dev).eval()
    generator = torch.Generator().manual_seed(seed)
    mel = model.config.num_mel_bins
    batch = torch.randn(batch_size, frames, mel, generator=generator).to(dev)
    timings: Dict[str, List[float]] = {m.id: [] for m in methods}
    with torch.inference_mode(), autocast_for(dev, torch_dtype):
        for m in methods:
            for _ in range(warmup):
                model(batch, m)
        synchronize(dev)
        for _ in range(repeats):
            for m in methods:
                synchronize(dev)
                start = time.perf_counter()
                for _ in range(steps_per_repeat):
                    model(batch, m)
                synchronize(dev)
                timings[m.id].append(batch_size * steps_per_repeat / (time.perf_counter() - start))
    results = {}
    for method_id, values in timings.items():
        median = statistics.median(values)
        results[method_id] = Throughput(
            samples_per_s=median,
            spread=(max(values) - min(values)) / median,
            batch_size=batch_size,
            repeats=repeats,
            device=str(dev),
            dtype=dtype,
            threads=torch.get_num_threads(),
        )
    if "none" in results:
        base = results["none"].samples_per_s
        for r in results.values():
            r.speedup_vs_none = r.samples_per_s / base
    return results
