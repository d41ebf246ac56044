"""The Whisper encoder family: tokens are time frames, on the same blocks and attention path as AST.

Whisper's encoder (Radford et al. 2022; openai/whisper model.py `AudioEncoder`): two convolutions
over time (mel -> d, kernel 3; d -> d, kernel 3, stride 2), GELU after each, fixed sinusoidal
positions (1500, the 30 s window), pre-LN blocks, a final LayerNorm (`ln_post`). Its blocks are
timm `Block`s here: the same attention function (attention.py, one fused kernel for every method)
and the method hook between attention and MLP that the audio ViTs use (encoder.py). Whisper's
attention has no key bias; a key bias adds the same logit to every key of a query, which the
softmax ignores, so timm's fused qkv bias is loaded with zeros there and nothing changes.

Tokens: the grid is (1, T), T = frames / 2; no prefix tokens; size-weighted mean pooling over the
tokens, then a linear head (a probe on the frozen encoder, or fine-tuned). The input modes are
registered as names: `whisper-tiny` runs at the clip's own length (positions cropped to the first
T), `whisper-tiny-pad30` on Whisper's 30 s window (1500 tokens, as it was trained).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, ClassVar, Optional, Tuple

import torch
import torch.nn as nn
from timm.models.vision_transformer import Block

from prunebench.core.errors import DataError
from prunebench.method_api import Method, ModelDims
from prunebench.core.registry import MODELS
from prunebench.audio.whisper import FRAMES_PER_TOKEN, PAD30_FRAMES, WhisperFrontEnd
from prunebench.models.encoder import EncoderConfig, TokenEncoder
from prunebench.models import whisper_formats  # noqa: F401  the Whisper family's weights reader registers itself

INPUT_MODES = ("native", "pad30")
NATIVE_NOMINAL_FRAMES = 500  # 5 s: the nominal length of the native mode (timing, validation)


@dataclass(frozen=True)
class WhisperConfig(EncoderConfig):
    num_mel_bins: int = 80  # 128 for large-v3
    positions: int = 1500  # encoder positions: 30 s of 2-frame tokens
    input: str = "native"  # "native": the clip's own frames; "pad30": Whisper's 30 s window
    target_frames: int = NATIVE_NOMINAL_FRAMES  # nominal input frames (3000 for pad30)
    sample_rate: int = 16000
    norm_eps: float = 1e-5  # Whisper's LayerNorms: PyTorch's default
    pooling: str = "mean"
    patch_size: int = FRAMES_PER_TOKEN  # frames per token: the shortest input is one token
    extra: dict = field(default_factory=dict)
    family: ClassVar[str] = "whisper"

    @property
    def fixed_frames(self) -> Optional[int]:
        return PAD30_FRAMES if self.input == "pad30" else None

    @property
    def max_frames(self) -> Optional[int]:
        return self.positions * FRAMES_PER_TOKEN  # a fixed sinusoid table: nothing to interpolate

    def frontend(self, sample_rate: int, norm_stats: Any = None) -> WhisperFrontEnd:
        """Whisper's own log-mel (dataset statistics play no part): native length or 30 s."""
        target = PAD30_FRAMES if self.input == "pad30" else None
        return WhisperFrontEnd(sample_rate, self.num_mel_bins, target, max_frames=self.positions * FRAMES_PER_TOKEN)


