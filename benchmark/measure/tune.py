"""`prunebench tune`: the keep rate at which a method reaches a measured speedup on this device.

Pruning tuned for throughput means comparing methods at equal measured speed, not at equal keep
rate. The search starts where the MAC count promises the target (MACs are exact and cheap to
count), then measures the speedup against `none`, interleaved in the same process, and corrects the
keep rate by the efficiency it saw (measured speedup / MAC ratio), inside a bracket that narrows
with every measurement, until the measured speedup is within `tolerance` of the target. The keep
rate found is measured once more at the end (the figure reported).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from prunebench.core.errors import ConfigError
from prunebench.core.registry import BASELINE, METHODS
from prunebench.measure.shapes import InputShape
from prunebench.measure.throughput import TimingSettings, measure_interleaved
from prunebench.method_api import Method

LOWEST_KEEP_RATE = 0.05  # below this a stage keeps one or two tokens: no method is tuned there
MAC_BISECTION_STEPS = 30


class UnreachableSpeedup(ConfigError):
    """The target lies outside what the method can reach (above its best, or below 1)."""


@dataclass
class TuneResult:
    method: str
    params: Dict[str, object]  # the method's other parameters, as given
    keep_rate: float
    target: float
    speedup: float  # measured, interleaved with `none`, in the final measurement
    mac_ratio: float
    tolerance: float
    steps: List[Dict[str, float]] = field(default_factory=list)  # every measurement of the search

    @property
    def spec(self) -> str:
        """`topk:keep_rate=0.43,fuse=true`: what `--method` and a config's method entry take."""
        params = {**self.params, "keep_rate": self.keep_rate}
        return self.method + ":" + ",".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in params.items())

    @property
    def reached(self) -> bool:
        return abs(self.speedup / self.target - 1) <= self.tolerance


def keep_rate_for_mac_ratio(mac_ratio: Callable[[float], float], target: float,
                            lo: float = LOWEST_KEEP_RATE, hi: float = 1.0) -> float:
    """The keep rate in [lo, hi] whose MAC ratio is `target` (the ratio falls as the keep rate rises)."""
    for _ in range(MAC_BISECTION_STEPS):
        mid = (lo + hi) / 2
        if mac_ratio(mid) >= target:
            lo = mid
        else:
            hi = mid
    return lo


def search_keep_rate(mac_ratio: Callable[[float], float], speedup: Callable[[float], float], target: float,
                     tolerance: float = 0.05, max_measurements: int = 6, name: str = "method") -> Tuple[float, List[Dict[str, float]]]:
    """(keep rate, measurements) reaching `speedup(keep rate)` within `tolerance` of `target`.
    Raises UnreachableSpeedup with the best reached when no keep rate gets there."""
    if target < 1:
        raise UnreachableSpeedup(f"{name}: target speedup {target:g} is below 1 (no pruning is 1.0)")
    best_macs = mac_ratio(LOWEST_KEEP_RATE)
    if best_macs < target:
        raise UnreachableSpeedup(f"{name}: target speedup {target:g} is above what its MACs allow "
                                 f"(MAC ratio {best_macs:.2f} at keep_rate {LOWEST_KEEP_RATE:g})")
    lo, hi = LOWEST_KEEP_RATE, 1.0  # the speedup at lo is too high or unknown, at hi too low
    keep, steps = keep_rate_for_mac_ratio(mac_ratio, target), []
    for _ in range(max_measurements):
        measured, ratio = speedup(keep), mac_ratio(keep)
        steps.append({"keep_rate": keep, "speedup": measured, "mac_ratio": ratio})
        if abs(measured / target - 1) <= tolerance:
            return keep, steps
        if measured < target:
            hi = keep
        else:
            lo = keep
        # The MAC count at the efficiency just seen: where the target should be, kept in the bracket.
        wanted = target * ratio / measured
        guess = keep_rate_for_mac_ratio(mac_ratio, wanted, lo, hi) if wanted <= mac_ratio(lo) else lo
        keep = guess if lo < guess < hi else (lo + hi) / 2
    best = min(steps, key=lambda s: abs(s["speedup"] / target - 1))
    if best["speedup"] < target * (1 - tolerance) and hi - lo < 1e-3:
        raise UnreachableSpeedup(f"{name}: target speedup {target:g} not reached; best {best['speedup']:.2f} "
                                 f"at keep_rate {best['keep_rate']:.3f}")
    return best["keep_rate"], steps


def tune(model, method_name: str, params: Dict, target: float, shape: InputShape, settings: TimingSettings, *,
         tolerance: float = 0.05, max_measurements: int = 6,
         macs: Optional[Callable[[Method], float]] = None) -> TuneResult:
    """Tune `method_name`'s keep rate on `model` to the measured speedup `target` at `shape`."""
    from prunebench.measure.profile import macs_per_sample

    count = macs or (lambda m: float(sum(macs_per_sample(model, m, shape).values())))
    cls, base = METHODS.get(method_name), METHODS.get(BASELINE)()
    if "keep_rate" not in cls.defaults:
        raise ConfigError(f"method {method_name!r} has no keep_rate to tune")
    base_macs = count(base)
    make = lambda keep: cls(**{**params, "keep_rate": round(keep, 3)})  # noqa: E731
    ratios: Dict[float, float] = {}  # the search asks the same rounded keep rate many times: count each once

    def mac_ratio(keep: float) -> float:
        key = round(keep, 3)
        if key not in ratios:
            ratios[key] = base_macs / count(make(key))
        return ratios[key]

    def speedup(keep: float) -> float:
        method = make(keep)
        timed = measure_interleaved(model, [base, method], shape.frames, settings, valid_frames=_valid(shape))
        return float(timed[method.id].speedup_vs_none)

    keep, steps = search_keep_rate(mac_ratio, speedup, target, tolerance, max_measurements, method_name)
    keep = round(keep, 3)
    final = speedup(keep)  # measured again, interleaved, as reported
    return TuneResult(method_name, dict(params), keep, target, final, mac_ratio(keep), tolerance, steps)


def _valid(shape: InputShape) -> Optional[int]:
    return shape.valid_frames if shape.valid_frames < shape.frames else None
