"""Training-time augmentation on normalised features: SpecAugment masks, AST's mixup, random
crops on patch columns. Every draw comes from the training's own generator, so a resumed training
draws what an uninterrupted one would."""
from __future__ import annotations

from typing import Protocol, Tuple

import numpy as np
import torch

from prunebench.models.encoder import TokenEncoder
from prunebench.train.recipes import RECIPE_FRAMES


class Pool(Protocol):
    """The training examples mixup draws partners from: (features, targets) of indices, and how many."""

    def __call__(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]: ...

    def __len__(self) -> int: ...


def spec_augment(x: torch.Tensor, freq_mask: int, time_mask: int, generator: torch.Generator, fill: float = 0.0) -> torch.Tensor:
    """One frequency and one time mask per example, widths uniform in [0, max), set to `fill`
    (0: the normalised mean; AST masks before normalisation, which is the padding value after)."""
    b, frames, mel = x.shape
    x = x.clone()
    for axis, size, max_width in ((2, mel, freq_mask), (1, frames, time_mask)):
        if max_width <= 0:
            continue
        width = torch.randint(0, max_width, (b, 1), generator=generator)
        start = (torch.rand(b, 1, generator=generator) * (size - width).clamp(min=1)).long()
        pos = torch.arange(size).unsqueeze(0)
        mask = ((pos >= start) & (pos < start + width)).to(x.device)
        x = x.masked_fill(mask.unsqueeze(1) if axis == 2 else mask.unsqueeze(2), fill)
    return x


def mixup(x: torch.Tensor, y: torch.Tensor, share: float, pool: Pool,
          generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """AST's mixup on features: each example, with probability `share`, is mixed with a random
    training example, lambda ~ Beta(10, 10); labels (multi-hot or one-hot) mixed alike."""
    b = x.shape[0]
    chosen = torch.rand(b, generator=generator) < share
    partners = torch.randint(0, len(pool), (b,), generator=generator)
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    lam = torch.from_numpy(rng.beta(10.0, 10.0, size=b)).float()
    if not chosen.any():
        return x, y
    lam = torch.where(chosen, lam, torch.ones(b))
    px, py = pool(partners)
    lx = lam.view(b, 1, 1).to(x.device)
    ly = lam.view(b, 1).to(y.device)
    return lx * x + (1 - lx) * px, ly * y + (1 - ly) * py


def time_shift(x: torch.Tensor, max_frames: int, generator: torch.Generator) -> torch.Tensor:
    """Each example rolled in time by a whole number of frames uniform in [-max_frames, max_frames]
    (circular, so nothing is lost): an event heard at another moment is the same event."""
    if max_frames <= 0:
        return x
    shifts = torch.randint(-max_frames, max_frames + 1, (x.shape[0],), generator=generator)
    frames = x.shape[1]
    index = (torch.arange(frames).unsqueeze(0) - shifts.unsqueeze(1)) % frames  # out[t] = x[t - shift]
    return torch.gather(x, 1, index.to(x.device).unsqueeze(-1).expand(-1, -1, x.shape[2]))


def crop_length(crop_frames: int, input_frames: int, patch: int) -> int:
    """A recipe's crop length for an input of `input_frames`: scaled by input / 512 (cropped by
    the same share as a 5 s input, never wholly nor mostly padding), whole patches, at least one;
    0 (no crop) stays 0. Unchanged at 512 frames. (From scratch, an input no longer than the crop
    trains whole by default: recipes.for_short_input.)"""
    if not crop_frames or input_frames == RECIPE_FRAMES:
        return crop_frames
    scaled = round(crop_frames * input_frames / RECIPE_FRAMES / patch) * patch
    return min(max(patch, scaled), input_frames)


def random_crop(x: torch.Tensor, frames: int, model: TokenEncoder, generator: torch.Generator) -> Tuple[torch.Tensor, int]:
    """A random window of `frames` frames, starting on a patch column (so it keeps its own
    positional embeddings); the whole input when `frames` is 0 or not shorter. Training on crops
    costs a fraction of full clips and acts as time-shift augmentation; the last epochs run on full
    clips (`full_length_epochs`): measured on synth-esc, a crop-only model lost 10 points of
    accuracy on full-length input."""
    stride = model.dims().stride[1]
    if not frames or frames >= x.shape[1] or frames < model.config.patch_size:
        return x, 0
    columns = model.grid[1] - model.grid_for_frames(frames)[1]
    offset = int(torch.randint(0, columns + 1, (1,), generator=generator))
    return x[:, offset * stride: offset * stride + frames], offset
