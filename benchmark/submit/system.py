"""The system a bundle was measured on: CPU or GPU model, threads, torch version, dtype."""
from __future__ import annotations

import os
import platform
from typing import Any, Dict

import torch

from prunebench.core.device import resolve_device


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_description(device: str, dtype: str) -> Dict[str, Any]:
    """What measured the timings: the device a run's `measure.device` resolves to, and the host."""
    resolved = str(resolve_device(device))
    gpu = torch.cuda.get_device_name(torch.device(resolved)) if resolved.startswith("cuda") else None
    return {"cpu": cpu_model(), "gpu": gpu, "device": resolved, "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "dtype": dtype,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def machine_line(system: Dict[str, Any]) -> str:
    """One line naming the machine: the GPU on a GPU run, else the CPU, with threads and torch."""
    chip = system.get("gpu") or system.get("cpu") or "unknown machine"
    return f"{chip}, {system.get('threads')} threads, torch {system.get('torch')}, {system.get('dtype')}"
