"""The method API, everything a pruning or merging plugin author needs: `Method`, `ScorePruning`, the
token bookkeeping (`TokenState`, `MergePlan`) and per-patch statistics. May import: core.

A plugin checks itself with `prunebench validate-method NAME` (`prunebench.run.validate`)."""
from prunebench.method_api.base import (
    PROTOCOL_DEPTH, PROTOCOL_LAYERS, AttentionInfo, Method, ModelDims, ScorePruning, default_reduction_layers,
    kept_count, kept_counts, parse_method_spec, top_real_tokens,
)
from prunebench.method_api.patches import patch_statistic
from prunebench.method_api.tokens import BlockTrace, MergePlan, TokenState

__all__ = ["PROTOCOL_DEPTH", "PROTOCOL_LAYERS", "AttentionInfo", "BlockTrace", "MergePlan", "Method", "ModelDims",
           "ScorePruning", "TokenState", "default_reduction_layers", "kept_count", "kept_counts", "parse_method_spec",
           "patch_statistic", "top_real_tokens"]
