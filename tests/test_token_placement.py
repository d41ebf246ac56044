"""Where the tokens go (prunebench.analysis.token_placement): band and time shares, silence, padding
and clean-vs-noisy Jaccard of hand-made masks with known answers, and of the real store entries."""
from pathlib import Path

import pytest
import torch

from leaderboard_records import GRID, make_record, mask
from prunebench.analysis.patch_grid import decode_mask, record_grid
from prunebench.analysis.token_placement import NO_SELECTION, placement, placements, silent_columns
from prunebench.core.errors import DataError
from prunebench.data.silence import silent_fraction, silent_steps
from prunebench.records.record import Record, load_results

ROOT = Path(__file__).resolve().parents[1]
VIT = ROOT / "results-store/esc50-vit-s14/published/records"
WHISPER = ROOT / "results-store/esc50-whisper-tiny/published/records"
ROW0 = list(range(8))  # the lowest row of the 8 x 8 grid, every column
TOP_LEFT = [56, 57, 58, 59]  # the top row, columns 0-3


def rec(method="topk", keep=0.5, noise=None, kept=None, **kw) -> Record:
    return Record.from_dict(make_record(method, keep, noise=noise, kept=kept, correct=(1, 0), **kw))


def test_band_and_time_shares_of_known_masks():
    p = placement(rec(kept=[mask(ROW0), mask(TOP_LEFT)]))
    assert (p.rows, p.clips) == (GRID[0], 2)
    # thirds of 8 rows by index: rows 0-2, 3-5, 6-7; 8 kept in the lowest, 4 in the top
    assert p.band_shares() == pytest.approx([8 / 12, 0.0, 4 / 12])
    # columns by their centre: 0-2 in the first third, 3-4 in the middle, 5-7 in the last
    assert p.time_shares() == pytest.approx([6 / 12, 3 / 12, 3 / 12])
    assert sum(p.time_shares(10)) == pytest.approx(1.0)
    freq = p.keep_frequency(10)
    assert len(freq) == 8 and len(freq[0]) == 10
    assert freq[0][0] == pytest.approx(0.5)  # row 0, column 0: kept in one clip of two
    assert freq[7][0] == pytest.approx(0.5) and freq[7][9] == pytest.approx(0.0)
    assert freq[3][0] == pytest.approx(0.0)


def test_clean_vs_noisy_jaccard_per_clip_mean():
    clean = rec(kept=[mask(ROW0), mask(TOP_LEFT)])
    noisy = rec(noise=("white", 10), kept=[mask(range(4, 12)), mask(TOP_LEFT)])
    found = {p.variant: p for p in placements([noisy, clean])}
    assert found["clean"].jaccard is None
    assert found["white@10dB"].jaccard == pytest.approx((4 / 12 + 1.0) / 2)


def test_records_without_masks_are_listed_not_dropped():
    records = [rec("none", None), rec("topk", 0.5), rec("topk", 0.5, noise=("white", 10), kept=[mask(ROW0), mask(ROW0)])]
    found = placements(records)
    assert len(found) == 3
    reasons = {p.method: p.no_selection for p in found if p.no_selection}
    assert reasons["none"].startswith(NO_SELECTION) and "keeps every token" in reasons["none"]
    assert reasons["topk-keep_rate=0.5"] == NO_SELECTION  # an old record: no masks, no reason invented
    noisy = next(p for p in found if p.corruption)
    assert noisy.jaccard is None and noisy.band_shares()[0] == pytest.approx(1.0)  # no clean masks to compare


def test_silent_share_of_kept_tokens():
    # 16-frame columns; the first 64 of 128 steps silent: columns 0-3 silent
    steps = [True] * 64 + [False] * 64
    config = rec().model_config
    assert silent_columns(config, steps, 8).tolist() == [True] * 4 + [False] * 4
    assert silent_columns(config, [True] * 8 + [False] * 120, 8)[0]  # half of the column: silent
    assert not silent_columns(config, [True] * 7 + [False] * 121, 8)[0]
    p = placement(rec(kept=[mask(ROW0), mask(TOP_LEFT)]), {"clip0": steps, "clip1": steps})
    assert p.silent_share == pytest.approx((4 / 8 + 4 / 4) / 2)
    assert p.silent_present == pytest.approx(0.5)
    assert placement(rec(kept=[mask(ROW0), mask(TOP_LEFT)])).silent_share is None  # no silence given


def test_silent_steps_follow_the_silent_fraction():
    wave = torch.cat([torch.zeros(16000), 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(0))])
    steps = silent_steps(wave, 16000)
    assert len(steps) == 200 and steps[:100] == [True] * 100 and not any(steps[100:])
    assert sum(steps) / len(steps) == pytest.approx(silent_fraction(wave, 16000), abs=0.01)


def test_a_mask_beyond_its_grid_is_an_error():
    assert decode_mask(mask([0, 9]), 8, 8)[1, 1]
    with pytest.raises(DataError, match="beyond its 2x2 grid"):
        decode_mask("1f", 2, 2)


