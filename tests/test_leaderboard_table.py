"""Golden tests of the leaderboard's table builder, merging and robustness tables, on small
hand-made result sets whose every number is chosen here."""
import pytest

from prunebench.analysis.merge import merge
from prunebench.analysis.robustness import compare
from prunebench.analysis.summary import pivot, summary_table
from prunebench.analysis.table import main_table
from prunebench.leaderboard.buckets import bucket_table
from prunebench.leaderboard.robustness_view import detail_table, verdict_table

from prunebench.records.record import Record
from leaderboard_records import make_record

HEADERS = ["model", "task", "method", "params", "clean (%)", "white@20dB (%)", "white@10dB (%)", "mean noisy (%)",
           "GMACs", "throughput (samples/s)", "speedup (x)", "device"]


def two_methods():
    none = dict(macs=2e9, speed=100.0, speedup=1.0)
    topk = dict(macs=1e9, speed=180.0, speedup=1.8)
    return [
        make_record("none", correct=[1, 1, 1, 0], **none),
        make_record("none", noise=("white", 20), correct=[1, 1, 0, 0], **none),
        make_record("none", noise=("white", 10), correct=[1, 0, 0, 0], **none),
        make_record("topk", 0.5, correct=[1, 1, 0, 0], **topk),
        make_record("topk", 0.5, noise=("white", 10), correct=[0, 0, 0, 0], **topk),
        make_record("topk", 0.5, noise=("white", 20), correct=[1, 0, 0, 0], **topk),
    ]


def build(records):
    merged = merge(records)
    return main_table(merged.records, merged.failed, merged.conflicts), merged


def test_main_table_golden():
    table, _ = build(two_methods())
    assert table.headers() == HEADERS
    assert table.text_rows() == [
        ["ast-tiny", "synth-esc/fold5", "none", "", "75.0", "50.0", "25.0", "37.5", "2.000", "100.0", "1.00", "cpu"],
        ["ast-tiny", "synth-esc/fold5", "topk", "keep_rate=0.5", "50.0", "25.0", "0.0", "12.5", "1.000", "180.0", "1.80", "cpu"],
    ]
    none, topk = table.rows
    # best of each ranked column among comparable rows; raw values kept for sorting and plots
    assert none.cells["clean"].best and not topk.cells["clean"].best
    assert topk.cells["gmacs"].best and topk.cells["speedup"].best and not none.cells["gmacs"].best
    assert none.cells["clean"].value == 0.75 and none.cells["clean"].ci == (0.65, 0.85)
    assert none.cells["clean"].note == "95% interval 65.0 to 85.0"
    assert "device" not in [c.key for c in table.columns if c.numeric]


def test_summary_is_the_same_table_as_text():
    headers, rows = pivot(two_methods())
    assert headers == HEADERS and rows[1][4] == "50.0"
    text = summary_table(two_methods()).splitlines()
    assert text[0].split("|")[1].strip() == "model" and len(text) == 4
    assert "| keep_rate=0.5 |" in text[3] and text[3].rstrip().endswith("| cpu      |")


def test_failed_records_show_as_failures_and_leave_the_mean_incomplete():
    records = two_methods()[:-1]  # topk under white@20dB ...
    failed = {k: v for k, v in make_record("topk", 0.5, noise=("white", 20)).items()
              if k in ("schema", "model", "method", "task", "provenance")}
    failed.update(status="failed", error="RuntimeError: out of memory")
    table, merged = build(records + [failed])
    assert [(r.key, r.failure.text) for r in merged.failed] == [(Record.from_dict(failed).key, "RuntimeError: out of memory")]
    topk = table.text_rows()[1]
    assert topk[HEADERS.index("white@20dB (%)")] == "failed" and topk[HEADERS.index("mean noisy (%)")] == ""
    cell = table.rows[1].cells["white@20dB"]
    assert cell.status == "failed" and cell.note == "RuntimeError: out of memory"
    assert table.rows[1].cells["mean_noisy"].note == "incomplete: no result for white@20dB"
    # a success for the same key (a rerun elsewhere) supersedes the failure
    table, merged = build(two_methods() + [failed])
    assert not merged.failed and table.text_rows()[1][5] == "25.0" and len(merged.duplicates) == 1


