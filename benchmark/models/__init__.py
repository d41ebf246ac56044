"""Models: the audio ViT adapter, registered architectures and checkpoint loading."""
from .audio_vit import AudioViT, AudioViTConfig
from .checkpoint import build_model, load_model, save_checkpoint, file_sha256

__all__ = ["AudioViT", "AudioViTConfig", "build_model", "load_model", "save_checkpoint", "file_sha256"]
