"""Cross-check of the analytic MAC count against two independent counters.

- torch's `FlopCounterMode` (torch.utils.flop_counter), FLOPs / 2;
- ptflops' `aten` backend (a dispatch-level counter of mm, bmm, addmm, convolution), with bias adds
  left out as the analytic count leaves them out (ptflops counts one MAC per bias element).

Both only see what reaches them as a matrix product, so the check always runs attention on the
*math* SDPA backend: the fused CPU kernel (`_scaled_dot_product_flash_attention_for_cpu`) counts as
0 FLOPs in both, and ptflops' default `pytorch` backend (module hooks) misses every functional
matmul besides. Neither of those numbers is ever reported. The counters run under `no_grad`, not
`inference_mode`: under inference mode a dispatch-level counter sees `aten.linear`, `aten.matmul`
and `aten.scaled_dot_product_attention` before they decompose, and ptflops' op table has none of
them, so it would count nearly nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from tabulate import tabulate
from torch.nn.attention import SDPBackend, sdpa_kernel

from prunebench.core.errors import ConfigError
from prunebench.measure.macs import FLOPS_PER_MAC, forward_macs
from prunebench.method_api import Method
from prunebench.measure.shapes import InputShape, make_batch

COUNTERS = ("flop_counter", "ptflops_aten")
TOLERANCE = 0.01  # a counter that sees every op agrees within 1%


def count_macs(model: torch.nn.Module, method: Method, fbank: torch.Tensor, valid: Optional[torch.Tensor],
               counter: str) -> float:
    """MACs per sample of one forward as `counter` sees it, attention on the math backend."""
    if counter not in COUNTERS:
        raise ConfigError(f"MAC counter {counter!r}: expected one of {', '.join(COUNTERS)}")
    batch = fbank.shape[0]
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        if counter == "flop_counter":
            from torch.utils.flop_counter import FlopCounterMode

            mode = FlopCounterMode(display=False)
            with mode:
                model.forward_with_state(fbank, method, valid, track_provenance=False)
            return mode.get_total_flops() / FLOPS_PER_MAC / batch
        from ptflops.aten_engine import FlopCounterMode as PtflopsAtenMode

        mode = PtflopsAtenMode(custom_hooks=_ptflops_hooks_without_bias())
        with mode:
            model.forward_with_state(fbank, method, valid, track_provenance=False)
        return mode.complexity / batch  # ptflops counts MACs already


def _ptflops_hooks_without_bias() -> dict:
    from ptflops.aten_ops import conv_flop_count

    aten = torch.ops.aten

    def addmm(inputs, outputs) -> int:  # (bias, input, weight): the product only
        rows, inner = inputs[1].shape
        return rows * inner * inputs[2].shape[1]

    def convolution(inputs, outputs) -> int:
        x, w, _, _, _, _, transposed = inputs[:7]
        return conv_flop_count(x.shape, w.shape, outputs[0].shape, transposed=transposed, bias=False)

    return {aten.addmm: addmm, aten.convolution: convolution, aten._convolution: convolution}


@dataclass
class MacCheck:
    method_id: str
    analytic: int  # MACs per sample, what records and `profile` report
    counted: Dict[str, float] = field(default_factory=dict)  # counter -> MACs per sample

    @property
    def errors(self) -> Dict[str, float]:
        return {name: abs(self.analytic - value) / max(value, 1.0) for name, value in self.counted.items()}

    @property
    def ok(self) -> bool:
        return all(e <= TOLERANCE for e in self.errors.values())

    def to_dict(self) -> dict:
        return {"method_id": self.method_id, "analytic_macs": self.analytic, "counted_macs": self.counted,
                "relative_error": self.errors, "tolerance": TOLERANCE, "ok": self.ok}


def check_macs(model: torch.nn.Module, methods: Sequence[Method], shape: InputShape,
               counters: Sequence[str] = COUNTERS, seed: int = 0) -> List[MacCheck]:
    """Analytic MACs per sample of each method on `shape` beside what each counter counts (batch 1)."""
    model = model.cpu().eval()
    fbank, valid = make_batch(shape, 1, model.config.num_mel_bins, seed)
    checks = []
    for method in methods:
        check = MacCheck(method.id, sum(forward_macs(model, method, fbank, valid).values()))
        for counter in counters:
            check.counted[counter] = count_macs(model, method, fbank, valid, counter)
        checks.append(check)
    return checks


def format_mac_check(checks: Sequence[MacCheck]) -> str:
    names = sorted({c for check in checks for c in check.counted})
    rows = []
    for check in checks:
        errors = check.errors
        rows.append([check.method_id, f"{check.analytic / 1e9:.4f}"]
                    + [f"{check.counted[n] / 1e9:.4f} ({errors[n]:.2%})" for n in names]
                    + ["ok" if check.ok else f"MISMATCH > {TOLERANCE:.0%}"])
    headers = ["method", "analytic GMACs"] + [f"{n} GMACs (error)" for n in names] + ["check"]
    return (tabulate(rows, headers=headers, tablefmt="github")
            + "\nAttention on the math SDPA backend; bias adds excluded; 1 MAC = 2 FLOPs.")