def test_conflicting_records_are_reported_and_left_out():
    records = two_methods()
    other = make_record("topk", 0.5, correct=[1, 1, 1, 1], macs=1e9, speed=180.0, speedup=1.8)
    other["_path"] = "machine-b/ast-tiny/topk-keep_rate=0.5/synth-esc/fold5.json"
    records[3]["_path"] = "machine-a/ast-tiny/topk-keep_rate=0.5/synth-esc/fold5.json"
    table, merged = build(records + [other])
    assert len(merged.conflicts) == 1
    conflict = merged.conflicts[0]
    assert conflict.key == ("ast-tiny", "topk-keep_rate=0.5", "synth-esc/fold5")
    assert conflict.differences == ["accuracy 0.5 vs 1", "per-clip correct", "per-clip pred"]
    assert conflict.paths == [records[3]["_path"], other["_path"]]
    row = table.text_rows()[1]
    assert row[4] == "conflict" and row[5] == "25.0"
    # the clean record's cost columns are not taken from either conflicting record
    assert row[8:11] == ["", "", ""]
    assert ("topk-keep_rate=0.5", "synth-esc/fold5") not in {(r.method.id, r.variant) for r in merged.records}


def test_same_results_from_two_machines_are_merged():
    a = two_methods()
    b = two_methods()
    for r in a:
        r["_path"] = "a/" + r["task"]["variant"]
    for r in b:
        r["_path"] = "b/" + r["task"]["variant"]
        r["throughput"]["samples_per_s"] *= 3  # another machine: other throughput, same results
        r["provenance"]["device"] = "cuda"
    table, merged = build(a + b)
    assert not merged.conflicts and len(merged.duplicates) == 6 and merged.files == 12
    assert table.text_rows()[0][9] == "100.0"  # the first by path is used
    assert merged.duplicates[0].paths[0].startswith("a/")


def test_checkpoint_mismatch_is_a_conflict():
    a = make_record("none")
    b = make_record("none", sha="b" * 64)
    assert merge([a, b]).conflicts[0].differences == [f"checkpoint {'a' * 12} vs {'b' * 12}"]


def test_buckets_and_mixed_metrics():
    records = [
        make_record("none", correct=[1, 1, 0, 0]),
        make_record("none", bucket=(2, "native"), correct=[1, 0, 0, 0], speed=300.0, macs=0.5e9),
        make_record("none", task="as20k", split="eval", metric="map", correct=[1, 1, 1, 0]),
    ]
    table, _ = build(records)
    assert table.headers() == ["model", "task", "bucket", "method", "params", "metric", "clean", "GMACs",
                               "throughput (samples/s)", "speedup (x)", "device"]
    assert table.text_rows() == [
        ["ast-tiny", "as20k/eval", "full", "none", "", "mAP", "75.0", "2.000", "100.0", "1.00", "cpu"],
        ["ast-tiny", "synth-esc/fold5", "full", "none", "", "accuracy", "50.0", "2.000", "100.0", "1.00", "cpu"],
        ["ast-tiny", "synth-esc/fold5", "len2s-native", "none", "", "accuracy", "25.0", "0.500", "300.0", "1.00", "cpu"],
    ]
    buckets = bucket_table(records)
    assert buckets.headers()[4:] == ["full throughput (samples/s)", "full speedup (x)", "full GMACs",
                                     "len2s-native throughput (samples/s)", "len2s-native speedup (x)", "len2s-native GMACs"]
    assert buckets.text_rows() == [
        ["ast-tiny", "as20k/eval", "none", "", "100.0", "1.00", "2.000", "", "", ""],
        ["ast-tiny", "synth-esc/fold5", "none", "", "100.0", "1.00", "2.000", "300.0", "1.00", "0.500"],
    ]


