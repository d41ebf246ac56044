"""Methods named by a measured speed instead of a keep rate: `{name: topk, target_speedup: 1.5}`.

Pruning tuned for throughput: the keep rate is whatever reaches the target speedup against `none`
on the run's device, at the input length of each task variant. A `SpeedTarget` stands in the
config's `speed_targets` (its id, `topk-target_speedup=1.5`, names its records); it is not a
method. The work unit's resolve step tunes it with `prunebench.measure.tune` to a concrete method
before timing and evaluation, which run that method. The record keeps the target, the keep rate it resolved
to and the speedup measured (`method.target_speedup`, `method.tuned`, and the throughput block).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from prunebench.core.errors import ConfigError
from prunebench.core.registry import METHODS
from prunebench.method_api import Method

KEY = "target_speedup"


@dataclass(frozen=True)
class SpeedTarget:
    name: str
    other_params: Dict[str, Any]  # the method's parameters besides the keep rate
    target: float

    @property
    def id(self) -> str:
        return f"{self.name}-{KEY}={self.target:g}"

    @property
    def params(self) -> Dict[str, Any]:
        return {**self.other_params, KEY: self.target}

    def resolve(self, keep_rate: float) -> Method:
        return METHODS.get(self.name)(**{**self.other_params, "keep_rate": keep_rate})

    def spec_block(self) -> Dict[str, Any]:
        """The record's method block before tuning (a failed pair's): every parameter, defaults
        filled in, but the keep rate that tuning finds."""
        params = {k: v for k, v in {**METHODS.get(self.name).defaults, **self.other_params}.items() if k != "keep_rate"}
        return {"name": self.name, "params": params, "id": self.id, KEY: self.target}

    def describe(self, method: Method, tuned: Dict[str, Any]) -> Dict[str, Any]:
        """The record's `method` block: the resolved method's parameters under the target's id."""
        return {"name": self.name, "params": method.params, "id": self.id, KEY: self.target, "tuned": tuned}


def speed_target(name: str, params: Dict[str, Any], where: str, throughput: bool) -> SpeedTarget:
    """A checked SpeedTarget from a config's method entry (`params` holds `target_speedup`)."""
    params = dict(params)
    target = params.pop(KEY)
    if not throughput:
        raise ConfigError(f"{where}: {KEY} needs the timing pass (measure.throughput: true)")
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not target >= 1:
        raise ConfigError(f"{where}: {KEY} must be a number >= 1, got {target!r}")
    if "keep_rate" in params:
        raise ConfigError(f"{where}: give {KEY} or keep_rate, not both (the keep rate is what is tuned)")
    cls = METHODS.get(name)
    if "keep_rate" not in cls.defaults:
        raise ConfigError(f"{where}: method {name!r} has no keep_rate to tune to a {KEY}")
    cls(**params)  # the other parameters are checked now, not after the timing pass
    return SpeedTarget(name, params, float(target))
