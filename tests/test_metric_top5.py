"""Top-5 accuracy, the metric added as one file (prunebench/metrics/top5.py): scored against
torchmetrics, selected by a task, run through evaluate, and shown by the report and the leaderboard
with no other change (it has per-clip right or wrong, so the flip family applies)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from prunebench.analysis.report import build_report
from prunebench.analysis.robustness import compare
from prunebench.core.registry import METHODS, TASKS
from prunebench.data.features import FeatureSet
from prunebench.measure.evaluate import evaluate
from prunebench.metrics import get_metric
from prunebench.models import build_model

from leaderboard_records import make_record
from test_leaderboard_render import sweep
from test_report import grid

NAME = "top5-accuracy"


def test_top5_matches_torchmetrics():
    from torchmetrics.functional.classification import multiclass_accuracy

    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(200, 12, generator=g), torch.randint(0, 12, (200,), generator=g)
    top5 = get_metric(NAME)
    expected = float(multiclass_accuracy(logits, labels, num_classes=12, top_k=5, average="micro"))
    assert top5.value(logits, labels) == pytest.approx(expected, abs=1e-7)
    assert top5.value(logits, labels) > get_metric("accuracy").value(logits, labels)
    clips = top5.per_clip(logits, labels)
    assert clips["pred"] == logits.argmax(-1).tolist()  # the prediction stays the top-1 class
    assert top5.flips and not top5.multi_label and top5.chance(50) == pytest.approx(0.1)
    assert top5.value(logits[:, :3], labels % 3) == 1.0 and top5.chance(3) == 1.0  # fewer than five classes


def test_evaluate_scores_a_model_by_top5(tmp_path):
    torch.manual_seed(0)
    model = build_model("ast-tiny", num_classes=10).eval()
    fbanks = [torch.randn(512, 128) for _ in range(24)]
    labels = torch.arange(24) % 10
    features = FeatureSet([f"c{i}" for i in range(24)], fbanks, torch.full((24,), 512), labels)
    top5 = evaluate(model, METHODS.get("none")(), features, NAME, batch_size=8, seed=0)
    top1 = evaluate(model, METHODS.get("none")(), features, "accuracy", batch_size=8, seed=0)
    with torch.inference_mode():
        logits = model(torch.stack(fbanks), METHODS.get("none")())
    expected = (logits.topk(5, dim=-1).indices == labels[:, None]).any(-1).int().tolist()
    assert top5.metric == NAME and top5.per_clip["correct"] == expected
    assert top5.score["value"] == pytest.approx(sum(expected) / 24)
    assert top5.per_clip["pred"] == top1.per_clip["pred"]
    assert all(a >= b for a, b in zip(top5.per_clip["correct"], top1.per_clip["correct"]))


def test_a_task_selects_it(tmp_path):
    t = np.arange(8000) / 16000
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            path = tmp_path / split / cls / "0.wav"
            path.parent.mkdir(parents=True)
            sf.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    task = TASKS.get("audio-folder")(root=str(tmp_path), metric=NAME)
    assert task.metric == NAME
    assert get_metric(task.metric).targets([c.labels for c in task.test_clips()], task.num_classes).tolist() == [0, 1]
    with pytest.raises(Exception, match=r"metric must be auto or a registered metric \(.*top5-accuracy.*\), got 'top6'"):
        TASKS.get("audio-folder")(root=str(tmp_path), metric="top6")


def as_top5(records):
    for r in records:
        r["metrics"] = {NAME: r["metrics"].pop("accuracy")}
    return records


def test_the_report_answers_with_the_flip_family():
    """Right-or-wrong clips make the same statistics as accuracy: the report is accuracy's, with the
    metric's name and its chance (5 in 10 classes)."""
    top1, top5 = build_report(grid(), "synthetic"), build_report(as_top5(grid()), "synthetic")
    assert "(200 clips, top5-accuracy, chance 50.0%)" in top5
    assert top5.replace(NAME, "accuracy").replace("chance 50.0%", "chance 10.0%") == top1
    assert all(c.metric == NAME and c.flip_clips == 160 for c in compare(as_top5(grid())))


def test_the_leaderboard_shows_it(tmp_path):
    from prunebench.analysis.merge import merge
    from prunebench.analysis.table import main_table
    from prunebench.leaderboard.render import render_html

    records = [make_record("none", metric=NAME, correct=[1, 1, 1, 0], num_classes=50),
               make_record("none", metric="accuracy", correct=[1, 0, 0, 0], task="esc50")]
    merged = merge(records)
    table = main_table(merged.records, merged.failed, merged.conflicts)
    assert table.headers()[4:6] == ["metric", "clean"]
    assert [row[4:6] for row in table.text_rows()] == [["accuracy", "25.0"], ["top-5 accuracy", "75.0"]]
    html = render_html(as_top5(sweep(examples=False)))
    assert "top-5 accuracy" in html and "clean (%)" in html
