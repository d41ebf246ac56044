"""Does the pooled "could have detected" hold? Simulated power at the reported effect, per comparison.

    python benchmarks/pooled_power.py RESULTS_DIR [--runs 1000] [--seed 0]

For every method and keep rate of a results folder that the report pools (accuracy tasks, the
conditions not at the chance floor), this takes the real clips' per-condition flips (n clips right
clean for both, k conditions), the reported detectable effect delta
(`paired.pooled_detectable_effect`), and draws `runs` data sets of n clips with that structure whose
true mean flip difference is delta (`simulate_alternative`); each is tested with the report's own
sign-flip test. Printed: n, k, the observed E[d^2] and co-flip share s, which term of
m2 = max(E[d^2], s delta, delta^2) binds, the detectable effect before this fix (the observed sd of
d: (z_a + z_b) sd / sqrt(n)) and now, and the share of simulated data sets detected at p < 0.05
(should be 0.80). tests/test_pooled_power.py runs the same simulation on synthetic clips.
"""
from __future__ import annotations

import argparse
import math
import sys
from statistics import NormalDist
from typing import List, Optional

import numpy as np
import torch

from prunebench.analysis.paired import ALPHA, POWER, co_flip_share, sign_flip_p


def simulate_alternative(differences: torch.Tensor, shares: torch.Tensor, delta: float,
                         rng: np.random.Generator) -> torch.Tensor:
    """n per-clip mean flip differences drawn with the real clips' structure and true mean delta.

    Where the observed differences carry enough discordance (E[d^2] >= max(s delta, delta^2)): the
    real clips resampled, each clip's |d| kept and its sign drawn + with probability
    (1 + delta / E|d|) / 2 (McNemar's alternative, clip by clip: the discordance is the observed
    one, the effect tilts its direction). Otherwise (few or no discordant clips): the effect adds
    its own discordance the way the noise's flips fall: each clip is, with probability delta / s,
    flipped for the method alone in the conditions of a real clip that hosts a flip drawn at random
    among all the noise's flips (a clip flipped in more conditions is drawn more often), so d is
    that clip's f (E[d] = delta, E[d^2] = s delta); else it is concordant (d = 0)."""
    d = differences.double().numpy()
    f = shares.double().numpy()
    n = d.size
    m2 = float(np.mean(d ** 2))
    s = co_flip_share(shares)
    if m2 > 0 and m2 >= max(s * delta, delta ** 2):
        magnitude = np.abs(d[rng.integers(0, n, n)])
        mean_abs = float(np.mean(np.abs(d)))
        if delta > mean_abs:
            raise ValueError(f"an effect of {delta} needs more than the observed mean |d| {mean_abs}")
        positive = rng.random(n) < (1 + delta / mean_abs) / 2
        return torch.from_numpy(np.where(positive, magnitude, -magnitude))
    flipped = f[f > 0] if (f > 0).any() else np.ones(1)
    if delta > s:
        raise ValueError(f"an effect of {delta} needs more than the co-flip share {s}")
    hit = rng.random(n) < delta / s
    hosts = rng.choice(flipped, size=n, p=flipped / flipped.sum())  # a flip drawn at random, its clip's f
    return torch.from_numpy(np.where(hit, hosts, 0.0))


def simulated_power(differences: torch.Tensor, shares: torch.Tensor, delta: float, runs: int = 1000,
                    seed: int = 0, samples: int = 2000) -> float:
    """Share of `runs` simulated data sets (`simulate_alternative`) the sign-flip test detects at
    p < ALPHA."""
    rng = np.random.default_rng(seed)
    hits = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small products: threads only add their start-up cost
    try:
        for run in range(runs):
            simulated = simulate_alternative(differences, shares, delta, rng)
            nonzero = simulated[simulated != 0]  # a clip with d = 0 adds nothing to any sign pattern's sum
            hits += sign_flip_p(nonzero, seed=run, samples=samples) < ALPHA
    finally:
        torch.set_num_threads(threads)
    return hits / runs


def binding_term(differences: torch.Tensor, shares: torch.Tensor, delta: float) -> str:
    """Which term of m2 = max(E[d^2], s delta, delta^2) the detectable effect rests on."""
    m2 = float((differences.double() ** 2).mean())
    s = co_flip_share(shares)
    terms = {"observed E[d^2]": m2, "s*delta": s * delta, "delta^2": delta ** 2}
    return max(terms, key=terms.get)


def sd_based_effect(differences: torch.Tensor) -> Optional[float]:
    """The pooled detectable effect as it was computed before: (z_a + z_b) sd(d) / sqrt(n)."""
    n = differences.numel()
    if n < 2:
        return None
    z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)
    return z * float(differences.double().std()) / math.sqrt(n)


def main(argv: Optional[List[str]] = None) -> int:
    from tabulate import tabulate

    from prunebench.analysis.paired import flip_differences, flip_shares, pooled_detectable_effect
    from prunebench.analysis.robustness import compare, index_records, pooled_vectors
    from prunebench.core.registry import BASELINE
    from prunebench.records.record import load_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    records = [r for r in load_results(args.results) if r.ok]
    index = index_records(records)
    groups = {}
    for c in compare(records, args.seed):
        if c.metric == "accuracy" and not c.near_chance and c.method != BASELINE:
            groups.setdefault((c.model, c.task, c.bucket, c.method), []).append(c)
    rows = []
    for key in sorted(groups, key=lambda k: (k[:3], groups[k][0].method_sort_key)):
        cs = groups[key]
        v, _ = pooled_vectors(index, cs)
        d = flip_differences(v["mc"], v["nc"], v["mn"], v["nn"])
        f = flip_shares(v["mc"], v["nc"], v["mn"], v["nn"])
        delta = pooled_detectable_effect(d, f)
        if delta is None:
            continue
        old = sd_based_effect(d)
        power = simulated_power(d, f, delta, args.runs, args.seed)
        rows.append([key[0], key[1], cs[0].method_name, cs[0].keep_rate, d.numel(), len(cs),
                     f"{float((d.double() ** 2).mean()):.4f}", f"{co_flip_share(f):.2f}", binding_term(d, f, delta),
                     "" if old is None else f"{100 * old:.1f}", f"{100 * delta:.1f}", f"{power:.3f}"])
    print(tabulate(rows, headers=["model", "task", "method", "keep", "n", "k", "E[d^2]", "s", "binds",
                                  "before (pts)", "now (pts)", "simulated power"], disable_numparse=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
