"""Synchronised step timing, device-agnostic: CUDA events on a GPU, perf_counter elsewhere.

GPU work is asynchronous: a host clock read right after a launch measures the launch. On CUDA the
timer records events on the current stream around the steps and reads their elapsed time once the
end event has completed (what timm's prunebench.py and torch.utils.benchmark do). Elsewhere it
synchronises the device and reads the host clock.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()


class StepTimer:
    """`timer.seconds(step, n)`: wall time of n calls of `step`, with the device synchronised.

    `event_factory` builds CUDA events and `sync` synchronises the device (`torch.cuda.Event` and
    `synchronize` by default; tests pass stand-ins to check the CUDA path without a GPU)."""

    def __init__(self, device: torch.device, event_factory: Optional[Callable[..., object]] = None,
                 sync: Optional[Callable[[torch.device], None]] = None):
        self.device = device
        self.uses_events = device.type == "cuda"
        self._event = event_factory or (torch.cuda.Event if self.uses_events else None)
        self._sync = sync or synchronize

    @property
    def kind(self) -> str:
        return "cuda_events" if self.uses_events else "perf_counter"

    def seconds(self, step: Callable[[], object], steps: int = 1) -> float:
        self._sync(self.device)  # nothing queued from before may land inside the interval
        if self.uses_events:
            start, end = self._event(enable_timing=True), self._event(enable_timing=True)
            start.record()
            for _ in range(steps):
                step()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1000.0  # elapsed_time is in milliseconds
        begin = time.perf_counter()
        for _ in range(steps):
            step()
        self._sync(self.device)
        return time.perf_counter() - begin
