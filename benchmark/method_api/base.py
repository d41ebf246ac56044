"""The method API: what a token pruning or merging plugin implements.

A method is a class with a registered name, declared parameters with defaults, and a `reduce`
called between attention and MLP at the reduction layers. Score-based pruning only has to
implement `score` (see `ScorePruning`), and may replace `select` (what becomes of the tokens
given their scores). A new method is one file and one decorator, which also names it:

    @register_method("mine")
    class Mine(ScorePruning):
        '''One line shown by `prunebench list`.'''
        defaults = {**ScorePruning.defaults, "alpha": 1.0}
        def score(self, x, state, info): ...
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, FrozenSet, Optional, Sequence, Tuple

import torch

from prunebench.core.errors import ConfigError, PluginError, did_you_mean
from prunebench.core.params import Configurable, require_number
from prunebench.core.registry import METHODS
from prunebench.method_api.tokens import TokenState

PROTOCOL_LAYERS = (3, 6, 9)  # of 12 blocks, 0-indexed (EViT, ECAI 2025 audio pruning)
PROTOCOL_DEPTH = 12


def default_reduction_layers(depth: int) -> Tuple[int, ...]:
    """Blocks 3, 6, 9 of 12, scaled to the model depth (6 blocks: 1, 3, 4)."""
    return tuple(sorted({int(layer * depth / PROTOCOL_DEPTH) for layer in PROTOCOL_LAYERS}))


def kept_count(keep_rate: float, n_tokens: int) -> int:
    """ceil(k * N) patch tokens survive a stage; at least one. Rounded first: 0.7 * 10 is 7.000000000000001."""
    return max(1, min(n_tokens, math.ceil(round(keep_rate * n_tokens, 6))))


def kept_counts(keep_rate: float, n_tokens: torch.Tensor) -> torch.Tensor:
    """`kept_count` of each row's count (b,): under a key-padding mask, each row's real tokens."""
    return torch.tensor([kept_count(keep_rate, int(n)) for n in n_tokens.tolist()], dtype=torch.long,
                        device=n_tokens.device)


def top_real_tokens(scores: torch.Tensor, padding: torch.Tensor, keep_real: torch.Tensor, width: int) -> torch.Tensor:
    """(b, width) ascending token indices under a key-padding mask: each row's `keep_real` best
    real tokens, then its first padding tokens to fill the row (padding is never kept while a real
    token of its row is dropped). `scores` (b, n) of padding tokens are ignored."""
    masked = scores.masked_fill(padding, float("-inf"))
    order = masked.argsort(dim=1, descending=True, stable=True)  # real by score, then padding in index order
    real = (~padding).sum(dim=1, keepdim=True)
    pos = torch.arange(width, device=scores.device).expand(scores.shape[0], -1)
    take = torch.where(pos < keep_real[:, None], pos, real + pos - keep_real[:, None])
    return order.gather(1, take).sort(dim=1).values


@dataclass
class ModelDims:
    """What a method may need to know of the model, for scheduling and MAC accounting."""

    depth: int
    embed_dim: int
    num_heads: int
    num_prefix: int
    grid: Tuple[int, int]
    pooling: str  # "prefix" (CLS + dist average), "mean" (over patch tokens) or "cls+mean" (both, concatenated)
    patch_size: Optional[Tuple[int, int]] = None  # patch embedding kernel (freq, time)
    stride: Optional[Tuple[int, int]] = None  # patch embedding stride (freq, time)

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


@dataclass
class AttentionInfo:
    """What the attention of a reduction block hands to the method, computed only if asked.

    Every field is indexed like `TokenState`'s token indices: position i is the i-th current
    patch token, prefix tokens excluded, so a score and a key at the same index are one token.
    Under a key-padding mask (`TokenState.padding`), padding keys are masked out of the softmax:
    `cls_scores` and `received` are 0 at padding tokens and `received` averages over real queries
    only, exactly what the clip alone gives; `keys` of padding tokens are computed but mean nothing."""

    cls_scores: Optional[torch.Tensor] = None  # (b, n_patch) CLS row, head-averaged
    received: Optional[torch.Tensor] = None  # (b, n_patch) mean attention each patch receives
    keys: Optional[torch.Tensor] = None  # (b, n_patch, head_dim) keys averaged over heads


# What `Method.attention_requests` may ask for: the fields of AttentionInfo.
ATTENTION_REQUESTS = frozenset({"cls_scores", "received", "keys"})


class Method(Configurable):
    """Base class of token reduction methods (the `none` method is this class as it is).

    `name` is set by the registration (`@register_method("mine")`), never written by hand."""

    kind: ClassVar[str] = "method"
    defaults: ClassVar[Dict[str, Any]] = {}
    # Parameter sets that must reproduce the unpruned model exactly (keep rate 1, r = 0), checked
    # by `prunebench validate-method`; None: the method declares none.
    identity_params: ClassVar[Optional[Tuple[Dict[str, Any], ...]]] = ({},)
    # Parameter sets `prunebench validate-method` checks (beside the defaults, the first entry).
    validation_params: ClassVar[Tuple[Dict[str, Any], ...]] = ({},)
    # The method keeps the padding contract under a key-padding mask (see `reduce`), so the masked
    # batching strategies (pad-batch, sorted) may run it; validate-method then checks it. A method
    # that does not say so runs under pad-fixed and native only (a masked strategy refuses it).
    supports_padding: ClassVar[bool] = False

    # -- schedule ---------------------------------------------------------------------------
    def reduction_layers(self, depth: int) -> Tuple[int, ...]:
        layers = self.params.get("layers")
        if layers is None:
            return default_reduction_layers(depth)
        layers = tuple(int(v) for v in layers)
        bad = [v for v in layers if not 0 <= v < depth]
        if bad:
            raise ConfigError(f"method {self.name!r}: layers {bad} outside 0..{depth - 1}")
        return layers

    def patch_tokens_after(self, n_patch: int, layer: int, dims: ModelDims) -> int:
        """Patch tokens leaving reduction block `layer` when `n_patch` enter it: the schedule,
        stated independently of `reduce`, which `prunebench validate-method` holds it to."""
        return n_patch

    def attention_requests(self, dims: ModelDims) -> FrozenSet[str]:
        """What the attention of a reduction block must hand over: any of "cls_scores",
        "received", "keys" (see AttentionInfo). Nothing is computed that is not asked for."""
        return frozenset()

    def checked_attention_requests(self, dims: ModelDims) -> FrozenSet[str]:
        """`attention_requests`, refusing names AttentionInfo does not have (a typo would
        otherwise hand the method None at every block)."""
        wants = frozenset(self.attention_requests(dims))
        unknown = sorted(wants - ATTENTION_REQUESTS)
        if unknown:
            hint = did_you_mean(unknown[0], ATTENTION_REQUESTS)
            raise PluginError(f"method {self.name!r} asks the attention for {', '.join(map(repr, unknown))}{hint}; "
                              f"it can ask for: {', '.join(sorted(ATTENTION_REQUESTS))}")
        return wants

    # -- per-forward hooks ------------------------------------------------------------------
    def begin(self, fbank: torch.Tensor, state: TokenState, dims: ModelDims, valid_frames: Optional[torch.Tensor]) -> None:
        """Called once at the start of every forward (per-forward reset); default: nothing.
        Values put in `state.carried` are per original patch, in grid order; under a key-padding
        mask the model then moves them with their tokens (real tokens first)."""

    def reduce(
        self, x: torch.Tensor, state: TokenState, info: AttentionInfo, layer: int, dims: ModelDims
    ) -> torch.Tensor:
        """Called between attention and MLP at a reduction layer; returns the new hidden states.

        Padding: `state.padding` (b, n_patch) flags the padding tokens under a key-padding mask
        (None: all real). The contract, checked by `validate-method`: never keep a padding token
        while a real one of its row is dropped, never mix padding into a real token, and leave each
        row's real tokens first. The built-ins give each row what the clip alone would get."""
        return x

    def overhead_macs(self, tokens: int, dims: ModelDims) -> int:
        """MACs per sample of the method's own work at one reduction block with `tokens` tokens."""
        return 0


