"""Models: the audio ViT adapter, registered architectures, checkpoint formats and loading."""
from .audio_vit import AudioViT, AudioViTConfig
from .checkpoint import (
    build_model, checkpoint_sha256, file_sha256, load_backbone, load_model, registered_config, save_checkpoint,
)
from .hub import resolve_checkpoint

__all__ = ["AudioViT", "AudioViTConfig", "build_model", "checkpoint_sha256", "file_sha256", "load_backbone",
           "load_model", "registered_config", "resolve_checkpoint", "save_checkpoint"]
