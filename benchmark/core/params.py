"""Declared parameters with defaults, shared by methods, tasks and corruptions.

A plugin class lists its parameters and defaults in `defaults`; an unknown key is a ConfigError
with a did-you-mean, and the id is built from the sorted parameters that differ from defaults.
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict

from prunebench.core.errors import ConfigError, did_you_mean


class Configurable:
    name: ClassVar[str] = ""
    kind: ClassVar[str] = "plugin"
    defaults: ClassVar[Dict[str, Any]] = {}
    id_params: ClassVar[tuple] = ()  # parameters always shown in the id, default or not

    def __init__(self, **params: Any):
        unknown = [k for k in params if k not in self.defaults]
        if unknown:
            key = unknown[0]
            allowed = ", ".join(sorted(self.defaults)) or "none"
            raise ConfigError(
                f"{self.kind} {self.name!r} has no parameter {key!r}"
                f"{did_you_mean(key, self.defaults)}; its parameters: {allowed}"
            )
        self.params: Dict[str, Any] = {**self.defaults, **params}
        self.validate()

    def validate(self) -> None:
        """Check parameter values; raise ConfigError naming the key."""

    def changed_params(self) -> Dict[str, Any]:
        return {k: v for k, v in sorted(self.params.items()) if v != self.defaults.get(k) or k in self.id_params}

    @property
    def id(self) -> str:
        """Stable id: the name and the sorted parameters that differ from the defaults."""
        parts = [self.name] + [f"{k}={format_value(v)}" for k, v in self.changed_params().items()]
        return "-".join(parts)

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "id": self.id}

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id}>"


def format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def require_number(owner: str, key: str, value: Any, lo: float, hi: float, lo_open: bool = False) -> None:
    """ConfigError unless lo <= value <= hi (lo < value when lo_open)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        left = "(" if lo_open else "["
        raise ConfigError(f"{owner}: {key} must be a number in {left}{lo}, {hi}], got {value!r}")
