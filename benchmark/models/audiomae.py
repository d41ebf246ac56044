"""AudioMAE-style models: non-overlapping 16x16 patches, CLS token only, mean pooling over patches.

As AudioMAE's fine-tuned ViT (facebookresearch/AudioMAE, models_vit.py with global_pool): no final
norm after the blocks; the head is fc_norm (LayerNorm, eps 1e-6) + Linear on the patch mean.
"""
from __future__ import annotations

from typing import Any

from prunebench.core.registry import register_model
from prunebench.models.audio_vit import AudioViT, AudioViTConfig

_AUDIOMAE = dict(distillation_token=False, pooling="mean", final_norm=False, norm_eps=1e-6, head_norm_eps=1e-6,
                 fstride=16, tstride=16)


@register_model("audiomae-base", description="AudioMAE ViT-B: 768 wide, 12 deep, stride 16, 1024 frames (512 patches), mean pooling")
def audiomae_base(**overrides: Any) -> AudioViT:
    """AudioMAE's ViT-B/16 on 128 mel x 1024 frames, CLS token, mean pooling, fc_norm head."""
    config = dict(name="audiomae-base", embed_dim=768, depth=12, num_heads=12, target_frames=1024, **_AUDIOMAE)
    return AudioViT(AudioViTConfig(**{**config, **overrides}))


@register_model("audiomae-tiny", description="AudioMAE-style ViT, 192 wide, 6 deep, stride 16, 512 frames, mean pooling (CPU)")
def audiomae_tiny(**overrides: Any) -> AudioViT:
    """The mean-pooled counterpart of ast-tiny: 256 patches, one prefix token (CLS)."""
    config = dict(name="audiomae-tiny", embed_dim=192, depth=6, num_heads=3, target_frames=512, **_AUDIOMAE)
    return AudioViT(AudioViTConfig(**{**config, **overrides}))