def test_unknown_metric_needs_no_template_change():
    table, _ = build([make_record("none", metric="f1", correct=[1, 1, 1, 0])])
    assert table.headers()[4] == "clean" and table.text_rows()[0][4] == "0.750"


def degrading_set(clips=40):
    """topk loses half its clips to the noise, none loses none: pruning degrades robustness."""
    half = [1] * (clips // 2) + [0] * (clips // 2)
    kept_clean = [format(0b1111, "016x")] * clips
    kept_noisy = [format(0b0011, "016x")] * clips
    return [
        make_record("none", correct=[1] * clips),
        make_record("none", noise=("white", 0), correct=[1] * clips),
        make_record("topk", 0.5, correct=[1] * clips, kept=kept_clean),
        make_record("topk", 0.5, noise=("white", 0), correct=half, pred=[1] * (clips // 2) + [3] * (clips // 2),
                    kept=kept_noisy),
        make_record("topk", 0.9, correct=[1] * clips, kept=kept_clean),
        make_record("topk", 0.9, noise=("white", 0), correct=[1] * clips, kept=kept_clean),
    ]


def test_robustness_tables():
    comps = compare(degrading_set())
    verdicts = verdict_table(comps)
    assert verdicts.headers() == ["model", "task", "method", "keep rate", "verdict", "degrades under", "of",
                                  "largest effect (pp)", "95% interval", "p", "at", "selection Jaccard"]
    rows = verdicts.text_rows()
    assert rows[0][2:5] == ["topk", "0.9", "no detectable effect"]
    assert rows[0][7:] == ["+0.0", "[+0.0, +0.0]", "1.000", "white@0dB", "1.00"]
    lo, hi = comps[0].effect_ci95 if comps[0].keep_rate == 0.5 else comps[1].effect_ci95
    assert rows[1][2:] == ["topk", "0.5", "degrades robustness under 1 of 1", "1", "1", "+50.0",
                           f"[{100 * lo:+.1f}, {100 * hi:+.1f}]", "<0.001", "white@0dB", "0.50"]
    assert lo > 0 and verdicts.rows[1].cells["verdict"].css == "degrades"
    details = detail_table(comps)
    assert [r[3] for r in details.text_rows()] == ["0.9", "0.5"]
    row = dict(zip([c.key for c in details.columns], details.text_rows()[1]))
    assert row["clean"] == "100.0" and row["noisy"] == "50.0" and row["drop"] == "50.0" and row["none_drop"] == "0.0"
    assert row["retention"] == "50.0" and row["consistency"] == "50.0" and row["jaccard"] == "0.50"


def test_near_chance_comparisons_are_flagged():
    clips = 40
    chance = [1 if i % 4 == 0 else 0 for i in range(clips)]  # 25% with 4 classes: chance
    records = [
        make_record("none", correct=[1] * clips),
        make_record("none", noise=("white", 0), correct=chance),
        make_record("topk", 0.5, correct=[1] * clips),
        make_record("topk", 0.5, noise=("white", 0), correct=chance),
    ]
    text = verdict_table(compare(records)).text_rows()[0][4]
    assert text == "no detectable effect (1 near chance: floor effect likely)"


@pytest.mark.parametrize("value, expected", [(0.0004, "<0.001"), (0.0312, "0.031"), (None, "")])
def test_p_value_format(value, expected):
    from prunebench.analysis.schema import ROBUSTNESS

    assert ROBUSTNESS["mcnemar_p"].format(value) == expected


def test_a_tie_of_all_is_not_bold():
    table, _ = build([make_record("none", correct=[1, 1, 0, 0]), make_record("topk", 0.5, correct=[0, 1, 1, 0], macs=1e9)])
    assert not any(row.cells["clean"].best for row in table.rows)
    assert [row.cells["gmacs"].best for row in table.rows] == [False, True]
