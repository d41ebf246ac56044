"""The step every measurement times: one method's inference forward on one batch, as a module of
its own (what torch.compile compiles). Timing (throughput.py) and peak memory (memory.py) both
run it, so they measure the same thing."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from prunebench.method_api import Method


class BoundForward(torch.nn.Module):
    """One method's inference forward as a module of its own (what torch.compile compiles)."""

    def __init__(self, model: torch.nn.Module, method: Method):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, fbank: torch.Tensor, valid_frames: Optional[torch.Tensor]) -> torch.Tensor:
        return self.model.forward_with_state(fbank, self.method, valid_frames, track_provenance=False)[0]


def bound_forward(model: torch.nn.Module, method: Method, fbank: torch.Tensor, valid: Optional[torch.Tensor],
                  compile_backend: Optional[str] = None) -> Callable[[], torch.Tensor]:
    """A no-argument step: the model's forward with `method` on this batch (compiled if asked)."""
    module = BoundForward(model, method)
    if compile_backend:
        module = torch.compile(module, backend=compile_backend, dynamic=False)
    return lambda: module(fbank, valid)
