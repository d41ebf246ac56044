"""`prunebench profile`: MACs, measured throughput and peak memory of methods, no accuracy.

mac_ratio = MACs(none) / MACs(method), the speedup the MAC count promises;
efficiency = measured speedup / mac_ratio (1.0: the method delivers all it promises).
One table per input shape (the nominal length, or each `--bucket SECONDS[:pad|native]`).
With `runs` > 1 the whole measurement is repeated and the agreement of the runs' medians is
reported (the repeatability check: within 5%). Each run also times a fixed matrix product before
and after its methods (benchmark/measure/machine_reference.py): when that reference itself drifts by more
than 5% between runs, the machine, not the measurement, is what fails the check.
"""
from __future__ import annotations

import os
import platform
import statistics
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence

import torch
from tabulate import tabulate

from prunebench.measure.machine_reference import describe_reference, reference_rate
from prunebench.measure.macs import FLOPS_PER_MAC, forward_macs
from prunebench.method_api import Method, parse_method_spec
from prunebench.models import build_model
from prunebench.core.registry import METHODS
from prunebench.measure.shapes import InputShape, bucket_shape, make_batch, nominal_shape, parse_bucket
from prunebench.core.device import check_dtype, resolve_device, resolve_dtype
from prunebench.models.execution import resolve_execution, set_execution
from prunebench.measure.throughput import measure_interleaved, relative_range

REPEATABILITY_TOLERANCE = 0.05  # medians of repeated runs of one configuration agree within 5%


def build_methods(specs: Sequence[str]) -> List[Method]:
    """`none` first (the baseline), then each spec once."""
    methods = [METHODS.get("none")()]
    for spec in specs:
        name, params = parse_method_spec(spec)
        method = METHODS.get(name)(**params)
        if method.id not in [m.id for m in methods]:
            methods.append(method)
    return methods


def input_shapes(target_frames: int, buckets: Sequence[str] = (), seconds: Optional[float] = None,
                 frontend: Optional[Any] = None) -> List[InputShape]:
    """The shapes to profile: each bucket; `seconds` alone is a native-length bucket (the
    original `--seconds` option); nothing: the model's nominal length. Frames are counted by the
    model's `frontend` (default: the Kaldi fbank)."""
    shapes = [parse_bucket(b, target_frames, frontend) for b in buckets]
    if seconds is not None:
        shapes.append(bucket_shape(target_frames, seconds, "native", frontend))
    return shapes or [nominal_shape(target_frames)]


def model_frontend(model) -> Any:
    """The model family's front end, for counting the frames of a length (statistics play no part)."""
    from prunebench.audio.kaldi import AUDIOSET_STATS

    return model.config.frontend(model.config.sample_rate, AUDIOSET_STATS)


def macs_per_sample(model, method: Method, shape: InputShape) -> Dict[str, int]:
    fbank, valid = make_batch(shape, 1, model.config.num_mel_bins)
    return forward_macs(model.cpu(), method, fbank, valid)


