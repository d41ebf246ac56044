"""Analytic multiply-accumulate counts from the per-layer token trace.

Counted: every matrix product of the model (patch embedding, qkv, attention QK^T and AV, output
projection, MLP, head) and the method's own work (scoring, matching), per sample. Not counted:
element-wise work (norms, softmax, GELU, residual adds, bias adds, gathers). FLOPs = 2 x MACs:
every figure here is in MACs, labelled so; `benchmark/measure/counters.py` checks them against counters.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from prunebench.method_api.tokens import BlockTrace

PARTS = ("patch_embed", "qkv", "attn_qk", "attn_av", "proj", "mlp", "head", "method")


def macs_by_part(
    embed_dim: int, mlp_ratio: float, embed_macs: int, num_classes: int, trace: List[BlockTrace],
    head_inputs: Optional[int] = None,
) -> Dict[str, int]:
    """MACs per sample of one forward, by part; `embed_macs` is the model's input embedding (a
    patch convolution, Whisper's two-convolution stem), `trace` holds one entry per block,
    `head_inputs` the width the head reads (None: embed_dim; CLS + mean pooling: twice it)."""
    d = embed_dim
    hidden = int(d * mlp_ratio)
    parts = dict.fromkeys(PARTS, 0)
    parts["patch_embed"] = embed_macs
    for block in trace:
        n, m = block.attention_tokens, block.mlp_tokens
        parts["qkv"] += n * d * 3 * d
        parts["attn_qk"] += n * n * d
        parts["attn_av"] += n * n * d
        parts["proj"] += n * d * d
        parts["mlp"] += 2 * m * d * hidden
        parts["method"] += block.method_macs
    parts["head"] = (head_inputs or d) * num_classes
    return parts


def model_macs(model, grid: Tuple[int, int], trace: List[BlockTrace]) -> Dict[str, int]:
    """`macs_by_part` for a model (any family) and a forward's trace."""
    c = model.config
    head_inputs = 2 * c.embed_dim if getattr(c, "pooling", None) == "cls+mean" else c.embed_dim
    return macs_by_part(c.embed_dim, c.mlp_ratio, model.embed_macs(tuple(grid)), c.num_classes, trace, head_inputs)


def clip_macs(model, method, frames: int) -> int:
    """MACs per sample of `method` on one clip of `frames` real frames run alone (its own grid, no
    padding): the trace its schedule gives (`patch_tokens_after`, which validate-method holds every
    method to, and which under a key-padding mask each row's real tokens follow). The compute a
    batch spends beyond this is spent on padding."""
    grid = model.grid_for_frames(int(frames))
    dims = model.dims(grid)
    n, p = grid[0] * grid[1], dims.num_prefix
    layers = set(method.reduction_layers(dims.depth)) if method is not None else set()
    trace = []
    for index in range(dims.depth):
        tokens_in, overhead = n + p, 0
        if index in layers:
            overhead = method.overhead_macs(tokens_in, dims)
            n = method.patch_tokens_after(n, index, dims)
        trace.append(BlockTrace(tokens_in, n + p, overhead))
    return sum(model_macs(model, grid, trace).values())


FLOPS_PER_MAC = 2  # one multiply-accumulate = one multiply + one add


def forward_macs(model, method, fbank: torch.Tensor, valid_frames: Optional[torch.Tensor] = None) -> Dict[str, int]:
    """MACs per sample by part of the forward the model runs with `method` on this input."""
    with torch.inference_mode():
        _, state = model.forward_with_state(fbank, method, valid_frames, track_provenance=False)
    return model_macs(model, state.grid, state.trace)
