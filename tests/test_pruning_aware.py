"""Pruning-aware against off the shelf (prunebench.analysis.pruning_aware), on two real runs of two
tiny models: the off-the-shelf folder (none and topk) and an "aware" folder made with another
checkpoint (topk only). The table's accuracies equal the records' own metrics, its off-the-shelf
flip effect equals the report's per condition (averaged), and bad folders fail naming the problem."""
from __future__ import annotations

import pytest
import torch
import yaml

from conftest import TINY, run_config
from prunebench.analysis.pruning_aware import compare, main, table
from prunebench.analysis.robustness import compare as report_compare
from prunebench.cli import main as cli
from prunebench.models import build_model, save_checkpoint
from prunebench.records.record import Record

TOPK = {"name": "topk", "keep_rate": 0.5}


def _run(tmp_path, root, checkpoint, methods, name):
    config = run_config(root, checkpoint, methods=methods, snr_db=(10, 0))
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["run", "--config", str(path), "--out", str(tmp_path / name), "--no-progress"]) == 0
    return Record.read_folder(tmp_path / name)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_checkpoint):
    root, checkpoint = tiny_checkpoint
    base = tmp_path_factory.mktemp("aware")
    torch.manual_seed(3)
    other = base / "other.pt"
    save_checkpoint(build_model("ast-tiny", num_classes=10, **TINY).eval(), other, {"note": "stands for the aware model"})
    off = _run(base, root, checkpoint, [{"name": "none"}, TOPK], "off")
    aware = _run(base, root, other, [TOPK], "aware")
    return base, off, aware


def _accuracy(records, method_id, corruption=None):
    (r,) = [r for r in records if r.method.id == method_id and r.corruption_id == corruption]
    return r.metrics["accuracy"]["value"]


def test_the_table_reads_the_records_and_agrees_with_the_report(folders):
    base, off, aware = folders
    (row,) = compare(off, {"topk-keep_rate=0.5": aware})
    assert row.keep_rate == 0.5 and row.clips == len(next(r for r in off if r.ok).clips.ids)
    assert row.none_clean == pytest.approx(_accuracy(off, "none"))
    assert row.off_clean == pytest.approx(_accuracy(off, "topk-keep_rate=0.5"))
    assert row.aware_clean == pytest.approx(_accuracy(aware, "topk-keep_rate=0.5"))
    assert row.gap == pytest.approx(row.aware_clean - row.none_clean)
    noisy = [_accuracy(aware, "topk-keep_rate=0.5", c) for c in ("white@10dB", "white@0dB")]
    assert row.aware_noisy == pytest.approx(sum(noisy) / 2)
    flips = [c.flip_effect for c in report_compare(off) if c.method == "topk-keep_rate=0.5"]
    assert len(flips) == 2 and row.off_flip == pytest.approx(sum(flips) / 2)
    assert row.gap_ci is None or row.gap_ci[0] <= row.gap <= row.gap_ci[1]
    assert "topk-keep_rate=0.5" in table([row])


def test_the_command_prints_the_table_and_refuses_a_folder_of_two_methods(folders, capsys):
    base, _, _ = folders
    assert main([str(base / "off"), str(base / "aware")]) == 0
    assert "within 2 pts" in capsys.readouterr().out
    assert main([str(base / "off"), str(base / "aware"), "--baseline", str(base / "aware")]) == 2
    assert "no ok record of none" in capsys.readouterr().err
    assert main([str(base / "off"), str(base / "off")]) == 2
    assert "holds one method, found ['none', 'topk-keep_rate=0.5']" in capsys.readouterr().err


def test_placement_by_regime_reads_the_kept_masks(folders):
    """Off vs aware: the between-regime Jaccard is the per-clip mean of the masks' overlap, computed
    here from the hex masks; a folder against itself gives 1 and the same placement twice."""
    from prunebench.analysis.placement_regimes import compare_placement, regime_table
    from prunebench.analysis.robustness import mask_jaccard

    base, off, aware = folders
    topk = "topk-keep_rate=0.5"
    (row,) = compare_placement(off, {topk: aware})
    (a,) = [r for r in off if r.method.id == topk and r.corruption is None]
    (b,) = [r for r in aware if r.method.id == topk and r.corruption is None]
    where = {c: i for i, c in enumerate(b.clips.ids)}
    overlaps = [mask_jaccard(m, b.clips.kept_patches[where[c]]) for c, m in zip(a.clips.ids, a.clips.kept_patches)]
    assert row.between == pytest.approx(sum(overlaps) / len(overlaps))
    assert row.clean["off"].clips == len(a.clips.ids) and row.no_selection is None
    assert 0 <= row.noise_jaccard["off"] <= 1 and 0 <= row.noise_jaccard["aware"] <= 1
    assert sum(row.clean["aware"].time_shares()) == pytest.approx(1.0)

    (same,) = compare_placement(off, {topk: off})
    assert same.between == 1.0 and same.noise_jaccard["off"] == same.noise_jaccard["aware"]
    assert same.clean["off"].kept == same.clean["aware"].kept
    assert "J off vs aware" in regime_table([row, same])


def test_placement_by_regime_needs_a_clean_record(folders):
    from prunebench.analysis.placement_regimes import compare_placement
    from prunebench.core.errors import DataError

    base, off, aware = folders
    noisy_only = [r for r in aware if r.corruption is not None]
    with pytest.raises(DataError, match="no clean record of topk-keep_rate=0.5 pruning-aware"):
        compare_placement(off, {"topk-keep_rate=0.5": noisy_only})
