"""Catching methods that change the model: every pair must see the very same weights.

One model serves every method of a task variant in turn, so a method that writes to the weights
(or buffers) would silently corrupt every record after it. The guard compares the model's state,
tensor by tensor and exactly, with the pristine weights it was built from, after every pair (and
after the timing pass): a change fails that pair, and the model is rebuilt for the next one.
Exact comparison on the model's own device costs less than hashing (measured on AST-base,
86M values on a loaded 2-core CPU: 2.1 s to compare, 2.2 s for sha256, 5.9 s for blake2b; on a
GPU the comparison is a fraction of a millisecond).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch


class WeightsGuard:
    """Checks a model against reference weights (CPU tensors, kept pristine by the caller)."""

    def __init__(self, reference: Dict[str, torch.Tensor]):
        self.reference = reference
        self._on_device: Dict[torch.device, Dict[str, torch.Tensor]] = {}

    def check(self, model: torch.nn.Module) -> Optional[str]:
        """None if every parameter and buffer equals the reference, else what changed."""
        state = model.state_dict()
        if set(state) != set(self.reference):
            added = sorted(set(state) - set(self.reference))
            removed = sorted(set(self.reference) - set(state))
            return f"its state changed shape: tensors added {added[:3]}, removed {removed[:3]}"
        for name, tensor in state.items():
            reference = self._reference_on(tensor.device)[name]
            t = tensor.detach()
            if t.shape != reference.shape or t.dtype != reference.dtype or not torch.equal(t, reference):
                return f"tensor {name} changed"
        return None

    def _reference_on(self, device: torch.device) -> Dict[str, torch.Tensor]:
        """The reference on the model's device (copied once per device, so checks stay cheap)."""
        if device.type == "cpu":
            return self.reference
        if device not in self._on_device:
            self._on_device[device] = {k: v.to(device) for k, v in self.reference.items()}
        return self._on_device[device]
