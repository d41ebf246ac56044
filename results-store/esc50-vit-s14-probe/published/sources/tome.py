"""ToMe: merge similar tokens instead of dropping them (Bolya et al., ICLR 2023), on audio ViTs.

Between attention and MLP, the patch tokens are split alternately into sets A and B; every A token
picks its most similar B token (cosine similarity of the keys averaged over heads), and the r best
such pairs merge into the B token as a size-weighted average; the other A tokens stay. Later
blocks add log(size) to the attention logits (proportional attention), so a merged token is
attended as the patches it stands for. Prefix tokens (CLS, distillation) never take part.

Schedules:
- `iso` (default): merge only at the reduction layers, down to the ceil(k * N) patch tokens TopK
  keeps, so the methods are compared at equal MACs. One bipartite round removes at most half the
  tokens; a lower keep rate runs further rounds on the merged keys.
- `constant`: ToMe's own schedule, r tokens fewer after every block (at most half of them).

Padding (under a key-padding mask): each row merges its real tokens exactly as the clip alone
would (its own count, rounds and bipartite split over its real tokens, which come first); a real
token is only matched with a real one, padding is never merged into anything, and the padding
tokens a row does not need to fill the batch's widest row are dropped.
"""
from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Tuple

import torch
import torch.nn.functional as F

from prunebench.core.errors import ConfigError
from prunebench.method_api import AttentionInfo, Method, ModelDims, kept_count
from prunebench.core.params import require_number
from prunebench.core.registry import register_method
from prunebench.method_api.tokens import MergePlan, TokenState

SCHEDULES = ("iso", "constant")


