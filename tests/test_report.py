"""`prunebench report`: the research question answered from records; cross-validated runs pooled."""
import random

import pytest
import yaml

from prunebench.cli import main
from prunebench.analysis.report import build_report, holm_significant, pool_folds
from prunebench.analysis.robustness import compare
from prunebench.records.record import load_results

from conftest import TINY, write_esc_layout


def record(method, keep, corruption, correct, split="fold5", ids=None, classes=10):
    n = len(correct)
    ids = ids or [f"{split}-c{i}" for i in range(n)]
    variant = f"t/{split}" + ("" if corruption is None else f"+{corruption}")
    return {
        "model": {"name": "m", "config": {"num_classes": classes}},
        "task": {"name": "t", "split": split, "variant": variant, "bucket": None,
                 "corruption": None if corruption is None else {"id": corruption}},
        "method": {"id": method, "name": method.split("-")[0], "params": {} if keep is None else {"keep_rate": keep}},
        "metrics": {"accuracy": {"value": sum(correct) / n}},
        "per_clip": {"ids": ids, "correct": correct, "pred": [0 if c else 1 for c in correct], "kept_patches": None},
        "macs": {"per_sample": 1.0}, "tokens": {"per_layer": []},
    }


def outcomes(n_correct, n=200, seed=0):
    rows = [1] * n_correct + [0] * (n - n_correct)
    random.Random(seed).shuffle(rows)
    return rows


def grid(split="fold5", pruned_extra_drop=40):
    """none: 160/200 clean, 140 noisy at each of two SNRs; topk starts equal and loses more."""
    clean = outcomes(160, seed=1)
    records = [record("none", None, None, clean, split), record("topk-keep_rate=0.5", 0.5, None, clean, split)]
    for snr in (20, 10):
        none_noisy = [c if i % 8 else 0 for i, c in enumerate(clean)]  # loses 1 in 8 of the clips
        worse = list(none_noisy)
        flipped = 0
        for i, c in enumerate(worse):
            if c and flipped < pruned_extra_drop:
                worse[i], flipped = 0, flipped + 1
        records += [record("none", None, f"white@{snr}dB", none_noisy, split),
                    record("topk-keep_rate=0.5", 0.5, f"white@{snr}dB", worse, split)]
    return records


def test_report_answers_degrades_with_pooled_interval():
    text = build_report(grid(), "synthetic")
    answer = text.split("ANSWER")[1].split("Question:")[0]
    # 160 clips right clean for both; none's noise flips the 18 of them among every 8th clip, topk's
    # those and 40 more: flip effect (58 - 18) / 160 = +25 points; drop effect (80 - 51) - (80 - 71) = +20
    assert "topk keep 0.5: degrades robustness: flip effect +25.0 [" in answer
    assert "36.2% vs 11.2% of 160 clips right clean for both flipped" in answer
    assert "drop effect +20.0 [" in answer and "retention effect -0.250 [" in answer
    assert "over 2 condition(s)" in answer and "individually worse in 2" in answer
    assert "white@20dB" in text and "McNemar (flips): 2 of 2 comparisons at p < 0.05" in text


def test_report_reads_robustness_against_digital_silence():
    records = grid()
    for r in records:  # every 4th clip half silent; none's noise losses (every 8th clip) all among them
        r["per_clip"]["silent_fraction"] = [0.5 if i % 4 == 0 else 0.0 for i in range(200)]
    clean = records[0]["per_clip"]["correct"]
    lost = sum(clean[i] for i in range(0, 200, 8)) / 50
    line = next(l for l in build_report(records).splitlines() if l.startswith("digital silence"))
    assert line.startswith("digital silence: 50 clips have >= 25% silent frames")
    assert f"on them {100 * lost:+.1f} points, on the others +0.0" in line


