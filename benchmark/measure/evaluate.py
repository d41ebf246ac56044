"""Evaluating one method on one task variant: predictions, per-clip outcomes, token trace, MACs.

Clips are batched by the run's strategy (prunebench.data.batching). Under a key-padding mask each
clip's kept-patch map and selection statistics are those of its own grid (padding columns cut).
MACs: what the batches spent per clip, and what each clip alone at its own length needs
(`clip_macs`): the difference is the compute spent on padding."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from prunebench.data.batching import Batching, Padder, batches
from prunebench.data.features import FeatureSet
from prunebench.measure.macs import clip_macs, model_macs
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
    real_macs: Optional[float] = None  # per clip alone at its own length, averaged over clips


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
    batching: Optional[Batching] = None,
    padder: Optional[Padder] = None,
) -> Evaluation:
    """Run `method` over every clip of `features`: the score with its interval, per-clip outcomes,
    kept patches, MACs and the token trace. `progress`: a bar over the clips. `batching`: the
    strategy (default `pad-fixed` at `batch_size`); `padder`: the front end that pads a clip
    (needed when a strategy pads clips stored at their own length)."""
    batching = batching or Batching(batch_size=batch_size)
    dev = resolve_device(device)
    model = model.to(dev).eval()
    n = len(features)
    logits_all: List[Optional[torch.Tensor]] = [None] * n
    kept: List[Optional[str]] = [None] * n
    macs_total: Dict[str, float] = {}
    tokens: List[Dict[str, int]] = []
    intensity = SelectionIntensity(model)
    alone: Dict[int, int] = {}  # real frames -> MACs of a clip of that length alone
    real_total = 0.0
    bar = Progress(n, f"eval {method.id}", progress, unit="clip")
    with bar, torch.inference_mode(), autocast_for(dev, resolve_dtype(dtype)):
        for batch in batches(features, batching, padder):
            idx, fbank, valid = batch.indices, batch.fbank, batch.valid
            bar.update(len(idx))
            logits, state = model.forward_with_state(fbank.to(dev), method, valid.to(dev), track_provenance=True,
                                                     key_padding=batch.key_padding)
            logits = logits.float().cpu()
            mask = state.kept_patch_mask()
            mask = None if mask is None else mask.cpu()  # one transfer per batch, not per clip
            if mask is not None and batch.key_padding:  # each clip's own grid: padding columns cut
                mask = [clip_grid(mask[row], state.grid, model.grid_for_frames(int(valid[row]))) for row in range(len(idx))]
            for row, i in enumerate(idx):
                logits_all[i] = logits[row]
                if mask is not None:
                    kept[i] = pack_mask(mask[row])
            if mask is not None and batch.key_padding:
                for row in range(len(idx)):
                    v = int(valid[row])
                    intensity.add(fbank[row:row + 1, :v], valid[row:row + 1], mask[row].unsqueeze(0))
            elif mask is not None:
                intensity.add(fbank, valid, mask)
            for part, value in model_macs(model, state.grid, state.trace).items():
                macs_total[part] = macs_total.get(part, 0.0) + value * len(idx)
            for v in valid.tolist():
                if v not in alone:
                    alone[v] = clip_macs(model, method, v)
                real_total += alone[v]
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
    if batching.strategy != "pad-fixed" or len(set(features.valid_frames.tolist())) > 1:
        per_clip["frames"] = [int(v) for v in features.valid_frames.tolist()]  # each clip's real length
    return Evaluation(metric, score, per_clip, macs, tokens, intensity.summary(), real_total / n)


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


def clip_grid(mask: torch.Tensor, grid, own) -> torch.Tensor:
    """A (freq * time) patch mask of a padded batch's grid cut to a clip's own grid (the first
    `own[1]` time columns): patch ids as the clip alone numbers them."""
    return mask.reshape(grid[0], grid[1])[:, : own[1]].reshape(-1)


def pack_mask(mask: torch.Tensor) -> str:
    """A boolean patch mask as a hex string (bit p = patch p kept), for compact records."""
    bits = 0
    for p in mask.nonzero().flatten().tolist():
        bits |= 1 << p
    width = (mask.numel() + 3) // 4
    return format(bits, f"0{width}x")
