"""Scores with 95% bootstrap intervals: accuracy (single-label) and mAP (multi-label), via torchmetrics."""
from __future__ import annotations

from typing import Dict, List

import torch

BOOTSTRAP_SAMPLES = 1000


def accuracy(correct: torch.Tensor) -> float:
    return float(correct.float().mean())


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


def bootstrap_interval(values: List[float], level: float = 0.95) -> List[float]:
    ordered = sorted(values)
    lo = ordered[int((1 - level) / 2 * len(ordered))]
    hi = ordered[min(len(ordered) - 1, int((1 + level) / 2 * len(ordered)))]
    return [lo, hi]


def score_with_interval(metric: str, seed: int, correct: torch.Tensor = None, scores: torch.Tensor = None,
                        targets: torch.Tensor = None) -> Dict[str, object]:
    """{"value", "ci95"}: the metric and a percentile bootstrap interval over clips (seeded)."""
    generator = torch.Generator().manual_seed(seed)
    n = len(correct) if metric == "accuracy" else len(scores)
    draws = torch.randint(0, n, (BOOTSTRAP_SAMPLES, n), generator=generator)
    if metric == "accuracy":
        c = correct.float()
        value = accuracy(c)
        samples = c[draws].mean(dim=1).tolist()
    else:
        value = mean_average_precision(scores, targets)
        samples = resampled_map(scores, targets, draws[:200])
    return {"value": value, "ci95": bootstrap_interval(samples)}
