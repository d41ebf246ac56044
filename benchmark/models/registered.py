"""The config of a registered model, without building its weights: what the weight readers check
a file against."""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch

from prunebench.core.registry import MODELS
from prunebench.models.audio_vit import AudioViTConfig

_CONFIGS: Dict[str, Tuple[Any, AudioViTConfig]] = {}


def registered_config(name: str) -> AudioViTConfig:
    """The config of a registered model, built once on the meta device (no memory allocated)."""
    factory = MODELS.get(name)
    known = _CONFIGS.get(name)
    if known is None or known[0] is not factory:  # re-registered names are rebuilt
        with torch.device("meta"):
            known = _CONFIGS[name] = (factory, factory().config)
    return known[1]
