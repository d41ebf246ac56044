"""Peak memory of one forward at the measured batch size, per method.

Reported as the increase over the resting state (weights and the input batch already allocated),
so methods compare directly; the resting figure is kept beside it.

- CUDA: `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, in process: the caching
  allocator counts every live tensor exactly, whatever ran before.
- CPU: the peak resident set size of a *fresh process* per method (as timm measures each model in
  its own run). In one process the number means nothing per method: the RSS high-water mark only
  rises, and memory the allocator keeps after an earlier method's forward is reused without
  showing up again. The child builds the same architecture (weights do not change memory), runs
  one batch-1 forward to initialise thread pools and kernels, resets the kernel's high-water mark
  (`/proc/self/clear_refs`, Linux), runs the measured forward and reads `VmHWM`. What the batch-1
  forward freed and the measured one reuses goes uncounted: at most 1/batch of the figure.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

import torch

from prunebench.measure.timing import synchronize

log = logging.getLogger(__name__)

CUDA_KIND = "cuda_max_allocated"
CPU_KIND = "cpu_peak_rss_fresh_process"


@dataclass
class MemoryReading:
    peak_bytes: Optional[int]  # increase over resting during one forward; None: not measured
    resting_bytes: Optional[int]  # what was held before the forward (weights, input, runtime)
    kind: str  # CUDA_KIND, CPU_KIND or "unavailable"
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def cuda_peak(step: Callable[[], object], device: torch.device) -> MemoryReading:
    """Peak allocated bytes of one `step()` above what was allocated before it."""
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    resting = torch.cuda.memory_allocated(device)
    step()
    synchronize(device)
    return MemoryReading(torch.cuda.max_memory_allocated(device) - resting, resting, CUDA_KIND)


@dataclass(frozen=True)
class ForwardSpec:
    """The forward a fresh process rebuilds, beside the model and the method."""

    frames: int
    valid_frames: Optional[int]
    batch_size: int
    dtype: str
    attention: str
    threads: int
    plugin_files: Sequence[str] = ()
    seed: int = 0
    execution: str = "eager"  # the path the measured model is on (prunebench.models.execution)


def process_spec(model: torch.nn.Module, method, forward: ForwardSpec) -> Dict[str, Any]:
    """What a fresh process needs to rebuild the same forward (JSON)."""
    return {
        "model_class": f"{type(model).__module__}:{type(model).__qualname__}",
        "config_class": f"{type(model.config).__module__}:{type(model.config).__qualname__}",
        "config": model.config.to_dict(),
        "method": {"name": method.name, "params": method.params},
        "frames": forward.frames, "valid_frames": forward.valid_frames, "batch_size": forward.batch_size,
        "dtype": forward.dtype, "attention": forward.attention, "threads": forward.threads,
        "plugin_files": [str(Path(p).resolve()) for p in forward.plugin_files], "seed": forward.seed,
        "execution": forward.execution,
    }


def cpu_peak_in_fresh_process(spec: Dict[str, Any], timeout_s: float = 600) -> MemoryReading:
    """Run `python -m prunebench.measure.memory` on `spec`; a failure is reported in the reading, not raised."""
    if not Path("/proc/self/clear_refs").exists():
        return MemoryReading(None, None, "unavailable", "peak RSS needs Linux /proc (clear_refs, VmHWM)")
    try:
        done = subprocess.run([sys.executable, "-m", "prunebench.measure.memory"], input=json.dumps(spec), text=True,
                              capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return MemoryReading(None, None, "unavailable", f"memory process timed out after {timeout_s:.0f} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("memory measurement of %s failed: %s", spec["method"]["name"], last)
        return MemoryReading(None, None, "unavailable", f"memory process failed: {last}")
    return MemoryReading(**json.loads(done.stdout.strip().splitlines()[-1]))


# -- the child process ----------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}")
    return int(match.group(1))


def _load(path: str):
    module, _, name = path.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def measure_in_this_process(spec: Dict[str, Any]) -> MemoryReading:
    """The child's work (see the module docstring); call only in a process of its own."""
    from prunebench.measure.kernels import attention_backend
    from prunebench.core.plugins import load_plugin_file
    from prunebench.core.registry import METHODS
    from prunebench.measure.shapes import InputShape, make_batch
    from prunebench.core.device import autocast_for, resolve_dtype
    from prunebench.measure.forward import bound_forward
    from prunebench.models.execution import set_execution

    for path in spec["plugin_files"]:
        load_plugin_file(path)
    torch.set_num_threads(spec["threads"])
    model = _load(spec["model_class"])(_load(spec["config_class"])(**spec["config"])).eval()
    set_execution(model, spec.get("execution", "eager"))
    method = METHODS.get(spec["method"]["name"])(**spec["method"]["params"])
    frames = spec["frames"]
    shape = InputShape(frames, spec["valid_frames"] or frames, "memory")
    fbank, valid = make_batch(shape, spec["batch_size"], model.config.num_mel_bins, spec["seed"])
    dev = torch.device("cpu")
    with torch.inference_mode(), autocast_for(dev, resolve_dtype(spec["dtype"])), attention_backend(spec["attention"]):
        bound_forward(model, method, fbank[:1], None if valid is None else valid[:1])()
        step = bound_forward(model, method, fbank, valid)
        resting = _status_kib("VmRSS") * 1024
        Path("/proc/self/clear_refs").write_text("5")  # high-water mark := current RSS
        step()
        peak = _status_kib("VmHWM") * 1024
    return MemoryReading(max(0, peak - resting), resting, CPU_KIND)


if __name__ == "__main__":
    reading = measure_in_this_process(json.loads(sys.stdin.read()))
    print(json.dumps(reading.to_dict()))
