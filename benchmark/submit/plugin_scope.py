"""A bundle's plugin source, loaded on its own: the plugin files this process loaded before (the
submitter's copy, under another path) are set aside while it is registered, and put back after, so
the method that runs is the one the bundle holds."""
from __future__ import annotations

import contextlib
import importlib.util
import itertools
import sys
from typing import Dict, Iterator, List, Tuple

from prunebench.core.registry import ALL_REGISTRIES

PLUGIN_MODULE = "prunebench_plugin_"  # the module-name prefix of every plugin file's module
_counter = itertools.count()


@contextlib.contextmanager
def bundled_plugin(source: str, origin: str) -> Iterator[None]:
    """Register what `source` registers for the duration of the block (ImportError-free: an
    exception from the source propagates for the caller to report)."""
    set_aside: List[Tuple[str, object]] = []
    for kind, registry in ALL_REGISTRIES.items():
        for entry in registry.entries():
            if entry.origin.startswith(PLUGIN_MODULE):
                set_aside.append((kind, entry))
                registry.remove(entry.name)
    name = f"{PLUGIN_MODULE}bundle_{next(_counter)}"
    before: Dict[str, set] = {kind: set(r.names()) for kind, r in ALL_REGISTRIES.items()}
    try:
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None, origin=origin))
        module.__file__ = origin
        sys.modules[name] = module
        exec(compile(source, origin, "exec"), module.__dict__)
        yield
    finally:
        for kind, registry in ALL_REGISTRIES.items():
            for added in set(registry.names()) - before[kind]:
                registry.remove(added)
        sys.modules.pop(name, None)
        for kind, entry in set_aside:
            ALL_REGISTRIES[kind].add(entry.name, entry.obj, entry.description)
