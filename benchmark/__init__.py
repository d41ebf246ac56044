"""prunebench: token pruning and merging in audio spectrogram transformers, clean and under noise."""
from prunebench.core.registry import register_corruption, register_method, register_metric, register_model, register_task
from prunebench.core.version import VERSION as __version__

# The method API, so that a plugin is one import line: `from prunebench import ScorePruning, register_method`.
# Resolved on first use, so that importing the package loads no torch.
_METHOD_API = ("AttentionInfo", "MergePlan", "Method", "ModelDims", "ScorePruning", "TokenState", "default_reduction_layers",
               "kept_count", "patch_statistic")
# What a plugin refuses bad parameters with (one line naming the key, exit 2 from the CLI).
_PARAMS_API = ("ConfigError", "require_number")


def __getattr__(name: str):
    if name in _METHOD_API:
        import prunebench.method_api as method_api

        return getattr(method_api, name)
    if name == "ConfigError":
        from prunebench.core.errors import ConfigError

        return ConfigError
    if name == "require_number":
        from prunebench.core.params import require_number

        return require_number
    raise AttributeError(f"module 'prunebench' has no attribute {name!r}")


def load_model(name, checkpoint=None, num_classes=None, execution="auto"):
    """A model whose forward takes a normalised fbank (batch, frames, mel_bins) and returns logits.

    `checkpoint`: None (random weights), a local file or folder (prunebench, official AST .pth,
    Transformers AST folder or safetensors, AudioMAE, Whisper), a Hugging Face Hub id or a zoo name
    (`prunebench list`); the format is read from the contents. A pretrained backbone without a head
    (e.g. the zoo's whisper-base) needs `num_classes`: its encoder with a fresh, untrained head.
    `execution`: the CPU inference path, "auto" (fast where oneDNN runs), "fast" or "eager"
    (docs/cpu-speed.md)."""
    from prunebench.models import load_model as _load

    return _load(name, checkpoint=checkpoint, num_classes=num_classes, execution=execution)


__all__ = ["AttentionInfo", "ConfigError", "MergePlan", "Method", "ModelDims", "ScorePruning", "TokenState",
           "default_reduction_layers", "kept_count", "load_model", "patch_statistic", "register_corruption",
           "register_method", "register_metric", "register_model", "register_task", "require_number", "__version__"]
