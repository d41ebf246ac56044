"""Catching methods that change the model: every pair must see the very same weights.

One model serves every method of a task variant in turn, so a method that writes to the weights
(or buffers) would silently corrupt every record after it. The guard fingerprints the model's
state before the first pair and checks it after every pair: a change fails that pair and the
model is rebuilt from its pristine weights for the next one.
"""
from __future__ import annotations

import hashlib
from typing import Dict, Optional

import torch


def weights_checksum(model: torch.nn.Module) -> str:
    """blake2b over every parameter and buffer (names, shapes, dtypes and bytes), in state-dict order."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in model.state_dict().items():
        t = tensor.detach()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def changed_tensor(model: torch.nn.Module, reference: Dict[str, torch.Tensor]) -> Optional[str]:
    """Name of the first tensor of `model` that differs from `reference` (None: identical)."""
    state = model.state_dict()
    if set(state) != set(reference):
        added = sorted(set(state) - set(reference))
        removed = sorted(set(reference) - set(state))
        return f"state keys changed (added {added[:3]}, removed {removed[:3]})"
    for name, tensor in state.items():
        ref = reference[name]
        t = tensor.detach()
        if t.shape != ref.shape or t.dtype != ref.dtype or not torch.equal(t.cpu(), ref):
            return name
    return None


class WeightsGuard:
    """Checksum of a model's weights, taken now and compared after each pair."""

    def __init__(self, model: torch.nn.Module):
        self.checksum = weights_checksum(model)

    def check(self, model: torch.nn.Module) -> Optional[str]:
        """None if unchanged, else 'checksum A -> B'."""
        after = weights_checksum(model)
        if after == self.checksum:
            return None
        return f"weights checksum {self.checksum[:12]} -> {after[:12]}"
