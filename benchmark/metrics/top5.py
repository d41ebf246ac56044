"""Top-5 accuracy: the share of clips whose label is among the five highest-scoring classes."""
from __future__ import annotations

from typing import Optional

import torch

from prunebench.core.registry import register_metric
from prunebench.metrics.accuracy import Accuracy


@register_metric("top5-accuracy")
class Top5Accuracy(Accuracy):
    """Top-5 accuracy (single-label): right when the label is among the five highest-scoring
    classes (all of them where there are fewer); `pred` stays the top-1 class."""

    label = "top-5 accuracy"
    description = "label among the five highest-scoring classes"
    k = 5

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        top = logits.topk(min(self.k, logits.shape[-1]), dim=-1).indices
        return (top == targets.unsqueeze(-1)).any(dim=-1)

    def chance(self, num_classes: int) -> Optional[float]:
        return min(self.k, num_classes) / num_classes