class WhisperEncoder(TokenEncoder):
    def __init__(self, config: WhisperConfig):
        super().__init__()
        if config.input not in INPUT_MODES:
            raise DataError(f"model {config.name!r}: input must be one of {', '.join(INPUT_MODES)}, got {config.input!r}")
        self.config = config
        d = config.embed_dim
        self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positions", sinusoids(config.positions, d))
        norm = partial(nn.LayerNorm, eps=config.norm_eps)
        self.blocks = nn.ModuleList(
            Block(d, config.num_heads, mlp_ratio=config.mlp_ratio, qkv_bias=True, norm_layer=norm, act_layer=nn.GELU)
            for _ in range(config.depth)
        )
        self.norm = norm(d)
        self.head = nn.Linear(d, config.num_classes)
        self.num_prefix_tokens = 0
        self.grid = self.grid_for_frames(config.target_frames)
        self.method: Optional[Method] = None
        self.track_provenance = False

    @property
    def final_norm(self) -> nn.Module:
        return self.norm

    def dims(self, grid: Optional[Tuple[int, int]] = None) -> ModelDims:
        c = self.config
        # A token covers 2 frames of all mel bins: the kernel and stride intensity and the
        # kept-frame view use (the convolutions' receptive field is wider, 7 frames).
        token = (c.num_mel_bins, FRAMES_PER_TOKEN)
        return ModelDims(c.depth, c.embed_dim, c.num_heads, 0, grid or self.grid, c.pooling, patch_size=token, stride=token)

    def grid_for_frames(self, frames: int) -> Tuple[int, int]:
        return 1, (frames - 1) // FRAMES_PER_TOKEN + 1

    def embed_macs(self, grid: Tuple[int, int]) -> int:
        """conv1 at every frame (mel x 3 taps), conv2 at every token (d x 3 taps), frames = 2 tokens."""
        c, tokens = self.config, grid[1]
        frames = tokens * FRAMES_PER_TOKEN
        return frames * c.num_mel_bins * 3 * c.embed_dim + tokens * c.embed_dim * 3 * c.embed_dim

    def embed(self, fbank: torch.Tensor, time_offset: int = 0) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = nn.functional.gelu(self.conv1(fbank.transpose(1, 2)))
        x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)  # (b, tokens, d)
        tokens = x.shape[1]
        if time_offset + tokens > self.positions.shape[0]:
            raise DataError(f"model {self.config.name!r}: {tokens} tokens from position {time_offset} exceed its "
                            f"{self.positions.shape[0]} positions (30 s)")
        return x + self.positions[time_offset:time_offset + tokens].to(x.dtype), (1, tokens)

    def adapt_to_frames(self, frames: int, crop: str = "start") -> "WhisperEncoder":
        """A new nominal length; the positions stay (the input uses the first ones; `crop` is the
        audio ViTs' option and has nothing to cut here). Returns self."""
        self.config = replace(self.config, target_frames=frames)
        self.grid = self.grid_for_frames(frames)
        return self


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> torch.Tensor:
    """Whisper's positional embedding: sin of log-spaced timescales, then cos (openai/whisper)."""
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1)


# Shapes of the published encoders (openai/whisper `_MODELS`, ModelDimensions).
SHAPES = {
    "tiny": dict(embed_dim=384, depth=4, num_heads=6),
    "base": dict(embed_dim=512, depth=6, num_heads=8),
    "small": dict(embed_dim=768, depth=12, num_heads=12),
    "medium": dict(embed_dim=1024, depth=24, num_heads=16),
    "large": dict(embed_dim=1280, depth=32, num_heads=20),
    "large-v3": dict(embed_dim=1280, depth=32, num_heads=20, num_mel_bins=128),
}


def _factory(name: str, shape: dict, mode: str):
    def build(**overrides: Any) -> WhisperEncoder:
        frames = PAD30_FRAMES if mode == "pad30" else NATIVE_NOMINAL_FRAMES
        config = dict(name=name, input=mode, target_frames=frames, **shape)
        return WhisperEncoder(WhisperConfig(**{**config, **overrides}))

    build.__doc__ = f"Whisper {name} encoder"
    return build


for _size, _shape in SHAPES.items():
    for _mode in INPUT_MODES:
        _name = f"whisper-{_size}" + ("-pad30" if _mode == "pad30" else "")
        _what = "the clip's own length" if _mode == "native" else "Whisper's 30 s window (1500 tokens)"
        MODELS.add(_name, _factory(_name, _shape, _mode),
                   f"Whisper {_size} encoder, {_shape['embed_dim']} wide, {_shape['depth']} deep, "
                   f"{_shape['num_heads']} heads, {_shape.get('num_mel_bins', 80)} mel; {_what}")
