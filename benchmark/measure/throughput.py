"""Throughput in the manner of timm's prunebench.py, with methods interleaved against `none`.

- eval mode and `torch.inference_mode`, optional autocast (bfloat16, float16) and `torch.compile`;
- one attention kernel for every method, pinned and recorded (benchmark/measure/kernels.py);
- warm-up steps (compilation, allocator and kernel caches), the last one timed to calibrate: each
  timed repeat runs enough steps to last `min_repeat_s`, so a fast step is not dominated by timer
  resolution and scheduler noise;
- synchronised timing (CUDA events on a GPU, benchmark/measure/timing.py), the median over repeats and the
  spread (max - min) / median;
- methods interleaved: round r times every method once, in an order rotated by r, so drift of the
  machine (clocks, other load) and position in the round hit all methods alike; the speedup of a
  method is the median over rounds of its throughput divided by `none`'s in the same round;
- a fixed batch size; out of memory, the batch is halved for all methods and the measurement
  restarts (recorded: `requested_batch_size`, `batch_size`);
- threads, dtype, float32 matmul precision, timer, attention backend and execution path (fast or
  eager, prunebench.models.execution) recorded with the numbers.
"""
from __future__ import annotations

import gc
import logging
import math
import statistics
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from prunebench.core.device import autocast_for, resolve_device, resolve_dtype
from prunebench.core.errors import ConfigError
from prunebench.core.progress import Progress
from prunebench.core.registry import BASELINE
from prunebench.measure.forward import bound_forward
from prunebench.measure.kernels import attention_backend, choose_backend, is_out_of_memory
from prunebench.measure.memory import ForwardSpec, MemoryReading, cpu_peak_in_fresh_process, cuda_peak, process_spec
from prunebench.method_api import Method
from prunebench.measure.shapes import InputShape, make_batch
from prunebench.measure.timing import StepTimer
from prunebench.models.execution import execution_of

log = logging.getLogger(__name__)

MAX_STEPS_PER_REPEAT = 10_000


@dataclass
class Throughput:
    samples_per_s: float  # median over repeats
    spread: float  # (max - min) / median of the per-repeat throughputs
    batch_size: int  # the batch actually timed (after any out-of-memory back-off)
    repeats: int
    device: str
    dtype: str
    threads: int
    speedup_vs_none: Optional[float] = None  # median over rounds of samples_per_s / none's, same round
    # Added with issue 5; records written before lack them.
    requested_batch_size: Optional[int] = None
    steps_per_repeat: int = 1
    seconds_per_repeat: Optional[float] = None  # median
    min_repeat_s: Optional[float] = None
    warmup: Optional[int] = None
    samples_per_s_repeats: List[float] = field(default_factory=list)
    speedup_spread: Optional[float] = None  # (max - min) / median of the per-round speedups
    frames: Optional[int] = None
    valid_frames: Optional[int] = None
    attention_backend: Optional[str] = None
    timer: Optional[str] = None
    compiled: Optional[str] = None  # torch.compile backend, or None (eager)
    float32_matmul_precision: Optional[str] = None
    interop_threads: Optional[int] = None
    peak_memory_bytes: Optional[int] = None  # one forward, above resting (see benchmark/measure/memory.py)
    resting_memory_bytes: Optional[int] = None
    memory_kind: Optional[str] = None
    execution: Optional[str] = None  # the CPU path the model ran on: fast or eager (prunebench.models.execution)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TimingSettings:
    """How a timing pass runs (every field is recorded with its numbers)."""

    batch_size: int = 32
    device: str = "auto"
    dtype: str = "float32"
    warmup: int = 2
    repeats: int = 5
    steps_per_repeat: Optional[int] = None  # None: calibrated per method from min_repeat_s
    seed: int = 0
    valid_frames: Optional[int] = None  # frames before the padding (a `pad` length bucket); None: all real
    min_repeat_s: float = 0.2
    attention: str = "auto"  # the SDPA backend pinned for every method (benchmark/measure/kernels.py)
    compile_backend: Optional[str] = None  # torch.compile(backend=...) for each method, or eager
    memory: bool = False  # also read each method's peak memory (CPU: one fresh process per method)
    plugin_files: Sequence[str] = ()  # what a fresh process loads to rebuild a plugin method
    progress: bool = False  # a bar over the timed repeats (not recorded: it does not change the numbers)

    def check(self) -> None:
        resolve_dtype(self.dtype)
        if self.repeats < 1 or self.warmup < 0 or self.min_repeat_s < 0:
            raise ConfigError(f"measure: repeats must be >= 1, warmup and min_repeat_s >= 0 "
                              f"(got {self.repeats}, {self.warmup}, {self.min_repeat_s})")