class BipartitePlan(MergePlan):
    """One round of bipartite soft matching, computed once from the keys.

    Token t of the current patch tokens is in set A when t is even (A index t // 2), in B when odd.
    New order: the A tokens that stay (ascending), then every B token (ascending).
    """

    def __init__(self, unm_idx: torch.Tensor, src_idx: torch.Tensor, dst_idx: torch.Tensor, n: int):
        self.unm_idx, self.src_idx, self.dst_idx = unm_idx, src_idx, dst_idx  # A, A, B indices
        b, n_stay = unm_idx.shape
        n_b = n // 2
        device = unm_idx.device
        new_a = torch.empty(b, (n + 1) // 2, dtype=torch.long, device=device)
        new_a.scatter_(1, unm_idx, torch.arange(n_stay, device=device).expand(b, -1))
        new_a.scatter_(1, src_idx, n_stay + dst_idx)
        new_index = torch.empty(b, n, dtype=torch.long, device=device)
        new_index[:, 0::2] = new_a
        new_index[:, 1::2] = n_stay + torch.arange(n_b, device=device)
        super().__init__(new_index, n_stay + n_b)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Gather the staying A rows, add each merging A row onto its B row (no scatter over all)."""
        c = values.shape[-1]
        a, b = values[:, 0::2], values[:, 1::2]
        stay = a.gather(1, self.unm_idx.unsqueeze(-1).expand(-1, -1, c))
        moving = a.gather(1, self.src_idx.unsqueeze(-1).expand(-1, -1, c))
        b = b.scatter_add(1, self.dst_idx.unsqueeze(-1).expand(-1, -1, c), moving)
        return torch.cat([stay, b], dim=1)


def bipartite_soft_matching(keys: torch.Tensor, r: int) -> BipartitePlan:
    """Plan to merge the r A tokens (even positions) most similar to a B token (odd positions).

    keys: (b, n, c) metric of the patch tokens only (no prefix); 0 < r <= n // 2.
    """
    n = keys.shape[1]
    if not 0 < r <= n // 2:
        raise ValueError(f"bipartite matching of {n} tokens can merge 1 to {n // 2}, asked for {r}")
    metric = F.normalize(keys, dim=-1)
    scores = metric[:, 0::2] @ metric[:, 1::2].transpose(1, 2)  # (b, |A|, |B|) cosine similarity
    best, partner = scores.max(dim=-1)  # each A token's most similar B token
    order = torch.sort(best, dim=-1, descending=True, stable=True).indices
    src_idx = order[:, :r]
    unm_idx = order[:, r:].sort(dim=-1).values  # staying A tokens keep their relative order
    return BipartitePlan(unm_idx, src_idx, partner.gather(1, src_idx), n)


def masked_bipartite_plan(keys: torch.Tensor, padding: torch.Tensor, r: torch.Tensor) -> MergePlan:
    """One bipartite round under a key-padding mask, each row merging its own `r[b]` real tokens.

    keys: (b, n, c) of the patch tokens, each row's real tokens first (`padding` (b, n) flags the
    rest). Over its real tokens a row is split, matched and ordered exactly as
    `bipartite_soft_matching` does for the clip alone (staying A tokens, then B tokens); its
    padding tokens follow, as many as the widest row needs, the rest dropped."""
    b, n, _ = keys.shape
    device = keys.device
    real = (~padding).sum(dim=1)
    a_real, b_real = ~padding[:, 0::2], ~padding[:, 1::2]
    metric = F.normalize(keys, dim=-1)
    scores = metric[:, 0::2] @ metric[:, 1::2].transpose(1, 2)
    scores = scores.masked_fill(~b_real[:, None, :], float("-inf"))  # a real A token only meets real B tokens
    best, partner = scores.max(dim=-1)
    best = best.masked_fill(~a_real, float("-inf"))  # padding A tokens sort last: never merged
    order = torch.sort(best, dim=-1, descending=True, stable=True).indices
    n_a = order.shape[1]
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n_a, device=device).expand(b, -1))
    merging = rank < r[:, None]
    staying = a_real & ~merging
    n_stay = staying.sum(dim=1, keepdim=True)
    none = torch.full_like(partner, -1)
    new_a = torch.where(staying, staying.cumsum(dim=1) - 1, torch.where(merging, n_stay + partner, none))
    new_b = torch.where(b_real, n_stay + torch.arange(n // 2, device=device), torch.full_like(b_real, -1, dtype=torch.long))
    new_index = torch.empty(b, n, dtype=torch.long, device=device)
    new_index[:, 0::2] = new_a
    new_index[:, 1::2] = new_b
    real_out = real - r
    width = int(real_out.max())
    if bool(((width - real_out) > (n - real)).any()):
        raise RuntimeError("tome: a row has too few padding tokens to fill the batch's widest row")
    slot = real_out[:, None] + padding.long().cumsum(dim=1) - 1  # padding tokens fill each row, in order
    new_index = torch.where(padding, torch.where(slot < width, slot, torch.full_like(slot, -1)), new_index)
    return MergePlan(new_index, width)


def merge_rounds(n: int, target: int) -> List[Tuple[int, int]]:
    """(tokens in, tokens merged) of each bipartite round taking n patch tokens down to target."""
    rounds = []
    while n > target:
        r = min(n - target, n // 2)
        rounds.append((n, r))
        n -= r
    return rounds


@register_method("tome")
class ToMe(Method):
    """ToMe: bipartite merging of similar tokens, size-weighted, proportional attention (iso or constant r)."""

    defaults: Dict[str, Any] = {"schedule": "iso", "keep_rate": 0.7, "r": None, "layers": None, "prop_attn": True}
    id_params = ("keep_rate",)
    identity_params = ({"keep_rate": 1.0}, {"schedule": "constant", "r": 0})
    supports_padding = True
    validation_params = ({}, {"keep_rate": 0.3}, {"schedule": "constant", "r": 8}, {"prop_attn": False})

    def validate(self) -> None:
        p = self.params
        if p["schedule"] not in SCHEDULES:
            raise ConfigError(f"method 'tome': schedule must be one of {', '.join(SCHEDULES)}, got {p['schedule']!r}")
        require_number("method 'tome'", "keep_rate", p["keep_rate"], 0, 1, lo_open=True)
        if p["schedule"] == "constant":
            if not isinstance(p["r"], int) or isinstance(p["r"], bool) or p["r"] < 0:
                raise ConfigError(f"method 'tome': schedule 'constant' needs r, a whole number >= 0, got {p['r']!r}")
            if p["keep_rate"] != self.defaults["keep_rate"]:
                raise ConfigError("method 'tome': keep_rate belongs to schedule 'iso'; schedule 'constant' takes r")
        elif p["r"] is not None:
            raise ConfigError("method 'tome': r belongs to schedule 'constant'; schedule 'iso' takes keep_rate")
        if p["layers"] is not None and (
            not isinstance(p["layers"], (list, tuple)) or not all(isinstance(v, int) for v in p["layers"])
        ):
            raise ConfigError(f"method 'tome': layers must be a list of block indices, got {p['layers']!r}")
        if not isinstance(p["prop_attn"], bool):
            raise ConfigError(f"method 'tome': prop_attn must be true or false, got {p['prop_attn']!r}")

    def changed_params(self) -> Dict[str, Any]:
        params = super().changed_params()
        if self.params["schedule"] == "constant":  # the id shows the parameters the schedule uses
            params.pop("keep_rate", None)
            params["r"] = self.params["r"]
        return dict(sorted(params.items()))

    # -- schedule ---------------------------------------------------------------------------
    def reduction_layers(self, depth: int) -> Tuple[int, ...]:
        if self.params["schedule"] == "constant" and self.params["layers"] is None:
            return tuple(range(depth))  # ToMe merges in every block
        return super().reduction_layers(depth)

    def _target(self, n_patch: int) -> int:
        if self.params["schedule"] == "constant":
            return n_patch - min(self.params["r"], n_patch // 2)
        return kept_count(self.params["keep_rate"], n_patch)

    def patch_tokens_after(self, n_patch: int, layer: int, dims: ModelDims) -> int:
        return self._target(n_patch)

    def attention_requests(self, dims: ModelDims) -> FrozenSet[str]:
        return frozenset({"keys"})

    # -- the merge --------------------------------------------------------------------------
    def reduce(self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims: ModelDims) -> torch.Tensor:
        if state.padding is not None:
            return self._reduce_masked(x, state, info)
        p = state.num_prefix
        rounds = merge_rounds(x.shape[1] - p, self._target(x.shape[1] - p))
        keys = info.keys
        for i, (_, r) in enumerate(rounds):
            plan = bipartite_soft_matching(keys, r)
            if i + 1 < len(rounds):  # the next round matches the merged tokens' averaged keys
                w = state.sizes[:, p:, None] if state.sizes is not None else keys.new_ones(keys.shape[0], keys.shape[1], 1)
                keys = plan.sum(keys * w) / plan.sum(w)
            x = state.merge(x, plan)
        if rounds:
            state.proportional_attention = self.params["prop_attn"]
        return x

    def _reduce_masked(self, x: torch.Tensor, state: TokenState, info: AttentionInfo) -> torch.Tensor:
        """Each row's own rounds on its real tokens (see the module docstring)."""
        p = state.num_prefix
        real = state.real_counts().tolist()
        rows = [merge_rounds(n, self._target(n)) for n in real]
        keys = info.keys
        for i in range(max(len(r) for r in rows)):
            r = torch.tensor([row[i][1] if i < len(row) else 0 for row in rows], dtype=torch.long, device=x.device)
            plan = masked_bipartite_plan(keys, state.padding, r)
            if i + 1 < max(len(row) for row in rows):
                w = state.sizes[:, p:, None] if state.sizes is not None else keys.new_ones(keys.shape[0], keys.shape[1], 1)
                keys = plan.sum(keys * w) / plan.sum(w)
            x = state.merge(x, plan)
        if any(rows):
            state.proportional_attention = self.params["prop_attn"]
        return x

    def overhead_macs(self, tokens: int, dims: ModelDims) -> int:
        """The A x B similarity matrix of each round (normalising and merging are element-wise)."""
        n = tokens - dims.num_prefix
        return sum(((m + 1) // 2) * (m // 2) * dims.head_dim for m, _ in merge_rounds(n, self._target(n)))
