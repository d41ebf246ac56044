"""Gaussian noise corruptions: white, pink (1/f) and brown (1/f^2), at a target SNR."""
from __future__ import annotations

import torch

from prunebench.core.registry import register_corruption

from prunebench.tasks.corruption import AdditiveNoise


def coloured_noise(n: int, generator: torch.Generator, exponent: float) -> torch.Tensor:
    """Gaussian noise whose power spectrum falls as 1/f^exponent (0 white, 1 pink, 2 brown)."""
    white = torch.randn(n, generator=generator, dtype=torch.float64)
    if exponent == 0:
        return white
    spectrum = torch.fft.rfft(white)
    freqs = torch.arange(spectrum.numel(), dtype=torch.float64)
    freqs[0] = 1.0  # keep DC finite; it is removed below
    shaped = torch.fft.irfft(spectrum / freqs ** (exponent / 2), n)
    return shaped - shaped.mean()


@register_corruption("white")
class WhiteNoise(AdditiveNoise):
    """White Gaussian noise at snr_db (over the whole clip by default)."""

    name = "white"

    def noise(self, n, generator, sample_rate, context=None):
        return coloured_noise(n, generator, 0.0)


@register_corruption("pink")
class PinkNoise(AdditiveNoise):
    """Pink (1/f) Gaussian noise at snr_db."""

    name = "pink"

    def noise(self, n, generator, sample_rate, context=None):
        return coloured_noise(n, generator, 1.0)


@register_corruption("brown")
class BrownNoise(AdditiveNoise):
    """Brown (1/f^2) Gaussian noise at snr_db."""

    name = "brown"

    def noise(self, n, generator, sample_rate, context=None):
        return coloured_noise(n, generator, 2.0)
