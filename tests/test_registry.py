import subprocess
import sys
import textwrap

import pytest

from benchmark.core.errors import PluginError
from benchmark.core.registry import METHODS, Registry
from benchmark.core.plugins import load_plugin_file, load_plugins


def test_duplicate_name_is_an_error():
    registry = Registry("thing")
    registry.add("a", object())
    with pytest.raises(PluginError, match="already registered"):
        registry.add("a", object())


def test_unknown_name_suggests_close_match():
    with pytest.raises(PluginError, match="did you mean 'topk'"):
        METHODS.get("topkk")


def test_builtins_are_registered_lazily():
    assert {"none", "topk"} <= set(METHODS.names())


def test_plugin_file_registers_a_method(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(textwrap.dedent('''
        from benchmark import register_method
        from benchmark.method import ScorePruning

        @register_method("first-patches")
        class FirstPatches(ScorePruning):
            """Keep the earliest patches."""
            name = "first-patches"
            def score(self, x, state, info):
                n = x.shape[1] - state.num_prefix
                return -__import__("torch").arange(n, dtype=x.dtype).expand(x.shape[0], -1)
    '''))
    try:
        assert load_plugin_file(plugin) is None
        assert "first-patches" in METHODS
        assert METHODS.get("first-patches")(keep_rate=0.5).id == "first-patches-keep_rate=0.5"
    finally:
        METHODS.remove("first-patches")


def test_broken_plugin_is_reported_not_fatal(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise RuntimeError('boom')\n")
    failures = load_plugins([plugin])
    assert any("boom" in f and "broken.py" in f for f in failures)
    assert "none" in METHODS


def test_entry_point_plugin_is_loaded(tmp_path):
    """A third-party package declaring the prunebench.plugins group, found on sys.path."""
    pkg = tmp_path / "site"
    (pkg / "ep_plugin").mkdir(parents=True)
    (pkg / "ep_plugin" / "__init__.py").write_text(textwrap.dedent('''
        from benchmark import register_method
        from benchmark.method import Method

        @register_method("ep-method")
        class EP(Method):
            """From an entry point."""
            name = "ep-method"
    '''))
    dist = pkg / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[prunebench.plugins]\nep = ep_plugin\n")
    code = "from benchmark.cli import main; import sys; sys.exit(main(['list']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(pkg)})
    assert out.returncode == 0, out.stderr
    assert "ep-method" in out.stdout and "From an entry point." in out.stdout


def test_list_command_prints_one_line_each(capsys):
    from benchmark.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("ast-tiny", "esc50", "synth-esc", "white", "none", "topk"):
        line = next(l for l in out.splitlines() if l.strip().startswith(name + " "))
        assert len(line.split()) > 1  # a description follows the name