@pytest.mark.skipif(not VIT.exists(), reason="no ViT store entry")
def test_the_vit_store_entry():
    records = load_results(VIT)
    assert {record_grid(r) for r in records} == {(9, 36)}
    found = {(p.method, p.variant): p for p in placements(records)}
    assert len(found) == len(records) == 81  # 9 methods x (clean, white and pink at 20/10/0 dB, mix-clips at 20/10 dB)
    none = found[("none", "clean")]
    assert none.band_shares() == pytest.approx([1 / 3] * 3) and none.clips == 400
    assert found[("tome-keep_rate=0.5", "clean")].no_selection.startswith(NO_SELECTION)
    assert found[("random-keep_rate=0.5", "white@10dB")].jaccard == pytest.approx(1.0)  # content-blind
    topk = found[("topk-keep_rate=0.5", "white@10dB")].jaccard
    assert topk is not None and topk < 0.9
    # the intensity score follows the energy: white noise lifts the top bands, and the selection with them
    assert found[("intensity-keep_rate=0.5", "white@10dB")].band_shares()[2] > \
        found[("intensity-keep_rate=0.5", "clean")].band_shares()[2] + 0.2
    kept = found[("topk-keep_rate=0.5", "clean")]
    total = sum(sum(row) for row in kept.kept)
    per_clip = decode_mask(Record.read(kept_record(records, "topk-keep_rate=0.5")).clips.kept_patches[0], 9, 36).sum()
    assert total == pytest.approx(400 * float(per_clip))  # topk keeps the same count in every clip


def kept_record(records, method):
    return next(r.path for r in records if r.method.id == method and r.corruption is None)


@pytest.mark.skipif(not WHISPER.exists(), reason="no Whisper store entry")
def test_the_whisper_store_entry_is_one_row():
    found = [p for p in placements(load_results(WHISPER)) if p.no_selection is None and p.method.startswith("topk")]
    assert found and all(p.rows == 1 and p.band_shares() == [1.0] for p in found)
    assert all(sum(p.time_shares(10)) == pytest.approx(1.0) for p in found)


def test_the_report_section():
    from prunebench.analysis.report import build_report

    records = [rec("none", None), rec(kept=[mask(ROW0), mask(TOP_LEFT)]),
               rec(noise=("white", 10), kept=[mask(range(4, 12)), mask(TOP_LEFT)]), rec("none", None, noise=("white", 10)),
               rec("tome", 0.5), rec("tome", 0.5, noise=("white", 10))]
    text = build_report(records)
    section = text[text.index("WHERE THE TOKENS GO"):]
    clean_row = next(line for line in section.splitlines() if line.startswith("topk") and "67/0/33" in line)
    assert clean_row.split()[:5] == ["topk", "0.5", "2", "67/0/33", "50/25/25"]
    noisy_row = next(line for line in section.splitlines() if line.startswith("topk") and "0.67" in line)
    assert noisy_row.split()[:3] == ["topk", "0.5", "0.67"]
    assert "tome keep 0.5: no selection recorded (2 variant(s))" in section  # no masks, no token trace: no reason invented
    assert "none: no selection recorded (none keeps every token) (2 variant(s))" in section


def test_the_leaderboard_figures():
    """A 2-D grid gets a heatmap per method (clean beside the noisiest condition); a 1-D encoder's
    tokens get time profiles."""
    from prunebench.leaderboard.render import render_html

    vit = [make_record("topk", 0.5, kept=[mask(ROW0), mask(TOP_LEFT)], correct=(1, 0)),
           make_record("topk", 0.5, noise=("white", 10), kept=[mask(range(4, 12)), mask(TOP_LEFT)], correct=(1, 0)),
           make_record("none", None, correct=(1, 0))]
    whisper = [make_record("topk", 0.5, model="whisper-x", kept=[mask(range(4), 8), mask(range(2), 8)], correct=(1, 0)),
               make_record("topk", 0.5, model="whisper-x", noise=("white", 10), kept=[mask(range(4), 8), mask([7], 8)],
                           correct=(1, 0))]
    for r in whisper:  # one row of 8 tokens of 2 frames over every mel bin
        r["model"]["config"] = {"num_classes": 4, "positions": 1500, "num_mel_bins": 80, "patch_size": 2}
        r["macs"]["grid"] = [1, 8]
    html = render_html(vit + whisper)
    section = html[html.index('<h2 id="tokens">'):html.index('<h2 id="data">')]
    heat = section[section.index('data-model="ast-tiny"'):section.index('data-model="whisper-x"')]
    assert heat.count('<svg class="plot heatmap"') == 1 and "topk keep 0.5 (J 0.67)" in heat
    assert heat.count('<rect x=') == 2 * 8 * 8  # 8 rows x the 8 spans the 8 columns fall in, 2 panels
    assert "<title>clean 1, 1: 50%</title>" in heat and "<title>clean 8, 1: 50%</title>" in heat  # row 0 and 7, span 0
    assert "<title>clean 4, 1: 0%</title>" in heat
    assert "none: no selection recorded (none keeps every token)" in heat  # no masks: listed, not dropped
    profiles = section[section.index('data-model="whisper-x"'):]
    assert profiles.count('<svg class="plot lines"') == 2 and "time profile, white@10dB" in profiles
    assert "topk keep 0.5 (J 0.50)" in profiles  # clip 0 unchanged (1), clip 1: {0, 1} against {7} (0)


@pytest.mark.skipif(not VIT.exists() or not Path("/work/shared/data/esc50-16k").exists(), reason="no ESC-50 or store entry")
def test_silence_read_again_agrees_with_the_records_silent_fraction():
    """The silence laid over the grid is the record's own: per clip, the share of silent 10 ms steps
    equals `per_clip.silent_fraction` (25 ms frames) of the run that wrote it."""
    from prunebench.data.silence import task_silence

    record = next(r for r in load_results(VIT) if r.method.id == "none" and r.corruption is None)
    params = {**record.task_params, "root": "/work/shared/data/esc50-16k"}
    steps = task_silence(record.task, params, record.clips.ids)
    for cid, stored in zip(record.clips.ids, record.clips.silent_fraction):
        assert sum(steps[cid]) / len(steps[cid]) == pytest.approx(stored, abs=0.02), cid
    assert sum(record.clips.silent_fraction) > 10  # fold 5 has silence to find
