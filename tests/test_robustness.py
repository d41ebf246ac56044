import math

import pytest
import torch

from prunebench.analysis.robustness import compare, mcnemar_exact, selection_jaccard


def record(method, keep, corruption, correct, pred=None, kept=None, classes=10):
    n = len(correct)
    return {
        "model": {"name": "m", "config": {"num_classes": classes}},
        "task": {"name": "t", "split": "fold5", "bucket": None,
                 "corruption": None if corruption is None else {"id": corruption}},
        "method": {"id": method, "name": method.split("-")[0], "params": {} if keep is None else {"keep_rate": keep}},
        "metrics": {"accuracy": {"value": sum(correct) / n}},
        "per_clip": {"ids": [f"c{i}" for i in range(n)], "correct": correct,
                     "pred": pred if pred is not None else [0 if c else 1 for c in correct], "kept_patches": kept},
    }


def test_mcnemar_exact_matches_binomial():
    a = torch.tensor([True] * 10 + [False] * 2 + [True] * 20)
    b = torch.tensor([False] * 10 + [True] * 2 + [True] * 20)
    expected = 2 * sum(math.comb(12, i) for i in range(3)) / 2 ** 12
    assert mcnemar_exact(a, b) == pytest.approx(expected)
    assert mcnemar_exact(a, a) == 1.0


def test_pruning_effect_is_difference_of_drops_on_same_clips():
    n = 100
    none_clean = [1] * 80 + [0] * 20
    none_noisy = [1] * 70 + [0] * 30      # drop 0.10
    topk_clean = [1] * 80 + [0] * 20
    topk_noisy = [1] * 50 + [0] * 50      # drop 0.30
    records = [record("none", None, None, none_clean), record("none", None, "white@10dB", none_noisy),
               record("topk-keep_rate=0.5", 0.5, None, topk_clean), record("topk-keep_rate=0.5", 0.5, "white@10dB", topk_noisy)]
    [c] = compare(records)
    assert c.drop == pytest.approx(0.30) and c.none_drop == pytest.approx(0.10)
    assert c.effect == pytest.approx(0.20)
    assert c.effect_ci95[0] > 0 and c.verdict == "degrades robustness"
    assert c.retention == pytest.approx(0.5 / 0.8)
    assert c.mcnemar_p < 0.001 and not c.near_chance
    assert c.clips == n


def test_floor_is_flagged_when_none_is_near_chance():
    none_noisy = [1] * 10 + [0] * 90      # 10% with 10 classes: chance
    records = [record("none", None, None, [1] * 60 + [0] * 40), record("none", None, "white@0dB", none_noisy),
               record("topk-keep_rate=0.5", 0.5, None, [1] * 50 + [0] * 50), record("topk-keep_rate=0.5", 0.5, "white@0dB", none_noisy)]
    [c] = compare(records)
    assert c.near_chance and c.effect < 0 and "floor" in c.verdict


def test_selection_jaccard_from_packed_masks():
    clean = record("topk-keep_rate=0.5", 0.5, None, [1, 1], kept=["f0", "0f"])
    noisy = record("topk-keep_rate=0.5", 0.5, "white@0dB", [1, 1], kept=["3c", "0f"])
    # clip 0: 11110000 vs 00111100 -> |and| 2, |or| 6; clip 1 identical
    assert selection_jaccard(clean, noisy, ["c0", "c1"]) == pytest.approx((2 / 6 + 1) / 2)


def test_flip_rate_does_not_credit_a_method_for_starting_lower():
    """none: right on clips 0-159; noise turns 0-29 and 120-129 wrong (drop 20 points). topk: right only on
    0-119; noise turns the same 0-29 wrong (drop 15). The drop effect says pruning helps (-5 points);
    on the 120 clips both get right clean, each loses 30 of them: flip effect 0."""
    none_clean = [1] * 160 + [0] * 40
    none_noisy = [0] * 30 + [1] * 90 + [0] * 10 + [1] * 30 + [0] * 40
    topk_clean = [1] * 120 + [0] * 80
    topk_noisy = [0] * 30 + [1] * 90 + [0] * 80
    records = [record("none", None, None, none_clean), record("none", None, "white@10dB", none_noisy),
               record("topk-keep_rate=0.5", 0.5, None, topk_clean), record("topk-keep_rate=0.5", 0.5, "white@10dB", topk_noisy)]
    [c] = compare(records)
    assert c.effect == pytest.approx(0.15 - 0.20)
    assert c.flip_clips == 120 and c.flip_rate == pytest.approx(30 / 120) and c.none_flip_rate == pytest.approx(30 / 120)
    assert c.flip_effect == 0 and c.flip_effect_ci95 == (0.0, 0.0) and c.flip_mcnemar_p == 1.0
    assert c.flip_direction == "no detectable effect" and 0 < c.flip_mde < 0.1
    # retention: 0.75 for both (90/120 and 120/160)
    assert c.retention_effect == pytest.approx(0.0, abs=1e-6)
