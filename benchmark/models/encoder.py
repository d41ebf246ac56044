"""The forward every model family shares: embed, blocks with the method hook, final norm, pool, head.

A family (the audio ViTs of audio_vit.py, the Whisper encoder of whisper.py) only says how a
(batch, frames, mel_bins) input becomes tokens (`embed`) and what that costs (`embed_macs`); the
blocks, the method hook between attention and MLP at the reduction layers, the one fused attention
kernel (attention.py) and the pooling are the same code for all, so a method meets every family
through one path.

Key padding (`key_padding=True` with `valid_frames`): clips of different lengths padded to one
batch. Padded frames are zeroed (what a convolution's own padding reads past a clip's end, so
Whisper's stem sees the clip as it would alone); patch tokens whose frames are not all real are
padding: moved after the real tokens of their row, masked as attention keys, left out of mean
pooling and flagged to the method (`TokenState.padding`). A real token then computes what it
computes for the clip alone, as long as the batch's longest clip fits the model's positions
without interpolation (tests/test_key_padding.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn

from prunebench.method_api import Method, ModelDims
from prunebench.method_api.tokens import BlockTrace, TokenState
from prunebench.models.attention import attention_forward


@dataclass(frozen=True)
class EncoderConfig:
    """What every family's config has: its name, the transformer's shape and the classes.
    A family's config adds its own fields (all with defaults) and a `frontend(sample_rate,
    norm_stats)` that makes the front end its weights were trained on."""

    name: str
    embed_dim: int
    depth: int
    num_heads: int
    num_classes: int = 50
    mlp_ratio: float = 4.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def fixed_frames(self) -> Optional[int]:
        """An input length the family keeps whatever the task (Whisper's 30 s window); None: it
        follows the task (prunebench.data.length)."""
        return None

    @property
    def max_frames(self) -> Optional[int]:
        """The longest input its positions cover; None: any (audio ViTs interpolate theirs)."""
        return None


class TokenEncoder(nn.Module):
    """Base class of the model families. Subclasses set `config`, `num_prefix_tokens`, `head`,
    `blocks` (timm Blocks), `final_norm`, `track_provenance`, `method`, and implement `embed`,
    `dims`, `grid_for_frames` and `embed_macs`."""

    config: object
    num_prefix_tokens: int
    method: Optional[Method]
    track_provenance: bool
    blocks: nn.ModuleList
    final_norm: nn.Module
    head: nn.Module
    supports_key_padding: bool = True  # a family whose forward cannot mask padding says False

    # -- what a family provides ---------------------------------------------------------------
    def embed(self, fbank: torch.Tensor, time_offset: int = 0) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """(b, frames, mel) -> (tokens (b, prefix + patches, dim) with positions, patch grid)."""
        raise NotImplementedError

    def dims(self, grid: Optional[Tuple[int, int]] = None) -> ModelDims:
        raise NotImplementedError

    def grid_for_frames(self, frames: int) -> Tuple[int, int]:
        raise NotImplementedError

    def embed_macs(self, grid: Tuple[int, int]) -> int:
        """MACs per sample of turning an input of this patch grid into tokens."""
        raise NotImplementedError

    # -- the shared forward ---------------------------------------------------------------------
    def forward(self, fbank: torch.Tensor, method: Optional[Method] = None) -> torch.Tensor:
        """Normalised features (b, frames, mel_bins) -> logits (b, classes)."""
        return self.forward_with_state(fbank, method)[0]

    def forward_with_state(
        self,
        fbank: torch.Tensor,
        method: Optional[Method] = None,
        valid_frames: Optional[torch.Tensor] = None,
        *,
        track_provenance: Optional[bool] = None,
        time_offset: int = 0,
        key_padding: bool = False,
    ) -> Tuple[torch.Tensor, TokenState]:
        """Logits and the token state (per-layer token trace, provenance of surviving tokens).

        `time_offset`: the input starts that many patch columns into the nominal grid (training on
        random crops uses the crop's own positions). `key_padding`: mask the frames past each
        clip's `valid_frames` (see the module docstring)."""
        x, state = self.hidden_states(fbank, method, valid_frames, track_provenance=track_provenance,
                                      time_offset=time_offset, key_padding=key_padding)
        return self.head(self._pool(x, state)), state

    def encode(self, fbank: torch.Tensor, method: Optional[Method] = None,
               valid_frames: Optional[torch.Tensor] = None, key_padding: bool = False) -> Tuple[torch.Tensor, TokenState]:
        """The pooled representation the head reads (b, dim), and the token state (a probe fits on it)."""
        x, state = self.hidden_states(fbank, method, valid_frames, track_provenance=False, key_padding=key_padding)
        return self._pool(x, state), state

    def encode_per_block(self, fbank: torch.Tensor) -> torch.Tensor:
        """(b, depth, dim): after each block k, the pooled representation a copy of this model cut
        after block k (`depth: k`, the same final norm) reads. One unpruned forward for all k."""
        x, grid = self.embed(fbank)
        state = TokenState.start(x.shape[0], self.num_prefix_tokens, grid, x.device, False)
        dims = self.dims(grid)
        pooled = []
        for index, block in enumerate(self.blocks):
            x = self._block(block, x, state, None, index, dims)
            pooled.append(self._pool(self.final_norm(x), state))
        return torch.stack(pooled, dim=1)

    def hidden_states(
        self,
        fbank: torch.Tensor,
        method: Optional[Method] = None,
        valid_frames: Optional[torch.Tensor] = None,
        *,
        track_provenance: Optional[bool] = None,
        time_offset: int = 0,
        key_padding: bool = False,
    ) -> Tuple[torch.Tensor, TokenState]:
        """The final norm's output, every token (b, tokens, dim), and the token state."""
        method = method if method is not None else self.method
        track = self.track_provenance if track_provenance is None else track_provenance
        masked = key_padding and valid_frames is not None
        if masked:
            real = torch.arange(fbank.shape[1], device=fbank.device)[None, :] < valid_frames.to(fbank.device)[:, None]
            fbank = fbank * real.unsqueeze(-1).to(fbank.dtype)
        x, grid = self.embed(fbank, time_offset)
        state = TokenState.start(x.shape[0], self.num_prefix_tokens, grid, x.device, track)
        dims = self.dims(grid)
        layers = set(method.reduction_layers(dims.depth)) if method is not None else set()
        if method is not None:
            method.begin(fbank, state, dims, valid_frames)
        if masked:
            x = self._mask_padding(x, state, grid, valid_frames)
        for index, block in enumerate(self.blocks):
            x = self._block(block, x, state, method if index in layers else None, index, dims)
        return self.final_norm(x), state

    def real_columns(self, valid_frames: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
        """(b,) patch columns made only of real frames: the grid the clip has alone."""
        columns = [min(grid[1], max(1, self.grid_for_frames(int(v))[1])) for v in valid_frames.tolist()]
        return torch.tensor(columns, dtype=torch.long)

    def _mask_padding(self, x: torch.Tensor, state: TokenState, grid: Tuple[int, int],
                      valid_frames: torch.Tensor) -> torch.Tensor:
        """Flag the padding tokens and move each row's real tokens first (grid order kept)."""
        columns = self.real_columns(valid_frames, grid).to(x.device)
        column_of_patch = torch.arange(grid[0] * grid[1], device=x.device) % grid[1]
        padding = column_of_patch[None, :] >= columns[:, None]
        state.real_patches = (~padding).sum(dim=1)
        if not bool(padding.any()):
            return x
        order = padding.to(torch.int8).argsort(dim=1, stable=True)
        x = state.keep(x, order)  # a permutation: carried values and provenance follow their tokens
        state.padding = padding.gather(1, order)
        return x

    def _block(self, block, x, state: TokenState, method: Optional[Method], index: int, dims: ModelDims):
        tokens_in = x.shape[1]
        real_in = state.real_counts()
        bias = state.attention_bias()
        wants = method.checked_attention_requests(dims) if method is not None else frozenset()
        attn_out, info = attention_forward(
            block.attn,
            block.norm1(x),
            self.num_prefix_tokens,
            bias=bias,
            want_cls_scores="cls_scores" in wants,
            want_received="received" in wants,
            want_keys="keys" in wants,
            padding=state.padding,
        )
        x = x + block.drop_path1(block.ls1(attn_out))
        method_macs = 0
        if method is not None:
            x = method.reduce(x, state, info, index, dims)
            method_macs = method.overhead_macs(tokens_in, dims)
        x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        real_out = state.real_counts()
        state.trace.append(BlockTrace(tokens_in, x.shape[1], method_macs,
                                      None if real_in is None else real_in + self.num_prefix_tokens,
                                      None if real_out is None else real_out + self.num_prefix_tokens))
        return x

    def _pool(self, x: torch.Tensor, state: TokenState) -> torch.Tensor:
        p = self.num_prefix_tokens
        if self.config.pooling == "prefix":
            return x[:, :p].mean(dim=1)
        patches = x[:, p:]
        if state.sizes is None and state.padding is None:
            mean = patches.mean(dim=1)
        else:
            # Merged tokens stand for several patches: weight them so the mean equals the unmerged
            # one; padding weighs nothing.
            w = state.sizes[:, p:] if state.sizes is not None else patches.new_ones(patches.shape[:2], dtype=torch.float32)
            if state.padding is not None:
                w = w.masked_fill(state.padding, 0)
            w = w.unsqueeze(-1)
            mean = (patches * w).sum(dim=1) / w.sum(dim=1)
        return torch.cat([x[:, 0], mean], dim=-1) if self.config.pooling == "cls+mean" else mean
