"""Throughput per batching strategy: clips per second over a set of clip lengths, methods and
strategies interleaved.

A pass runs every clip once, batched as the strategy batches it (prunebench.data.batching: padded
to the model input, to each batch's longest clip with a key-padding mask, sorted by length, or
one at a time), on random normalised input of the clips' lengths (content does not change the
compute). Round r times one pass of every (strategy, method) in an order rotated by r; a method's
speedup is the median over rounds of its clips/s over `none`'s under the same strategy, and over
`none`'s under `pad-fixed` (what padding to the model input costs, which a mask or a sort may
remove for free). Clips per second are clips of the set, not batch rows: padding is not a clip.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from prunebench.core.device import autocast_for, resolve_device, resolve_dtype
from prunebench.core.errors import ConfigError
from prunebench.core.progress import Progress
from prunebench.core.registry import BASELINE
from prunebench.data.batching import DEFAULT_STRATEGY, MASKED, Batching, batch_order, check_strategy
from prunebench.measure.macs import clip_macs, model_macs
from prunebench.measure.throughput import TimingSettings, relative_range
from prunebench.measure.timing import StepTimer
from prunebench.method_api import Method


@dataclass
class StrategyThroughput:
    strategy: str
    method_id: str
    clips_per_s: float  # median over rounds
    clips_per_s_rounds: List[float] = field(default_factory=list)
    spread: float = 0.0
    speedup_vs_none: Optional[float] = None  # over none under the same strategy, median of rounds
    speedup_vs_pad_fixed_none: Optional[float] = None  # over none under pad-fixed, median of rounds
    macs_per_clip: float = 0.0  # what the batches spent, per clip
    padding_share: float = 0.0  # of those MACs, the share spent on padding (beyond each clip alone)
    clips: int = 0
    batches: int = 0
    batch_size: int = 0
    frames: Optional[int] = None  # pad-fixed: the model input clips are padded to

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def _shapes(lengths: Sequence[int], batching: Batching) -> List[Tuple[int, List[int]]]:
    """(frames of the batch, each clip's real frames) of every batch of a pass."""
    fixed = batching.strategy == DEFAULT_STRATEGY
    stored = [max(v, batching.frames or 0) for v in lengths] if fixed else None  # pad-fixed: one input length
    shapes = []
    for idx in batch_order(list(lengths), batching, stored):
        real = [lengths[i] for i in idx]
        frames = max(max(real), batching.frames or 0) if fixed else max(real)
        shapes.append((frames, [min(v, frames) for v in real]))
    return shapes


def measure_strategies(model: torch.nn.Module, methods: Sequence[Method], lengths: Sequence[int],
                       strategies: Sequence[str], settings: TimingSettings, frames: Optional[int] = None,
                       ) -> Dict[Tuple[str, str], StrategyThroughput]:
    """Clips/s of each (strategy, method) over clips of `lengths` real frames (`frames`: the model
    input `pad-fixed` pads to; default the longest clip). `none` must be among the methods."""
    if BASELINE not in [m.id for m in methods]:
        raise ConfigError("measure: strategy timing needs the baseline 'none' among the methods")
    for s in strategies:
        check_strategy(s)
        if s in MASKED and not getattr(model, "supports_key_padding", False):
            raise ConfigError(f"measure: batching {s!r} needs a key-padding mask, which model "
                              f"{model.config.name!r} does not support")
        for m in methods:
            if s in MASKED and not m.supports_padding:
                raise ConfigError(f"measure: batching {s!r}: method {m.id!r} does not declare supports_padding")
    strategies = list(dict.fromkeys([*strategies, DEFAULT_STRATEGY]))  # the pad-fixed baseline always
    dev = resolve_device(settings.device)
    model = model.to(dev).eval()
    frames = frames or max(lengths)
    mel = model.config.num_mel_bins
    gen = torch.Generator().manual_seed(settings.seed)
    passes: Dict[str, List[Tuple[torch.Tensor, torch.Tensor, bool]]] = {}
    shapes: Dict[str, List[Tuple[int, List[int]]]] = {}
    for s in strategies:
        shapes[s] = _shapes(lengths, Batching(s, settings.batch_size, frames))
        passes[s] = [(torch.randn(len(real), f, mel, generator=gen).to(dev), torch.tensor(real, device=dev), s in MASKED)
                     for f, real in shapes[s]]
    timer = StepTimer(dev)
    combos = [(s, m) for s in strategies for m in methods]

    def run_pass(strategy: str, method: Method):
        def step():
            for fbank, valid, masked in passes[strategy]:
                model.forward_with_state(fbank, method, valid, track_provenance=False, key_padding=masked)
        return step

    rates: Dict[Tuple[str, str], List[float]] = {(s, m.id): [] for s, m in combos}
    with torch.inference_mode(), autocast_for(dev, resolve_dtype(settings.dtype)):
        for s, m in combos:  # warm-up: one pass each
            for _ in range(max(1, settings.warmup)):
                run_pass(s, m)()
        with Progress(settings.repeats * len(combos), "timing strategies", settings.progress, unit="pass") as bar:
            for r in range(settings.repeats):
                for s, m in combos[r % len(combos):] + combos[:r % len(combos)]:
                    seconds = max(timer.seconds(run_pass(s, m), 1), 1e-12)
                    rates[(s, m.id)].append(len(lengths) / seconds)
                    bar.update()
    out = {}
    for s, m in combos:
        values = rates[(s, m.id)]
        spent, alone = _macs(model, m, shapes[s])
        result = StrategyThroughput(s, m.id, statistics.median(values), values, relative_range(values),
                                    macs_per_clip=spent, padding_share=(spent - alone) / spent if spent else 0.0,
                                    clips=len(lengths), batches=len(shapes[s]), batch_size=settings.batch_size,
                                    frames=frames if s == DEFAULT_STRATEGY else None)
        result.speedup_vs_none = statistics.median(a / b for a, b in zip(values, rates[(s, BASELINE)]))
        result.speedup_vs_pad_fixed_none = statistics.median(
            a / b for a, b in zip(values, rates[(DEFAULT_STRATEGY, BASELINE)]))
        out[(s, m.id)] = result
    return out


def _macs(model, method: Method, shapes: List[Tuple[int, List[int]]]) -> Tuple[float, float]:
    """(MACs spent per clip by the pass's batches, MACs of each clip alone), averaged over clips.
    A padded row costs the batch's frames under the method's schedule (a masked row's real
    tokens follow the clip's own schedule, its padding the rest of the row)."""
    spent = alone = 0.0
    memo: Dict[int, int] = {}

    def cost(frames: int) -> int:
        if frames not in memo:
            memo[frames] = clip_macs(model, method, frames)
        return memo[frames]

    clips = 0
    for frames, real in shapes:
        spent += cost(frames) * len(real)
        alone += sum(cost(v) for v in real)
        clips += len(real)
    return spent / clips, alone / clips


def format_strategies(results: Dict[Tuple[str, str], StrategyThroughput]) -> str:
    from tabulate import tabulate

    rows = [[r.strategy, r.method_id, f"{r.clips_per_s:.4g}", f"{r.spread:.1%}", f"{r.speedup_vs_none:.2f}",
             f"{r.speedup_vs_pad_fixed_none:.2f}", f"{r.macs_per_clip / 1e9:.4g}", f"{r.padding_share:.1%}", r.batches]
            for r in results.values()]
    return tabulate(rows, headers=["strategy", "method", "clips/s", "spread", "speedup (same strategy)",
                                   "speedup vs pad-fixed none", "GMACs/clip", "MACs on padding", "batches"],
                    tablefmt="github")
