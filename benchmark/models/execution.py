"""How a model's inference runs on the CPU: `eager` (PyTorch's modules as built) or `fast` (oneDNN
GEMMs with prepacked weights, bias and GELU fused into them), chosen by one setting (`auto`: fast
on a CPU that can run it, eager elsewhere).

The fast path is an explicit module substitution, applied where a model is built for inference
(`load_model`, a run's models, `prunebench profile` / `tune`): every `nn.Linear` becomes a
`FastLinear` and every timm `Mlp` whose activation is GELU a `FastMlp` (fc1 with the GELU fused).
No forward code of a family changes and nothing global is patched: the blocks call `attn.qkv`,
`attn.proj`, `mlp(...)` as before, so a pruning method sees the same tensors on either path. The
substitutes hold the very same `Parameter`s under the same names (the state dict, the weights guard
and checkpoints see no difference) and keep a packed copy of each weight per dtype, repacked when
the weight changes (its version counter). Where oneDNN does not apply they run what eager runs
(`F.linear`): off the CPU, and while autograd records (training, a `torch.enable_grad` forward).

Why oneDNN with packed weights, measured in docs/cpu-speed.md: torch's default fp32 GEMM is MKL's,
which takes its AVX2 path on AMD CPUs (half the AVX-512 rate); oneDNN picks the widest ISA of any
vendor's CPU, packs the weight once instead of per call, adds the bias in the GEMM's epilogue
instead of a copy before it, and fuses GELU; in bfloat16 it runs AMX / AVX512_BF16 kernels.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from prunebench.core.errors import ConfigError

EXECUTIONS = ("auto", "fast", "eager")
# what oneDNN's linear computes in each precision (float16 needs AVX512_FP16 / AMX_FP16: checked by the dtype)
FAST_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def fast_unavailable() -> Optional[str]:
    """Why this torch build cannot run the fast path (None: it can)."""
    if not torch.backends.mkldnn.is_available():
        return "this torch build has no oneDNN (torch.backends.mkldnn)"
    for op in ("_linear_pointwise", "_reorder_linear_weight"):
        try:
            getattr(torch.ops.mkldnn, op)
        except (AttributeError, RuntimeError):
            return f"this torch build lacks torch.ops.mkldnn.{op}"
    return None


def available_executions(device: torch.device, compiled: bool = False) -> Tuple[str, ...]:
    """What runs on `device` with this build: fast only on a CPU, with oneDNN, and not under
    torch.compile (inductor cannot lower the packed oneDNN weights: 'weight must be a graph constant')."""
    return ("fast", "eager") if _fast_blocker(device, compiled) is None else ("eager",)


def _fast_blocker(device: torch.device, compiled: bool) -> Optional[str]:
    if device.type != "cpu":
        return f"the fast path is for the CPU, this runs on {device.type}"
    if compiled:
        return "torch.compile cannot lower the fast path's packed oneDNN weights: compile the eager path"
    return fast_unavailable()


def resolve_execution(requested: str, device: torch.device, setting: str = "measure: execution",
                      compiled: bool = False) -> str:
    """`fast` or `eager` for `requested` on `device` (`compiled`: under torch.compile): `auto` is
    fast where it is available; a path this device or build cannot run is a ConfigError naming
    `setting`, what was asked and what is available (never a silent fallback)."""
    if requested not in EXECUTIONS:
        raise ConfigError(f"{setting}: expected one of {', '.join(EXECUTIONS)}, got {requested!r}")
    available = available_executions(device, compiled)
    if requested == "auto":
        return available[0]
    if requested not in available:
        raise ConfigError(f"{setting}: {requested} asked, available here: {', '.join(available)} "
                          f"({_fast_blocker(device, compiled)})")
    return requested


# -- the substitutes --------------------------------------------------------------------------------
GELU_ALGORITHMS = {"none": "none", "tanh": "tanh"}  # nn.GELU's approximate -> oneDNN's gelu algorithm


class FastLinear(nn.Module):
    """An `nn.Linear` (optionally followed by GELU) on oneDNN with a packed weight.

    `weight` and `bias` are the replaced Linear's own Parameters. Under CPU autocast the input is
    cast to the autocast dtype, as autocast casts a linear's (the bias stays float32: oneDNN adds
    it in float32 before rounding)."""

    def __init__(self, linear: nn.Linear, gelu: Optional[str] = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.gelu = gelu  # None, or nn.GELU's `approximate` ("none", "tanh")
        self._eager = (linear,)  # the module it replaced (a tuple: not a submodule), given back by `eager`
        self._packed: Dict[torch.dtype, Tuple[Tuple[int, int], torch.Tensor]] = {}

    def extra_repr(self) -> str:
        gelu = f", gelu={self.gelu}" if self.gelu else ""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}{gelu}"

    def eager(self) -> nn.Linear:
        return self._eager[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        if x.device.type != "cpu" or dtype not in FAST_DTYPES or _records_grad(x, self.weight):
            y = F.linear(x, self.weight, self.bias)
            return y if self.gelu is None else F.gelu(y, approximate=self.gelu)
        attr, algorithm = ("none", "") if self.gelu is None else ("gelu", GELU_ALGORITHMS[self.gelu])
        return torch.ops.mkldnn._linear_pointwise(x.to(dtype), self._packed_weight(dtype), self.bias, attr, [],
                                                  algorithm)

    def __getstate__(self) -> dict:  # copies and pickles repack: oneDNN's packed tensors do not travel
        return {**super().__getstate__(), "_packed": {}}

    def _packed_weight(self, dtype: torch.dtype) -> torch.Tensor:
        stamp = _stamp(self.weight)
        cached = self._packed.get(dtype)
        if cached is None or cached[0] != stamp:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach().to(dtype), None)
            self._packed[dtype] = cached = (stamp, packed)
        return cached[1]


class FastMlp(nn.Module):
    """timm's `Mlp` (fc1, GELU, drop1, norm, fc2, drop2) with the GELU fused into fc1. Same
    submodule names, so the same state dict; `eager()` gives the Mlp it replaced."""

    def __init__(self, mlp: nn.Module):
        super().__init__()
        self.fc1 = FastLinear(mlp.fc1, gelu=mlp.act.approximate)
        self.drop1, self.norm = mlp.drop1, mlp.norm
        self.fc2 = FastLinear(mlp.fc2)
        self.drop2 = mlp.drop2
        self._eager = (mlp,)

    def eager(self) -> nn.Module:
        return self._eager[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.norm(self.drop1(self.fc1(x)))))


def _records_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)


def _stamp(weight: torch.Tensor) -> Tuple[int, int]:
    """Where the weight lives and how often it was written in place: a change of either repacks."""
    try:
        version = weight._version
    except RuntimeError:  # an inference tensor has no version counter (and cannot be written outside inference mode)
        version = -1
    return weight.data_ptr(), version


def _fusable_mlp(module: nn.Module) -> bool:
    from timm.layers import Mlp

    return (type(module) is Mlp and isinstance(module.fc1, nn.Linear) and isinstance(module.fc2, nn.Linear)
            and type(module.act) is nn.GELU)


# -- applying a path --------------------------------------------------------------------------------
def set_execution(model: nn.Module, execution: str) -> nn.Module:
    """Put `model` on `execution` ("fast" or "eager", resolved), in place; returns it. Either way
    round is exact: eager gives back the very modules the fast path replaced."""
    if execution not in ("fast", "eager"):
        raise ValueError(f"set_execution: expected fast or eager (resolve 'auto' first), got {execution!r}")
    _swap(model, _to_fast if execution == "fast" else _to_eager)
    return model


def _to_fast(module: nn.Module) -> Optional[nn.Module]:
    if _fusable_mlp(module):
        return FastMlp(module)
    if type(module) is nn.Linear:
        return FastLinear(module)
    return None


def _to_eager(module: nn.Module) -> Optional[nn.Module]:
    return module.eager() if isinstance(module, (FastLinear, FastMlp)) else None


def _swap(module: nn.Module, replace) -> None:
    for name, child in list(module.named_children()):
        new = replace(child)
        if new is None:
            _swap(child, replace)
        else:
            setattr(module, name, new)


def execution_of(model: nn.Module) -> str:
    """The path a model is on: "fast" when any module of it was substituted, else "eager"."""
    return "fast" if any(isinstance(m, (FastLinear, FastMlp)) for m in model.modules()) else "eager"
