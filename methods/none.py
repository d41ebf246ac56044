"""No pruning: the baseline every method is compared with."""
from __future__ import annotations

from benchmark.method import Method
from benchmark.core.registry import register_method


@register_method("none")
class NoPruning(Method):
    """No pruning: all tokens reach every block (the baseline)."""

    name = "none"
