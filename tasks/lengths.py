"""Clip lengths: each clip at its true length (trimmed to its content), or at a seeded length drawn
per clip, instead of every clip at the task's nominal length.

A task entry's `lengths:` makes a variant whose features are computed per clip at its own length
(the front end pads nothing; the batching strategy decides what is padded, prunebench.data.batching):
- `trim: true`: each clip cut to its content, from its first to its last sample above
  `threshold` in magnitude (default 1e-4: ESC-50's short recordings are padded with digital
  silence inside the files). A clip with no sample above it is an error naming the file; with
  `min_seconds`, a clip whose content is shorter keeps that much from its content's start (or the
  whole file when it is shorter), and a clip with no content its first `min_seconds`.
- `uniform: [lo, hi]`: each clip cut to a length drawn uniformly in [lo, hi] seconds, seeded by
  `seed` and the clip's id (the same clip gets the same length in every run and variant); a clip
  shorter than its draw keeps its own length. With `trim`, the draw cuts the trimmed clip.
Ids: `trim`, `trim@0.001` (another threshold), `u1-5s`, `u1-5s-seed1`, joined by `-`.
"""
from __future__ import annotations

import hashlib
from typing import ClassVar, Optional

import torch

from prunebench.core.errors import ConfigError, DataError
from prunebench.core.params import Configurable, require_number

DEFAULT_THRESHOLD = 1e-4


class ClipLengths(Configurable):
    """Each clip trimmed to its content and/or cut to a seeded uniform length."""

    name = "lengths"
    kind: ClassVar[str] = "lengths"
    defaults = {"trim": False, "threshold": DEFAULT_THRESHOLD, "min_seconds": None, "uniform": None, "seed": 0}

    def validate(self) -> None:
        p = self.params
        if not isinstance(p["trim"], bool):
            raise ConfigError(f"lengths: trim must be true or false, got {p['trim']!r}")
        require_number("lengths", "threshold", p["threshold"], 0.0, 1.0, lo_open=True)
        if p["min_seconds"] is not None:
            require_number("lengths", "min_seconds", p["min_seconds"], 0.0, 3600.0, lo_open=True)
        uniform = p["uniform"]
        if uniform is not None:
            ok = isinstance(uniform, (list, tuple)) and len(uniform) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in uniform)
            if not ok or not 0 < uniform[0] <= uniform[1]:
                raise ConfigError(f"lengths: uniform must be [lo, hi] seconds with 0 < lo <= hi, got {uniform!r}")
        if not isinstance(p["seed"], int) or isinstance(p["seed"], bool):
            raise ConfigError(f"lengths: seed must be an integer, got {p['seed']!r}")
        if not p["trim"] and uniform is None:
            raise ConfigError("lengths: set trim: true, uniform: [lo, hi] seconds, or both")

    @property
    def id(self) -> str:
        p, parts = self.params, []
        if p["trim"]:
            parts.append("trim" + ("" if p["threshold"] == DEFAULT_THRESHOLD else f"@{p['threshold']:g}")
                         + ("" if p["min_seconds"] is None else f"-min{p['min_seconds']:g}s"))
        if p["uniform"] is not None:
            lo, hi = p["uniform"]
            parts.append(f"u{lo:g}-{hi:g}s" + ("" if p["seed"] == 0 else f"-seed{p['seed']}"))
        return "-".join(parts)

    def __call__(self, wave: torch.Tensor, sample_rate: int, clip_id: str, source: str) -> torch.Tensor:
        if self.params["trim"]:
            wave = self.trim(wave, sample_rate, source)
        if self.params["uniform"] is not None:
            wave = wave[: int(round(self.drawn_seconds(clip_id) * sample_rate))]
        return wave

    def trim(self, wave: torch.Tensor, sample_rate: int, source: str) -> torch.Tensor:
        """The clip from its first to its last sample above the threshold (see the module docstring)."""
        threshold, minimum = self.params["threshold"], self.params["min_seconds"]
        content = (wave.abs() > threshold).nonzero().flatten()
        if content.numel() == 0:
            if minimum is None:
                raise DataError(f"{source}: no sample above {threshold:g} in magnitude: the clip trims to nothing "
                                f"(lengths: min_seconds keeps a minimum length)")
            return wave[: int(round(minimum * sample_rate))]
        start, end = int(content[0]), int(content[-1]) + 1
        if minimum is not None:
            end = max(end, min(wave.numel(), start + int(round(minimum * sample_rate))))
        return wave[start:end]

    def drawn_seconds(self, clip_id: str) -> float:
        """The clip's length drawn from uniform [lo, hi], seeded by (seed, clip id)."""
        lo, hi = self.params["uniform"]
        digest = hashlib.sha256(f"{self.params['seed']}|{clip_id}".encode()).digest()
        u = int.from_bytes(digest[:8], "little") / 2**64
        return lo + (hi - lo) * u


def lengths_from(entry: Optional[dict], where: str) -> Optional[ClipLengths]:
    """A task entry's `lengths:` mapping as a ClipLengths (None when absent)."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}.lengths: expected a mapping like {{trim: true}} or {{uniform: [1, 5]}}")
    try:
        return ClipLengths(**entry)
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc}") from None
