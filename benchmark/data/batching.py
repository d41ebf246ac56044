"""Batching strategies: how clips of different lengths become model batches.

- `pad-fixed`: every clip padded to the model's input, no mask: today's `pad`, and the default.
  Clips as the front end made them (padded to the model input; a native-length bucket stays
  native); clips at their true length (a task's `lengths`) padded here to the model's input.
  Clips of one frame count are batched together, in listing order.
- `pad-batch`: clips in listing order, each batch padded to its longest clip, with a key-padding
  mask (the model's `key_padding`): padding takes no part in attention, pooling or any method's
  scores, so each clip's logits are those it gets alone.
- `sorted`: clips sorted by length, so each batch holds near-equal lengths; padded and masked as
  `pad-batch`.
- `native`: one clip at a time at its own length; nothing padded.
The strategy is a measure setting (`measure.batching`) and part of a record's identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Optional, Protocol

import torch

from prunebench.core.errors import ConfigError, did_you_mean

STRATEGIES = ("pad-fixed", "pad-batch", "sorted", "native")
DEFAULT_STRATEGY = "pad-fixed"
MASKED = ("pad-batch", "sorted")  # the strategies that need the model's key-padding mask


class Padder(Protocol):
    def pad_features(self, fbank: torch.Tensor, frames: int) -> torch.Tensor: ...


class ClipSource(Protocol):
    """What batching reads of a feature set (prunebench.data.features.FeatureSet)."""

    fbanks: object
    valid_frames: torch.Tensor

    def __len__(self) -> int: ...

    def frames(self, i: int) -> int: ...


def check_strategy(name: object, where: str = "measure") -> str:
    if name not in STRATEGIES:
        raise ConfigError(f"{where}: batching must be one of {', '.join(STRATEGIES)}, got {name!r}"
                          f"{did_you_mean(str(name), STRATEGIES)}")
    return str(name)


@dataclass(frozen=True)
class Batching:
    """How to batch: the strategy, the batch size, and for `pad-fixed` the model's input frames
    that true-length clips are padded to (None: the clips as the front end made them)."""

    strategy: str = DEFAULT_STRATEGY
    batch_size: int = 32
    frames: Optional[int] = None

    @property
    def key_padding(self) -> bool:
        return self.strategy in MASKED


@dataclass
class Batch:
    indices: List[int]
    fbank: torch.Tensor  # (b, frames, mel)
    valid: torch.Tensor  # (b,) real frames of each clip
    key_padding: bool  # the model must mask the frames past `valid`


def batch_order(lengths: List[int], batching: Batching, equal_frames: Optional[List[int]] = None) -> List[List[int]]:
    """The clip indices of each batch, from the clips' real lengths (and for `pad-fixed`, their
    stored frame counts, which group them)."""
    n, size = len(lengths), batching.batch_size
    if batching.strategy == "native":
        return [[i] for i in range(n)]
    if batching.strategy == "sorted":
        order = sorted(range(n), key=lambda i: lengths[i])
        return [order[s:s + size] for s in range(0, n, size)]
    if batching.strategy == "pad-batch":
        return [list(range(s, min(n, s + size))) for s in range(0, n, size)]
    groups: dict = {}
    for i in range(n):
        groups.setdefault((equal_frames or lengths)[i], []).append(i)
    return [group[s:s + size] for key in sorted(groups) for group in [groups[key]] for s in range(0, len(group), size)]


def batches(features: ClipSource, batching: Batching, padder: Padder) -> Iterator[Batch]:
    """The batches of a feature set under a strategy (see the module docstring)."""
    valid = [int(v) for v in features.valid_frames.tolist()]
    stored = [features.frames(i) for i in range(len(features))]
    fixed = batching.strategy == DEFAULT_STRATEGY
    target = [max(stored[i], batching.frames or 0) if fixed else valid[i] for i in range(len(valid))]
    for idx in batch_order(valid, batching, target if fixed else None):
        if fixed:
            frames = target[idx[0]]
            clips = [features.fbanks[i] for i in idx]
            clips = [c if c.shape[0] == frames else padder.pad_features(c[:valid[i]], frames) for c, i in zip(clips, idx)]
        else:
            frames = max(valid[i] for i in idx)
            clips = [padder.pad_features(features.fbanks[i][:valid[i]], frames) for i in idx]
        yield Batch(idx, torch.stack(clips), torch.tensor([min(valid[i], frames) for i in idx]), batching.key_padding)
