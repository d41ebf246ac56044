"""Scores with 95% bootstrap intervals: accuracy (single-label) and mAP (multi-label), via torchmetrics."""
from __future__ import annotations

from typing import Dict, List

import torch
from torchmetrics.functional.classification import multilabel_average_precision

BOOTSTRAP_SAMPLES = 1000


def accuracy(correct: torch.Tensor) -> float:
    return float(correct.float().mean())


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Macro average precision over the classes that have at least one positive."""
    present = targets.sum(dim=0) > 0
    return float(
        multilabel_average_precision(scores[:, present], targets[:, present].long(), num_labels=int(present.sum()), average="macro")
    )


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
        samples = [mean_average_precision(scores[d], targets[d]) for d in draws[:200]]
    return {"value": value, "ci95": bootstrap_interval(samples)}