class ScorePruning(Method):
    """Keep the ceil(k * N) highest-scoring patch tokens at each reduction layer."""

    defaults: ClassVar[Dict[str, Any]] = {"keep_rate": 0.7, "layers": None}
    id_params: ClassVar[tuple] = ("keep_rate",)
    supports_padding = True  # `reduce` and `select` below keep the contract (a subclass's own select is checked)
    identity_params = ({"keep_rate": 1.0},)
    validation_params = ({}, {"keep_rate": 0.5}, {"keep_rate": 0.25, "layers": [0, 2]})

    def validate(self) -> None:
        require_number(f"method {self.name!r}", "keep_rate", self.params["keep_rate"], 0, 1, lo_open=True)
        layers = self.params["layers"]
        if layers is not None and (
            not isinstance(layers, (list, tuple)) or not all(isinstance(v, int) for v in layers)
        ):
            raise ConfigError(f"method {self.name!r}: layers must be a list of block indices, got {layers!r}")

    def score(self, x: torch.Tensor, state: TokenState, info: AttentionInfo) -> torch.Tensor:
        """(b, n_patch) scores of the current patch tokens; higher survives."""
        raise NotImplementedError

    def patch_tokens_after(self, n_patch: int, layer: int, dims: ModelDims) -> int:
        return kept_count(self.params["keep_rate"], n_patch)

    def select(self, x: torch.Tensor, state: TokenState, scores: torch.Tensor, keep: int) -> torch.Tensor:
        """The new hidden states given the scores, when `keep` of the patch tokens survive:
        by default the `keep` best, in their original order, and the rest dropped. Under a
        key-padding mask `keep` is the widest row's count and `kept_indices` gives each row its own."""
        return state.keep(x, self.kept_indices(state, scores, keep))

    def kept_indices(self, state: TokenState, scores: torch.Tensor, keep: int) -> torch.Tensor:
        """(b, keep) ascending indices of the kept tokens: the `keep` best; under a key-padding
        mask, each row's ceil(k * real) best real tokens, then padding to fill the row."""
        if state.padding is None:
            return scores.topk(keep, dim=1, sorted=False).indices.sort(dim=1).values
        return top_real_tokens(scores, state.padding, self.row_keep(state), keep)

    def row_keep(self, state: TokenState) -> torch.Tensor:
        """(b,) real tokens each row keeps under a key-padding mask: what the clip alone keeps."""
        return kept_counts(self.params["keep_rate"], state.real_counts())

    def reduce(self, x, state, info, layer, dims):
        scores = self.score(x, state, info)
        n_patch = x.shape[1] - state.num_prefix
        if state.padding is not None:
            # each row keeps what the clip alone would; the widest row sets the width, padding fills the rest
            real, keep_real = state.real_counts(), self.row_keep(state)
            if torch.equal(keep_real, real) and int(real.max()) == n_patch:
                return x
            return self.select(x, state, scores.masked_fill(state.padding, float("-inf")), int(keep_real.max()))
        keep = kept_count(self.params["keep_rate"], n_patch)
        if keep >= n_patch:
            return x
        return self.select(x, state, scores, keep)


METHODS.require_base(Method)


def parse_method_spec(spec: str) -> Tuple[str, Dict[str, Any]]:
    """`topk:keep_rate=0.5,fuse=true` -> ("topk", {"keep_rate": 0.5, "fuse": True})."""
    from prunebench.core.yaml_values import load_yaml_value

    name, _, rest = spec.partition(":")
    params: Dict[str, Any] = {}
    if rest:
        for item in _split_params(rest):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"method spec {spec!r}: expected key=value, got {item!r}")
            params[key.strip()] = load_yaml_value(value.strip())
    return name.strip(), params


def _split_params(text: str) -> Sequence[str]:
    """Split on commas outside brackets, so `layers=[3,6,9]` stays whole."""
    items, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[(" 
        depth -= ch in "])"
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    if current:
        items.append(current)
    return items
