"""Finding the built-in plugins: the modules of a package folder that register into a registry.

A built-in is one file dropped into its package folder (methods/, tasks/, benchmark/models/,
benchmark/metrics/); no list names it. The folder is read without importing its modules: a module
counts when its source calls the registry's decorator (`@register_method(...)`) or the registry
itself (`METHODS.add(...)`, `METHODS.register(...)`). So looking up a method imports the method
modules and nothing else of the folder (helpers such as tasks/manifest.py or models/formats.py stay
unloaded until something needs them), and importing the package imports none of them.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from typing import Iterable, List

from prunebench.core.errors import PluginError


def registering_modules(package: str, callers: Iterable[str], registry: str) -> List[str]:
    """The modules directly in `package`'s folders (every entry of its `__path__`, in order; each
    folder's files sorted) whose source calls one of `callers` (the decorators, e.g.
    `register_method`) or `<registry>.add` / `<registry>.register` (e.g. `METHODS.add`)."""
    callers = set(callers)
    found = []
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if info.ispkg or info.name.startswith("_"):
            continue
        path = Path(getattr(info.module_finder, "path", "")) / f"{info.name}.py"
        if path.is_file() and _registers(path, callers, registry):
            found.append(f"{package}.{info.name}")
    return found


def _registers(path: Path, callers: set, registry: str) -> bool:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except SyntaxError as exc:
        raise PluginError(f"built-in module {path}: cannot be read ({exc.msg}, line {exc.lineno})") from None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if any(isinstance(d, ast.Name) and d.id in callers for d in node.decorator_list):  # bare @register_x
                return True
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in callers:
            return True
        if (isinstance(func, ast.Attribute) and func.attr in ("add", "register") and isinstance(func.value, ast.Name)
                and func.value.id == registry):
            return True
    return False
