"""Efficiency (speedup over MAC ratio) of every built-in method on the CPU paths, and where a
method's own time goes (issue 29 item 4).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/method_efficiency.py [--models whisper-tiny ast-tiny]
        [--keep 0.7 0.5] [--dtype float32 bfloat16] [--execution fast eager] [--threads 1]
        [--batch-size 8] [--repeats 7]

Per model, dtype and execution path: `none` and every built-in method at each keep rate, timed as
a run times them (the same bound forward, methods interleaved round by round, speedup = the median
over rounds of none's step time over the method's in the same round), in wall seconds and in
process CPU seconds (with one thread, CPU seconds leave out the time other processes held the
core: the figure to trust on a loaded machine). MAC ratio = analytic MACs of none over the
method's (prunebench.measure.macs); efficiency = speedup / MAC ratio (1: the method delivers all
the MAC count promises). `method share`: the method's own CPU time (its `begin` and `reduce`:
scoring, top-k, gathers, ToMe's matching and merging) over its whole forward, read in an extra
untimed pass. Targets of issue 29 on a CPU: >= 0.9 for pruning methods, >= 0.8 for ToMe.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from typing import Dict, List

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["whisper-tiny", "ast-tiny"])
    parser.add_argument("--keep", nargs="+", type=float, default=[0.7, 0.5])
    parser.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--execution", nargs="+", default=["fast", "eager"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from prunebench.measure.profile import inference_model, machine_description

    torch.set_num_threads(args.threads)
    print(f"{machine_description('cpu')}; {args.threads} thread(s); batch {args.batch_size}; "
          f"{args.repeats} interleaved rounds; load {load()}")
    for name in args.models:
        for dtype in args.dtype:
            for execution in args.execution:
                torch.manual_seed(0)
                model = inference_model(name, "cpu", dtype, execution)
                table(model, name, dtype, execution, args)
    print(f"load after: {load()}")


def methods(keeps: List[float]):
    from prunebench.core.registry import METHODS

    out = [METHODS.get("none")()]
    for name in METHODS.names():
        if name != "none":
            out += [METHODS.get(name)(keep_rate=k) for k in keeps]
    return out


def table(model, name: str, dtype: str, execution: str, args) -> None:
    from prunebench.measure.forward import bound_forward
    from prunebench.measure.profile import macs_per_sample
    from prunebench.measure.shapes import nominal_shape

    frames = model.config.target_frames
    shape = nominal_shape(frames)
    x = torch.randn(args.batch_size, frames, model.config.num_mel_bins, generator=torch.Generator().manual_seed(0))
    ms = methods(args.keep)
    macs = {m.id: sum(macs_per_sample(model, m, shape).values()) for m in ms}
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bfloat16" else contextlib.nullcontext
    with torch.inference_mode(), autocast():
        steps = {m.id: bound_forward(model, m, x, None) for m in ms}
        wall, cpu = interleaved(ms, steps, args.repeats)
        shares = {m.id: method_share(model, m, x) for m in ms}
    print(f"\n{name}, {frames} frames, {dtype}, {execution} path")
    print("| method | MAC ratio | none s (CPU) | speedup (CPU) | efficiency (CPU) | speedup (wall) | efficiency (wall) | method share |")
    print("|---|---|---|---|---|---|---|---|")
    for m in ms:
        ratio = macs["none"] / macs[m.id]
        s_cpu = statistics.median(a / b for a, b in zip(cpu["none"], cpu[m.id]))
        s_wall = statistics.median(a / b for a, b in zip(wall["none"], wall[m.id]))
        print(f"| {m.id} | {ratio:.2f} | {statistics.median(cpu['none']):.3f} | {s_cpu:.2f} | {s_cpu / ratio:.2f} | "
              f"{s_wall:.2f} | {s_wall / ratio:.2f} | {shares[m.id]:.1%} |", flush=True)


def interleaved(ms, steps, repeats: int):
    for m in ms:  # warm-up: packing, allocator, kernels
        steps[m.id]()
        steps[m.id]()
    wall: Dict[str, List[float]] = {m.id: [] for m in ms}
    cpu: Dict[str, List[float]] = {m.id: [] for m in ms}
    for r in range(repeats):
        for m in ms[r % len(ms):] + ms[:r % len(ms)]:
            w, p = time.perf_counter(), time.process_time()
            steps[m.id]()
            cpu[m.id].append(time.process_time() - p)
            wall[m.id].append(time.perf_counter() - w)
    return wall, cpu


def method_share(model, method, x) -> float:
    """CPU seconds inside the method's begin and reduce over the whole forward's (one pass)."""
    spent = [0.0]

    def timed(fn):
        def wrapper(*a, **k):
            start = time.process_time()
            try:
                return fn(*a, **k)
            finally:
                spent[0] += time.process_time() - start
        return wrapper

    method.begin, method.reduce = timed(method.begin), timed(method.reduce)  # this instance only
    try:
        start = time.process_time()
        model.forward_with_state(x, method, None, track_provenance=False)
        total = time.process_time() - start
    finally:
        del method.begin, method.reduce
    return spent[0] / total


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
