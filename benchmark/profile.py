"""`prunebench profile`: MACs and measured throughput of methods, no accuracy.

mac_ratio = MACs(none) / MACs(method), the speedup the MAC count promises;
efficiency = measured speedup / mac_ratio (1.0: the method delivers all it promises).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
from tabulate import tabulate

from .errors import ConfigError
from .macs import model_macs
from .method import Method, parse_method_spec
from .models import build_model
from .registry import METHODS
from .throughput import measure_interleaved

FRAME_SHIFT_S = 0.010
WINDOW_S = 0.025


def frames_for_seconds(seconds: float) -> int:
    """Kaldi fbank frames of a clip of `seconds` (25 ms window, 10 ms shift, no edge padding)."""
    frames = int((seconds - WINDOW_S) / FRAME_SHIFT_S + 1e-9) + 1
    if frames < 16:
        raise ConfigError(f"--seconds {seconds}: shorter than one 16-frame patch")
    return frames


def build_methods(specs: Sequence[str]) -> List[Method]:
    methods = [METHODS.get("none")()]
    for spec in specs:
        name, params = parse_method_spec(spec)
        method = METHODS.get(name)(**params)
        if method.id not in [m.id for m in methods]:
            methods.append(method)
    return methods


def macs_per_sample(model, method: Method, frames: int) -> Dict[str, int]:
    fbank = torch.zeros(1, frames, model.config.num_mel_bins)
    with torch.inference_mode():
        _, state = model.forward_with_state(fbank, method)
    return model_macs(model, state.grid, state.trace)


def profile(model_name: str, specs: Sequence[str], seconds: Optional[float] = None, batch_size: int = 32,
            device: str = "auto", dtype: str = "float32", repeats: int = 5, warmup: int = 2) -> List[Dict[str, Any]]:
    torch.manual_seed(0)
    model = build_model(model_name).eval()
    frames = model.config.target_frames if seconds is None else frames_for_seconds(seconds)
    methods = build_methods(specs)
    macs = {m.id: sum(macs_per_sample(model, m, frames).values()) for m in methods}
    speeds = measure_interleaved(model, methods, frames, batch_size=batch_size, device=device, dtype=dtype,
                                 warmup=warmup, repeats=repeats)
    rows = []
    for m in methods:
        s = speeds[m.id]
        ratio = macs["none"] / macs[m.id]
        rows.append({
            "method_id": m.id, "macs_per_sample": macs[m.id], "mac_ratio": ratio,
            "samples_per_s": s.samples_per_s, "spread": s.spread, "speedup": s.speedup_vs_none,
            "efficiency": s.speedup_vs_none / ratio, "peak_memory_bytes": None,
            "model": model_name, "frames": frames, "batch_size": batch_size, "device": s.device,
            "dtype": dtype, "threads": s.threads,
        })
    return rows


def print_profile(rows: List[Dict[str, Any]]) -> None:
    if not rows:
        return
    first = rows[0]
    print(f"{first['model']}, {first['frames']} frames, batch {first['batch_size']}, {first['device']}, "
          f"{first['dtype']}, {first['threads']} threads")
    table = [[r["method_id"], f"{r['macs_per_sample'] / 1e9:.3f}", f"{r['mac_ratio']:.2f}", f"{r['samples_per_s']:.1f}",
              f"{r['spread']:.1%}", f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}"] for r in rows]
    print(tabulate(table, headers=["method", "GMACs", "MAC ratio", "samples/s", "spread", "speedup", "efficiency"],
                   tablefmt="github"))
