"""AST-style models: DeiT-shaped audio ViTs with CLS + distillation tokens, prefix pooling."""
from __future__ import annotations

from typing import Any

from prunebench.core.registry import register_model
from prunebench.models.audio_vit import AudioViT, AudioViTConfig
from prunebench.models import formats  # noqa: F401  the audio ViT family's weights reader registers itself


@register_model("ast-tiny", description="AST-style ViT, 192 wide, 6 deep, 3 heads, 16x16 stride 16, 512 frames (CPU default)")
def ast_tiny(**overrides: Any) -> AudioViT:
    """AST-style ViT, 192 wide, 6 deep, 3 heads, stride 16 on 128 mel x 512 frames (256 patches)."""
    config = dict(name="ast-tiny", embed_dim=192, depth=6, num_heads=3, fstride=16, tstride=16, target_frames=512)
    return AudioViT(AudioViTConfig(**{**config, **overrides}))


@register_model("ast-base", description="AST (DeiT-B distilled shape), 768 wide, 12 deep, stride 10, 1024 frames (1212 patches)")
def ast_base(**overrides: Any) -> AudioViT:
    """AST as published: DeiT-B shape, 16x16 patches at stride 10 on 128 mel x 1024 frames."""
    config = dict(name="ast-base", embed_dim=768, depth=12, num_heads=12, fstride=10, tstride=10, target_frames=1024)
    return AudioViT(AudioViTConfig(**{**config, **overrides}))


@register_model("ast-base-s16", description="AST base with non-overlapping patches (stride 16, 512 patches at 1024 frames)")
def ast_base_s16(**overrides: Any) -> AudioViT:
    """AST base shape with stride 16 (AST's audioset_16_16 checkpoint geometry)."""
    config = dict(name="ast-base-s16", embed_dim=768, depth=12, num_heads=12, fstride=16, tstride=16, target_frames=1024)
    return AudioViT(AudioViTConfig(**{**config, **overrides}))