def measure_interleaved(model: torch.nn.Module, methods: Sequence[Method], frames: int,
                        settings: Optional[TimingSettings] = None, **options: Any) -> Dict[str, Throughput]:
    """Samples per second of each method on a random fbank batch of `frames` frames.

    `settings` (or its fields as keyword options). Speedups are relative to the method with id
    "none" (include it; the runner puts it first). Out of memory, the batch is halved for all
    methods and the measurement restarts."""
    settings = replace(settings or TimingSettings(), **options)
    settings.check()
    dev = resolve_device(settings.device)
    ids = [m.id for m in methods]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"measure: methods listed twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    model = model.to(dev).eval()
    batch_size = settings.batch_size
    while True:
        try:
            return _measure(model, methods, frames, replace(settings, batch_size=batch_size), dev, settings.batch_size)
        except RuntimeError as exc:
            if not is_out_of_memory(exc) or batch_size == 1:
                raise
        # out of memory: back off here, outside the handler, so the traceback's tensors are freed
        log.warning("out of memory at batch %d on %s: halving the batch for all methods", batch_size, dev)
        batch_size //= 2
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()


@dataclass
class _Timings:
    """What the interleaved rounds measured, per method id."""

    backend: str
    steps: Dict[str, int]
    seconds: Dict[str, List[float]]
    rates: Dict[str, List[float]]
    memory: Dict[str, MemoryReading]
    execution: str = "eager"


def _measure(model, methods: Sequence[Method], frames: int, s: TimingSettings, dev: torch.device,
             requested: int) -> Dict[str, Throughput]:
    shape = InputShape(frames, s.valid_frames or frames, "timed")
    fbank, valid = make_batch(shape, s.batch_size, model.config.num_mel_bins, s.seed)
    fbank = fbank.to(dev)
    valid = None if valid is None else valid.to(dev)
    timer = StepTimer(dev)

    def runs_on(backend: str) -> None:  # one small eager forward of every method on this backend
        with attention_backend(backend):
            for m in methods:
                bound_forward(model, m, fbank[:1], None if valid is None else valid[:1])()

    limit = _compile_cache_limit(len(methods)) if s.compile_backend else nullcontext()
    with torch.inference_mode(), autocast_for(dev, resolve_dtype(s.dtype)), limit:
        backend = choose_backend(s.attention, runs_on)
        with attention_backend(backend):
            steps = {m.id: bound_forward(model, m, fbank, valid, s.compile_backend) for m in methods}
            timings = _time_rounds(methods, steps, timer, s)
            timings.backend = backend
            timings.execution = execution_of(model)
            timings.memory = _memory(model, methods, steps, shape, dev, s, backend) if s.memory else {}
    results = {m.id: _throughput(m.id, timings, s, shape, dev, requested, timer.kind) for m in methods}
    _add_speedups(results, timings.rates)
    return results


def _time_rounds(methods: Sequence[Method], steps: Dict[str, Callable[[], Any]], timer: StepTimer,
                 s: TimingSettings) -> _Timings:
    """Warm up and calibrate each method, then time round r with the methods rotated by r."""
    n_steps = {}
    # The last of 2+ warm-up steps is timed to calibrate the steps per repeat, so a big model pays
    # no extra step; the first step is cold (lazy initialisation), so with fewer warm-up steps one
    # more step is timed after them.
    calibrate = s.steps_per_repeat is None or s.warmup >= 2
    for m in methods:
        for _ in range(s.warmup - 1 if s.warmup >= 2 else s.warmup):
            steps[m.id]()
        one = timer.seconds(steps[m.id], 1) if calibrate else 0.0
        n_steps[m.id] = s.steps_per_repeat if s.steps_per_repeat is not None else steps_to_fill(s.min_repeat_s, one)
    seconds: Dict[str, List[float]] = {m.id: [] for m in methods}
    rates: Dict[str, List[float]] = {m.id: [] for m in methods}
    with Progress(s.repeats * len(methods), f"timing {len(methods)} methods", s.progress, unit="repeat") as bar:
        for r in range(s.repeats):
            for m in list(methods[r % len(methods):]) + list(methods[:r % len(methods)]):
                elapsed = max(timer.seconds(steps[m.id], n_steps[m.id]), 1e-12)
                seconds[m.id].append(elapsed)
                rates[m.id].append(s.batch_size * n_steps[m.id] / elapsed)
                bar.update()
    return _Timings("", n_steps, seconds, rates, {})


