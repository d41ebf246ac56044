"""PiToMe: merge the redundant tokens, protect the informative ones (Tran et al., NeurIPS 2024).

"Accelerating Transformers with Spectrum-Preserving Token Merging", arXiv 2405.16148. At a
reduction block, each patch token gets an energy score from the cosine similarities of the keys
(averaged over heads), over all patch tokens j, itself included:

    E_i = 1/N * sum_j f(cos(k_i, k_j)),   f(s) = s - m        if s >= m
                                           alpha * (exp(s - m) - 1) otherwise   (an ELU at margin m)

A token in a large cluster of similar tokens has high energy (redundant); an isolated one has low
energy (informative). To remove r tokens, the 2r highest-energy tokens are ordered by energy and
split alternately into A and B; every A token merges into its most similar B token (size-weighted
average); the other N - 2r tokens are protected and stay as they are. The margin falls with depth,
m_l = margin * (1 - l / depth) for block l, as the authors' code has it (margin 0.9 in the paper).

Schedule: the iso schedule of the built-ins, ceil(keep_rate * N) patch tokens leave each reduction
block; one round removes at most N / 2, so a lower keep rate runs further rounds on the merged keys
(energies recomputed). Prefix tokens (CLS, distillation) never take part. Proportional attention
is off by default, as in the authors' vision code (their block never passes the sizes to the
attention); `prop_attn: true` turns it on. Under a key-padding mask (clips of different lengths in
one batch) each row merges its own real tokens as the clip alone would; padding is never merged.
MACs: each round's N x N similarity matrix of the keys
(N^2 * head_dim); the energy, sorting and merging are element-wise.
"""
from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Tuple

import torch
import torch.nn.functional as F

from prunebench import AttentionInfo, ConfigError, MergePlan, Method, TokenState, kept_count, register_method, \
    require_number


