"""Intensity: keep the patches where the input spectrogram is loudest (mean) or busiest (std).

The score of a patch is a statistic of its pixels in the normalised spectrogram, computed once per
forward before the transformer (prunebench.method_api.patches, with the model's patch kernel and strides) and
carried with the tokens, so it costs no attention statistics at all. Padded frames count as the
least intense: a patch of padding alone scores -inf, a partly padded one is scored on its real
frames, whatever value normalisation gave the zero padding (pad-fixed).

Under a key-padding mask (pad-batch, sorted) the padding tokens are never scored: each clip keeps
its own ceil(k * real) most intense real patches, exactly those it keeps alone (ScorePruning's
padding contract); padding only fills the row to the batch's widest.
"""
from __future__ import annotations

from typing import Optional

import torch

from prunebench.core.errors import ConfigError
from prunebench.method_api import AttentionInfo, ModelDims, ScorePruning
from prunebench.method_api.patches import patch_statistic
from prunebench.core.registry import register_method
from prunebench.method_api.tokens import TokenState

STATISTICS = ("mean", "std")


@register_method("intensity")
class Intensity(ScorePruning):
    """Intensity: keep ceil(k*N) patches with the highest input mean (or std) at each reduction layer."""

    defaults = {**ScorePruning.defaults, "statistic": "mean"}
    validation_params = ScorePruning.validation_params + ({"statistic": "std"},)

    def validate(self) -> None:
        super().validate()
        if self.params["statistic"] not in STATISTICS:
            raise ConfigError(
                f"method 'intensity': statistic must be one of {', '.join(STATISTICS)} (std: 'variation'), "
                f"got {self.params['statistic']!r}"
            )

    def begin(self, fbank: torch.Tensor, state: TokenState, dims: ModelDims, valid_frames: Optional[torch.Tensor]) -> None:
        if dims.patch_size is None or dims.stride is None:
            raise ConfigError("method 'intensity' needs the model's patch size and stride (ModelDims.patch_size, .stride)")
        state.carried["intensity"] = patch_statistic(
            fbank.float(), dims.patch_size, dims.stride, valid_frames, self.params["statistic"]
        )

    def score(self, x: torch.Tensor, state: TokenState, info: AttentionInfo) -> torch.Tensor:
        return state.carried["intensity"]