def test_report_no_effect_and_floor():
    same = grid(pruned_extra_drop=0)
    text = build_report(same, "synthetic")
    assert "topk keep 0.5: no detectable effect (could have detected >= " in text
    assert "flip effect +0.0 [+0.0, +0.0] points, p 1.000" in text
    floor = [record("none", None, None, outcomes(100)), record("none", None, "white@0dB", outcomes(20)),
             record("topk-keep_rate=0.5", 0.5, None, outcomes(90)), record("topk-keep_rate=0.5", 0.5, "white@0dB", outcomes(20))]
    assert "every condition at the chance floor: no answer" in build_report(floor, "synthetic")


def test_report_pools_folds():
    records = grid("fold1", 40) + grid("fold2", 20)
    pooled = pool_folds(records)
    none_clean = next(r for r in pooled if r.method.id == "none" and r.corruption is None)
    assert none_clean.split == "all-folds" and none_clean.variant == "t/all-folds" and len(none_clean.clips.ids) == 400
    assert none_clean.per_fold == {"fold1": 0.8, "fold2": 0.8}
    text = build_report(records, "cv")
    assert "Cross-validation over 2 folds" in text and "t/fold1 (" not in text
    row = next(line for line in text.splitlines() if line.startswith("topk") and "+20.0" in line and "+10.0" in line)
    assert "+15.0" in row  # the mean over folds, and the pooled effect of all 400 clips


def test_holm():
    # thresholds 0.05/3, 0.05/2, 0.05/1 against the sorted p-values, stopping at the first miss
    assert holm_significant([0.04, 0.001, 0.01]) == 3
    assert holm_significant([0.001, 0.03, 0.04]) == 1
    assert holm_significant([0.03, 0.04]) == 0
    assert holm_significant([0.02, 0.03]) == 2


def test_report_of_an_empty_or_missing_folder(tmp_path, capsys):
    assert "nothing to report" in build_report([], "empty")
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "results folder not found" in capsys.readouterr().err


@pytest.fixture(scope="module")
def five_fold_run(tmp_path_factory):
    """The official 5-fold protocol end to end on a tiny model and tiny data: one model per fold."""
    tmp = tmp_path_factory.mktemp("cv")
    root = write_esc_layout(tmp / "esc", clips_per_fold=2, classes=3, seconds=1.0)
    config = tmp / "cv.yaml"
    config.write_text(yaml.safe_dump({
        "seed": 0, "models": [{"name": "ast-tiny", "overrides": TINY}],
        "tasks": [{"name": "esc50", "root": str(root), "split": "all",
                   "corruptions": [{"name": "white", "snr_db": 0}, {"name": "mix-clips", "snr_db": 0}]}],
        "methods": [{"name": "none"}, {"name": "topk", "keep_rate": 0.5}],
        "measure": {"throughput": False, "batch_size": 8},
        "train": {"epochs": 1, "batch_size": 8, "crop_frames": 0, "full_length_epochs": 0}}))
    return tmp, config