@contextmanager
def num_threads(threads: Optional[int]) -> Iterator[None]:
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def machine_description(device: str) -> str:
    """One line naming the machine a table was measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} CPUs visible, {platform.system()}, torch {torch.__version__}"
    if device.startswith("cuda") and torch.cuda.is_available():
        text = f"{torch.cuda.get_device_name(torch.device(device))}, CUDA {torch.version.cuda}; host " + text
    return text


def profile(model_name: str, specs: Sequence[str], seconds: Optional[float] = None, batch_size: int = 32,
            device: str = "auto", dtype: str = "float32", repeats: int = 5, warmup: int = 2, *,
            buckets: Sequence[str] = (), min_repeat_s: float = 0.2, attention: str = "auto",
            compile_backend: Optional[str] = None, memory: bool = True, threads: Optional[int] = None,
            runs: int = 1, plugin_files: Sequence[str] = (), model_overrides: Optional[Dict[str, Any]] = None,
            seed: int = 0, execution: str = "auto") -> List[Dict[str, Any]]:
    """One row per (input shape, method); `none` first in each shape. See the module docstring."""
    torch.manual_seed(seed)
    model = inference_model(model_name, device, dtype, execution, model_overrides, compiled=bool(compile_backend))
    methods = build_methods(specs)
    rows: List[Dict[str, Any]] = []
    shapes = input_shapes(model.config.target_frames, buckets, seconds, model_frontend(model))
    with num_threads(threads):
        # counted on the CPU before any timing moves the model to its device, not once per shape
        macs_by_shape = {shape.label: {m.id: macs_per_sample(model, m, shape) for m in methods} for shape in shapes}
        for shape in shapes:
            macs = macs_by_shape[shape.label]
            runs_out, references = [], []
            for run in range(max(1, runs)):
                before = reference_rate(device, dtype, repeats, min_repeat_s)
                runs_out.append(measure_interleaved(
                    model, methods, shape.frames, batch_size=batch_size, device=device, dtype=dtype, warmup=warmup,
                    repeats=repeats, seed=seed, valid_frames=shape.valid_frames, min_repeat_s=min_repeat_s,
                    attention=attention, compile_backend=compile_backend, memory=memory and run == 0,
                    plugin_files=plugin_files))
                after = reference_rate(device, dtype, repeats, min_repeat_s)
                references.append(statistics.median(before.gflops_per_s + after.gflops_per_s))
            rows += _rows(model_name, shape, methods, macs, runs_out, references, dtype)
    return rows


def inference_model(model_name: str, device: str, dtype: str, execution: str,
                    overrides: Optional[Dict[str, Any]] = None, compiled: bool = False) -> torch.nn.Module:
    """A random-init registered model on the execution path asked (prunebench.models.execution;
    `compiled`: for torch.compile, which runs the eager path); a device, dtype or path this machine
    cannot run is a ConfigError before anything is built."""
    dev = resolve_device(device)
    resolve_dtype(dtype)
    check_dtype(dev, dtype, "--dtype")
    path = resolve_execution(execution, dev, "--execution", compiled)
    return set_execution(build_model(model_name, **(overrides or {})).eval(), path)


def profile_strategies(model_name: str, specs: Sequence[str], strategies: Sequence[str], seconds: Sequence[float],
                       batch_size: int = 32, device: str = "auto", dtype: str = "float32", repeats: int = 3,
                       warmup: int = 1, threads: Optional[int] = None, execution: str = "auto", seed: int = 0):
    """Clips/s of each (batching strategy, method) over clips of these lengths in seconds
    (prunebench.measure.strategies), on the model's nominal input for pad-fixed."""
    from prunebench.measure.strategies import measure_strategies
    from prunebench.measure.throughput import TimingSettings

    torch.manual_seed(seed)
    model = inference_model(model_name, device, dtype, execution)
    frontend = model_frontend(model)
    lengths = [max(1, frontend.frames_for_seconds(s)) for s in seconds]
    settings = TimingSettings(batch_size=batch_size, device=device, dtype=dtype, repeats=repeats, warmup=warmup,
                              seed=seed, progress=True)
    with num_threads(threads):
        return measure_strategies(model, build_methods(specs), lengths, strategies, settings,
                                  frames=model.config.target_frames)


def _rows(model_name: str, shape: InputShape, methods: Sequence[Method], macs, runs_out,
          references: Sequence[float], dtype: str) -> List[Dict[str, Any]]:
    rows = []
    reference = {"reference": describe_reference(dtype), "reference_gflops_runs": list(references),
                 "reference_agreement": _agreement(references)}
    base_macs = sum(macs["none"].values())
    for m in methods:
        first = runs_out[0][m.id]
        rates = [run[m.id].samples_per_s for run in runs_out]
        speedups = [run[m.id].speedup_vs_none for run in runs_out]
        total = sum(macs[m.id].values())
        ratio = base_macs / total
        speedup = statistics.median(speedups)
        rate = statistics.median(rates)
        rows.append({
            "method_id": m.id, "macs_per_sample": total, "mac_ratio": ratio, "samples_per_s": rate,
            "speedup": speedup, "efficiency": speedup / ratio, "peak_memory_bytes": first.peak_memory_bytes,
            "units": "MAC", "flops_per_mac": FLOPS_PER_MAC, "flops_per_sample": FLOPS_PER_MAC * total,
            "macs_by_part": macs[m.id], "spread": first.spread, "speedup_spread": first.speedup_spread,
            "runs": len(runs_out), "samples_per_s_runs": rates, "speedup_runs": speedups,
            "run_agreement": _agreement(rates), **reference,
            "model": model_name, **shape.describe(), "batch_size": first.batch_size,
            "requested_batch_size": first.requested_batch_size, "device": first.device, "dtype": first.dtype,
            "threads": first.threads, "attention_backend": first.attention_backend, "compiled": first.compiled,
            "execution": first.execution,
            "timer": first.timer, "repeats": first.repeats, "steps_per_repeat": first.steps_per_repeat,
            "min_repeat_s": first.min_repeat_s, "resting_memory_bytes": first.resting_memory_bytes,
            "memory_kind": first.memory_kind,
        })
    return rows


