"""No pruning: the baseline every method is compared with."""
from __future__ import annotations

from benchmark.method import Method
from benchmark.core.registry import BASELINE, register_method


@register_method(BASELINE)
class NoPruning(Method):
    """No pruning: all tokens reach every block (the baseline)."""

