"""One generic registry class behind methods, tasks, corruptions, models and metrics.

Built-in plugins register themselves with decorators when their module is imported. No list
names them: on first lookup a registry imports the modules of its package folders that register
into it (`prunebench.core.discovery`), so a new built-in is one file, `prunebench list` stays cheap,
and third-party plugins loaded later sit beside the built-ins.

A registry of classes (methods, tasks, corruptions, metrics) is told its base class by the module
that defines it (`METHODS.require_base(Method)`: core cannot import the layers above it). From then
on it accepts only subclasses, and the registered name is the class's `name`: the registry sets it,
and rejects a class that declares another one, so the key a config uses and the name a record
carries cannot differ.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from prunebench.core.discovery import registering_modules
from prunebench.core.errors import PluginError, did_you_mean


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    description: str
    origin: str  # module that registered it: "builtin" modules or a plugin's path


class Registry:
    """A name -> object map with clear duplicate errors and did-you-mean lookups."""

    def __init__(self, kind: str, packages: Tuple[str, ...] = ()):
        """`packages`: where the built-ins live; a module there is one when it calls
        `register_<kind>` or `<KIND>S.add/.register` (the names this module gives them below)."""
        self.kind = kind
        self._packages = packages
        self._builtins_loaded = False
        self._entries: Dict[str, Entry] = {}
        self._base: Optional[type] = None

    def require_base(self, base: type) -> None:
        """Accept only subclasses of `base` from now on, each named by its registration."""
        self._base = base

    def _load_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for package in self._packages:
            for module in registering_modules(package, (f"register_{self.kind}",), f"{self.kind.upper()}S"):
                importlib.import_module(module)

    def register(self, name: Optional[str] = None, description: Optional[str] = None) -> Callable:
        """Decorator: `@register_method("topk")` on a class or factory function."""

        def decorator(obj: Any) -> Any:
            key = name or (obj.__dict__.get("name") if isinstance(obj, type) else None) or obj.__name__
            self.add(key, obj, description)
            return obj

        return decorator

    def add(self, name: str, obj: Any, description: Optional[str] = None) -> None:
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise PluginError(f"{self.kind} name {name!r} must be a non-empty string without spaces")
        if name in self._entries:
            previous = self._entries[name]
            raise PluginError(
                f"{self.kind} {name!r} is already registered (by {previous.origin}); "
                f"choose another name"
            )
        if self._base is not None:
            self._check_class(name, obj)
        doc = description or _first_line(getattr(obj, "__doc__", None)) or ""
        origin = getattr(obj, "__module__", "?")
        self._entries[name] = Entry(name, obj, doc, origin)

    def _check_class(self, name: str, obj: Any) -> None:
        base = self._base
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(f"{self.kind} {name!r}: {obj!r} is not a subclass of {base.__module__}.{base.__qualname__}")
        declared = obj.__dict__.get("name")
        if declared not in (None, "", name):
            raise PluginError(f"{self.kind} {name!r}: class {obj.__qualname__} declares name = {declared!r}; "
                              f"drop the attribute (the registration names it) or register it as {declared!r}")
        obj.name = name

    def remove(self, name: str) -> None:
        """Unregister (for tests and for plugins that replace themselves on reload)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> Any:
        self._load_builtins()
        try:
            return self._entries[name].obj
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise PluginError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, self._entries)}; known: {known}"
            ) from None

    def entries(self) -> List[Entry]:
        self._load_builtins()
        return [self._entries[k] for k in sorted(self._entries)]

    def names(self) -> List[str]:
        return [e.name for e in self.entries()]

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def _first_line(text: Optional[str]) -> str:
    if not text:
        return ""
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


# The method every comparison is measured against (no reduction): the one place its name is written.
BASELINE = "none"

METHODS = Registry("method", ("prunebench.methods",))
TASKS = Registry("task", ("prunebench.tasks",))
CORRUPTIONS = Registry("corruption", ("prunebench.tasks",))
MODELS = Registry("model", ("prunebench.models",))
METRICS = Registry("metric", ("prunebench.metrics",))

register_method = METHODS.register
register_task = TASKS.register
register_corruption = CORRUPTIONS.register
register_model = MODELS.register
register_metric = METRICS.register

ALL_REGISTRIES = {"model": MODELS, "task": TASKS, "corruption": CORRUPTIONS, "method": METHODS, "metric": METRICS}
