"""TopK / EViT: keep the patches the CLS token attends to most.

Score: the CLS row of the attention, averaged over heads (AST, DeiT); for mean-pooled models with
no CLS token to speak for the output, the mean attention a patch receives from the patch queries
(the ECAI 2025 AudioMAE code's `attn[:, :, 1:, 1:].mean((1, 2))`). With `fuse`, the dropped tokens
are fused into one token: their sum weighted by their scores, unnormalised, as EViT's code does
(`fuse_normalised: true`: the weighted average instead).

Padding (under a key-padding mask): padding keys are out of the softmax, so a real token's score
is what the clip alone gives; each row keeps its own ceil(k * real) best real tokens, never a
padding token while a real one is dropped, and `fuse` fuses only the row's dropped real tokens.
"""
from __future__ import annotations

from typing import FrozenSet

import torch

from prunebench.core.errors import ConfigError
from prunebench.method_api import AttentionInfo, ModelDims, ScorePruning, kept_count
from prunebench.core.registry import register_method
from prunebench.method_api.tokens import TokenState


@register_method("topk")
class TopK(ScorePruning):
    """TopK/EViT: keep ceil(k*N) patches with the highest CLS attention at each reduction layer."""

    defaults = {**ScorePruning.defaults, "fuse": False, "fuse_normalised": False}
    validation_params = ScorePruning.validation_params + ({"fuse": True}, {"keep_rate": 0.5, "fuse": True},
                                                          {"keep_rate": 0.5, "fuse": True, "fuse_normalised": True})

    def attention_requests(self, dims: ModelDims) -> FrozenSet[str]:
        # Mean-pooled models have no CLS token speaking for the output.
        return frozenset({"received" if dims.pooling == "mean" else "cls_scores"})

    def score(self, x: torch.Tensor, state: TokenState, info: AttentionInfo) -> torch.Tensor:
        return info.cls_scores if info.cls_scores is not None else info.received

    def select(self, x: torch.Tensor, state: TokenState, scores: torch.Tensor, keep: int) -> torch.Tensor:
        if not self.params["fuse"]:
            return super().select(x, state, scores, keep)
        if state.padding is not None:
            keep_idx = self.kept_indices(state, scores, keep)
            kept = torch.zeros_like(state.padding).scatter_(1, keep_idx, True)
            return state.keep_and_fuse_rows(x, keep_idx, ~kept & ~state.padding, scores,
                                            normalise=self.params["fuse_normalised"])
        order = scores.argsort(dim=1, descending=True)
        keep_idx = order[:, :keep].sort(dim=1).values
        return state.keep_and_fuse(x, keep_idx, order[:, keep:], scores, normalise=self.params["fuse_normalised"])

    def overhead_macs(self, tokens: int, dims: ModelDims) -> int:
        if dims.pooling == "mean":
            macs = tokens * tokens * dims.embed_dim  # every query against every key, once more
        else:
            macs = tokens * dims.embed_dim  # the CLS query against every key, all heads
        if self.params["fuse"]:
            n_patch = tokens - dims.num_prefix
            dropped = n_patch - kept_count(self.params["keep_rate"], n_patch)
            macs += dropped * dims.embed_dim  # the weights-times-dropped-tokens product
        return macs

    def patch_tokens_after(self, n_patch: int, layer: int, dims: ModelDims) -> int:
        keep = kept_count(self.params["keep_rate"], n_patch)
        return keep + 1 if self.params["fuse"] and keep < n_patch else keep  # + the fused token

    def validate(self) -> None:
        super().validate()
        for key in ("fuse", "fuse_normalised"):
            if not isinstance(self.params[key], bool):
                raise ConfigError(f"method {self.name!r}: {key} must be true or false, got {self.params[key]!r}")
