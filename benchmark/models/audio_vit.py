"""The audio ViT family (AST, AudioMAE): an audio spectrogram transformer on timm's VisionTransformer.

timm provides the parts (patch embedding slot, prefix tokens, positional embedding, blocks, final
norm); this module embeds a normalised fbank (batch, frames, mel_bins), the input layout of AST and
Transformers, into prefix + patch tokens, states `num_prefix_tokens` (2 for AST: CLS +
distillation) and the patch grid (freq x time). The forward with the method hook and the pooling
(prefix-token average, or size-weighted mean over patch tokens) is encoder.py's, shared by every
family. No timm class is patched: the blocks' own submodules are called in order.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from typing import ClassVar, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from prunebench.audio.kaldi import FrontEnd
from prunebench.method_api import Method, ModelDims
from prunebench.models.encoder import EncoderConfig, TokenEncoder


@dataclass(frozen=True)
class AudioViTConfig(EncoderConfig):
    patch_size: int = 16
    fstride: int = 16
    tstride: int = 16
    num_mel_bins: int = 128
    target_frames: int = 1024
    distillation_token: bool = True  # AST: CLS + distillation token
    # "prefix": mean of the prefix tokens (AST); "mean": patch mean (AudioMAE); "cls+mean": CLS
    # concatenated with the patch mean (DINOv2's linear-probe head), twice the width into the head
    pooling: str = "prefix"
    drop_path_rate: float = 0.0
    sample_rate: int = 16000
    # LayerNorm epsilons, so published weights give their own logits: timm / DeiT / AudioMAE blocks
    # use 1e-6, AST's head nn.LayerNorm's default 1e-5, Transformers' AST 1e-12 everywhere.
    norm_eps: float = 1e-6
    head_norm_eps: float = 1e-5
    final_norm: bool = True  # AudioMAE's mean-pooled models have none (their head starts with fc_norm)
    layer_scale: Optional[float] = None  # initial layer-scale (DINOv2, CaiT); None: blocks without one
    extra: dict = field(default_factory=dict)
    family: ClassVar[str] = "vit"

    def frontend(self, sample_rate: int, norm_stats: Tuple[float, float]) -> FrontEnd:
        """The Kaldi fbank AST and AudioMAE were trained on, padded to the model's frame count."""
        return FrontEnd(sample_rate, self.num_mel_bins, self.target_frames, norm_stats[0], norm_stats[1])


class AudioPatchEmbed(nn.Module):
    """1-channel conv patch embedding with a stride of its own per axis (AST: 10 or 16)."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, fstride=16, tstride=16, bias=True, **_):
        super().__init__()
        self.patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        self.stride = (fstride, tstride)
        self.img_size = tuple(img_size)
        self.grid_size = grid_for(self.img_size, self.patch_size, self.stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 1, mel, frames) -> (b, patches, dim), patches ordered freq-major as AST."""
        return self.proj(x).flatten(2).transpose(1, 2)


def grid_for(img_size: Tuple[int, int], patch: Tuple[int, int], stride: Tuple[int, int]) -> Tuple[int, int]:
    mel, frames = img_size
    return (mel - patch[0]) // stride[0] + 1, (frames - patch[1]) // stride[1] + 1


