"""Models: the shared token encoder, the audio ViTs and Whisper, weight formats and loading.
May import: core, audio, method."""
from prunebench.models.audio_vit import AudioViT, AudioViTConfig
from prunebench.models.checkpoint import (
    build_model, checkpoint_sha256, file_sha256, load_backbone, load_classifier, load_model, registered_config,
    save_checkpoint,
)
from prunebench.models.hub import resolve_checkpoint

__all__ = ["AudioViT", "AudioViTConfig", "build_model", "checkpoint_sha256", "file_sha256", "load_backbone",
           "load_classifier", "load_model", "registered_config", "resolve_checkpoint", "save_checkpoint"]
