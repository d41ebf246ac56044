"""Every statistic of `prunebench.analysis.paired` against a well-kept reference implementation, on
random data of several sizes: the exact McNemar p (scipy.stats.binomtest, statsmodels' mcnemar),
the sign-flip permutation p (scipy.stats.permutation_test, paired samples), the paired bootstrap
interval (scipy.stats.bootstrap, percentile, paired) and Connor's detectable effect (the exact power
of the exact test, summed over the binomial with scipy; statsmodels' asymptotic McNemar). The fast
implementations stay (no scipy at run time); these references live in the `test` extra."""
import math

import numpy as np
import pytest
import torch

stats = pytest.importorskip("scipy.stats")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")

from prunebench.analysis.paired import (bootstrap_draws, drop_effect, flip_effect, mcnemar_exact_p,  # noqa: E402
                                       minimal_detectable_effect, paired_bootstrap, sign_flip_p)


@pytest.mark.parametrize("total", [1, 5, 12, 40, 150, 600])
def test_exact_mcnemar_matches_scipy_and_statsmodels(total):
    rng = np.random.default_rng(total)
    for _ in range(20):
        b = int(rng.integers(0, total + 1))
        c = total - b
        ours = mcnemar_exact_p(b, c)
        assert ours == pytest.approx(stats.binomtest(b, total, 0.5).pvalue, rel=1e-9, abs=1e-300)
        table = [[int(rng.integers(0, 50)), b], [c, int(rng.integers(0, 50))]]  # concordant cells: ignored
        assert ours == pytest.approx(contingency.mcnemar(table, exact=True).pvalue, rel=1e-9, abs=1e-300)
    assert mcnemar_exact_p(0, 0) == 1.0  # no discordant pair (scipy's binomtest needs n >= 1)


def _lattice_differences(n, conditions, shift, rng):
    """Per-clip mean flip differences over `conditions` conditions: multiples of 1/k in [-1, 1]."""
    cells = rng.choice([-1.0, 0.0, 1.0], size=(n, conditions), p=[0.15 - shift, 0.7, 0.15 + shift])
    return cells.mean(1)


@pytest.mark.parametrize("n,conditions,shift", [(8, 2, 0.1), (30, 4, 0.05), (200, 8, 0.02), (400, 3, 0.0)])
def test_sign_flip_p_matches_scipy_permutation_test(n, conditions, shift):
    """Paired samples (the method's flips, the baseline's, per clip): scipy swaps each pair, which
    flips the sign of its difference. scipy enumerates every pattern where 2^n <= its resamples."""
    rng = np.random.default_rng(n)
    d = _lattice_differences(n, conditions, shift, rng)
    method = np.maximum(d, 0)
    baseline = np.maximum(-d, 0)
    samples = 20_000
    reference = stats.permutation_test((method, baseline), lambda x, y, axis: np.mean(x - y, axis=axis),
                                       permutation_type="samples", n_resamples=samples, vectorized=True,
                                       alternative="two-sided", rng=np.random.default_rng(1)).pvalue
    ours = sign_flip_p(torch.from_numpy(d), seed=0, samples=samples)
    exact = 2 ** n <= samples
    error = math.sqrt(reference * (1 - reference) * ((0 if exact else 1) + 1) / samples)
    assert abs(ours - reference) <= 4 * error + 2 / samples, (ours, reference)


def _reference_drop(mc, mn, nc, nn, axis=-1):
    return (mc.mean(axis) - mn.mean(axis)) - (nc.mean(axis) - nn.mean(axis))


def _reference_flip(mc, mn, nc, nn, axis=-1):
    both = mc * nc
    return (both * (nn - mn)).sum(axis) / both.sum(axis)


@pytest.mark.parametrize("n", [60, 250, 800])
@pytest.mark.parametrize("statistic", ["drop", "flip"])
def test_paired_bootstrap_matches_scipy_percentile(n, statistic):
    rng = np.random.default_rng(n)
    clean = rng.random(n) < 0.85
    v = {"mc": clean & (rng.random(n) < 0.97), "nc": clean.copy(),
         "mn": clean & (rng.random(n) < 0.7), "nn": clean & (rng.random(n) < 0.75)}
    ours_fn, reference_fn = {"drop": (drop_effect, _reference_drop), "flip": (flip_effect, _reference_flip)}[statistic]
    samples = 4000
    ours = paired_bootstrap({k: torch.from_numpy(x) for k, x in v.items()}, ours_fn, bootstrap_draws(n, 0, samples))
    data = tuple(v[k].astype(float) for k in ("mc", "mn", "nc", "nn"))
    result = stats.bootstrap(data, reference_fn, paired=True, vectorized=True, method="percentile",
                             n_resamples=samples, rng=np.random.default_rng(2))
    sd = float(result.standard_error)
    # Monte Carlo error of a 2.5% / 97.5% quantile of `samples` resamples: sqrt(q(1-q)/B) / phi(z_q) * sd,
    # for each of the two; and one step of the clip lattice (1/n) for the order statistic our index rule picks
    quantile_error = math.sqrt(0.025 * 0.975 / samples) / stats.norm.pdf(stats.norm.ppf(0.025)) * sd
    tolerance = 4 * math.sqrt(2) * quantile_error + 1 / n
    low, high = result.confidence_interval
    assert abs(ours[0] - low) <= tolerance and abs(ours[1] - high) <= tolerance, (ours, (low, high), tolerance)


def _exact_power(n, psi, delta, alpha=0.05):
    """Power of the exact McNemar test (scipy's binomtest) when each clip is discordant with
    probability psi and a discordant pair is the method's with probability (psi + delta) / 2psi."""
    share = (psi + delta) / (2 * psi)
    counts = np.arange(n + 1)
    total = 0.0
    for m, weight in zip(counts, stats.binom.pmf(counts, n, psi)):
        if m == 0 or weight < 1e-10:
            continue
        b = np.arange(m + 1)
        rejected = np.array([stats.binomtest(int(x), int(m), 0.5).pvalue < alpha for x in b])
        total += weight * stats.binom.pmf(b, m, share)[rejected].sum()
    return total


@pytest.mark.parametrize("n,psi", [(100, 0.05), (250, 0.2), (400, 0.1), (1000, 0.05), (60, 0.5)])
def test_connor_detectable_effect_against_the_exact_power(n, psi):
    """At Connor's effect the exact McNemar test has 75-80% power (it is conservative: 0.757 at
    n = 60, psi = 0.5), and the asymptotic test of the same normal approximation (statsmodels'
    mcnemar without continuity correction) about 80% wherever the discordant counts are not tiny."""
    delta = minimal_detectable_effect(n, psi)
    psi_alternative = max(psi, delta)
    assert 0.74 <= _exact_power(n, psi_alternative, delta) <= 0.82
    if n * psi_alternative >= 20:
        share = (psi_alternative + delta) / (2 * psi_alternative)
        counts = np.arange(n + 1)
        power = 0.0
        for m, weight in zip(counts, stats.binom.pmf(counts, n, psi_alternative)):
            if m == 0 or weight < 1e-10:
                continue
            b = np.arange(m + 1)
            rejected = np.array([contingency.mcnemar([[0, int(x)], [int(m - x), 0]], exact=False,
                                                     correction=False).pvalue < 0.05 for x in b])
            power += weight * stats.binom.pmf(b, m, share)[rejected].sum()
        assert power == pytest.approx(0.80, abs=0.03)
