"""prunebench: token pruning and merging in audio spectrogram transformers, clean and under noise."""
from benchmark.core.registry import register_corruption, register_method, register_model, register_task
from benchmark.core.version import VERSION as __version__


def load_model(name, checkpoint=None, num_classes=None):
    """A model whose forward takes a normalised fbank (batch, frames, mel_bins) and returns logits.

    `checkpoint`: None (random weights), a local file or folder (prunebench, official AST .pth,
    Transformers AST folder or safetensors, AudioMAE), a Hugging Face Hub id or a zoo name
    (`prunebench list`); the format is read from the contents."""
    from benchmark.models import load_model as _load

    return _load(name, checkpoint=checkpoint, num_classes=num_classes)


__all__ = ["load_model", "register_corruption", "register_method", "register_model", "register_task", "__version__"]
