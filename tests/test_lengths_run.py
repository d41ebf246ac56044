"""A run over clips at their own lengths, under two batching strategies: records state the
lengths and the strategy, each clip's length, the MACs spent on padding and clips/s per strategy."""
from __future__ import annotations

import yaml

from conftest import run_config
from prunebench.cli import main
from prunebench.records.record import Record


def _run(tmp_path, tiny_checkpoint, strategy: str, throughput: bool = False):
    root, checkpoint = tiny_checkpoint
    config = run_config(root, checkpoint, methods=[{"name": "none"}, {"name": "topk", "keep_rate": 0.5},
                                                    {"name": "tome", "keep_rate": 0.5}],
                        snr_db=(10,), throughput=throughput)
    config["tasks"][0]["lengths"] = {"uniform": [0.3, 1.0], "seed": 1}
    config["measure"]["batching"] = strategy
    path = tmp_path / f"{strategy}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / strategy
    assert main(["run", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    return {(r.method.id, r.variant): r for r in Record.read_folder(out)}


def test_strategies_agree_per_clip_and_records_state_lengths(tmp_path, tiny_checkpoint):
    sorted_ = _run(tmp_path, tiny_checkpoint, "sorted", throughput=True)
    native = _run(tmp_path, tiny_checkpoint, "native")
    assert set(sorted_) == set(native) and len(sorted_) == 6
    for key, record in sorted_.items():
        other = native[key]
        assert "+u0.3-1s-seed1" in record.variant
        assert record.identity.parts["measure"]["batching"] == "sorted"
        assert record.identity.parts["lengths"]["id"] == "u0.3-1s-seed1"
        assert record.identity.key != other.identity.key
        frames = record.clips.frames
        assert frames is not None and len(set(frames)) > 1 and frames == other.clips.frames
        assert record.clips.pred == other.clips.pred  # masked batches: each clip as alone
        macs = record.document["macs"]
        assert 0 < macs["padding_share"] < 1 and macs["real_per_sample"] < macs["per_sample"]
        assert native[key].document["macs"]["padding_share"] == 0
        speed = record.throughput
        assert speed["batching"] == "sorted" and speed["speedup_vs_pad_fixed_none"] > 0


def test_flip_effects_per_length_from_one_run(tmp_path, tiny_checkpoint):
    from prunebench.analysis.by_length import by_length, format_by_length

    records = list(_run(tmp_path, tiny_checkpoint, "sorted").values())
    rows = by_length(records, split_seconds=0.6)
    assert {(r.method, r.part) for r in rows} == {(m, p) for m in ("topk-keep_rate=0.5", "tome-keep_rate=0.5")
                                                   for p in ("short", "long")}
    frames = records[0].clips.frames
    short = sum(f / 100 <= 0.6 for f in frames)
    assert {r.clips for r in rows if r.part == "short"} == {short} and 0 < short < len(frames)
    assert all(r.lengths == "u0.3-1s-seed1" for r in rows)
    assert "clips split at 0.60 s" in format_by_length(rows)
