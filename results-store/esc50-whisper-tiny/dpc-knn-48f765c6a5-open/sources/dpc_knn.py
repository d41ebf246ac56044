"""DPC-KNN: cluster the patch tokens by density peaks and merge each cluster into one token.

Density-peak clustering with k nearest neighbours (Du et al., 2016), used for tokens by TCFormer
(Zeng et al., CVPR 2022) and benchmarked training-free by Haurum et al., "Which Tokens to Use?
Investigating Token Reduction in Vision Transformers" (ICCV 2023 workshops; their `equal_weight`
variant: no learned token weights). On the hidden states x of the N patch tokens (C channels):

    d_ij  = ||x_i - x_j|| / sqrt(C)
    rho_i = exp(-1/k * sum_{j in kNN(i)} d_ij^2)         local density (the k nearest, i itself included)
    delta_i = min_{j: rho_j > rho_i} d_ij                distance to the nearest denser token
              (the densest token: max_ij d_ij)
    centres: the M tokens with the largest rho_i * delta_i, M = ceil(keep_rate * N)

and every token joins its nearest centre (a centre joins itself). A cluster becomes the
size-weighted average of its tokens (so a merged token stands for the mean of its patches; the
benchmark's code averages the current tokens unweighted). Ties in density, which the reference code
breaks with 1e-6 of random noise, are broken by token order here, so a forward is deterministic.

Clusters at the reduction blocks (between attention and MLP, as every method here; the reference
clusters before the block). Prefix tokens (CLS, distillation) never take part. No proportional
attention by default (the reference has none; `prop_attn: true` adds it). Under a key-padding mask
(clips of different lengths in one batch) each row clusters its own real tokens as the clip alone
would; padding is never merged. MACs: the N x N Gram
matrix x x^T behind the distances (N^2 C); the rest is element-wise or sorting.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import torch

from prunebench import AttentionInfo, ConfigError, MergePlan, Method, TokenState, kept_count, register_method, \
    require_number


def token_distances(x: torch.Tensor) -> torch.Tensor:
    """(b, n, n) Euclidean distances / sqrt(C), from one Gram matrix (float32), zero on the diagonal."""
    x = x.float()
    sq = (x * x).sum(dim=-1)
    d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2 * (x @ x.transpose(1, 2))
    d2 = (d2 + d2.transpose(1, 2)) / 2  # exactly symmetric, so mutual neighbours tie exactly in density
    dist = d2.clamp_min(0).sqrt() / math.sqrt(x.shape[-1])
    return dist * (1 - torch.eye(x.shape[1], device=x.device))  # d_ii = 0 exactly


def density_peaks(dist: torch.Tensor, clusters: int, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(b, n) cluster index of each token (0 .. clusters - 1) and the (b, clusters) centres, ascending."""
    b, n, _ = dist.shape
    knn = dist.topk(min(k, n), dim=-1, largest=False).values
    rho = (-(knn ** 2).mean(dim=-1)).exp()
    order = torch.arange(n, device=dist.device)
    # denser[b, i, j]: token j is denser than token i (equal densities: the earlier token is denser)
    denser = (rho.unsqueeze(1) > rho.unsqueeze(2)) | (
        (rho.unsqueeze(1) == rho.unsqueeze(2)) & (order.view(1, 1, n) < order.view(1, n, 1)))
    farthest = dist.flatten(1).max(dim=-1).values.view(b, 1, 1).expand(b, n, n)
    delta = torch.where(denser, dist, farthest).min(dim=-1).values
    centres = (rho * delta).topk(clusters, dim=-1).indices.sort(dim=-1).values
    to_centre = dist.gather(1, centres.unsqueeze(-1).expand(-1, -1, n))  # (b, clusters, n)
    assign = to_centre.argmin(dim=1)
    assign.scatter_(1, centres, torch.arange(clusters, device=dist.device).expand(b, -1))
    return assign, centres


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
            raise RuntimeError("dpc-knn: a row has too few padding tokens to fill the batch's widest row")
        new_index[row, :n_real] = index
        new_index[row, n_real:n_real + width - out] = torch.arange(out, width, device=padding.device)
    return MergePlan(new_index, width)


@register_method("dpc-knn")
class DPCKNN(Method):
    """DPC-KNN: density-peak clustering of the hidden states; each cluster merged into one token."""

    defaults: Dict[str, Any] = {"keep_rate": 0.7, "layers": None, "k": 5, "prop_attn": False}
    id_params = ("keep_rate",)
    identity_params = ({"keep_rate": 1.0},)
    validation_params = ({}, {"keep_rate": 0.25}, {"keep_rate": 0.5, "k": 1, "prop_attn": True}, {"layers": [0, 2]})

    def validate(self) -> None:
        p = self.params
        require_number("method 'dpc-knn'", "keep_rate", p["keep_rate"], 0, 1, lo_open=True)
        if not isinstance(p["k"], int) or isinstance(p["k"], bool) or p["k"] < 1:
            raise ConfigError(f"method 'dpc-knn': k must be a whole number >= 1, got {p['k']!r}")
        if not isinstance(p["prop_attn"], bool):
            raise ConfigError(f"method 'dpc-knn': prop_attn must be true or false, got {p['prop_attn']!r}")
        if p["layers"] is not None and (
            not isinstance(p["layers"], (list, tuple)) or not all(isinstance(v, int) for v in p["layers"])
        ):
            raise ConfigError(f"method 'dpc-knn': layers must be a list of block indices, got {p['layers']!r}")

    def patch_tokens_after(self, n_patch: int, layer: int, dims) -> int:
        return kept_count(self.params["keep_rate"], n_patch)

    def reduce(self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims) -> torch.Tensor:
        if state.padding is not None:
            return self._reduce_padded(x, state)
        p = state.num_prefix
        n = x.shape[1] - p
        clusters = kept_count(self.params["keep_rate"], n)
        if clusters >= n:
            return x
        assign, _ = density_peaks(token_distances(x[:, p:]), clusters, self.params["k"])
        x = state.merge(x, MergePlan(assign, clusters))
        state.proportional_attention = self.params["prop_attn"]
        return x

    def _reduce_padded(self, x: torch.Tensor, state: TokenState) -> torch.Tensor:
        """Under a key-padding mask: each row clusters its own real tokens, as the clip alone."""
        p = state.num_prefix
        row_plans = []
        for row, n in enumerate(state.real_counts().tolist()):
            clusters = kept_count(self.params["keep_rate"], n)
            if clusters >= n:
                row_plans.append((torch.arange(n, device=x.device), n))
                continue
            assign, _ = density_peaks(token_distances(x[row:row + 1, p:p + n]), clusters, self.params["k"])
            row_plans.append((assign[0], clusters))
        x = state.merge(x, padded_plan(row_plans, state.padding))
        state.proportional_attention = self.params["prop_attn"]
        return x

    def overhead_macs(self, tokens: int, dims) -> int:
        n = tokens - dims.num_prefix
        return 0 if kept_count(self.params["keep_rate"], n) >= n else n * n * dims.embed_dim
