"""The pooled "could have detected" holds: at the reported effect, data with the clips' structure are
detected 80% of the time (benchmarks/pooled_power.py's simulation, on synthetic clips shaped as the
real runs: n clips right clean for both, k noise conditions whose flips nest as the SNR falls).

Before the fix the pooled figure was (z_a + z_b) * sd(d) / sqrt(n), 0 when the method and the
baseline agree on every clip; the zero-discordance regimes here then simulate 0% power."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.analysis.paired import (co_flip_share, detectable_mean_effect, flip_differences, flip_shares,
                                       minimal_detectable_effect, pooled_detectable_effect)

_spec = importlib.util.spec_from_file_location("pooled_power", Path(__file__).parents[1] / "benchmarks" / "pooled_power.py")
pooled_power = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pooled_power)

RUNS = 1000  # the power estimate's standard error: sqrt(0.8 * 0.2 / 1000) = 1.3 points


def structured_clips(n, flip_rates, method_jitter, seed):
    """n clips right clean for both; clip i flips under condition j when its fragility u_i is below
    the condition's flip rate (a clip that flips at 20 dB flips at 10 dB too). The method's
    fragility is the baseline's moved by `method_jitter` (0: they agree on every clip): its
    discordant conditions are the neighbouring ones of a clip, as in the real runs."""
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    u_method = u + method_jitter * rng.standard_normal(n)
    rates = np.asarray(flip_rates)[:, None]
    ones = torch.ones(n, dtype=torch.bool)
    mn, nn = torch.from_numpy(~(u_method[None] < rates)), torch.from_numpy(~(u[None] < rates))
    d = flip_differences(ones, ones, mn, nn)
    f = flip_shares(ones, ones, mn, nn)
    return d, f


WHISPER_RATES = [0.01, 0.03, 0.08, 0.20, 0.02, 0.05, 0.12, 0.30]  # white, pink at 40/30/20/10 dB
REGIMES = {  # name: (n, flip rates per condition, method jitter, the m2 term that binds)
    "default run, topk keep 1 (k=2, zero discordance)": (98, [0.13, 0.60], 0.0, "s*delta"),
    "one condition, zero discordance": (100, [0.30], 0.0, "s*delta"),
    "Whisper fold 5 (k=8), zero discordance": (300, WHISPER_RATES, 0.0, "s*delta"),
    "Whisper fold 5 (k=8), a few discordant clips": (300, WHISPER_RATES, 0.01, "s*delta"),
    "Whisper fold 5 (k=8), large discordance": (300, WHISPER_RATES, 0.15, "observed E[d^2]"),
    "one condition, large discordance": (300, [0.30], 0.15, "observed E[d^2]"),
}


@pytest.mark.parametrize("regime", list(REGIMES))
def test_pooled_detectable_effect_has_80_percent_power(regime):
    n, rates, jitter, binds = REGIMES[regime]
    d, f = structured_clips(n, rates, jitter, seed=1)
    delta = pooled_detectable_effect(d, f)
    power = pooled_power.simulated_power(d, f, delta, runs=RUNS, seed=2)
    assert abs(power - 0.80) <= 0.05, (regime, delta, power)
    assert pooled_power.binding_term(d, f, delta) == binds, (regime, delta)


def test_a_smaller_effect_is_detected_less_often():
    d, f = structured_clips(300, WHISPER_RATES, 0.0, seed=1)
    delta = pooled_detectable_effect(d, f)
    assert pooled_power.simulated_power(d, f, delta / 2, runs=400, seed=3) < 0.5


def test_one_condition_is_connors_mcnemar_figure():
    d, f = structured_clips(250, [0.3], 0.1, seed=4)
    discordant = float((d != 0).double().mean())
    assert co_flip_share(f) == 1.0
    assert pooled_detectable_effect(d, f) == pytest.approx(minimal_detectable_effect(250, discordant), abs=1e-9)


def test_detectable_effect_under_the_alternative():
    # nothing discordant: the effect's own discordance sets the variance, so the figure is not 0
    zero = torch.zeros(100, dtype=torch.float64)
    shares = torch.full((100,), 0.5, dtype=torch.float64)
    delta = pooled_detectable_effect(zero, shares)
    assert 0.02 < delta < 0.1
    # the root of sqrt(n) delta = z_a sqrt(m2) + z_b sqrt(m2 - delta^2) with m2 = s delta (s = 0.5)
    z_a, z_b = 1.959963984540054, 0.8416212335729143
    m2 = 0.5 * delta
    assert 10 * delta == pytest.approx(z_a * m2 ** 0.5 + z_b * (m2 - delta ** 2) ** 0.5, abs=1e-6)
    # conditions that flip together (s = 1) pool no better than one; spread flips (s = 1/8) pool better
    assert pooled_detectable_effect(zero, torch.ones(100)) == pytest.approx(minimal_detectable_effect(100, 0.0))
    assert pooled_detectable_effect(zero, torch.full((100,), 1 / 8)) < delta
    # no clip flips at all: s = 1, as if the conditions flipped together
    assert co_flip_share(torch.zeros(100)) == 1.0
    # more clips, a smaller figure; tiny n: none
    assert detectable_mean_effect(400, 0.0, 0.5) < delta and pooled_detectable_effect(zero[:1], shares[:1]) is None
    assert detectable_mean_effect(3, 0.5, 1.0) is None
