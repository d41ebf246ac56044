"""Per-forward token bookkeeping carried beside the hidden states.

Two index spaces never mix here:
- a *token index* is a position among the current patch tokens (prefix tokens excluded);
- a *patch id* is a position in the original patch grid (0 .. num_patches - 1, freq-major).
Published pruning code has shifted one into the other (gathering patch ids from the full sequence,
prefix included); keeping them in separate, named tensors is the guard.

Padding. Under a key-padding mask (clips of different lengths in one batch, `pad-batch`), the
patch tokens made only of padding frames are flagged in `TokenState.padding`; they take no part
in attention (masked keys), in pooling, or in any score. The model puts each row's real tokens
first (in grid order) and the padding after them, and the built-in methods keep that layout:
each row's real tokens are a prefix, as many as the clip alone would have (see `real_counts`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch


class MergePlan:
    """How the current patch tokens combine into fewer ones, decided once and applied alike to the
    hidden states, sizes, carried values and provenance (see `TokenState.merge`).

    `new_index[b, t]` is the new token index (0 .. num_out - 1) that token t joins, or -1 when it is
    dropped. `sum` adds up the rows that share a destination; subclasses may do it faster for a
    structure they know (ToMe's bipartite plan does), as long as the result is the same.
    """

    def __init__(self, new_index: torch.Tensor, num_out: int):
        self.new_index = new_index
        self.num_out = num_out

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """(b, n, c) -> (b, num_out, c): each new token's sum over the old tokens it holds."""
        b, _, c = values.shape
        dropped = (self.new_index < 0).unsqueeze(-1)
        index = self.new_index.clamp(min=0).unsqueeze(-1).expand(-1, -1, c)
        return values.new_zeros(b, self.num_out, c).scatter_add_(1, index, values.masked_fill(dropped, 0))


@dataclass
class BlockTrace:
    """Tokens (prefix included) seen by one block's attention and by its MLP, per sample."""

    attention_tokens: int
    mlp_tokens: int
    method_macs: int = 0  # the method's own work at this block (scoring, matching), per sample
    # Under a key-padding mask: each row's real tokens (prefix included) at attention and MLP, (b,)
    real_attention: Optional[torch.Tensor] = None
    real_mlp: Optional[torch.Tensor] = None


@dataclass
class TokenState:
    num_prefix: int
    num_patches: int  # patches in the original grid
    grid: Tuple[int, int]  # (freq, time) patches
    # Original patches held by each current patch token: owner[b, p] is the token index of patch p,
    # or -1 once it was dropped. None when provenance tracking is off (timing runs).
    owner: Optional[torch.Tensor] = None
    # Number of original patches merged into each token, prefix included (b, n); None = all ones.
    sizes: Optional[torch.Tensor] = None
    # Add log(sizes) to the attention logits of later blocks (ToMe's proportional attention).
    proportional_attention: bool = False
    # Tokens were merged (ToMe): every patch lives on in some token, so there is no kept set.
    merged: bool = False
    # Per-patch-token values that travel with the tokens (for example input intensity), (b, n_patch).
    carried: Dict[str, torch.Tensor] = field(default_factory=dict)
    trace: List[BlockTrace] = field(default_factory=list)
    # (b, n_patch) bool: the current patch tokens that are padding, under a key-padding mask; None:
    # every token is real (no mask). Real tokens come first in each row.
    padding: Optional[torch.Tensor] = None
    real_patches: Optional[torch.Tensor] = None  # (b,) real patches of each clip's grid, under a mask

    @classmethod
    def start(
        cls, batch: int, num_prefix: int, grid: Tuple[int, int], device: torch.device, track: bool
    ) -> "TokenState":
        num_patches = grid[0] * grid[1]
        owner = None
        if track:
            owner = torch.arange(num_patches, device=device).expand(batch, -1).clone()
        return cls(num_prefix=num_prefix, num_patches=num_patches, grid=grid, owner=owner)

    def keep(self, x: torch.Tensor, keep_idx: torch.Tensor) -> torch.Tensor:
        """Keep the patch tokens at `keep_idx` (b, k token indices, ascending) and all prefix tokens.

        Applies alike to the hidden states, sizes, carried values and provenance; returns the new x.
        """
        p = self.num_prefix
        batch, n_tokens = x.shape[0], x.shape[1] - p
        gather = keep_idx.unsqueeze(-1).expand(-1, -1, x.shape[-1])
        x = torch.cat([x[:, :p], x[:, p:].gather(1, gather)], dim=1)
        if self.sizes is not None:
            self.sizes = torch.cat([self.sizes[:, :p], self.sizes[:, p:].gather(1, keep_idx)], dim=1)
        for name, values in self.carried.items():
            self.carried[name] = values.gather(1, keep_idx)
        if self.padding is not None:
            self.padding = self.padding.gather(1, keep_idx)
        if self.owner is not None:
            new_index = torch.full((batch, n_tokens), -1, dtype=torch.long, device=x.device)
            ranks = torch.arange(keep_idx.shape[1], device=x.device).expand(batch, -1)
            new_index.scatter_(1, keep_idx, ranks)
            self.relabel(new_index)
        return x

    def keep_and_fuse(
        self, x: torch.Tensor, keep_idx: torch.Tensor, drop_idx: torch.Tensor, weights: torch.Tensor,
        normalise: bool = False,
    ) -> torch.Tensor:
        """Keep `keep_idx` and fuse the `drop_idx` tokens into one appended token (EViT).
        Without a key-padding mask only (under one, `keep_and_fuse_rows`).

        The fused token is the `weights`-weighted sum of the dropped tokens, as EViT's code has it
        (`sum(non_topk * non_topk_attn)`, the CLS attention not renormalised), or with `normalise`
        their weighted average. It holds all their patches, its size is the sum of theirs (so mean
        pooling stays exact), and it is flagged in `carried["fused"]` so selection statistics can
        tell it from a kept patch.
        """
        p = self.num_prefix
        batch, n_tokens, dim = x.shape[0], x.shape[1] - p, x.shape[-1]
        patches = x[:, p:]
        dropped = patches.gather(1, drop_idx.unsqueeze(-1).expand(-1, -1, dim))
        w = weights.gather(1, drop_idx).to(x.dtype)
        if normalise:
            w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        fused = w.unsqueeze(1) @ dropped  # (b, 1, dim): a matrix product, as the MAC count has it
        sizes = self.sizes if self.sizes is not None else self._unit_sizes(x)
        patch_sizes = sizes[:, p:]
        dropped_sizes = patch_sizes.gather(1, drop_idx)
        self.carried.setdefault("fused", torch.zeros(batch, n_tokens, device=x.device))
        fused_values = {}
        for name, values in self.carried.items():
            v = values.gather(1, drop_idx)
            fused_values[name] = (v * dropped_sizes).sum(1, keepdim=True) / dropped_sizes.sum(1, keepdim=True)
        fused_values["fused"] = self.carried["fused"].new_ones(batch, 1)
        fused_size = dropped_sizes.sum(dim=1, keepdim=True)
        if self.owner is not None:
            new_index = torch.full((batch, n_tokens), keep_idx.shape[1], dtype=torch.long, device=x.device)
            ranks = torch.arange(keep_idx.shape[1], device=x.device).expand(batch, -1)
            new_index.scatter_(1, keep_idx, ranks)
            self.relabel(new_index)
        owner, self.owner = self.owner, None  # relabelled above; keep() must not relabel again
        self.sizes = sizes
        x = self.keep(x, keep_idx)
        self.owner = owner
        self.sizes = torch.cat([self.sizes, fused_size], dim=1)
        for name in self.carried:
            self.carried[name] = torch.cat([self.carried[name], fused_values[name]], dim=1)
        return torch.cat([x, fused], dim=1)

    def merge(self, x: torch.Tensor, plan: MergePlan) -> torch.Tensor:
        """Combine the patch tokens as `plan` says; prefix tokens are never touched.

        A new token is the size-weighted average of the tokens it holds (so it stands for its
        patches as their mean), its size is the sum of theirs, carried values are averaged with the
        same weights, and every original patch follows its token to the new index.
        """
        p = self.num_prefix
        sizes = self.sizes if self.sizes is not None else self._unit_sizes(x)
        weight = sizes[:, p:].unsqueeze(-1)  # (b, n, 1), float32
        new_sizes = plan.sum(weight)
        merged = (plan.sum(x[:, p:] * weight) / new_sizes).to(x.dtype)  # summed in float32 at least
        for name, values in self.carried.items():
            self.carried[name] = (plan.sum(values.unsqueeze(-1) * weight) / new_sizes).squeeze(-1)
        self.sizes = torch.cat([sizes[:, :p], new_sizes.squeeze(-1)], dim=1)
        if self.padding is not None:  # a new token is real when it holds a real token
            real = plan.sum((~self.padding).unsqueeze(-1).to(torch.float32))
            self.padding = real.squeeze(-1) <= 0
        self.relabel(plan.new_index)
        self.merged = True
        return torch.cat([x[:, :p], merged], dim=1)

    def keep_and_fuse_rows(
        self, x: torch.Tensor, keep_idx: torch.Tensor, dropped: torch.Tensor, weights: torch.Tensor,
        normalise: bool = False,
    ) -> torch.Tensor:
        """`keep_and_fuse` under a key-padding mask: each row keeps `keep_idx` (ascending; its real
        tokens first, then padding) and fuses its own dropped real tokens (`dropped`, (b, n_patch)
        bool) into one token placed right after its kept real tokens, so real tokens stay a prefix.
        A row that dropped no real token gets an empty padding token there instead. Padding is
        never fused: it has no weight, no size and no patch in the fused token."""
        p = self.num_prefix
        batch, n_tokens, dim = x.shape[0], x.shape[1] - p, x.shape[-1]
        device = x.device
        w = weights.masked_fill(~dropped, 0).to(x.dtype)
        if normalise:
            w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        fused = w.unsqueeze(1) @ x[:, p:]  # (b, 1, dim)
        sizes = self.sizes if self.sizes is not None else self._unit_sizes(x)
        dropped_sizes = sizes[:, p:] * dropped
        has = dropped.any(dim=1)
        fused_size = dropped_sizes.sum(dim=1, keepdim=True)
        self.carried.setdefault("fused", torch.zeros(batch, n_tokens, device=device))
        fused_values = {name: (v * dropped_sizes).sum(1, keepdim=True) / fused_size.clamp_min(1e-12)
                        for name, v in self.carried.items()}
        fused_values["fused"] = has.to(self.carried["fused"].dtype).unsqueeze(1)
        padding = self.padding if self.padding is not None else torch.zeros_like(dropped)
        kept_real = (~padding).gather(1, keep_idx).sum(dim=1)  # (b,)
        k = keep_idx.shape[1]
        rank = torch.arange(k, device=device).expand(batch, -1)
        slot = rank + (rank >= kept_real[:, None]).long()  # kept rank j -> slot j, or j + 1 after the fused one
        width = int((kept_real + has.long()).max())
        # slot s reads source s (< kept_real), the fused token (k), or source s - 1
        slots = torch.arange(k + 1, device=device).expand(batch, -1)
        source = torch.where(slots < kept_real[:, None], slots,
                             torch.where(slots == kept_real[:, None], torch.full_like(slots, k), slots - 1))[:, :width]
        if self.owner is not None:
            new_index = torch.full((batch, n_tokens), -1, dtype=torch.long, device=device)
            new_index.scatter_(1, keep_idx, slot)
            new_index = torch.where(dropped, kept_real[:, None].expand(-1, n_tokens), new_index)
            self.relabel(torch.where(new_index < width, new_index, torch.full_like(new_index, -1)))

        def place(kept_part: torch.Tensor, fused_part: torch.Tensor) -> torch.Tensor:
            both = torch.cat([kept_part, fused_part], dim=1)
            index = source if both.ndim == 2 else source.unsqueeze(-1).expand(-1, -1, both.shape[-1])
            return both.gather(1, index)

        patches = place(x[:, p:].gather(1, keep_idx.unsqueeze(-1).expand(-1, -1, dim)), fused.to(x.dtype))
        patch_sizes = place(sizes[:, p:].gather(1, keep_idx), torch.where(has[:, None], fused_size, torch.ones_like(fused_size)))
        self.sizes = torch.cat([sizes[:, :p], patch_sizes], dim=1)
        for name in list(self.carried):
            self.carried[name] = place(self.carried[name].gather(1, keep_idx), fused_values[name])
        self.padding = place(padding.gather(1, keep_idx), (~has).unsqueeze(1))
        return torch.cat([x[:, :p], patches], dim=1)

    def real_counts(self) -> Optional[torch.Tensor]:
        """(b,) real patch tokens of each row (a prefix of the row); None without a mask."""
        return None if self.padding is None else (~self.padding).sum(dim=1)

    @staticmethod
    def _unit_sizes(x: torch.Tensor) -> torch.Tensor:
        """All-ones sizes, float32 whatever x is (bf16 cannot count past 256 exactly)."""
        return torch.ones(x.shape[0], x.shape[1], dtype=torch.float32, device=x.device)

    def relabel(self, new_index: torch.Tensor) -> None:
        """Move provenance to new token indices: new_index[b, t] is old token t's new index or -1."""
        if self.owner is None:
            return
        alive = self.owner >= 0
        moved = new_index.gather(1, self.owner.clamp(min=0))
        self.owner = torch.where(alive, moved, torch.full_like(moved, -1))

    def kept_patch_mask(self) -> Optional[torch.Tensor]:
        """(b, num_patches) bool: original patches that still live in a token, a fused
        (EViT inattentive) token excepted. None without provenance, and after a merge: merging
        drops no patch, so a kept-patch map (and its clean-vs-noisy overlap) would read "all kept"
        and mean nothing; use `owner` for the partition instead."""
        if self.owner is None or self.merged:
            return None
        alive = self.owner >= 0
        fused = self.carried.get("fused")
        if fused is None:
            return alive
        in_fused = fused.gather(1, self.owner.clamp(min=0)) > 0
        return alive & ~in_fused

    def attention_bias(self) -> Optional[torch.Tensor]:
        """Proportional attention: log token size added to the attention logits, (b, 1, 1, n)."""
        if self.sizes is None or not self.proportional_attention:
            return None
        return self.sizes.log()[:, None, None, :]
