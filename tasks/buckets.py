"""Length buckets: a deterministic crop of every clip, padded to the model's length or not.

`pad` pads the log-mel to the model's nominal frame count (as AST does for short clips): the
compute stays that of the full length. `native` keeps the clip's own frame count: the positional
embeddings are cropped (or interpolated) to it, and the compute shrinks with the clip.
"""
from __future__ import annotations

from typing import ClassVar

import torch

from prunebench.core.errors import ConfigError
from prunebench.core.params import Configurable, require_number

BUCKET_MODES = ("pad", "native")


class LengthBucket(Configurable):
    """The first `seconds` of each clip, in `pad` or `native` mode."""

    name = "len"
    kind: ClassVar[str] = "length bucket"
    defaults = {"seconds": 2.0, "mode": "pad"}

    def validate(self) -> None:
        require_number("bucket", "seconds", self.params["seconds"], 0.0, 3600.0, lo_open=True)
        if self.params["mode"] not in BUCKET_MODES:
            raise ConfigError(f"bucket: mode must be one of {BUCKET_MODES}, got {self.params['mode']!r}")

    @property
    def native(self) -> bool:
        return self.params["mode"] == "native"

    @property
    def id(self) -> str:
        text = f"len{self.params['seconds']:g}s"
        return text + ("-native" if self.native else "")

    def crop(self, wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
        return wave[: int(round(self.params["seconds"] * sample_rate))]
