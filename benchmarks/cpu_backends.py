"""prunebench's unpruned forward (`none`) against CTranslate2 and ONNX Runtime on the CPU (issue 29).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/cpu_backends.py [--models whisper-tiny whisper-base ast-tiny
        vit-s14-dinov2] [--seconds 1 5 30] [--threads 1 2] [--repeats 5] [--dtype float32]

Per model, input length and thread count, in this one process and interleaved (round r runs every
column once, in an order rotated by r, so a drifting machine hits all alike), medians over rounds:
- `fast`: prunebench's `none` forward on the fast path (prunebench.models.execution), what a run
  times by default on a CPU;
- `eager`: the same forward on PyTorch's own modules (`execution: eager`);
- the reference: CTranslate2's Whisper encoder on the same weights (whisper-tiny: the zoo's
  tiny.en; whisper-base: the zoo's two parts joined in a temporary folder), or ONNX Runtime (CPU
  provider, every graph optimisation) on the audio ViT exported from prunebench with torch.onnx.
Same input batch, same thread count (torch.set_num_threads, CTranslate2's intra_threads, ONNX
Runtime's intra_op_num_threads; one inter-op thread each). Printed: seconds per batch (wall), the
reference's time over ours (>= 1: prunebench is as fast; the issue's target is >= 0.9), the same
ratio in process CPU seconds (steadier on a loaded machine: it leaves out the time other processes
held the cores), and the largest output difference (Whisper: the encoder's output; ViTs: logits).
Weights: the Whisper zoo entries as installed; the ViTs random (the speed is the architecture's).
A missing ctranslate2, onnxruntime or zoo package is one line naming the column, and the rest goes on.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

WHISPER_ZOO = {"whisper-tiny": "whisper-tiny.en", "whisper-base": "whisper-base"}
BATCH = {1: 8, 5: 8, 30: 4}  # clips per batch by input seconds (the 5 s: 8, 30 s: 4)
SIDE_FILES = ("config.json", "vocabulary.txt", "tokenizer.json")  # what a CTranslate2 Whisper folder needs


@dataclass
class Column:
    name: str
    step: Callable[[], object]
    output: Callable[[], np.ndarray]  # what the difference is taken on (untimed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["whisper-tiny", "whisper-base", "ast-tiny", "vit-s14-dinov2"])
    parser.add_argument("--seconds", nargs="+", type=float, default=[1, 5, 30])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (medians over them)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="prunebench's and CTranslate2's compute type (ONNX Runtime stays float32)")
    args = parser.parse_args()
    print(f"{machine()}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; load {load()}")
    print("| model | input | batch | threads | reference | fast s | eager s | ref s | ref/fast | ref/eager | "
          "ref/fast (CPU s) | diff fast | diff eager |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="cpu-backends-") as scratch:
        for name in args.models:
            for seconds in args.seconds:
                for threads in args.threads:
                    row(name, seconds, threads, args, Path(scratch))
    print(f"load after: {load()}")


def row(name: str, seconds: float, threads: int, args, scratch: Path) -> None:
    torch.set_num_threads(threads)
    built = build(name, seconds, threads, args.dtype, scratch)
    if built is None:
        return
    columns, batch, frames, reference = built
    wall, cpu = interleaved(columns, args.repeats)
    ref = columns[-1].name if reference else None
    out = {c.name: c.output() for c in columns}
    fast, eager = statistics.median(wall["fast"]), statistics.median(wall["eager"])
    cells = [name, f"{seconds:g} s ({frames} frames)", str(batch), str(threads), ref or "-", f"{fast:.3f}", f"{eager:.3f}"]
    if ref:
        r = statistics.median(wall[ref])
        ratio_cpu = statistics.median(cpu[ref]) / statistics.median(cpu["fast"])
        cells += [f"{r:.3f}", f"{r / fast:.2f}", f"{r / eager:.2f}", f"{ratio_cpu:.2f}",
                  f"{np.abs(out['fast'] - out[ref]).max():.1e}", f"{np.abs(out['eager'] - out[ref]).max():.1e}"]
    else:
        cells += ["-", "-", "-", "-", f"{np.abs(out['fast'] - out['eager']).max():.1e} (vs eager)", "-"]
    print("| " + " | ".join(cells) + " |", flush=True)


def build(name: str, seconds: float, threads: int, dtype: str,
          scratch: Path) -> Optional[Tuple[List[Column], int, int, bool]]:
    """The columns of one row (ours fast, ours eager, the reference if it can run), the batch,
    the frames and whether a reference is among them; None when the model itself is missing."""
    from prunebench.models import load_model
    from prunebench.models.execution import set_execution

    whisper = name in WHISPER_ZOO
    batch = BATCH.get(int(seconds), 4)
    torch.manual_seed(0)  # the ViTs' random weights equal in every row: the exported graph is cached per shape
    try:
        model = load_model(name, WHISPER_ZOO[name] if whisper else None, num_classes=10, execution="eager")
    except Exception as exc:  # a zoo package not installed: one line, the rest goes on
        print(f"{name}: left out ({str(exc).splitlines()[0]})")
        return None
    frames = model.config.frontend(16000, (0.0, 1.0)).frames_for_seconds(seconds)
    x = torch.randn(batch, frames, model.config.num_mel_bins, generator=torch.Generator().manual_seed(0))
    eager, fast = model, set_execution(load_copy(model), "fast")
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if dtype == "bfloat16" else contextlib.nullcontext

    def ours(m):
        def step():
            with torch.inference_mode(), autocast():
                return m(x)

        def output():
            with torch.inference_mode(), autocast():
                y = m.hidden_states(x)[0] if whisper else m(x)
            return y.float().numpy()
        return step, output

    columns = [Column("fast", *ours(fast)), Column("eager", *ours(eager))]
    reference = whisper_reference(name, x, threads, dtype, scratch) if whisper else onnx_reference(name, eager, x, threads, scratch)
    if reference is not None:
        columns.append(reference)
    return columns, batch, frames, reference is not None


def load_copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


_SAID = set()


def say_once(text: str) -> None:
    if text not in _SAID:
        _SAID.add(text)
        print(text)


def whisper_reference(name: str, x: torch.Tensor, threads: int, dtype: str, scratch: Path) -> Optional[Column]:
    try:
        import ctranslate2
    except ImportError:
        say_once("CTranslate2 column left out: ctranslate2 is not installed (pip install ctranslate2)")
        return None
    folder = ctranslate2_folder(name, scratch)
    reference = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type=dtype, intra_threads=threads,
                                           inter_threads=1)
    view = ctranslate2.StorageView.from_array(x.transpose(1, 2).contiguous().numpy())
    step = lambda: reference.encode(view, to_cpu=True)  # noqa: E731
    return Column("ctranslate2", step, lambda: np.array(step()).astype(np.float32))


def ctranslate2_folder(name: str, scratch: Path) -> Path:
    """The zoo entry's CTranslate2 folder; a split model.bin joined once in `scratch` (CTranslate2
    reads one file)."""
    from prunebench.models.zoo import ZOO

    entry = ZOO[WHISPER_ZOO[name]]
    folder = entry.installed_path()
    parts = entry.installed_parts_folders()
    if not parts:
        return folder
    joined = scratch / name
    if not joined.is_dir():
        joined.mkdir()
        with open(joined / "model.bin", "wb") as out:
            for part_folder in (folder, *parts):
                for part in sorted(part_folder.glob("model.bin.part*")):
                    out.write(part.read_bytes())
        for side in SIDE_FILES:
            if (folder / side).exists():
                os.symlink(folder / side, joined / side)
    return joined


def onnx_reference(name: str, eager: torch.nn.Module, x: torch.Tensor, threads: int, scratch: Path) -> Optional[Column]:
    try:
        import onnxruntime as ort
    except ImportError:
        say_once("ONNX Runtime column left out: onnxruntime is not installed (pip install onnxruntime)")
        return None
    path = scratch / f"{name}-{tuple(x.shape)}.onnx"
    if not path.is_file():
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(eager, (x,), str(path), dynamo=False, opset_version=18, input_names=["fbank"],
                              output_names=["logits"])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {"fbank": x.numpy()}
    step = lambda: session.run(None, feed)[0]  # noqa: E731
    return Column("onnxruntime", step, step)


def interleaved(columns: List[Column], repeats: int) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """Wall and process CPU seconds per step, round r with the columns rotated by r (one warm-up each)."""
    for c in columns:
        c.step()
    wall: Dict[str, List[float]] = {c.name: [] for c in columns}
    cpu: Dict[str, List[float]] = {c.name: [] for c in columns}
    for r in range(repeats):
        for c in columns[r % len(columns):] + columns[:r % len(columns)]:
            w, p = time.perf_counter(), time.process_time()
            c.step()
            cpu[c.name].append(time.process_time() - p)
            wall[c.name].append(time.perf_counter() - w)
    return wall, cpu


def machine() -> str:
    from prunebench.core.device import cpu_capability
    from prunebench.measure.profile import machine_description

    return f"{machine_description('cpu')}, capability {cpu_capability()}"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    main()
