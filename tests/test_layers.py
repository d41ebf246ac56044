"""The layout is the architecture: a layer imports only the layers below it (every import, also the
ones inside functions). The table here is the rule; each package's docstring says the same in words."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The installed name of each top-level folder (pyproject.toml's package-dir).
FOLDERS = {"benchmark": "prunebench", "tasks": "prunebench.tasks", "methods": "prunebench.methods",
           "leaderboard": "prunebench.leaderboard"}

# layer -> the layers it may import (besides itself)
ALLOWED = {
    "core": set(),
    "audio": {"core"},
    "method_api": {"core"},
    "records": {"core"},
    "metrics": {"core"},
    "tasks": {"core", "audio", "metrics"},
    "models": {"core", "audio", "method_api"},
    "methods": {"core", "method_api"},
    "data": {"core", "audio", "metrics", "tasks"},
    "measure": {"core", "audio", "metrics", "method_api", "models", "data"},
    "train": {"core", "audio", "metrics", "method_api", "tasks", "models", "data", "measure"},
    "run": {"core", "audio", "metrics", "method_api", "tasks", "models", "data", "measure", "train", "records"},
    "analysis": {"core", "records", "metrics"},
    "tracks": {"core", "audio", "metrics", "method_api", "tasks", "models", "data", "measure", "train", "records", "run"},
    "submit": {"core", "audio", "metrics", "method_api", "tasks", "models", "data", "measure", "train", "records", "run",
               "tracks"},
    "leaderboard": {"core", "records", "analysis"},
    # the package's front (register_*, load_model) and the command line sit on top
    "facade": {"core", "method_api", "models"},
    "cli": set(),
}
ANYTHING = {"cli"}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "facade"
    return parts[1]


def modules():
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imported(path: Path, module: str):
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                yield ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.module


def test_every_layer_is_known():
    layers = {layer_of(module) for module, _ in modules()}
    assert layers <= set(ALLOWED), f"packages without a rule here: {layers - set(ALLOWED)}"


def test_every_package_says_what_it_owns_and_may_import():
    for module, path in modules():
        if path.name == "__init__.py" and module.count(".") == 1:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            assert "May import" in doc or "Imports nothing" in doc, f"{module}: its docstring does not say what it may import"


def test_no_layer_imports_a_higher_one():
    wrong = []
    for module, path in modules():
        mine = layer_of(module)
        if mine in ANYTHING:
            continue
        for target in imported(path, module):
            if not target or target.split(".")[0] != "prunebench":
                continue
            theirs = layer_of(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} imports {target} ({mine} may import: {', '.join(sorted(ALLOWED[mine])) or 'nothing'})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("source, expected", [
    ("from prunebench.leaderboard.table import x\n", "leaderboard"),
    ("def f():\n    from ..run import work\n", "run"),
])
def test_the_check_sees_top_level_and_nested_relative_imports(tmp_path, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert [layer_of(t) for t in imported(path, "prunebench.data.mod")] == [expected]


# -- no cycles between modules ------------------------------------------------------------------
def import_graph(module_paths) -> dict:
    """module -> the prunebench modules it imports (every import, also inside functions). `from
    package import name` depends on the module `package.name` where that is one, else on `package`."""
    known = {module for module, _ in module_paths}
    graph = {}
    for module, path in module_paths:
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = next(iter(imported_from(node, path, module)), None)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            edges.update(t for t in targets if t in known and t != module)
        graph[module] = edges
    return graph


def imported_from(node: ast.ImportFrom, path: Path, module: str):
    is_package = path.name == "__init__.py"
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + is_package]
        yield ".".join(base + ([node.module] if node.module else []))
    else:
        yield node.module


def cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules():
    found = cycles(import_graph(list(modules())))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_planted_cycle(tmp_path):
    """Two modules of a layer that import each other, one of them only inside a function."""
    (tmp_path / "a.py").write_text("from prunebench.measure.b import f\n")
    (tmp_path / "b.py").write_text("def f():\n    from prunebench.measure import a\n")
    (tmp_path / "c.py").write_text("from prunebench.measure.a import f\n")  # depends on the cycle, not in it
    planted = [(f"prunebench.measure.{n}", tmp_path / f"{n}.py") for n in "abc"]
    assert cycles(import_graph(planted)) == [["prunebench.measure.a", "prunebench.measure.b"]]
