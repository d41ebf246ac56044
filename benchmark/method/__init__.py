"""The method API, everything a pruning or merging plugin author needs: `Method`, `ScorePruning`, the
token bookkeeping (`TokenState`, `MergePlan`) and per-patch statistics. May import: core.

A plugin checks itself with `prunebench validate-method NAME` (`benchmark.run.validate`)."""
from benchmark.method.base import (
    PROTOCOL_DEPTH, PROTOCOL_LAYERS, AttentionInfo, Method, ModelDims, ScorePruning, default_reduction_layers,
    kept_count, parse_method_spec,
)
from benchmark.method.patches import patch_statistic
from benchmark.method.tokens import BlockTrace, MergePlan, TokenState

__all__ = ["PROTOCOL_DEPTH", "PROTOCOL_LAYERS", "AttentionInfo", "BlockTrace", "MergePlan", "Method", "ModelDims",
           "ScorePruning", "TokenState", "default_reduction_layers", "kept_count", "parse_method_spec",
           "patch_statistic"]
