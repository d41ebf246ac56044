"""ToFu: prune in the early blocks, merge with norm-preserving MLERP in the later ones.

Kim, Gurram, Park, Soltanolkotabi, Sun, Hsieh: "Token Fusion: Bridging the Gap between Token
Pruning and Token Merging", WACV 2024 (arXiv 2312.01026). ToMe's bipartite soft matching picks the
tokens to remove (patch tokens split alternately into A and B; each A token's most similar B token
by the cosine similarity of the keys averaged over heads; the r A tokens with the most similar
partners go). What becomes of them depends on depth, because early blocks respond non-linearly
to an interpolated input and late blocks almost linearly:

- blocks up to `prune_until` (default depth // 2, as the public reimplementation in the PiToMe
  repository has it): prune, the r A tokens are dropped and their B partners stay as they were;
- later blocks: MLERP merge, each group (a B token and the A tokens that chose it) becomes their
  average rescaled to the largest norm in the group, so merging does not shrink the feature norm:

      MLERP(x_1..x_g) = mean / ||mean|| * max_i ||x_i||

  (the mean is size-weighted, so a token stands for the patches it holds; a group of one is left
  exactly as it was).

Schedule: the iso schedule of the built-ins, ceil(keep_rate * N) patch tokens leave each reduction
block; one matching removes at most N / 2, so a lower keep rate runs further rounds. Prefix tokens
(CLS, distillation) never take part. Proportional attention off by default (the reimplementation
carries no sizes); `prop_attn: true` turns it on. Under a key-padding mask (clips of different lengths
in one batch) each row matches its own real tokens as the clip alone would; padding is never merged.
MACs: each round's |A| x |B| similarity matrix
(|A| |B| head_dim), as ToMe's; the norms and rescaling are element-wise.
"""
from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Tuple

import torch
import torch.nn.functional as F

from prunebench import AttentionInfo, ConfigError, MergePlan, Method, TokenState, kept_count, register_method, \
    require_number