def _throughput(method_id: str, t: _Timings, s: TimingSettings, shape: InputShape, dev: torch.device,
                requested: int, timer_kind: str) -> Throughput:
    values = t.rates[method_id]
    median = statistics.median(values)
    reading = t.memory.get(method_id, MemoryReading(None, None, "not measured"))
    return Throughput(
        samples_per_s=median, spread=relative_range(values, median), batch_size=s.batch_size,
        repeats=s.repeats, device=str(dev), dtype=s.dtype, threads=torch.get_num_threads(),
        requested_batch_size=requested, steps_per_repeat=t.steps[method_id],
        seconds_per_repeat=statistics.median(t.seconds[method_id]), min_repeat_s=s.min_repeat_s, warmup=s.warmup,
        samples_per_s_repeats=values, frames=shape.frames, valid_frames=shape.valid_frames,
        attention_backend=t.backend, timer=timer_kind, compiled=s.compile_backend,
        float32_matmul_precision=torch.get_float32_matmul_precision(),
        interop_threads=torch.get_num_interop_threads(),
        peak_memory_bytes=reading.peak_bytes, resting_memory_bytes=reading.resting_bytes,
        memory_kind=reading.kind, execution=t.execution,
    )


def _add_speedups(results: Dict[str, Throughput], rates: Dict[str, List[float]]) -> None:
    """Each method's speedup: the median over rounds of its rate over the baseline's, same round."""
    if BASELINE not in rates:
        return
    base = rates[BASELINE]
    for method_id, result in results.items():
        ratios = [a / b for a, b in zip(rates[method_id], base)]
        result.speedup_vs_none = statistics.median(ratios)
        result.speedup_spread = relative_range(ratios, result.speedup_vs_none)


def relative_range(values: Sequence[float], median: Optional[float] = None) -> float:
    """(max - min) / median: the spread of repeated measurements, or the agreement of runs."""
    return (max(values) - min(values)) / (statistics.median(values) if median is None else median)


def steps_to_fill(min_repeat_s: float, step_s: float) -> int:
    """Steps of `step_s` seconds that make a timed repeat last at least `min_repeat_s`."""
    return max(1, min(MAX_STEPS_PER_REPEAT, math.ceil(min_repeat_s / max(step_s, 1e-9))))


def _memory(model, methods: Sequence[Method], steps, shape: InputShape, dev: torch.device, s: TimingSettings,
            backend: str) -> Dict[str, MemoryReading]:
    if dev.type == "cuda":
        return {m.id: cuda_peak(steps[m.id], dev) for m in methods}
    if dev.type != "cpu":
        return {m.id: MemoryReading(None, None, "unavailable", f"no peak memory reading on {dev.type}") for m in methods}
    if s.compile_backend:
        note = "CPU peak RSS of a compiled forward is not measured: compilation's own allocations blur it"
        return {m.id: MemoryReading(None, None, "unavailable", note) for m in methods}
    valid = shape.valid_frames if shape.valid_frames < shape.frames else None
    forward = ForwardSpec(shape.frames, valid, s.batch_size, s.dtype, backend, torch.get_num_threads(),
                          tuple(s.plugin_files), s.seed, execution_of(model))
    return {m.id: cpu_peak_in_fresh_process(process_spec(model, m, forward)) for m in methods}


def _compile_cache_limit(n_methods: int):
    """Every method is its own graph of the same forward code: give dynamo room for all of them,
    or it would silently fall back to eager after its recompile limit (8)."""
    import torch._dynamo

    config = torch._dynamo.config
    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    return config.patch(**{name: max(getattr(config, name), 4 * n_methods + 8)})
