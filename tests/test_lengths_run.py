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


def test_effective_robustness_per_length_from_one_run_with_a_testbed(tmp_path, tiny_checkpoint):
    """A run at the clips' own lengths with a testbed: each method's ER on the short and on the long
    clips is the ER of the records cut to those clips (the line refitted on them)."""
    from prunebench.analysis.by_length import by_length, effective_by_length, format_effective_by_length
    from prunebench.analysis.effective import effective_robustness
    from prunebench.records.record import load_results

    root, checkpoint = tiny_checkpoint
    config = run_config(root, checkpoint, methods=[{"name": "none"}, {"name": "topk", "keep_rate": 0.5}], snr_db=(20, 0),
                        testbed={"blocks": [1, 2, 3, 4], "train_fractions": [0.5, 1.0]})
    config["tasks"][0]["lengths"] = {"uniform": [0.3, 1.0], "seed": 1}
    config["measure"]["batching"] = "sorted"
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    records = load_results(tmp_path / "out", testbed=True)
    members = [r for r in records if r.testbed is not None]
    assert len({r.testbed.member for r in members}) == 8 and {r.bucket for r in members} == {"u0.3-1s-seed1"}
    assert {r.method for r in by_length(records, split_seconds=0.6)} == {"topk-keep_rate=0.5"}  # members are no comparison

    rows, notes = effective_by_length(records, split_seconds=0.6)
    none = next(r for r in records if r.testbed is None and r.method.id == "none" and r.corruption is None)
    short = [i for i, f in zip(none.clips.ids, none.clips.frames) if f / 100 <= 0.6]
    assert 0 < len(short) < len(none.clips.ids)
    cut, whole = effective_robustness(records, clips=short), effective_robustness(records)
    assert {c.clips for c in cut.conditions} == {len(short)} and {c.clips for c in whole.conditions} == {len(none.clips.ids)}
    for part, ids in (("short", short), ("long", [i for i in none.clips.ids if i not in short])):
        got = {r.method: r for r in rows if r.part == part}
        assert set(got) == {"none", "topk-keep_rate=0.5"} and {r.clips for r in got.values()} == {len(ids)}
        expected = effective_robustness(records, clips=ids)
        for p in expected.pooled:  # a line on this part: the same ER
            assert got[p.method].er == p.er and got[p.method].conditions == p.conditions
        for r in got.values():  # no line: no ER, and the reason
            assert (r.er is None) == (r.conditions == 0) and (r.er is not None or r.verdict.startswith("no verdict"))
    assert "clips split at 0.60 s" in format_effective_by_length(rows)
