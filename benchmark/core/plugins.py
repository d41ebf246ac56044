"""Third-party plugins: the `prunebench.plugins` entry-point group and single files.

A plugin is a module whose import registers things with the `register_*` decorators. A plugin that
fails to load is reported (returned and logged) and skipped: it never stops a run.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "prunebench.plugins"
_loaded_entry_points = False
_failures: List[str] = []
_sources: Dict[str, str] = {}  # plugin files loaded in this process: path -> source text


def load_entry_point_plugins() -> List[str]:
    """Import every module declared in the entry-point group once; returns failure messages."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return []
    _loaded_entry_points = True
    failures = []
    try:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10
        entry_points = metadata.entry_points().get(ENTRY_POINT_GROUP, [])
    for ep in entry_points:
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break the suite
            failures.append(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {exc!r}")
    _report(failures)
    return failures


def load_plugin_file(path: str | Path, source: Optional[str] = None) -> Optional[str]:
    """Import one plugin file; returns a failure message or None.

    `source`: the file's text, read elsewhere (a Ray worker gets the driver's plugin files this
    way, under the same module name, so objects pickled in the driver resolve)."""
    path = Path(path)
    if source is None and not path.is_file():
        message = f"plugin file {str(path)!r} does not exist"
        _report([message])
        return message
    module_name = "prunebench_plugin_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    if module_name in sys.modules:
        return None
    try:
        text = path.read_text(encoding="utf-8") if source is None else source
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(module_name, loader=None, origin=str(path)))
        module.__file__ = str(path)
        sys.modules[module_name] = module
        exec(compile(text, str(path), "exec"), module.__dict__)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        message = f"plugin file {str(path)!r} failed to load: {exc!r}"
        _report([message])
        return message
    _sources[str(path.resolve())] = text
    return None


def loaded_plugin_sources() -> List[Tuple[str, str]]:
    """(path, source text) of every plugin file loaded in this process, in load order."""
    return list(_sources.items())


def load_plugins(files: Sequence[str | Path] = ()) -> List[str]:
    """Entry points, then the given files. Returns the failure messages (also logged)."""
    failures = load_entry_point_plugins()
    for f in files:
        message = load_plugin_file(f)
        if message:
            failures.append(message)
    return failures


def plugin_failures() -> List[str]:
    return list(_failures)


def _report(failures: List[str]) -> None:
    for message in failures:
        _failures.append(message)
        log.warning(message)
