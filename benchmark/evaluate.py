"""Evaluating one method on one task variant: predictions, per-clip outcomes, token trace, MACs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from .features import FeatureSet
from .macs import model_macs
from .method import Method
from .metrics import score_with_interval
from .models.audio_vit import AudioViT
from .throughput import autocast_for, resolve_device


@dataclass
class Evaluation:
    metric: str
    score: Dict[str, Any]  # {"value", "ci95"}
    per_clip: Dict[str, Any]
    macs_by_part: Dict[str, float]  # per sample, averaged over clips
    tokens_per_layer: List[Dict[str, int]]  # tokens at attention and MLP of each block, per sample


def evaluate(
    model: AudioViT,
    method: Method,
    features: FeatureSet,
    metric: str,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
) -> Evaluation:
    dev = resolve_device(device)
    model = model.to(dev).eval()
    n = len(features)
    logits_all: List[Optional[torch.Tensor]] = [None] * n
    kept: List[Optional[str]] = [None] * n
    macs_total: Dict[str, float] = {}
    tokens: List[Dict[str, int]] = []
    with torch.inference_mode(), autocast_for(dev, getattr(torch, dtype)):
        for idx, fbank, valid in features.batches(batch_size):
            logits, state = model.forward_with_state(fbank.to(dev), method, valid.to(dev), track_provenance=True)
            logits = logits.float().cpu()
            mask = state.kept_patch_mask()
            for row, i in enumerate(idx):
                logits_all[i] = logits[row]
                if mask is not None:
                    kept[i] = pack_mask(mask[row].cpu())
            for part, value in model_macs(model, state.grid, state.trace).items():
                macs_total[part] = macs_total.get(part, 0.0) + value * len(idx)
            if not tokens:
                tokens = [{"attention": t.attention_tokens, "mlp": t.mlp_tokens} for t in state.trace]
    logits = torch.stack(logits_all)
    per_clip: Dict[str, Any] = {"ids": list(features.ids)}
    if metric == "accuracy":
        pred = logits.argmax(dim=-1)
        correct = pred == features.labels
        per_clip.update(pred=pred.tolist(), correct=correct.int().tolist())
        score = score_with_interval("accuracy", seed, correct=correct)
    else:
        scores = logits.sigmoid()
        per_clip["scores"] = [[round(v, 5) for v in row] for row in scores.tolist()]
        per_clip["labels"] = [row.nonzero().flatten().tolist() for row in features.labels]
        score = score_with_interval("map", seed, scores=scores, targets=features.labels)
    per_clip["kept_patches"] = kept if any(k is not None for k in kept) else None
    macs = {part: value / n for part, value in macs_total.items()}
    return Evaluation(metric, score, per_clip, macs, tokens)


def pack_mask(mask: torch.Tensor) -> str:
    """A boolean patch mask as a hex string (bit p = patch p kept), for compact records."""
    bits = 0
    for p in mask.nonzero().flatten().tolist():
        bits |= 1 << p
    width = (mask.numel() + 3) // 4
    return format(bits, f"0{width}x")


def unpack_mask(text: str, num_patches: int) -> torch.Tensor:
    bits = int(text, 16)
    return torch.tensor([(bits >> p) & 1 for p in range(num_patches)], dtype=torch.bool)
