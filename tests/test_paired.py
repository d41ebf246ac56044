"""Paired statistics: conditional flip rate, exact McNemar, paired bootstrap, minimal detectable effect."""
from functools import lru_cache

import numpy as np
import pytest
import torch

from prunebench.analysis.paired import (bootstrap_draws, drop_effect, flip_counts, flip_differences, flip_effect,
                                       mcnemar_exact_p, minimal_detectable_effect,
                                       paired_bootstrap, retention_effect)

# Ten clips, 1 = right. mc/mn: the method clean/noisy, nc/nn: the baseline clean/noisy.
#   clip   mc nc mn nn   both right clean?  flipped by
#   0      1  1  1  1    yes                -
#   1      1  1  0  1    yes                M only
#   2      1  1  0  0    yes                both
#   3      1  1  1  0    yes                none only
#   4      1  1  0  1    yes                M only
#   5      1  0  0  1    no (none wrong)
#   6      0  1  0  0    no (M wrong)
#   7      1  1  1  1    yes                -
#   8      0  0  1  1    no
#   9      1  1  0  1    yes                M only
# S = {0,1,2,3,4,7,9}, n = 7. M flips 1,2,4,9: 4/7; none flips 2,3: 2/7; effect 2/7.
# Discordant: M only {1,4,9} = 3, none only {3} = 1.
# McNemar exact: 2 * (C(4,0) + C(4,1)) / 2^4 = 2 * 5 / 16 = 0.625.
# Accuracies: mc 8/10, mn 4/10 (clips 0,3,7,8), nc 8/10, nn 7/10 (0,1,4,5,7,8,9):
# retention M 0.5, none 0.875, effect -0.375; drop effect (0.8-0.4) - (0.8-0.7) = 0.3.
MC = [1, 1, 1, 1, 1, 1, 0, 1, 0, 1]
NC = [1, 1, 1, 1, 1, 0, 1, 1, 0, 1]
MN = [1, 0, 0, 1, 0, 0, 0, 1, 1, 0]
NN = [1, 1, 0, 0, 1, 1, 0, 1, 1, 1]


def vectors():
    return {k: torch.tensor(v, dtype=torch.bool) for k, v in (("mc", MC), ("mn", MN), ("nc", NC), ("nn", NN))}


def test_flip_rate_against_hand_count():
    v = vectors()
    counts = flip_counts(v["mc"], v["mn"], v["nc"], v["nn"])
    assert (counts.n, counts.method_flips, counts.none_flips) == (7, 4, 2)
    assert (counts.only_method, counts.only_none) == (3, 1)
    assert counts.method_rate == pytest.approx(4 / 7) and counts.none_rate == pytest.approx(2 / 7)
    assert counts.effect == pytest.approx(2 / 7) and counts.discordant_share == pytest.approx(4 / 7)
    assert mcnemar_exact_p(counts.only_method, counts.only_none) == pytest.approx(0.625)
    # the bootstrap statistics, applied to the sample itself (one "resample": every clip once)
    whole = {k: x.float()[None] for k, x in v.items()}
    assert float(flip_effect(whole)[0]) == pytest.approx(2 / 7)
    assert float(retention_effect(whole)[0]) == pytest.approx(0.5 - 0.875)
    assert float(drop_effect(whole)[0]) == pytest.approx(0.3)
    assert flip_differences(v["mc"], v["nc"], v["mn"], v["nn"]).tolist() == [0, 1, 0, -1, 1, 0, 1]


def test_mcnemar_exact_against_hand_binomial():
    # b = 10, c = 2: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * (1 + 12 + 66) / 4096 = 158 / 4096
    assert mcnemar_exact_p(10, 2) == pytest.approx(158 / 4096)
    assert mcnemar_exact_p(2, 10) == pytest.approx(158 / 4096)
    assert mcnemar_exact_p(3, 3) == 1.0 and mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(6, 0) == pytest.approx(2 / 64)


def test_paired_bootstrap_is_seeded_and_covers_the_estimate():
    g = torch.Generator().manual_seed(3)
    v = {k: torch.rand(300, generator=g) < p for k, p in (("mc", 0.8), ("mn", 0.5), ("nc", 0.8), ("nn", 0.7))}
    a = paired_bootstrap(v, flip_effect, bootstrap_draws(300, seed=0))
    b = paired_bootstrap(v, flip_effect, bootstrap_draws(300, seed=0))
    c = paired_bootstrap(v, flip_effect, bootstrap_draws(300, seed=1))
    point = flip_counts(v["mc"], v["mn"], v["nc"], v["nn"]).effect
    assert a == b and a != c and a[0] < point < a[1]
    # no clip right clean for both: the flip effect is undefined on every resample
    none_right = {**v, "nc": torch.zeros(300, dtype=torch.bool)}
    assert paired_bootstrap(none_right, flip_effect, bootstrap_draws(300, seed=0)) is None


def test_minimal_detectable_effect_has_80_percent_power_in_simulation():
    """Simulate paired runs whose true flip effect is the computed minimal detectable effect and
    count how often exact McNemar rejects at 0.05: about 80% (the exact test is slightly
    conservative, so a few points under)."""
    p_value = lru_cache(maxsize=None)(mcnemar_exact_p)
    rng = np.random.default_rng(0)
    for n, psi in ((400, 0.10), (250, 0.20)):
        delta = minimal_detectable_effect(n, psi)
        assert 0 < delta < psi
        # each clip: flipped by M only, by none only, or concordant; E[(b - c) / n] = delta
        counts = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=4000)
        power = np.mean([p_value(int(b), int(c)) < 0.05 for b, c, _ in counts])
        assert abs(power - 0.80) < 0.05, (n, psi, delta, power)
        # a much smaller effect is not detected that often
        half = rng.multinomial(n, [(psi + delta / 2) / 2, (psi - delta / 2) / 2, 1 - psi], size=4000)
        assert np.mean([p_value(int(b), int(c)) < 0.05 for b, c, _ in half]) < 0.5


def test_minimal_detectable_effect_edges():
    assert minimal_detectable_effect(0, 0.1) is None and minimal_detectable_effect(3, 0.5) is None
    # no discordant clip seen: an effect delta still needs a delta share of discordant clips
    zero = minimal_detectable_effect(100, 0.0)
    assert 0 < zero < 0.2 and minimal_detectable_effect(100, 0.3) > zero
    assert minimal_detectable_effect(400, 0.1) < minimal_detectable_effect(100, 0.1)


def test_sign_flip_p_matches_the_exact_enumeration():
    """Eight clips: all 256 sign patterns enumerated by hand-rolled loop, against the sampled test."""
    import itertools

    from prunebench.analysis.paired import sign_flip_p

    d = torch.tensor([1.0, 0.5, 0.5, 1.0, 0.0, 0.5, -0.5, 1.0])
    observed = abs(float(d.mean()))
    patterns = list(itertools.product([-1.0, 1.0], repeat=8))
    exact = sum(abs(sum(s * x for s, x in zip(signs, d.tolist())) / 8) >= observed - 1e-12 for signs in patterns) / 256
    assert sign_flip_p(d, seed=0, samples=20_000) == pytest.approx(exact, abs=0.01)
