"""Percentile bootstrap over clips: the seeded resamples and the 95% interval."""
from __future__ import annotations

from typing import List

import torch

BOOTSTRAP_SAMPLES = 1000  # resamples of a score's interval


def clip_draws(n: int, seed: int, samples: int = BOOTSTRAP_SAMPLES) -> torch.Tensor:
    """(samples, n) clip indices drawn with replacement (seeded). A metric that can afford fewer
    resamples takes the first rows, so every metric draws from the same stream."""
    return torch.randint(0, n, (samples, n), generator=torch.Generator().manual_seed(seed))


def bootstrap_interval(values: List[float], level: float = 0.95) -> List[float]:
    ordered = sorted(values)
    lo = ordered[int((1 - level) / 2 * len(ordered))]
    hi = ordered[min(len(ordered) - 1, int((1 + level) / 2 * len(ordered)))]
    return [lo, hi]
