import subprocess
import sys
import textwrap

import pytest

from prunebench.core.errors import PluginError
from prunebench import register_method
from prunebench.core.registry import METHODS, Registry
from prunebench.core.plugins import load_plugin_file, load_plugins


def test_duplicate_name_is_an_error():
    registry = Registry("thing")
    registry.add("a", object())
    with pytest.raises(PluginError, match="already registered"):
        registry.add("a", object())


def test_unknown_name_suggests_close_match():
    with pytest.raises(PluginError, match="did you mean 'topk'"):
        METHODS.get("topkk")


LAZY_PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    def loaded(names):
        return sorted(n for n in names if n in sys.modules)
    HEAVY = ["torch", "timm", "torchaudio", "transformers", "datasets", "ray", "ctranslate2", "ptflops",
             "torchmetrics", "sklearn", "jinja2", "prunebench.run", "prunebench.measure", "prunebench.train",
             "prunebench.data", "prunebench.leaderboard", "prunebench.methods.topk", "prunebench.models.ast"]
    import prunebench
    from prunebench.core.registry import METHODS
    seen = {"import": loaded(HEAVY)}
    names = METHODS.names()
    seen["methods"] = loaded(HEAVY)
    from prunebench.cli import main
    with contextlib.redirect_stdout(io.StringIO()):
        main(["list"])
    seen["list"] = loaded(HEAVY)
    print(json.dumps({"names": names, "seen": seen}))
""")


def test_builtins_are_registered_lazily():
    """Importing the package loads no plugin and no torch; listing methods loads the method modules
    (torch, nothing of timm or torchaudio); `prunebench list` none of the run, measurement,
    training or leaderboard layers and no optional dependency."""
    import json

    out = subprocess.run([sys.executable, "-c", LAZY_PROBE], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"none", "topk", "tome", "random", "intensity"} <= set(report["names"])
    assert report["seen"]["import"] == []
    assert report["seen"]["methods"] == ["prunebench.methods.topk", "torch"]
    assert report["seen"]["list"] == ["prunebench.methods.topk", "prunebench.models.ast", "timm", "torch", "torchaudio"]


def test_builtins_are_discovered_in_their_package_folders(tmp_path, monkeypatch):
    """No list names a built-in: the registry imports the modules of its folders that register into
    it (by the decorator or by `<KIND>S.add`), and only those."""
    import types

    home = types.ModuleType("widget_home")
    home.WIDGETS = Registry("widget", ("widget_pkg",))
    home.register_widget = home.WIDGETS.register
    monkeypatch.setitem(sys.modules, "widget_home", home)
    pkg = tmp_path / "widget_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "by_decorator.py").write_text("from widget_home import register_widget\n\n"
                                         "@register_widget('a')\nclass A:\n    'The first.'\n")
    (pkg / "by_add.py").write_text("from widget_home import WIDGETS\nfor n in ('b', 'c'):\n    WIDGETS.add(n, object())\n")
    (pkg / "helper.py").write_text("raise ImportError('a helper module was imported')  # register_widget\n")
    (pkg / "_private.py").write_text("from widget_home import register_widget\nregister_widget('x')(object)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert home.WIDGETS.names() == ["a", "b", "c"]
        assert home.WIDGETS.get("a").__doc__ == "The first."
        assert "widget_pkg.helper" not in sys.modules and "widget_pkg._private" not in sys.modules
    finally:
        for name in [m for m in sys.modules if m.startswith("widget_pkg")]:
            del sys.modules[name]


BUILT_IN_PROBE = textwrap.dedent("""
    import sys
    import prunebench.methods, prunebench.tasks
    prunebench.methods.__path__.append(sys.argv[1])
    prunebench.tasks.__path__.append(sys.argv[1])
    from prunebench.core.registry import CORRUPTIONS, METHODS
    print(METHODS.get("dropped-in").__doc__, CORRUPTIONS.get("silence").__doc__, "topk" in METHODS)
