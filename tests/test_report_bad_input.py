"""Records that cannot support a verdict: the report says why for that comparison, and every other
line of the report is what it would be without them."""
import math

from prunebench.analysis.report import build_report
from prunebench.analysis.robustness import compare, unusable_reason
from prunebench.leaderboard.robustness_view import detail_table, verdict_table
from prunebench.records.record import as_records

from test_report import grid, outcomes, record

TOME = "tome-keep_rate=0.5"


def _answer(text, method):
    return next(line.strip() for line in text.split("ANSWER")[1].splitlines() if line.strip().startswith(method))


def _tome_clean_and(conditions):
    return [record(TOME, 0.5, None, outcomes(160, seed=1))] + conditions


def test_fewer_than_two_clips_right_clean_for_both():
    clean = [1] + [0] * 199  # tome gets one clip right clean, and none's clean has it right too
    assert outcomes(160, seed=1)[0] == 1
    extra = [record(TOME, 0.5, None, clean)] + [record(TOME, 0.5, f"white@{snr}dB", [0] * 200) for snr in (20, 10)]
    alone, text = build_report(grid()), build_report(grid() + extra)
    why = "no verdict: 1 clip right clean for both (a flip effect needs at least 2)"
    assert _answer(text, "tome keep 0.5").startswith(f"tome keep 0.5: {why}: drop effect ")
    assert "could have detected" not in _answer(text, "tome keep 0.5")
    rows = [line for line in text.splitlines() if line.startswith("tome ") and "white@" in line]
    assert len(rows) == 2 and all(line.rstrip().endswith(why) for line in rows)
    assert _answer(text, "topk keep 0.5") == _answer(alone, "topk keep 0.5")
    # the leaderboard says the same
    comparisons = [c for c in compare(grid() + extra) if c.method == TOME]
    assert all(c.no_verdict and c.flip_mde is None and c.flip_mcnemar_p is None for c in comparisons)
    verdicts = {row.method: row.cells["verdict"].text for row in verdict_table(comparisons).rows}
    assert verdicts[TOME] == why
    assert all(row.cells["verdict"].text == why for row in detail_table(comparisons).rows)


def test_an_empty_condition_is_named_and_left_out():
    empty = record(TOME, 0.5, "white@10dB", [1])
    empty["per_clip"].update(ids=[], correct=[], pred=[])
    empty["metrics"]["accuracy"]["value"] = math.nan
    usable = record(TOME, 0.5, "white@20dB", outcomes(150, seed=1))
    alone = build_report(grid() + _tome_clean_and([usable]))
    text = build_report(grid() + _tome_clean_and([usable, empty]))
    assert "  tome keep 0.5 under white@10dB (m on t/fold5): no verdict: tome-keep_rate=0.5 white@10dB holds no clips." in text
    # every other line is the report without the empty record's (its count of records aside)
    kept = [line for line in text.splitlines()[2:] if line and not _not_compared(line)]
    assert kept == [line for line in alone.splitlines()[2:] if line]


def _not_compared(line):
    return line.startswith("Not compared (the records cannot") or line.startswith("  tome keep 0.5 under white@10dB")


def test_nan_outcomes_give_no_verdict_and_name_the_clip():
    noisy = outcomes(150, seed=1)
    noisy[3] = math.nan  # a NaN counted as right would be a silent guess
    text = build_report(grid() + _tome_clean_and([record(TOME, 0.5, "white@20dB", outcomes(150, seed=1)),
                                                 record(TOME, 0.5, "white@10dB", noisy)]))
    assert ("tome keep 0.5 under white@10dB (m on t/fold5): no verdict: tome-keep_rate=0.5 white@10dB: clip fold5-c3 "
            "has outcome nan, not right or wrong.") in text
    assert "over 1 condition(s)" in _answer(text, "tome keep 0.5")  # pooled over the usable condition only
    assert _answer(text, "topk keep 0.5") == _answer(build_report(grid()), "topk keep 0.5")


def test_unusable_reasons():
    base = grid()[:2]
    clean, noisy = (as_records([r])[0] for r in (record(TOME, 0.5, None, [1, 0, 1]), record(TOME, 0.5, "white@0dB", [1, 0, 1])))
    other = as_records([record(TOME, 0.5, "white@0dB", [1, 0], ids=["x", "y"])])[0]
    none_clean, none_noisy = as_records([record("none", None, None, [1, 1, 1]), record("none", None, "white@0dB", [1, 1, 0])])
    assert unusable_reason([clean, noisy, none_clean, none_noisy]) is None
    assert unusable_reason([clean, other, none_clean, none_noisy]) == "the four records share no clip"
    missing = record(TOME, 0.5, "white@0dB", [1, 0, 1])
    missing["per_clip"]["correct"][1] = None
    missing = as_records([missing])[0]
    assert unusable_reason([clean, missing, none_clean, none_noisy]) == (
        "tome-keep_rate=0.5 white@0dB: clip fold5-c1 has outcome None, not right or wrong")
    scored = record(TOME, 0.5, "white@0dB", [1, 0, 1])
    scored["per_clip"].pop("correct")
    scored["per_clip"]["scores"] = [[0.1, 0.2], [math.nan, 0.3], [0.5, 0.5]]
    assert unusable_reason([clean, as_records([scored])[0], none_clean, none_noisy]) == (
        "tome-keep_rate=0.5 white@0dB: clip fold5-c1 has a score that is not a number")
    assert base  # the grid's records are untouched by these checks
