"""mAP: macro average precision over the classes with a positive (multi-label, e.g. AudioSet)."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
import torch

from prunebench.core.registry import register_metric
from prunebench.metrics.base import Metric
from prunebench.metrics.bootstrap import bootstrap_interval, clip_draws


@register_metric("map")
class MeanAveragePrecision(Metric):
    """mAP (multi-label): no clip is right or wrong, so only score drops are compared."""

    label = "mAP"
    description = "macro average precision"
    multi_label = True
    resamples = 200  # of the score's interval: mAP is recomputed per resample, costlier than a mean

    def value(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return mean_average_precision(logits.sigmoid(), targets)

    def score(self, logits: torch.Tensor, targets: torch.Tensor, seed: int) -> Dict[str, Any]:
        scores = logits.sigmoid()
        draws = clip_draws(len(scores), seed)[: self.resamples]
        return {"value": mean_average_precision(scores, targets),
                "ci95": bootstrap_interval(resampled_map(scores, targets, draws))}

    def per_clip(self, logits: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Class scores (sigmoid) and label ids. float16, as the record's sidecar stores them: no
        Python list of clips x classes floats."""
        return {"scores": logits.sigmoid().numpy().astype(np.float16),
                "labels": [row.nonzero().flatten().tolist() for row in targets]}

    def from_scores(self, scores: torch.Tensor, targets: torch.Tensor) -> float:
        return mean_average_precision(scores, targets)

    def resampled(self, scores: torch.Tensor, targets: torch.Tensor, draws: torch.Tensor) -> List[float]:
        return resampled_map(scores, targets, draws)


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Macro average precision over the classes that have at least one positive."""
    # Imported here: importing any part of torchmetrics imports all of it (its text metrics pull in
    # transformers where installed), ~4 s on 2 cores, paid by every CLI call and Ray worker otherwise.
    from torchmetrics.functional.classification import multilabel_average_precision

    present = targets.sum(dim=0) > 0
    return float(
        multilabel_average_precision(scores[:, present], targets[:, present].long(), num_labels=int(present.sum()), average="macro")
    )


def resampled_map(scores: torch.Tensor, targets: torch.Tensor, draws: torch.Tensor) -> List[float]:
    """mAP of each bootstrap resample (rows of `draws`: clip indices), equal to
    `mean_average_precision(scores[d], targets[d])` (ties grouped into one threshold, as
    torchmetrics does) without re-sorting: each class is sorted once, and a resample only reweights
    the clips by how often it drew them. torchmetrics took about 50 s for one mAP of 20k clips x 527
    classes on the 2-core machine, so 200 resamples were out of reach; this makes AS-20K intervals
    affordable. Only thresholds that hold a positive contribute to average precision, so the work
    per resample is one weighted prefix sum per class plus the positives."""
    n, c = scores.shape
    order = scores.argsort(dim=0, descending=True, stable=True)
    ranked = scores.gather(0, order)
    group_end = torch.ones_like(ranked, dtype=torch.bool)
    group_end[:-1] = ranked[:-1] != ranked[1:]
    # for every rank, the last rank of its run of equal scores (reverse running minimum of the ends)
    rows = torch.arange(n).unsqueeze(1).expand(n, c)
    ends = torch.where(group_end, rows, torch.full_like(rows, n))
    end_of = ends.flip(0).cummin(0).values.flip(0)
    pos_rank, pos_class = (targets.gather(0, order) > 0).nonzero(as_tuple=True)
    pos_clip = order[pos_rank, pos_class]
    key = pos_class * n + end_of[pos_rank, pos_class]  # one slot per threshold holding a positive
    slots, slot_of = key.unique(return_inverse=True)  # sorted: class-major, rank ascending
    slot_class, slot_end = slots // n, slots % n
    out = []
    for d in draws:
        weight = torch.bincount(d, minlength=n).to(torch.float32)
        delta = torch.zeros(len(slots)).index_add_(0, slot_of, weight[pos_clip])  # positives per threshold
        total = torch.zeros(c).index_add_(0, slot_class, delta)
        running = delta.cumsum(0)
        before_class = torch.cat([torch.zeros(1), total.cumsum(0)[:-1]])
        tp = running - before_class[slot_class]
        seen = weight[order].cumsum(0)[slot_end, slot_class]
        ap = torch.zeros(c).index_add_(0, slot_class, delta * tp / seen.clamp_min(1e-12))
        present = total > 0
        out.append(float((ap[present] / total[present]).mean()) if bool(present.any()) else 0.0)
    return out