def bipartite_pairs(keys: torch.Tensor, r: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """ToMe's matching on (b, n, c) keys: token indices of the r A tokens that go, and of their B partners."""
    metric = F.normalize(keys, dim=-1)
    scores = metric[:, 0::2] @ metric[:, 1::2].transpose(1, 2)  # (b, |A|, |B|)
    best, partner = scores.max(dim=-1)
    src = best.argsort(dim=-1, descending=True, stable=True)[:, :r]
    return 2 * src, 2 * partner.gather(1, src) + 1  # A index i is token 2i, B index j token 2j + 1


def plan_from_pairs(n: int, src: torch.Tensor, dst: torch.Tensor) -> MergePlan:
    """Every token at `src` (b, r token indices) joins the token at `dst`; the rest stay, in order."""
    b = src.shape[0]
    stays = torch.ones(b, n, dtype=torch.bool, device=src.device)
    stays.scatter_(1, src, False)
    rank = stays.long().cumsum(dim=1) - 1
    new_index = torch.where(stays, rank, torch.zeros_like(rank))
    new_index.scatter_(1, src, rank.gather(1, dst))
    return MergePlan(new_index, n - src.shape[1])


def kept_indices(n: int, src: torch.Tensor) -> torch.Tensor:
    """(b, n - r) ascending token indices of the tokens not in `src`."""
    stays = torch.ones(src.shape[0], n, dtype=torch.bool, device=src.device)
    stays.scatter_(1, src, False)
    return torch.arange(n, device=src.device).expand(src.shape[0], -1)[stays].view(src.shape[0], -1)


def mlerp_merge(x: torch.Tensor, state: TokenState, plan: MergePlan) -> torch.Tensor:
    """state.merge (size-weighted average, sizes, provenance), then each merged group rescaled to its largest norm."""
    p = state.num_prefix
    dropped = plan.new_index < 0  # padding a row does not need, under a key-padding mask
    norms = x[:, p:].float().norm(dim=-1).masked_fill(dropped, 0)  # (b, n)
    largest = norms.new_zeros(plan.new_index.shape[0], plan.num_out).scatter_reduce(
        1, plan.new_index.clamp(min=0), norms, reduce="amax", include_self=False)
    members = plan.sum(torch.ones_like(norms).unsqueeze(-1)).squeeze(-1)
    x = state.merge(x, plan)
    merged = x[:, p:]
    scale = largest / merged.float().norm(dim=-1).clamp_min(1e-12)
    rescaled = torch.where((members > 1).unsqueeze(-1), (merged * scale.unsqueeze(-1)).to(x.dtype), merged)
    return torch.cat([x[:, :p], rescaled], dim=1)


def padded_plan(row_plans: List[Tuple[torch.Tensor, int]], padding: torch.Tensor) -> MergePlan:
    """One plan for a batch under a key-padding mask, from each row's plan over its real tokens
    (which come first in the row): (new index of each real token, tokens out). Each row's padding
    tokens follow its real ones, as many as the widest row needs; the rest are dropped."""
    b, n = padding.shape
    width = max(out for _, out in row_plans)
    new_index = torch.full((b, n), -1, dtype=torch.long, device=padding.device)
    for row, (index, out) in enumerate(row_plans):
        n_real = index.shape[0]
        if width - out > n - n_real:
            raise RuntimeError("tofu: a row has too few padding tokens to fill the batch's widest row")
        new_index[row, :n_real] = index
        new_index[row, n_real:n_real + width - out] = torch.arange(out, width, device=padding.device)
    return MergePlan(new_index, width)


def rounds(n: int, target: int) -> List[Tuple[int, int]]:
    """(tokens in, tokens removed) of each matching taking n patch tokens down to target."""
    out = []
    while n > target:
        r = min(n - target, n // 2)
        out.append((n, r))
        n -= r
    return out


@register_method("tofu")
class ToFu(Method):
    """ToFu: bipartite matching; prune the matched tokens early, MLERP-merge them (norm kept) late."""

    defaults: Dict[str, Any] = {"keep_rate": 0.7, "layers": None, "prune_until": None, "prop_attn": False}
    id_params = ("keep_rate",)
    identity_params = ({"keep_rate": 1.0},)
    validation_params = ({}, {"keep_rate": 0.3}, {"keep_rate": 0.5, "prop_attn": True},
                         {"prune_until": -1}, {"prune_until": 3, "layers": [0, 2]})

    def validate(self) -> None:
        p = self.params
        require_number("method 'tofu'", "keep_rate", p["keep_rate"], 0, 1, lo_open=True)
        if p["prune_until"] is not None and (not isinstance(p["prune_until"], int) or isinstance(p["prune_until"], bool)):
            raise ConfigError(f"method 'tofu': prune_until must be a block index (-1: merge everywhere), got {p['prune_until']!r}")
        if not isinstance(p["prop_attn"], bool):
            raise ConfigError(f"method 'tofu': prop_attn must be true or false, got {p['prop_attn']!r}")
        if p["layers"] is not None and (
            not isinstance(p["layers"], (list, tuple)) or not all(isinstance(v, int) for v in p["layers"])
        ):
            raise ConfigError(f"method 'tofu': layers must be a list of block indices, got {p['layers']!r}")

    def prunes_at(self, layer: int, depth: int) -> bool:
        last = self.params["prune_until"]
        return layer <= (depth // 2 if last is None else last)

    def patch_tokens_after(self, n_patch: int, layer: int, dims) -> int:
        return kept_count(self.params["keep_rate"], n_patch)

    def attention_requests(self, dims) -> FrozenSet[str]:
        return frozenset({"keys"})

    def reduce(self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims) -> torch.Tensor:
        if state.padding is not None:
            return self._reduce_padded(x, state, info, layer, dims)
        p = state.num_prefix
        n = x.shape[1] - p
        prune, keys = self.prunes_at(layer, dims.depth), info.keys
        steps = rounds(n, kept_count(self.params["keep_rate"], n))
        for i, (m, r) in enumerate(steps):
            src, dst = bipartite_pairs(keys, r)
            more = i + 1 < len(steps)
            if prune:
                keep_idx = kept_indices(m, src)
                keys = keys.gather(1, keep_idx.unsqueeze(-1).expand(-1, -1, keys.shape[-1])) if more else keys
                x = state.keep(x, keep_idx)
                continue
            plan = plan_from_pairs(m, src, dst)
            if more:  # the next matching compares the merged tokens' averaged keys
                w = state.sizes[:, p:, None] if state.sizes is not None else keys.new_ones(*keys.shape[:2], 1)
                keys = plan.sum(keys * w) / plan.sum(w)
            x = mlerp_merge(x, state, plan)
        if steps and not prune:
            state.proportional_attention = self.params["prop_attn"]
        return x

    def _reduce_padded(self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims) -> torch.Tensor:
        """Under a key-padding mask: each row's matchings on its own real tokens, as the clip alone."""
        p = state.num_prefix
        prune, keys = self.prunes_at(layer, dims.depth), info.keys
        steps = [rounds(n, kept_count(self.params["keep_rate"], n)) for n in state.real_counts().tolist()]
        for i in range(max(len(row) for row in steps)):
            row_plans = []
            for row, n in enumerate(state.real_counts().tolist()):
                if i >= len(steps[row]):
                    row_plans.append((torch.arange(n, device=x.device), n))
                    continue
                src, dst = bipartite_pairs(keys[row:row + 1, :n], steps[row][i][1])
                index = plan_from_pairs(n, src, dst).new_index[0]
                if prune:  # the A tokens that go are dropped, not merged
                    index = index.scatter(0, src[0], -1)
                row_plans.append((index, n - src.shape[1]))
            plan = padded_plan(row_plans, state.padding)
            if prune:  # the plan drops tokens only: keep what it keeps, in order
                keep_idx = torch.stack([(row >= 0).nonzero().flatten() for row in plan.new_index])
                keys = keys.gather(1, keep_idx.unsqueeze(-1).expand(-1, -1, keys.shape[-1]))
                x = state.keep(x, keep_idx)
                continue
            w = state.sizes[:, p:, None] if state.sizes is not None else keys.new_ones(*keys.shape[:2], 1)
            keys = plan.sum(keys * w) / plan.sum(w)
            x = mlerp_merge(x, state, plan)
        if any(steps) and not prune:
            state.proportional_attention = self.params["prop_attn"]
        return x

    def overhead_macs(self, tokens: int, dims) -> int:
        n = tokens - dims.num_prefix
        return sum(((m + 1) // 2) * (m // 2) * dims.head_dim for m, _ in rounds(n, kept_count(self.params["keep_rate"], n)))
