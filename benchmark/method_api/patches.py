"""Per-patch statistics of the input spectrogram, in the model's patch order.

Patch ids follow the patch embedding: freq-major over the (freq, time) grid, with the model's
kernel and strides (16x16 at stride 16 or 10). Padded frames are not audio: a patch made only of
padding gets -inf (the least intense, whatever normalisation turned the zero padding into), and a
partly padded patch is scored on its real frames only.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F


def patch_statistic(
    fbank: torch.Tensor,
    patch: Tuple[int, int],
    stride: Tuple[int, int],
    valid_frames: Optional[torch.Tensor] = None,
    statistic: str = "mean",
) -> torch.Tensor:
    """(b, num_patches) mean or std ("variation") of each input patch of a (b, frames, mel) fbank."""
    b, frames, mel = fbank.shape
    image = fbank.transpose(1, 2).unsqueeze(1)  # (b, 1, mel, frames), as the patch embedding sees it
    pixels = F.unfold(image, kernel_size=patch, stride=stride)  # (b, ph*pw, patches)
    if valid_frames is None:
        weight = torch.ones_like(pixels)
    else:
        real = (torch.arange(frames, device=fbank.device)[None, :] < valid_frames[:, None]).to(fbank.dtype)
        weight = F.unfold(real[:, None, None, :].expand(b, 1, mel, frames), kernel_size=patch, stride=stride)
    count = weight.sum(dim=1)
    mean = (pixels * weight).sum(dim=1) / count.clamp_min(1)
    if statistic == "mean":
        value = mean
    elif statistic == "std":
        value = (((pixels - mean.unsqueeze(1)) ** 2 * weight).sum(dim=1) / count.clamp_min(1)).sqrt()
    else:
        raise ValueError(f"statistic must be 'mean' or 'std', got {statistic!r}")
    return value.masked_fill(count == 0, float("-inf"))
