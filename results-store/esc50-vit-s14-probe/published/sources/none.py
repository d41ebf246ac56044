"""No pruning: the baseline every method is compared with."""
from __future__ import annotations

from prunebench.method_api import Method
from prunebench.core.registry import BASELINE, register_method


@register_method(BASELINE)
class NoPruning(Method):
    """No pruning: all tokens reach every block (the baseline)."""

    supports_padding = True  # nothing is kept or dropped: padding stays masked, as it came

