"""Evaluating one method on one task variant: predictions, per-clip outcomes, token trace, MACs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from prunebench.data.features import FeatureSet
from prunebench.measure.macs import model_macs
from prunebench.method_api import Method
from prunebench.metrics import get_metric
from prunebench.models.encoder import TokenEncoder
from prunebench.method_api.patches import patch_statistic
from prunebench.core.progress import Progress
from prunebench.core.device import autocast_for, resolve_device, resolve_dtype


@dataclass
class Evaluation:
    metric: str  # the registered name (prunebench.metrics)
    score: Dict[str, Any]  # {"value", "ci95"}
    per_clip: Dict[str, Any]
    macs_by_part: Dict[str, float]  # per sample, averaged over clips
    tokens_per_layer: List[Dict[str, int]]  # tokens at attention and MLP of each block, per sample
    selection: Optional[Dict[str, Any]] = None  # input intensity of kept vs dropped patches


def evaluate(
    model: TokenEncoder,
    method: Method,
    features: FeatureSet,
    metric: str,
    batch_size: int = 32,
    device: str = "auto",
    dtype: str = "float32",
    seed: int = 0,
    *,
    progress: bool = False,
) -> Evaluation:
    """Run `method` over every clip of `features`: the score with its interval, per-clip outcomes,
    kept patches, MACs and the token trace. `progress`: a bar over the clips."""
    dev = resolve_device(device)
    model = model.to(dev).eval()
    n = len(features)
    logits_all: List[Optional[torch.Tensor]] = [None] * n
    kept: List[Optional[str]] = [None] * n
    macs_total: Dict[str, float] = {}
    tokens: List[Dict[str, int]] = []
    intensity = SelectionIntensity(model)
    bar = Progress(n, f"eval {method.id}", progress, unit="clip")
    with bar, torch.inference_mode(), autocast_for(dev, resolve_dtype(dtype)):
        for idx, fbank, valid in features.batches(batch_size):
            bar.update(len(idx))
            logits, state = model.forward_with_state(fbank.to(dev), method, valid.to(dev), track_provenance=True)
            logits = logits.float().cpu()
            mask = state.kept_patch_mask()
            mask = None if mask is None else mask.cpu()  # one transfer per batch, not per clip
            for row, i in enumerate(idx):
                logits_all[i] = logits[row]
                if mask is not None:
                    kept[i] = pack_mask(mask[row])
            if mask is not None:
                intensity.add(fbank, valid, mask)
            for part, value in model_macs(model, state.grid, state.trace).items():
                macs_total[part] = macs_total.get(part, 0.0) + value * len(idx)
            if not tokens:
                tokens = [{"attention": t.attention_tokens, "mlp": t.mlp_tokens} for t in state.trace]
    logits = torch.stack(logits_all)
    scorer = get_metric(metric)
    per_clip: Dict[str, Any] = {"ids": list(features.ids), **scorer.per_clip(logits, features.labels)}
    score = scorer.score(logits, features.labels, seed)
    per_clip["kept_patches"] = kept if any(k is not None for k in kept) else None
    if features.silent_fraction is not None:
        per_clip["silent_fraction"] = [round(float(v), 3) for v in features.silent_fraction]
    macs = {part: value / n for part, value in macs_total.items()}
    return Evaluation(metric, score, per_clip, macs, tokens, intensity.summary())


class SelectionIntensity:
    """Mean input intensity (patch mean of the normalised log-mel, prunebench.method_api.patches) of the patches
    a method kept against those it dropped, averaged over clips; and the share of kept patches that
    are only padding (the padding trap: zero padding normalises to a loud-looking constant)."""

    def __init__(self, model: TokenEncoder):
        dims = model.dims()
        self.patch, self.stride = tuple(dims.patch_size), tuple(dims.stride)
        self.kept: List[float] = []
        self.dropped: List[float] = []
        self.padding_kept: List[float] = []
        self.clips_with_drops = 0

    def add(self, fbank: torch.Tensor, valid: torch.Tensor, mask: torch.Tensor) -> None:
        stat = patch_statistic(fbank.float().cpu(), self.patch, self.stride, valid.cpu(), "mean")
        real = torch.isfinite(stat)
        for row in range(stat.shape[0]):
            keep, values = mask[row], stat[row]
            kept_real, dropped_real = keep & real[row], ~keep & real[row]
            if bool(kept_real.any()):
                self.kept.append(float(values[kept_real].mean()))
            if bool(dropped_real.any()):
                self.dropped.append(float(values[dropped_real].mean()))
            if bool((~keep).any()):
                self.clips_with_drops += 1
            if bool(keep.any()):
                self.padding_kept.append(float((keep & ~real[row]).sum()) / float(keep.sum()))

    def summary(self) -> Optional[Dict[str, Any]]:
        """None without kept-patch masks; a method that kept only padding still reports that
        (kept_padding_share 1.0, no kept intensity): the padding trap at its worst."""
        if not self.padding_kept:
            return None
        mean = lambda v: sum(v) / len(v) if v else None  # noqa: E731
        kept, dropped = mean(self.kept), mean(self.dropped)
        return {
            "statistic": "patch mean of the normalised log-mel",
            "kept_intensity": kept,
            "dropped_intensity": dropped,
            "kept_minus_dropped": None if dropped is None or kept is None else kept - dropped,
            "kept_padding_share": mean(self.padding_kept),
            "clips_with_drops": self.clips_with_drops,
        }


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
