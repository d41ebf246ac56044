"""What a run's `measure:` settings mean on this machine, resolved once for the plan and the work:
the device, the dtype checked against the CPU (bfloat16 needs AVX512_BF16 or AMX), the execution
path (`auto` resolved to fast or eager) and the CPU's capability, and from them the measure block
every record of the run states and its identity hashes (prunebench.records.identity)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch

from prunebench.core.device import check_dtype, cpu_capability, resolve_device
from prunebench.core.feature_dtype import feature_storage
from prunebench.models.execution import resolve_execution
from prunebench.records.identity import PAD_FIXED, measure_part


@dataclass(frozen=True)
class RunMeasure:
    device: torch.device
    dtype: str
    execution: str  # fast or eager
    cpu: Optional[str]  # the CPU's capability on a CPU run; None on an accelerator
    feature_dtype: str  # the feature cache's storage
    batching: str = PAD_FIXED  # the batching strategy (prunebench.data.batching)

    @property
    def block(self) -> Dict[str, Any]:
        return measure_part(self.dtype, str(self.device), self.feature_dtype, self.execution, self.cpu, self.batching)


def resolve_measure(measure: Dict[str, Any]) -> RunMeasure:
    """A run's measure settings on this machine; a dtype or path it cannot run is one ConfigError
    naming the key, what was asked and what is available."""
    device = resolve_device(measure["device"])
    check_dtype(device, measure["dtype"], "measure: dtype")
    execution = resolve_execution(measure["execution"], device, "measure: execution")
    cpu = cpu_capability() if device.type == "cpu" else None
    return RunMeasure(device, measure["dtype"], execution, cpu, feature_storage(measure["dtype"], measure["feature_dtype"]),
                      measure.get("batching", PAD_FIXED))