def _agreement(values: Sequence[float]) -> Optional[float]:
    """(max - min) / median of the runs' medians; None for a single run."""
    return relative_range(values) if len(values) > 1 else None


def _mib(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 2 ** 20:.1f}"


def format_profile(rows: List[Dict[str, Any]]) -> str:
    """The efficiency table, one block per input shape, each headed by what was measured how."""
    blocks = []
    for label in dict.fromkeys(r["bucket"] for r in rows):
        group = [r for r in rows if r["bucket"] == label]
        first = group[0]
        batch = str(first["batch_size"])
        if first["requested_batch_size"] not in (None, first["batch_size"]):
            batch += f" (out of memory at {first['requested_batch_size']}: halved)"
        head = (f"{first['model']}, {label}: {first['frames']} frames ({first['valid_frames']} real), batch {batch}, "
                f"{first['device']}, {first['dtype']}, {first['execution']} path, {first['threads']} threads, "
                f"attention {first['attention_backend']}"
                f"{', compiled (' + first['compiled'] + ')' if first['compiled'] else ''}, {first['timer']}, "
                f"median of {first['repeats']} repeats x {first['steps_per_repeat']}+ steps")
        table = [[r["method_id"], f"{r['macs_per_sample'] / 1e9:.4g}", f"{r['mac_ratio']:.2f}", f"{r['samples_per_s']:.4g}",
                  f"{r['spread']:.1%}", f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}", _mib(r["peak_memory_bytes"])]
                 for r in group]
        headers = ["method", "GMACs/sample", "MAC ratio", "samples/s", "spread", "speedup", "efficiency", "peak MiB"]
        blocks.append(head + "\n" + tabulate(table, headers=headers, tablefmt="github"))
    kinds = {r["memory_kind"] for r in rows}
    blocks.append("1 MAC = 2 FLOPs. peak MiB: one forward above resting memory (" + ", ".join(sorted(kinds)) + ").")
    return "\n\n".join(blocks)


def format_repeatability(rows: List[Dict[str, Any]]) -> str:
    """Each method's run medians and their agreement, (max - min) / median, against 5%; then the
    machine reference's agreement, which says whether the machine could have met 5% at all."""
    table, drifts = [], {}
    for r in rows:
        if r["run_agreement"] is None:
            continue
        drift = r.get("reference_agreement")
        if drift is not None:
            drifts[r["bucket"]] = r
        ok = r["run_agreement"] <= REPEATABILITY_TOLERANCE
        check = "ok" if ok else f"OVER {REPEATABILITY_TOLERANCE:.0%}"
        if not ok and drift is not None and drift > REPEATABILITY_TOLERANCE:
            check += f" (machine drifted {drift:.1%})"
        table.append([r["bucket"], r["method_id"], " ".join(f"{v:.4g}" for v in r["samples_per_s_runs"]),
                      f"{r['run_agreement']:.1%}", " ".join(f"{v:.3f}" for v in r["speedup_runs"]), check])
    if not table:
        return "repeatability: one run only (use --runs 3)"
    lines = ["repeatability: median samples/s of each full run (own warm-up), agreement = (max - min) / median",
             tabulate(table, headers=["bucket", "method", "samples/s per run", "agreement", "speedup per run", "check"],
                      tablefmt="github")]
    for bucket, r in drifts.items():
        drift = r["reference_agreement"]
        lines.append(f"machine reference, {bucket}: {r['reference']}, timed before and after each run: "
                     f"{' '.join(f'{v:.4g}' for v in r['reference_gflops_runs'])} GFLOP/s, agreement {drift:.1%}"
                     + (f" -- over {REPEATABILITY_TOLERANCE:.0%}: the machine itself drifts, so no throughput measured on it"
                        f" can repeat within {REPEATABILITY_TOLERANCE:.0%}" if drift > REPEATABILITY_TOLERANCE else ""))
    return "\n".join(lines)


def repeatable(rows: List[Dict[str, Any]]) -> bool:
    return all(r["run_agreement"] is None or r["run_agreement"] <= REPEATABILITY_TOLERANCE for r in rows)
