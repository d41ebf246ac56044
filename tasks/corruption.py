"""Corruptions: seeded waveform transforms applied before the front end.

The seed of each clip derives from (task, clip id, corruption id, run seed); the corruption id
holds the SNR, so every method sees the very same noisy waveform, and reruns see it again.
Noise is added at the waveform level at a target SNR over the whole clip (`snr_mode: clip`) or over
its active frames (`snr_mode: active`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Optional

import torch

from prunebench.audio.kaldi import window_samples
from prunebench.core.errors import ConfigError, DataError
from prunebench.core.params import Configurable, require_number
from prunebench.core.registry import CORRUPTIONS

if TYPE_CHECKING:
    from prunebench.tasks.base import Clip, Task

SNR_MODES = ("clip", "active")


def clip_seed(*parts: object) -> int:
    """A 63-bit seed from any identifying parts (stable across processes and machines)."""
    text = "|".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class ClipContext:
    """The clip being corrupted and its task, for corruptions that draw on the dataset (mix-clips)."""

    task: "Task"
    clip: "Clip"


class Corruption(Configurable):
    """A seeded transform of a mono waveform."""

    kind: ClassVar[str] = "corruption"

    def apply(self, wave: torch.Tensor, generator: torch.Generator, sample_rate: int, source: str,
              context: Optional[ClipContext] = None) -> torch.Tensor:
        raise NotImplementedError

    def fingerprint(self) -> Optional[str]:
        """What defines the corruption beyond its parameters (the content of noise files), for
        the feature cache key; None when the parameters say it all."""
        return None

    def __call__(self, wave: torch.Tensor, sample_rate: int, task_id: str, clip_id: str, run_seed: int,
                 context: Optional[ClipContext] = None) -> torch.Tensor:
        generator = torch.Generator().manual_seed(clip_seed(task_id, clip_id, self.id, run_seed))
        return self.apply(wave, generator, sample_rate, source=clip_id, context=context)


class AdditiveNoise(Corruption):
    """Noise added at a target SNR over the whole clip (or over its active frames)."""

    defaults = {"snr_db": 20.0, "snr_mode": "clip"}

    def validate(self) -> None:
        require_number(f"corruption {self.name!r}", "snr_db", self.params["snr_db"], -30, 100)
        if self.params["snr_mode"] not in SNR_MODES:
            raise ConfigError(f"corruption {self.name!r}: snr_mode must be one of {SNR_MODES}, got {self.params['snr_mode']!r}")

    @property
    def label(self) -> str:
        """The noise's name in ids ("white", "files-babble")."""
        return self.name

    @property
    def id(self) -> str:
        snr = self.params["snr_db"]
        text = f"{self.label}@{snr:g}dB"
        extra = {k: v for k, v in self.changed_params().items() if k not in ("snr_db",) + self.hidden_params}
        return text + "".join(f"-{k}={v}" for k, v in extra.items())

    hidden_params: ClassVar[tuple] = ()  # parameters the label already stands for

    def noise(self, n: int, generator: torch.Generator, sample_rate: int, context: Optional[ClipContext] = None) -> torch.Tensor:
        """n samples of noise (any scale: it is scaled to the SNR)."""
        raise NotImplementedError

    def apply(self, wave, generator, sample_rate, source, context=None):
        signal_power = reference_power(wave, sample_rate, self.params["snr_mode"])
        if signal_power <= 0:
            raise DataError(f"clip {source} is silent: its SNR is undefined, cannot add noise at {self.id}")
        noise = self.noise(wave.numel(), generator, sample_rate, context).to(torch.float64)
        noise_power = noise.pow(2).mean()
        if not noise_power > 0:
            raise DataError(f"clip {source}: the {self.label} noise drawn for it is silent, cannot reach {self.id}")
        scale = torch.sqrt(signal_power / (noise_power * 10 ** (self.params["snr_db"] / 10)))
        return (wave.double() + scale * noise).to(wave.dtype)


def frame_powers(wave: torch.Tensor, sample_rate: int) -> Optional[torch.Tensor]:
    """Mean power (float64) of each whole 25 ms frame (the Kaldi frame, not overlapping); None for
    a wave shorter than one frame."""
    frame = max(1, window_samples(sample_rate))
    usable = (wave.numel() // frame) * frame
    if usable == 0:
        return None
    return wave[:usable].double().reshape(-1, frame).pow(2).mean(dim=1)


def reference_power(wave: torch.Tensor, sample_rate: int, mode: str = "clip", floor_db: float = -50.0) -> torch.Tensor:
    """Mean power of the clip, or of its active 25 ms frames (those within `floor_db` of the loudest)."""
    w = wave.double()
    if mode == "clip":
        return w.pow(2).mean()
    power = frame_powers(w, sample_rate)
    if power is None:
        return w.pow(2).mean()
    active = power > power.max() * 10 ** (floor_db / 10)
    return power[active].mean() if active.any() else power.new_zeros(())


def fit_segment(noise: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """A random n-sample segment of `noise`; a shorter noise is looped (from a random start)."""
    if noise.numel() >= n:
        start = int(torch.randint(0, noise.numel() - n + 1, (1,), generator=generator))
        return noise[start:start + n]
    start = int(torch.randint(0, noise.numel(), (1,), generator=generator))
    reps = -(-(start + n) // noise.numel())
    return noise.repeat(reps)[start:start + n]


def is_silent(segment: torch.Tensor) -> bool:
    return not bool(segment.double().pow(2).mean() > 0)


CORRUPTIONS.require_base(Corruption)
