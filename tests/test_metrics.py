"""The metric registry: accuracy and mAP as registered objects that own their computation, per-clip
outcome, paired statistics and display; checked against torchmetrics."""
import subprocess
import sys
import textwrap

import pytest
import torch

from prunebench.core.errors import PluginError
from prunebench.core.registry import METRICS, register_metric
from prunebench.metrics import Metric, get_metric
from prunebench.metrics.map import mean_average_precision, resampled_map


def logits_and_labels(clips=60, classes=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(clips, classes, generator=g), torch.randint(0, classes, (clips,), generator=g)


def test_the_built_ins_are_registered_under_their_record_keys():
    assert {"accuracy", "map", "top5-accuracy"} <= set(METRICS.names())
    accuracy, average_precision = get_metric("accuracy"), get_metric("map")
    assert (accuracy.name, accuracy.label, accuracy.flips, accuracy.multi_label) == ("accuracy", "accuracy", True, False)
    assert (average_precision.name, average_precision.label) == ("map", "mAP")
    assert (average_precision.flips, average_precision.multi_label) == (False, True)


def test_accuracy_matches_torchmetrics_and_owns_its_per_clip_outcome():
    from torchmetrics.functional.classification import multiclass_accuracy

    logits, labels = logits_and_labels()
    accuracy = get_metric("accuracy")
    expected = float(multiclass_accuracy(logits, labels, num_classes=7, average="micro"))
    assert accuracy.value(logits, labels) == pytest.approx(expected, abs=1e-7)
    clips = accuracy.per_clip(logits, labels)
    assert list(clips) == ["pred", "correct"]  # the record's per-clip keys, in the order records hold them
    assert clips["pred"] == logits.argmax(-1).tolist()
    assert sum(clips["correct"]) == round(expected * 60)
    score = accuracy.score(logits, labels, seed=3)
    assert score["value"] == pytest.approx(expected, abs=1e-7)
    lo, hi = score["ci95"]
    assert lo < score["value"] < hi and score == accuracy.score(logits, labels, seed=3)  # seeded
    assert accuracy.score(logits, labels, seed=4)["ci95"] != [lo, hi]
    assert accuracy.chance(50) == pytest.approx(0.02)


def test_map_matches_torchmetrics_and_keeps_class_scores():
    from torchmetrics.functional.classification import multilabel_average_precision

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(40, 5, generator=g)
    targets = get_metric("map").targets([(i % 5, (i + 2) % 5) for i in range(40)], 5)
    assert targets.shape == (40, 5) and targets.sum(1).eq(2).all()
    expected = float(multilabel_average_precision(logits.sigmoid(), targets.long(), num_labels=5, average="macro"))
    metric = get_metric("map")
    assert metric.value(logits, targets) == pytest.approx(expected, abs=1e-6)
    assert metric.score(logits, targets, seed=0)["value"] == pytest.approx(expected, abs=1e-6)
    clips = metric.per_clip(logits, targets)
    assert list(clips) == ["scores", "labels"] and clips["scores"].dtype.name == "float16"
    assert clips["labels"][0] == [0, 2]
    assert metric.chance(5) is None
    with pytest.raises(NotImplementedError, match="no per-clip right or wrong"):
        metric.correct(logits, targets)


def test_map_bootstrap_resamples_match_torchmetrics():
    """AS-20K's bootstrap intervals use a sort-once reweighting of clips; it must give torchmetrics'
    mAP of every resample, ties (scores rounded in records) and absent classes included."""
    g = torch.Generator().manual_seed(0)
    targets = (torch.rand(60, 6, generator=g) < 0.2).float()
    targets[:, 5] = 0  # a class without positives is left out, as in mean_average_precision
    scores = ((torch.rand(60, 6, generator=g) + 0.4 * targets) * 4).round() / 4
    draws = torch.randint(0, 60, (25, 60), generator=g)
    expected = [mean_average_precision(scores[d], targets[d]) for d in draws]
    assert resampled_map(scores, targets, draws) == pytest.approx(expected, abs=1e-6)
    assert get_metric("map").resampled(scores, targets, draws) == resampled_map(scores, targets, draws)


def test_display_comes_from_the_metric():
    from prunebench.analysis.schema import metric

    assert get_metric("accuracy").format(0.935) == "93.5%"
    shown = metric("map")
    assert (shown.label, shown.unit, shown.scale, shown.higher_is_better) == ("mAP", "%", 100.0, True)
    assert metric("not-registered").label == "not-registered"  # a plugin's metric, not loaded: shown as stored


def test_registration_checks_the_base_class_and_duplicates():
    with pytest.raises(PluginError, match="not a subclass of prunebench.metrics.base.Metric"):
        METRICS.add("not-a-metric", type("NotAMetric", (), {}))
    with pytest.raises(PluginError, match="'accuracy' is already registered"):
        register_metric("accuracy")(type("Again", (Metric,), {}))
    with pytest.raises(PluginError, match=r"unknown metric 'acuracy' \(did you mean 'accuracy'"):
        get_metric("acuracy")


def test_a_metric_file_dropped_into_the_package_is_found(tmp_path):
    """Adding a metric is one file: the registry finds it in the package's folders, no list names it."""
    (tmp_path / "balanced.py").write_text(textwrap.dedent('''
        from prunebench.core.registry import register_metric
        from prunebench.metrics.accuracy import Accuracy

        @register_metric("balanced-accuracy")
        class BalancedAccuracy(Accuracy):
            """Mean per-class recall."""
            label = "balanced accuracy"
    '''))
    probe = textwrap.dedent(f'''
        import prunebench.metrics
        prunebench.metrics.__path__.append({str(tmp_path)!r})
        from prunebench.analysis.schema import metric
        from prunebench.metrics import get_metric
        print(get_metric("balanced-accuracy").flips, metric("balanced-accuracy").label)
    ''')
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True balanced accuracy"


PLUGIN_METRIC = textwrap.dedent('''
    from prunebench import register_metric
    from prunebench.metrics.accuracy import Accuracy

    @register_metric("mine-accuracy")
    class MineAccuracy(Accuracy):
        """A plugin's metric."""
        label = "my accuracy"
''')


def test_records_of_a_plugin_metric_need_the_plugin(tmp_path, capsys):
    """Without its plugin a metric's statistics are unknown: one line naming it and the remedy, exit
    2; with --plugins the leaderboard renders it under its own label."""
    from prunebench.cli import main
    from leaderboard_records import make_record, write_records

    write_records(tmp_path / "results", [make_record(m, k, metric="mine-accuracy", noise=noise, correct=c)
                                         for m, k in (("none", None), ("topk", 0.5))
                                         for noise, c in ((None, [1, 1, 1, 0]), (("white", 20), [1, 0, 1, 0]))])
    out = tmp_path / "page.html"
    assert main(["leaderboard", str(tmp_path / "results"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown metric 'mine-accuracy'") and err.endswith("plugin loaded (--plugins FILE)")
    assert len(err.splitlines()) == 1 and not out.exists()
    plugin = tmp_path / "mine.py"
    plugin.write_text(PLUGIN_METRIC)
    try:
        assert main(["leaderboard", str(tmp_path / "results"), "-o", str(out), "--plugins", str(plugin)]) == 0
        assert "my accuracy" in out.read_text()
    finally:
        METRICS.remove("mine-accuracy")
