"""Input shapes for measurement: the model's nominal length, or a length bucket in pad or native mode.

Measurement runs on random normalised fbanks (content does not change the compute), but the shape
and the padding do: a `pad` bucket keeps the nominal frame count (the compute of a full clip) with
the frames past the crop set to what zero padding becomes after normalisation and marked as
padding (`valid_frames`), exactly as the front end hands real clips to the model; a `native` bucket
has the clip's own frame count, and the model adapter crops or interpolates its positions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch

from prunebench.core.errors import ConfigError
from prunebench.audio.kaldi import FrontEnd

MODES = ("pad", "native")
PATCH_FRAMES = 16


def frames_for_seconds(seconds: float, frontend: Optional[Any] = None) -> int:
    """Frames of a clip of `seconds` as the model's front end makes them (default: the Kaldi
    fbank, 25 ms window, 10 ms shift, no edge padding)."""
    frames = (frontend or FrontEnd()).frames_for_seconds(seconds)
    if frames < 1:
        raise ConfigError(f"bucket {seconds:g} s: shorter than one analysis window")
    return frames


@dataclass(frozen=True)
class InputShape:
    """What one measured sample looks like: `frames` in the tensor, `valid_frames` of them real."""

    frames: int
    valid_frames: int
    label: str  # "nominal", "len2s" (pad) or "len2s-native", as task variants name buckets
    seconds: Optional[float] = None
    mode: Optional[str] = None  # "pad", "native" or None (nominal length)

    def describe(self) -> dict:
        return {"frames": self.frames, "valid_frames": self.valid_frames, "bucket": self.label,
                "seconds": self.seconds, "mode": self.mode}


def nominal_shape(target_frames: int) -> InputShape:
    return InputShape(target_frames, target_frames, "nominal")


def bucket_shape(target_frames: int, seconds: float, mode: str = "pad", frontend: Optional[Any] = None) -> InputShape:
    """The input of a length bucket for a model of `target_frames` nominal frames (frames counted
    by `frontend`, default the Kaldi fbank)."""
    if mode not in MODES:
        raise ConfigError(f"bucket mode must be one of {MODES}, got {mode!r}")
    clip = frames_for_seconds(seconds, frontend)
    label = f"len{seconds:g}s" + ("-native" if mode == "native" else "")
    if mode == "native":
        if clip < PATCH_FRAMES:
            raise ConfigError(f"bucket {seconds:g} s: {clip} frames, shorter than one {PATCH_FRAMES}-frame patch")
        return InputShape(clip, clip, label, seconds, mode)
    return InputShape(target_frames, min(clip, target_frames), label, seconds, mode)


def parse_bucket(text: str, target_frames: int, frontend: Optional[Any] = None) -> InputShape:
    """`2`, `2:pad` or `2:native` (seconds, then the mode; pad by default, as task buckets)."""
    seconds_text, _, mode = str(text).partition(":")
    try:
        seconds = float(seconds_text)
    except ValueError:
        raise ConfigError(f"--bucket {text!r}: expected SECONDS[:pad|native], e.g. 2:native") from None
    if not seconds > 0:
        raise ConfigError(f"--bucket {text!r}: seconds must be positive")
    return bucket_shape(target_frames, seconds, mode or "pad", frontend)


def make_batch(shape: InputShape, batch_size: int, mel_bins: int, seed: int = 0,
               padding_value: Optional[float] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """A random normalised fbank batch of `shape` and its valid-frame counts (None: no padding)."""
    generator = torch.Generator().manual_seed(seed)
    fbank = torch.randn(batch_size, shape.frames, mel_bins, generator=generator)
    if shape.valid_frames >= shape.frames:
        return fbank, None
    pad = FrontEnd().padding_value() if padding_value is None else padding_value
    fbank[:, shape.valid_frames:] = pad
    return fbank, torch.full((batch_size,), shape.valid_frames, dtype=torch.long)