class AudioViT(TokenEncoder):
    def __init__(self, config: AudioViTConfig):
        super().__init__()
        self.config = config
        self.vit = VisionTransformer(
            img_size=(config.num_mel_bins, config.target_frames),
            patch_size=config.patch_size,
            in_chans=1,
            num_classes=0,
            global_pool="",
            embed_dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            reg_tokens=1 if config.distillation_token else 0,
            drop_path_rate=config.drop_path_rate,
            init_values=config.layer_scale,
            norm_layer=partial(nn.LayerNorm, eps=config.norm_eps),
            final_norm=config.final_norm,
            embed_layer=partial(AudioPatchEmbed, fstride=config.fstride, tstride=config.tstride),
        )
        self.num_prefix_tokens = self.vit.num_prefix_tokens
        self.grid = self.vit.patch_embed.grid_size
        # Start from 2-D sin-cos positions (as AudioMAE): a model trained from scratch on little
        # data then knows frequency and time position from step one. Checkpoints overwrite it.
        with torch.no_grad():
            pos = self.vit.pos_embed
            pos[:, self.num_prefix_tokens:] = sincos_2d(self.grid, config.embed_dim).to(pos.device)
        # AST's head: LayerNorm + Linear on the pooled token (AudioMAE: fc_norm + head, the same).
        pooled = 2 * config.embed_dim if config.pooling == "cls+mean" else config.embed_dim
        self.head = nn.Sequential(nn.LayerNorm(pooled, eps=config.head_norm_eps), nn.Linear(pooled, config.num_classes))
        self.method: Optional[Method] = None  # used when forward() is called without one
        self.track_provenance = False

    # -- what methods need to know ----------------------------------------------------------
    @property
    def blocks(self) -> nn.ModuleList:
        return self.vit.blocks

    def dims(self, grid: Optional[Tuple[int, int]] = None) -> ModelDims:
        c, pe = self.config, self.vit.patch_embed
        return ModelDims(c.depth, c.embed_dim, c.num_heads, self.num_prefix_tokens, grid or self.grid, c.pooling,
                         patch_size=tuple(pe.patch_size), stride=tuple(pe.stride))

    def grid_for_frames(self, frames: int) -> Tuple[int, int]:
        pe = self.vit.patch_embed
        return grid_for((self.config.num_mel_bins, frames), pe.patch_size, pe.stride)

    def adapt_to_frames(self, frames: int, crop: str = "center") -> "AudioViT":
        """Change the nominal input length for good, as AST does when it fine-tunes a model on
        clips of another length: positional embeddings cropped (`crop="center"`: AST's middle cut;
        "start": the first columns) or bilinearly interpolated, per axis. Returns self."""
        grid = self.grid_for_frames(frames)
        if grid[1] < 1:
            raise ValueError(f"{frames} frames are fewer than one {self.config.patch_size}-frame patch")
        p = self.num_prefix_tokens
        with torch.no_grad():
            pos = self.vit.pos_embed
            patch_pos = adapt_positions(pos[:, p:], self.grid, grid, crop=crop)
            self.vit.pos_embed = nn.Parameter(torch.cat([pos[:, :p], patch_pos], dim=1), requires_grad=pos.requires_grad)
        pe = self.vit.patch_embed
        pe.img_size, pe.grid_size, pe.num_patches = (self.config.num_mel_bins, frames), grid, grid[0] * grid[1]
        self.grid = grid
        self.config = replace(self.config, target_frames=frames)
        return self

    def embed_macs(self, grid: Tuple[int, int]) -> int:
        """The patch convolution: one kernel of patch x patch pixels per patch and channel."""
        p = self.config.patch_size
        return grid[0] * grid[1] * p * p * self.config.embed_dim

    @property
    def final_norm(self) -> nn.Module:
        return self.vit.norm

    def embed(self, fbank: torch.Tensor, time_offset: int = 0) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.vit.patch_embed(fbank.transpose(1, 2).unsqueeze(1))
        grid = self.grid_for_frames(fbank.shape[1])
        x = self._add_prefix_and_positions(x, grid, time_offset)
        return self.vit.norm_pre(x), grid

    def _add_prefix_and_positions(self, x: torch.Tensor, grid: Tuple[int, int], time_offset: int = 0) -> torch.Tensor:
        vit = self.vit
        p = self.num_prefix_tokens
        pos = vit.pos_embed
        prefix_pos, patch_pos = pos[:, :p], pos[:, p:]
        if time_offset:
            full = patch_pos.reshape(1, self.grid[0], self.grid[1], -1)
            patch_pos = full[:, :, time_offset:time_offset + grid[1]].reshape(1, -1, full.shape[-1])
        elif tuple(grid) != tuple(self.grid):
            patch_pos = adapt_positions(patch_pos, self.grid, grid)
        prefix = [vit.cls_token.expand(x.shape[0], -1, -1)]
        if vit.reg_token is not None:
            prefix.append(vit.reg_token.expand(x.shape[0], -1, -1))
        prefix = torch.cat(prefix, dim=1) + prefix_pos
        return vit.pos_drop(torch.cat([prefix, x + patch_pos], dim=1))


def sincos_2d(grid: Tuple[int, int], dim: int) -> torch.Tensor:
    """(1, freq*time, dim) fixed 2-D sin-cos embedding: half the channels encode the frequency
    row, half the time column (MAE's construction), freq-major like the patches."""
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]), indexing="ij")
    parts = []
    for coord in (rows.reshape(-1), cols.reshape(-1)):
        angles = coord[:, None].double() * omega[None]
        parts += [angles.sin(), angles.cos()]
    emb = torch.cat(parts, dim=1)
    if emb.shape[1] < dim:  # dim not divisible by 4
        emb = torch.nn.functional.pad(emb, (0, dim - emb.shape[1]))
    return emb.float().unsqueeze(0)


def adapt_positions(
    patch_pos: torch.Tensor, old: Tuple[int, int], new: Tuple[int, int], crop: str = "start"
) -> torch.Tensor:
    """Positional embeddings (1, old_f*old_t, d) for another grid (freq, time), axis by axis in
    AST's order (time, then frequency): an axis that shrinks is cut, one that grows is bilinearly
    interpolated (align_corners=False, as AST).

    `crop="start"` keeps the first rows/columns: right for a shorter input at run time, whose frames
    sat at the start of the padded nominal input. `crop="center"` keeps the middle, as AST does when
    it adapts a pretrained model to a new length for fine-tuning (start = old // 2 - new // 2)."""
    if crop not in ("start", "center"):
        raise ValueError(f"crop must be 'start' or 'center', got {crop!r}")
    d = patch_pos.shape[-1]
    grid = patch_pos.reshape(1, old[0], old[1], d).permute(0, 3, 1, 2)  # (1, d, freq, time)
    grid = _fit_axis(grid, 3, new[1], crop)
    grid = _fit_axis(grid, 2, new[0], crop)
    return grid.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], d)


def _fit_axis(grid: torch.Tensor, axis: int, size: int, crop: str) -> torch.Tensor:
    n = grid.shape[axis]
    if size == n:
        return grid
    if size < n:
        start = n // 2 - size // 2 if crop == "center" else 0
        return grid.narrow(axis, start, size)
    target = list(grid.shape[2:])
    target[axis - 2] = size
    return F.interpolate(grid, size=tuple(target), mode="bilinear", align_corners=False)
