"""What a metric is: the score of a model's logits on a task's labels, per clip and over clips,
the paired statistics it supports, and how it is shown."""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import torch

from prunebench.core.errors import PluginError
from prunebench.core.registry import METRICS


class Metric:
    """A task metric. A new one is one file in this folder (or a plugin):

        @register_metric("top5-accuracy")
        class Top5Accuracy(Accuracy):
            ...

    The registration names it (`name`, also the key of its score in a record); a task selects it by
    that name (`Task.metric`). Logits are (clips, classes); targets are what `targets` makes of the
    clips' labels: class indices (clips,) or, for a multi-label metric, multi-hot rows."""

    name: ClassVar[str] = ""  # set by the registration
    label: ClassVar[str] = ""  # shown in tables, plots and the report
    description: ClassVar[str] = ""
    # Targets: one class per clip (a single-label metric; training uses cross-entropy) or
    # multi-hot rows (multi-label; training uses binary cross-entropy).
    multi_label: ClassVar[bool] = False
    # The paired statistics: True when each clip is right or wrong (the record's `correct`), so the
    # conditional flip rate, McNemar's test and the pooled flip effect apply; False: only the drop
    # of the score, recomputed from the class scores a record keeps (`from_scores`, `resampled`).
    flips: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = True
    # Display: the stored value times `scale`, with `digits` decimals and `unit`.
    unit: ClassVar[str] = "%"
    scale: ClassVar[float] = 100.0
    digits: ClassVar[int] = 1

    def targets(self, labels: Sequence[Tuple[int, ...]], num_classes: int) -> torch.Tensor:
        """The clips' label tuples as this metric reads them: the first label's index of each clip,
        or multi-hot rows."""
        if not self.multi_label:
            return torch.tensor([l[0] for l in labels], dtype=torch.long)
        multi_hot = torch.zeros(len(labels), num_classes)
        for i, l in enumerate(labels):
            multi_hot[i, list(l)] = 1.0
        return multi_hot

    def value(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The score over all clips."""
        raise NotImplementedError

    def score(self, logits: torch.Tensor, targets: torch.Tensor, seed: int) -> Dict[str, Any]:
        """{"value", "ci95"}: the score and a seeded percentile bootstrap interval over clips."""
        raise NotImplementedError

    def per_clip(self, logits: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """The per-clip outcome a record stores (beside the clip ids), e.g. pred and correct."""
        raise NotImplementedError

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(clips,) bool: each clip right or wrong; only for metrics with `flips`."""
        raise NotImplementedError(f"metric {self.name!r} has no per-clip right or wrong")

    def from_scores(self, scores: torch.Tensor, targets: torch.Tensor) -> float:
        """The score from the class scores a record keeps per clip (metrics without `flips`)."""
        raise NotImplementedError(f"metric {self.name!r} is not computed from stored class scores")

    def resampled(self, scores: torch.Tensor, targets: torch.Tensor, draws: torch.Tensor) -> List[float]:
        """`from_scores` of each bootstrap resample (rows of `draws`: clip indices)."""
        raise NotImplementedError(f"metric {self.name!r} is not computed from stored class scores")

    def chance(self, num_classes: int) -> Optional[float]:
        """The score of guessing uniformly at random; None where it has no single value."""
        return None

    def format(self, value: Optional[float]) -> str:
        """The value as shown: `0.935` -> `93.5%` for a share."""
        return "" if value is None else f"{value * self.scale:.{self.digits}f}{self.unit}"


METRICS.require_base(Metric)


def get_metric(name: str) -> Metric:
    """The metric registered as `name` (a PluginError naming the known ones otherwise)."""
    try:
        return METRICS.get(name)()
    except PluginError as exc:  # e.g. records scored by a plugin's metric, read without the plugin
        raise PluginError(f"{exc}; a plugin's metric needs its plugin loaded (--plugins FILE)") from None