def test_five_fold_run_records_and_report(five_fold_run, capsys):
    tmp, config = five_fold_run
    assert main(["run", "--config", str(config), "--out", str(tmp / "results"), "--no-progress"]) == 0
    log = capsys.readouterr().out
    for fold in range(1, 6):  # one model per fold, features counted per variant in the run log
        assert f"training ast-tiny on esc50/fold{fold}" in log
        assert f"features esc50/fold{fold}+white@0dB (test): 6 clips computed" in log
    records = load_results(tmp / "results")
    assert len(records) == 5 * 2 * 3
    noisy = next(r for r in records if r.method.id == "topk-keep_rate=0.5" and r.variant == "esc50/fold3+white@0dB")
    # robustness is computed when read (report, leaderboard), never written into the records
    assert not any("robustness" in r.to_dict() for r in records)
    [c] = [c for c in compare(records) if c.task == "esc50/fold3" and c.method == "topk-keep_rate=0.5"
           and c.corruption == "white@0dB"]
    assert c.clips == 6 and c.drop == pytest.approx(c.clean - c.noisy) and c.effect == pytest.approx(c.drop - c.none_drop)
    selection = noisy.selection
    # a tiny random model may keep only padding (1 s clips in a 5 s input): then it says so
    assert selection["clips_with_drops"] == 6
    assert selection["kept_intensity"] is not None or selection["kept_padding_share"] == 1.0
    assert selection["dropped_intensity"] is not None and 0.0 <= selection["kept_padding_share"] <= 1.0
    assert next(r for r in records if r.method.id == "none").selection["dropped_intensity"] is None

    assert main(["report", str(tmp / "results"), "-o", str(tmp / "report.txt")]) == 0
    text = capsys.readouterr().out
    assert text == (tmp / "report.txt").read_text()
    assert "ANSWER" in text and "topk keep 0.5:" in text
    answer = text.split("ANSWER")[1].split("Question:")[0]
    assert "ast-tiny on esc50/all-folds (30 clips" in answer and "esc50/fold3" not in answer
    assert "Cross-validation over 5 folds" in text
    table = text.split("Cross-validation over 5 folds")[1]
    assert all(f"fold{f}" in table for f in range(1, 6)) and "pooled [95% CI]" in table
    assert "mix-clips@0dB" in text

    # resuming a cross-validated run: each fold keeps its own model (no checkpoint mix-up error)
    victim = tmp / "results" / "ast-tiny" / "none" / "esc50" / "fold2+white@0dB.json"
    victim.unlink()
    assert main(["run", "--config", str(config), "--out", str(tmp / "results"), "--no-progress"]) == 0
    assert "1 records written, 29 already present" in capsys.readouterr().out


def test_merging_methods_have_no_selection_overlap():
    """A merging method keeps every patch in some token: its kept-patch overlap is 1 by
    construction and says nothing, so it is left out (None) rather than reported as stable."""
    records = grid()
    for r in records:
        if r["method"]["id"] != "none":
            r["method"] = {"id": "tome-keep_rate=0.5", "name": "tome", "params": {"keep_rate": 0.5}}
            r["per_clip"]["kept_patches"] = ["ff"] * 200
            r["selection"] = {"clips_with_drops": 0, "kept_minus_dropped": None, "kept_padding_share": 0.0}
            r["tokens"] = {"per_layer": [{"attention": 10, "mlp": 10}, {"attention": 10, "mlp": 4}]}
    assert all(c.jaccard is None for c in compare(records))
    assert "n/a (merges)" in build_report(records)
    for r in records:  # a token state that gives no kept-patch map after merging: the same reading
        if r["method"]["name"] == "tome":
            r["per_clip"]["kept_patches"], r["selection"] = None, None
    assert all(c.jaccard is None for c in compare(records))
    assert "n/a (merges)" in build_report(records)


def test_equal_speed_table_reads_between_measured_configurations_and_sorts_buckets():
    """analysis.speed: a method measured at 1.3x and 1.7x (and, at keep rate 1, the baseline's 1x) is
    read at 1.5x by interpolation, at 2x not at all; records with and without a bucket sort together."""
    from prunebench.analysis.speed import iso_speed, speed_curves
    from test_leaderboard_render import sweep

    records = sweep()
    bucketed = sweep()
    for r in bucketed:
        r["task"]["bucket"] = {"name": "len", "params": {"seconds": 1.0, "mode": "pad"}, "id": "len1s"}
        r["task"]["variant"] += "+len1s"
    curves = speed_curves(records + bucketed)
    topk = [c for c in curves if c.method == "topk"]
    assert len(topk) == 2 and [p.speedup for p in topk[0].points] == [1.0, 1.3, 1.7]
    assert topk[0].points[0].keep_rate == 1.0 and topk[0].points[0].effect == 0.0
    at_12, at_15, at_2 = iso_speed(topk[0], (1.15, 1.5, 2.0))
    assert at_12.keep_rate == pytest.approx(0.85)  # halfway from the baseline (keep 1) to keep 0.7
    assert at_15.how == "interpolated" and at_15.keep_rate == pytest.approx(0.6)
    _, first, second = topk[0].points
    assert at_15.clean == pytest.approx((first.clean + second.clean) / 2)
    assert at_2.how == "out of range" and at_2.clean is None
