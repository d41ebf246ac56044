"""Top-1 accuracy: the share of clips whose highest-scoring class is their label."""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from prunebench.core.registry import register_metric
from prunebench.metrics.base import Metric
from prunebench.metrics.bootstrap import bootstrap_interval, clip_draws


@register_metric("accuracy")
class Accuracy(Metric):
    """Top-1 accuracy (single-label): each clip right or wrong, so every paired statistic applies."""

    label = "accuracy"
    description = "top-1 accuracy"
    flips = True

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=-1) == targets

    def value(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return float(self.correct(logits, targets).float().mean())

    def score(self, logits: torch.Tensor, targets: torch.Tensor, seed: int) -> Dict[str, Any]:
        correct = self.correct(logits, targets).float()
        samples = correct[clip_draws(len(correct), seed)].mean(dim=1).tolist()
        return {"value": float(correct.mean()), "ci95": bootstrap_interval(samples)}

    def per_clip(self, logits: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """The predicted class and whether it was right (0/1)."""
        return {"pred": logits.argmax(dim=-1).tolist(), "correct": self.correct(logits, targets).int().tolist()}

    def chance(self, num_classes: int) -> Optional[float]:
        return 1.0 / num_classes
