"""Memory, cache and record sizes of a run as the data set grows: an AS-20K-shaped folder of N clips.

    python benchmarks/scale.py [--clips 1000 2000 5000] [--scratch DIR] [--keep]

For each N: a folder in AS-20K's layout (eval.json / train.json manifests, class_labels_indices.csv
with 527 labels) of N made-up ten-second clips, each a deterministic mix of tones and noise with
two to four labels; then `prunebench run` in a child process with PRUNEBENCH_CACHE in the scratch
folder: ast-tiny cut to 2 blocks of width 64 at 1024 frames, seeded random weights, methods none
and topk 0.5, clean only, bfloat16 as configs/as20k.yaml (so features are stored in half), no
timing pass. Printed per N: wall time and peak RSS of the run, the feature cache on disk against
the single float32 file of the same clips the cache was before (N x 1024 x 128 x 4 bytes), and
the largest record JSON and sidecar.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

SAMPLE_RATE = 16000
SECONDS = 10.0
CLASSES = 527
FRAMES, MEL_BINS = 1024, 128
# small, so the figures are about data size: the memory, cache and records of a run, not its compute
MODEL = {"embed_dim": 64, "depth": 2, "num_heads": 2, "target_frames": FRAMES}


def clip_audio(index: int) -> tuple:
    """(waveform, label indices) of clip `index`: its labels' tones under a little noise."""
    rng = np.random.default_rng(index)
    labels = sorted(set(rng.choice(CLASSES, size=int(rng.integers(2, 5)), replace=False).tolist()))
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(0.2 * np.sin(2 * np.pi * (80 + 14 * label) * t) for label in labels)
    wave = wave + 0.02 * rng.standard_normal(t.size)
    return (wave / np.abs(wave).max() * 0.8).astype(np.float32), labels


def make_folder(root: Path, clips: int) -> None:
    """An AS-20K-shaped folder of `clips` eval clips (and 8 train clips the manifest needs)."""
    import soundfile as sf

    (root / "audio").mkdir(parents=True, exist_ok=True)
    mids = [f"/m/c{i:03d}" for i in range(CLASSES)]
    rows = ["index,mid,display_name"] + [f'{i},{mid},"class {i}"' for i, mid in enumerate(mids)]
    (root / "class_labels_indices.csv").write_text("\n".join(rows) + "\n")
    entries: Dict[str, List[dict]] = {"eval": [], "train": []}
    for index in range(clips + 8):
        split = "eval" if index < clips else "train"
        name = f"audio/{split}-{index:05d}.wav"
        wave, labels = clip_audio(index)
        if not (root / name).exists():
            sf.write(str(root / name), wave, SAMPLE_RATE, subtype="PCM_16")
        entries[split].append({"wav": name, "labels": ",".join(mids[label] for label in labels)})
    for split, data in entries.items():
        (root / f"{split}.json").write_text(json.dumps({"data": data}))


def make_checkpoint(path: Path) -> None:
    """Seeded random weights of ast-tiny at 1024 frames with AudioSet's 527 outputs."""
    import torch

    from prunebench.models import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(build_model("ast-tiny", num_classes=CLASSES, **MODEL).eval(), path, {"note": "random init, scale benchmark"})


def run_config(root: Path, checkpoint: Path) -> dict:
    return {
        "seed": 0,
        "models": [{"name": "ast-tiny", "checkpoint": str(checkpoint), "overrides": MODEL}],
        "tasks": [{"name": "as20k", "root": str(root), "split": "eval"}],
        "methods": [{"name": "none"}, {"name": "topk", "keep_rate": 0.5}],
        # bfloat16 as configs/as20k.yaml: the features are stored in half precision
        "measure": {"throughput": False, "batch_size": 16, "dtype": "bfloat16"},
    }


def run_once(config_path: Path, out: Path, cache: Path) -> tuple:
    """(wall seconds, peak RSS in MiB, exit code) of one `prunebench run` in a child process."""
    env = {**os.environ, "PRUNEBENCH_CACHE": str(cache)}
    command = [sys.executable, "-m", "prunebench.cli", "run", "--config", str(config_path), "--out", str(out), "--no-progress"]
    started = time.perf_counter()
    with open(out.parent / f"{out.name}.log", "w") as log:
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    # ru_maxrss: KiB on Linux; wait4 gives this child's own peak, not the maximum over all children
    return time.perf_counter() - started, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file())


def measure(scratch: Path, clips: int, checkpoint: Path) -> dict:
    root = scratch / f"as20k-{clips}"
    make_folder(root, clips)
    config_path = scratch / f"run-{clips}.yaml"
    config_path.write_text(json.dumps(run_config(root, checkpoint)))  # JSON is YAML
    out, cache = scratch / f"results-{clips}", scratch / f"cache-{clips}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    wall, rss, code = run_once(config_path, out, cache)
    records = sorted(out.rglob("*.json"))
    return {
        "clips": clips, "exit": code, "wall_s": wall, "peak_rss_mib": rss,
        "cache_mib": folder_bytes(cache / "features") / 2**20,
        "old_cache_mib": clips * FRAMES * MEL_BINS * 4 / 2**20,  # one float32 tensor of the variant, as before
        "records": len(records),
        "json_mib": max((p.stat().st_size for p in records), default=0) / 2**20,
        "sidecar_mib": max((p.stat().st_size for p in out.rglob("*.npz")), default=0) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--scratch", default=None, help="working folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="prunebench-scale-"))
    scratch.mkdir(parents=True, exist_ok=True)
    checkpoint = scratch / "ast-tiny-1024-random.pt"
    make_checkpoint(checkpoint)
    header = f"{'clips':>6} {'exit':>4} {'wall s':>8} {'peak RSS MiB':>12} {'cache MiB':>10} {'old MiB':>9} {'ratio':>6} " \
             f"{'records':>7} {'max JSON MiB':>12} {'max npz MiB':>11}"
    print(header, flush=True)
    try:
        for clips in args.clips:
            m = measure(scratch, clips, checkpoint)
            print(f"{m['clips']:>6} {m['exit']:>4} {m['wall_s']:>8.1f} {m['peak_rss_mib']:>12.0f} {m['cache_mib']:>10.1f} "
                  f"{m['old_cache_mib']:>9.1f} {m['cache_mib'] / m['old_cache_mib']:>6.3f} {m['records']:>7} "
                  f"{m['json_mib']:>12.3f} {m['sidecar_mib']:>11.3f}", flush=True)
            shutil.rmtree(scratch / f"as20k-{clips}", ignore_errors=True)  # the audio is the largest part
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
