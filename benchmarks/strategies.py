"""Throughput per batching strategy and method on clips at their own lengths (issue 25).

    python benchmarks/strategies.py --lengths trim --root ../shared/data/esc50-16k [--fold 5]
    python benchmarks/strategies.py --lengths uniform --uniform 1 5 [--clips 400]

The clip lengths are ESC-50's (fold 5) trimmed to their content (samples above 1e-4, as the task
option `lengths: {trim: true}`), or drawn per clip from uniform [lo, hi] seconds (as `lengths:
{uniform: [lo, hi]}`, seeded by the clip id). For each strategy (pad-fixed: padded to the model's
5 s input; pad-batch; sorted; native) and method (none, topk, tome, random, intensity at keep 0.5)
one pass runs every clip once on random input of its length (content does not change the compute),
all (strategy, method) passes interleaved in one process (prunebench.measure.strategies). Printed:
clips/s, speedup over none under the same strategy and over none under pad-fixed, MACs per clip
and the share spent on padding; then the goals: sorted none over pad-fixed none (>= 1.5x wanted on
uniform 1-5 s) and the linear-cost bound (nominal frames over mean frames). Weights are random
(the compute does not depend on them). The machine's load is printed beside the figures: on a
shared machine they are noise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import torch


def clip_lengths(args, frontend) -> list:
    from prunebench.tasks.lengths import ClipLengths

    if args.lengths == "uniform":
        draw = ClipLengths(uniform=list(args.uniform), seed=args.seed)
        ids = [f"clip{i}" for i in range(args.clips or 400)]
        return [frontend.frames_for_seconds(draw.drawn_seconds(i)) for i in ids]
    from prunebench.tasks.esc50 import ESC50

    task = ESC50(root=args.root, split=f"fold{args.fold}")
    trim = ClipLengths(trim=True, threshold=args.threshold, min_seconds=args.min_seconds)
    clips = task.test_clips()[: args.clips or None]
    return [frontend.frames_for_samples(trim(task.load(c), task.sample_rate, c.id, str(c.path)).numel()) for c in clips]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="whisper-tiny")
    p.add_argument("--lengths", choices=("trim", "uniform"), default="trim")
    p.add_argument("--root", default="../shared/data/esc50-16k")
    p.add_argument("--fold", type=int, default=5)
    p.add_argument("--threshold", type=float, default=1e-4)
    p.add_argument("--min-seconds", type=float, default=0.1, help="trimmed clips keep at least this much")
    p.add_argument("--uniform", type=float, nargs=2, default=(1.0, 5.0))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clips", type=int, default=None, help="the first N clips only (a quick check)")
    p.add_argument("--keep-rate", type=float, default=0.5)
    p.add_argument("--methods", nargs="*", default=["topk", "tome", "random", "intensity"])
    p.add_argument("--strategies", nargs="*", default=["pad-fixed", "pad-batch", "sorted", "native"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    from prunebench.audio.kaldi import ESC50_STATS
    from prunebench.core.registry import METHODS
    from prunebench.measure.strategies import format_strategies, measure_strategies
    from prunebench.measure.throughput import TimingSettings
    from prunebench.models import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.model).eval()
    frontend = model.config.frontend(16000, ESC50_STATS)
    lengths = clip_lengths(args, frontend)
    nominal = model.config.target_frames
    methods = [METHODS.get("none")()] + [METHODS.get(m)(keep_rate=args.keep_rate) for m in args.methods]
    settings = TimingSettings(batch_size=args.batch_size, repeats=args.repeats, warmup=1, progress=True)
    print(f"{args.model}, {len(lengths)} clips ({args.lengths}), frames: mean {statistics.mean(lengths):.1f}, "
          f"min {min(lengths)}, max {max(lengths)}; pad-fixed input {nominal} frames; batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads; load {os.getloadavg()[0]:.2f} (1 min)")
    results = measure_strategies(model, methods, lengths, args.strategies, settings, frames=nominal)
    print(format_strategies(results))
    sorted_none = results.get(("sorted", "none"))
    if sorted_none is not None:
        print(f"sorted none over pad-fixed none: {sorted_none.speedup_vs_pad_fixed_none:.2f}x; linear-cost bound "
              f"(input over mean real frames): {nominal / statistics.mean(min(v, nominal) for v in lengths):.2f}x")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
