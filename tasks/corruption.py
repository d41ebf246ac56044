"""Corruptions: seeded waveform transforms applied before the front end.

The seed of each clip derives from (task, clip id, corruption id, run seed), so every method sees
the very same noisy waveform, and reruns see it again.
"""
from __future__ import annotations

import hashlib
from typing import ClassVar

import torch

from benchmark.errors import DataError
from benchmark.params import Configurable, require_number

SNR_MODES = ("clip", "active")


def clip_seed(*parts: object) -> int:
    """A 63-bit seed from any identifying parts (stable across processes and machines)."""
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


class Corruption(Configurable):
    """A seeded transform of a mono waveform."""

    kind: ClassVar[str] = "corruption"

    def apply(self, wave: torch.Tensor, generator: torch.Generator, sample_rate: int, source: str) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, wave: torch.Tensor, sample_rate: int, task_id: str, clip_id: str, run_seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(clip_seed(task_id, clip_id, self.id, run_seed))
        return self.apply(wave, generator, sample_rate, source=clip_id)


class AdditiveNoise(Corruption):
    """Noise added at a target SNR over the whole clip (or over its active frames)."""

    defaults = {"snr_db": 20.0, "snr_mode": "clip"}

    def validate(self) -> None:
        require_number(f"corruption {self.name!r}", "snr_db", self.params["snr_db"], -30, 100)
        if self.params["snr_mode"] not in SNR_MODES:
            from benchmark.errors import ConfigError

            raise ConfigError(f"corruption {self.name!r}: snr_mode must be one of {SNR_MODES}, got {self.params['snr_mode']!r}")

    @property
    def id(self) -> str:
        snr = self.params["snr_db"]
        text = f"{self.name}@{snr:g}dB"
        extra = {k: v for k, v in self.changed_params().items() if k != "snr_db"}
        return text + "".join(f"-{k}={v}" for k, v in extra.items())

    def noise(self, n: int, generator: torch.Generator, sample_rate: int) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, wave, generator, sample_rate, source):
        noise = self.noise(wave.numel(), generator, sample_rate).to(wave.dtype)
        signal_power = reference_power(wave, sample_rate, self.params["snr_mode"])
        if signal_power <= 0:
            raise DataError(f"clip {source} is silent: its SNR is undefined, cannot add noise at {self.id}")
        noise_power = noise.pow(2).mean()
        scale = torch.sqrt(signal_power / (noise_power * 10 ** (self.params["snr_db"] / 10)))
        return wave + scale * noise


def reference_power(wave: torch.Tensor, sample_rate: int, mode: str = "clip", floor_db: float = -50.0) -> torch.Tensor:
    """Mean power of the clip, or of its active 25 ms frames (those within `floor_db` of the loudest)."""
    w = wave.double()
    if mode == "clip":
        return w.pow(2).mean()
    frame = max(1, int(0.025 * sample_rate))
    usable = (w.numel() // frame) * frame
    if usable == 0:
        return w.pow(2).mean()
    power = w[:usable].reshape(-1, frame).pow(2).mean(dim=1)
    active = power > power.max() * 10 ** (floor_db / 10)
    return power[active].mean() if active.any() else power.new_zeros(())