def energy_scores(keys: torch.Tensor, margin: float, alpha: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(b, n) energy of each token and the (b, n, n) cosine similarity it came from."""
    metric = F.normalize(keys, dim=-1)
    sim = metric @ metric.transpose(1, 2)
    return F.elu(sim - margin, alpha=alpha).mean(dim=-1), sim


def plan_from_pairs(n: int, src: torch.Tensor, dst: torch.Tensor) -> MergePlan:
    """Every token at `src` (b, r token indices) joins the token at `dst`; the rest stay, in order."""
    b = src.shape[0]
    stays = torch.ones(b, n, dtype=torch.bool, device=src.device)
    stays.scatter_(1, src, False)
    rank = stays.long().cumsum(dim=1) - 1
    new_index = torch.where(stays, rank, torch.zeros_like(rank))
    new_index.scatter_(1, src, rank.gather(1, dst))
    return MergePlan(new_index, n - src.shape[1])


def pitome_plan(keys: torch.Tensor, r: int, margin: float, alpha: float) -> MergePlan:
    """One PiToMe round on the (b, n, c) keys of the patch tokens, removing r <= n // 2 tokens."""
    n = keys.shape[1]
    energy, sim = energy_scores(keys, margin, alpha)
    order = energy.argsort(dim=1, descending=True, stable=True)
    a_idx, b_idx = order[:, :2 * r:2], order[:, 1:2 * r:2]  # the 2r most redundant, alternately
    a_rows = sim.gather(1, a_idx.unsqueeze(-1).expand(-1, -1, n))  # (b, r, n)
    ab = a_rows.gather(2, b_idx.unsqueeze(1).expand(-1, r, -1))  # (b, r, r): A against B
    dst = b_idx.gather(1, ab.argmax(dim=-1))
    return plan_from_pairs(n, a_idx, dst)


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
            raise RuntimeError("pitome: a row has too few padding tokens to fill the batch's widest row")
        new_index[row, :n_real] = index
        new_index[row, n_real:n_real + width - out] = torch.arange(out, width, device=padding.device)
    return MergePlan(new_index, width)


def rounds(n: int, target: int) -> List[Tuple[int, int]]:
    """(tokens in, tokens removed) of each round taking n patch tokens down to target."""
    out = []
    while n > target:
        r = min(n - target, n // 2)
        out.append((n, r))
        n -= r
    return out


@register_method("pitome")
class PiToMe(Method):
    """PiToMe: energy-scored merging; isolated (informative) tokens protected, redundant ones merged."""

    defaults: Dict[str, Any] = {"keep_rate": 0.7, "layers": None, "margin": 0.9, "alpha": 1.0, "prop_attn": False}
    id_params = ("keep_rate",)
    identity_params = ({"keep_rate": 1.0},)
    validation_params = ({}, {"keep_rate": 0.3}, {"keep_rate": 0.5, "prop_attn": True}, {"margin": 0.5, "layers": [0, 2]})

    def validate(self) -> None:
        p = self.params
        require_number("method 'pitome'", "keep_rate", p["keep_rate"], 0, 1, lo_open=True)
        require_number("method 'pitome'", "margin", p["margin"], -1, 1)
        require_number("method 'pitome'", "alpha", p["alpha"], 0, float("inf"), lo_open=True)
        if not isinstance(p["prop_attn"], bool):
            raise ConfigError(f"method 'pitome': prop_attn must be true or false, got {p['prop_attn']!r}")
        if p["layers"] is not None and (
            not isinstance(p["layers"], (list, tuple)) or not all(isinstance(v, int) for v in p["layers"])
        ):
            raise ConfigError(f"method 'pitome': layers must be a list of block indices, got {p['layers']!r}")

    def patch_tokens_after(self, n_patch: int, layer: int, dims) -> int:
        return kept_count(self.params["keep_rate"], n_patch)

    def attention_requests(self, dims) -> FrozenSet[str]:
        return frozenset({"keys"})

    def margin_at(self, layer: int, depth: int) -> float:
        """The authors' schedule: the margin falls linearly to 0 at the last block."""
        return self.params["margin"] * (1 - layer / depth)

    def reduce(self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims) -> torch.Tensor:
        if state.padding is not None:
            return self._reduce_padded(x, state, info, layer, dims)
        p = state.num_prefix
        n = x.shape[1] - p
        margin, keys = self.margin_at(layer, dims.depth), info.keys
        steps = rounds(n, kept_count(self.params["keep_rate"], n))
        for i, (_, r) in enumerate(steps):
            plan = pitome_plan(keys, r, margin, self.params["alpha"])
            if i + 1 < len(steps):  # the next round scores the merged tokens' averaged keys
                w = state.sizes[:, p:, None] if state.sizes is not None else keys.new_ones(*keys.shape[:2], 1)
                keys = plan.sum(keys * w) / plan.sum(w)
            x = state.merge(x, plan)
        if steps:
            state.proportional_attention = self.params["prop_attn"]
        return x

    def _reduce_padded(self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims) -> torch.Tensor:
        """Under a key-padding mask: each row's rounds on its own real tokens, as the clip alone."""
        p = state.num_prefix
        margin, keys = self.margin_at(layer, dims.depth), info.keys
        real = state.real_counts().tolist()
        steps = [rounds(n, kept_count(self.params["keep_rate"], n)) for n in real]
        for i in range(max(len(row) for row in steps)):
            row_plans = []
            for row, n in enumerate(state.real_counts().tolist()):
                if i < len(steps[row]):
                    plan = pitome_plan(keys[row:row + 1, :n], steps[row][i][1], margin, self.params["alpha"])
                    row_plans.append((plan.new_index[0], plan.num_out))
                else:
                    row_plans.append((torch.arange(n, device=x.device), n))
            plan = padded_plan(row_plans, state.padding)
            w = state.sizes[:, p:, None] if state.sizes is not None else keys.new_ones(*keys.shape[:2], 1)
            keys = plan.sum(keys * w) / plan.sum(w)
            x = state.merge(x, plan)
        if any(steps):
            state.proportional_attention = self.params["prop_attn"]
        return x

    def overhead_macs(self, tokens: int, dims) -> int:
        n = tokens - dims.num_prefix
        return sum(m * m * dims.head_dim for m, _ in rounds(n, kept_count(self.params["keep_rate"], n)))