""")


def test_a_file_dropped_into_the_methods_and_tasks_folders_is_a_built_in(tmp_path):
    """Adding a built-in method or corruption is one file in its package folder."""
    (tmp_path / "dropped_in.py").write_text(textwrap.dedent('''
        from prunebench.core.registry import register_method
        from prunebench.method_api import ScorePruning

        @register_method("dropped-in")
        class DroppedIn(ScorePruning):
            """found"""
            def score(self, x, state, info):
                return x[:, state.num_prefix:, 0]
    '''))
    (tmp_path / "silence.py").write_text(textwrap.dedent('''
        from prunebench.core.registry import register_corruption
        from prunebench.tasks.corruption import Corruption

        @register_corruption("silence")
        class Silence(Corruption):
            """also found"""
            def apply(self, wave, generator, sample_rate, source, context=None):
                return wave * 0
    '''))
    out = subprocess.run([sys.executable, "-c", BUILT_IN_PROBE, str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "found also found True"


def test_the_registration_names_a_method():
    """The example in prunebench.method_api's docstring has no `name =` line: its records must say "mine"."""
    from prunebench.method_api import ScorePruning

    @register_method("mine-unnamed")
    class Mine(ScorePruning):
        def score(self, x, state, info):
            return x[:, state.num_prefix:, 0]

    try:
        assert Mine.name == "mine-unnamed"
        assert METHODS.get("mine-unnamed")(keep_rate=0.5).id == "mine-unnamed-keep_rate=0.5"
    finally:
        METHODS.remove("mine-unnamed")


def test_a_declared_name_that_differs_from_the_registration_is_an_error():
    from prunebench.method_api import Method

    class Other(Method):
        name = "other"

    with pytest.raises(PluginError, match="declares name = 'other'"):
        METHODS.add("mine-named", Other)
    assert "mine-named" not in METHODS


def test_only_subclasses_of_the_base_register():
    with pytest.raises(PluginError, match="not a subclass of prunebench.method_api.base.Method"):
        METHODS.add("not-a-method", type("NotAMethod", (), {}))
    from prunebench.core.registry import TASKS

    TASKS.names()  # the task base class is known once the built-ins are in
    with pytest.raises(PluginError, match="not a subclass of prunebench.tasks.base.Task"):
        TASKS.add("not-a-task", lambda: None)


def test_an_unknown_attention_request_is_refused():
    from prunebench.method_api import Method
    from prunebench.models import build_model

    @register_method("typo-request")
    class Typo(Method):
        def attention_requests(self, dims):
            return frozenset({"cls_score"})

    model = build_model("ast-tiny", num_classes=3)
    try:
        with pytest.raises(PluginError, match=r"'cls_score' \(did you mean 'cls_scores'\?\)"):
            model(__import__("torch").zeros(1, 128, 128), Typo())
    finally:
        METHODS.remove("typo-request")


def test_plugin_file_registers_a_method(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text(textwrap.dedent('''
        from prunebench import register_method
        from prunebench.method_api import ScorePruning

        @register_method("first-patches")
        class FirstPatches(ScorePruning):
            """Keep the earliest patches."""
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
        from prunebench import register_method
        from prunebench.method_api import Method

        @register_method("ep-method")
        class EP(Method):
            """From an entry point."""
    '''))
    dist = pkg / "ep_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[prunebench.plugins]\nep = ep_plugin\n")
    code = "from prunebench.cli import main; import sys; sys.exit(main(['list']))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(pkg)})
    assert out.returncode == 0, out.stderr
    assert "ep-method" in out.stdout and "From an entry point." in out.stdout


def test_list_command_prints_one_line_each(capsys):
    from prunebench.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("ast-tiny", "esc50", "synth-esc", "white", "none", "topk"):
        line = next(l for l in out.splitlines() if l.strip().startswith(name + " "))
        assert len(line.split()) > 1  # a description follows the name


def test_a_plugin_is_one_import_line_and_a_users_benchmark_folder_shadows_nothing(tmp_path):
    """A user's own `benchmark/` and `methods/` folders in the working directory do not shadow the
    package, and the method API comes from the package's front in one line."""
    for folder in ("benchmark", "methods", "tasks"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("raise ImportError('the user folder was imported')\n")
    probe = ("from prunebench import ScorePruning, register_method\n"
             "import prunebench.method_api as api\n"
             "assert ScorePruning is api.ScorePruning\n"
             "from prunebench.core.registry import METHODS\n"
             "assert 'topk' in METHODS.names()\n"
             "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
