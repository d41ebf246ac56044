"""Task metrics, one file each, registered by name (`prunebench.core.registry.METRICS`): what a
prediction scores per clip and over clips (with its bootstrap interval), which paired statistics
it supports, and how it is shown. The registered name is the key a record stores the score under.
May import: core."""
from prunebench.metrics.base import Metric, get_metric

__all__ = ["Metric", "get_metric"]
