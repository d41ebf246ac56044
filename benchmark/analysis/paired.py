"""Paired statistics of a pruned method against the baseline on the same clips.

Pure functions of per-clip outcome vectors (bool tensors, one entry per clip, the same clips in the
same order for every vector). Names: `mc`/`mn` the method clean/noisy, `nc`/`nn` the baseline's.

- Conditional flip rate: among the clips that both the method and the baseline get right when
  clean (the set S, n = |S|), the share that the noise turns wrong:
      flip(M) = #{i in S: mn_i wrong} / n,   flip(none) = #{i in S: nn_i wrong} / n,
      flip effect = flip(M) - flip(none) = (b - c) / n,
  with b = #{i in S: M flipped, none did not} and c = #{i in S: none flipped, M did not}, the
  discordant pairs. Both methods start from the same clips, so a method that is worse when clean is
  not credited for "dropping less".
- Exact McNemar test on (b, c): under H0 each discordant pair is M-only with probability 1/2, so
      p = min(1, 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c)).
- Paired bootstrap: every resample draws the same clips (with replacement) for all vectors, and a
  statistic is recomputed on the draw; the interval is the 2.5th-97.5th percentile.
- Minimal detectable effect (Connor 1987): McNemar's test with n paired clips, discordant share psi
  and two-sided level alpha has power 1 - beta against a flip effect delta when
      sqrt(n) * delta = z_{1-alpha/2} * sqrt(psi) + z_{1-beta} * sqrt(psi - delta^2);
  the smallest delta that solves it, with psi = max(observed psi, delta) (an effect delta needs at
  least a delta share of discordant clips), is what the comparison could have detected.
- Pooled over k conditions, each clip's flip difference d_i is the mean over conditions (a multiple
  of 1/k in [-1, 1], no longer a discordant pair): the test is the paired sign-flip permutation test
  of mean(d) (under H0 each d_i is as likely -d_i), p = share of random sign patterns with
  |mean| >= the observed one. Its detectable effect is Connor's with the discordant share psi
  replaced by the second moment m2 = E[d^2] under the alternative (for k = 1, d_i^2 is the
  discordance indicator and m2 = psi):
      sqrt(n) * delta = z_{1-alpha/2} * sqrt(m2) + z_{1-beta} * sqrt(m2 - delta^2),
      m2 = max(observed mean(d^2), s * delta, delta^2),
  where s = sum_i f_i^2 / sum_i f_i, f_i the share of the k conditions in which clip i flips for
  either model: an effect delta lands on clips the way the noise's flips do, each such clip
  carrying a difference of about s, so it needs a delta / s share of discordant clips and
  E[d^2] >= s * delta (s = 1, "the clip's conditions flip together", where nothing flips; s = 1
  exactly for k = 1, which gives Connor's formula back). The observed sd of d is not the variance
  under the alternative: it is 0 when the method and the baseline agree on every clip. Derivation
  and the simulation that checks it: docs/statistics.md.
"""
from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch

from prunebench.metrics.bootstrap import bootstrap_interval

BOOTSTRAP_SAMPLES = 2000
ALPHA = 0.05
POWER = 0.80

Vectors = Dict[str, torch.Tensor]  # name -> per-clip outcomes (bool) or values (float)


@dataclass(frozen=True)
class FlipCounts:
    """The clips both get right when clean (`n`) and how the noise flips them."""

    n: int  # clips both the method and the baseline get right clean
    method_flips: int  # of those, wrong for the method under noise
    none_flips: int  # ... wrong for the baseline under noise
    only_method: int  # b: flipped for the method, not for the baseline
    only_none: int  # c: flipped for the baseline, not for the method

    @property
    def method_rate(self) -> Optional[float]:
        return self.method_flips / self.n if self.n else None

    @property
    def none_rate(self) -> Optional[float]:
        return self.none_flips / self.n if self.n else None

    @property
    def effect(self) -> Optional[float]:
        """flip(M) - flip(none) = (b - c) / n."""
        return (self.only_method - self.only_none) / self.n if self.n else None

    @property
    def discordant_share(self) -> Optional[float]:
        """psi = (b + c) / n."""
        return (self.only_method + self.only_none) / self.n if self.n else None


def flip_counts(mc: torch.Tensor, mn: torch.Tensor, nc: torch.Tensor, nn: torch.Tensor) -> FlipCounts:
    """Count the conditional flips (see the module docstring) on one condition."""
    both = mc.bool() & nc.bool()
    m_flip = both & ~mn.bool()
    n_flip = both & ~nn.bool()
    return FlipCounts(n=int(both.sum()), method_flips=int(m_flip.sum()), none_flips=int(n_flip.sum()),
                      only_method=int((m_flip & ~n_flip).sum()), only_none=int((n_flip & ~m_flip).sum()))


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p: p = min(1, 2 * sum_{i<=min(b,c)} C(b+c, i) / 2^(b+c)); 1 without
    discordant pairs."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2 ** n)  # exact integer arithmetic before the one division


# -- paired bootstrap -----------------------------------------------------------------------------
@lru_cache(maxsize=8)
def bootstrap_draws(n: int, seed: int, samples: int = BOOTSTRAP_SAMPLES) -> torch.Tensor:
    """(samples, n) how often each clip is drawn in each resample (n draws with replacement, seeded:
    the same resamples for every vector and every comparison of n clips). Shared: never modify it."""
    draws = torch.randint(0, n, (samples, n), generator=torch.Generator().manual_seed(seed))
    counts = torch.zeros(samples, n, dtype=torch.float64)
    return counts.scatter_add_(1, draws, torch.ones(samples, n, dtype=torch.float64))


def paired_bootstrap(vectors: Vectors, statistic: Callable[..., torch.Tensor], draws: torch.Tensor
                     ) -> Optional[Tuple[float, float]]:
    """95% percentile interval of `statistic` over resamples. Every statistic here is elementwise
    work on the clips followed by means along the clip axis, so a resample is a weighting: clip i
    drawn w_i times weighs w_i in each mean (`statistic(vectors, mean=...)`, one value per
    resample, or (k, samples) for stacked conditions; a matrix product, not a copy of the clips per
    resample). Resamples where it is undefined (nan) are left out. None when none is defined."""
    n = draws.shape[1]
    values = statistic({k: v.double() for k, v in vectors.items()}, mean=lambda x: (x @ draws.T) / n)
    values = values[~torch.isnan(values)]
    if values.numel() == 0:
        return None
    lo, hi = bootstrap_interval(values.tolist())
    return (lo, hi)


def _plain_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(-1)


def drop_effect(v: Vectors, mean: Callable[[torch.Tensor], torch.Tensor] = _plain_mean) -> torch.Tensor:
    """(mc - mn) - (nc - nn), the accuracies' means along the last axis."""
    m = {k: mean(x.double()) for k, x in v.items()}
    return (m["mc"] - m["mn"]) - (m["nc"] - m["nn"])


def retention_effect(v: Vectors, mean: Callable[[torch.Tensor], torch.Tensor] = _plain_mean) -> torch.Tensor:
    """mn / mc - nn / nc (nan where a clean accuracy is 0)."""
    m = {k: mean(x.double()) for k, x in v.items()}
    return _ratio(m["mn"], m["mc"]) - _ratio(m["nn"], m["nc"])


def flip_effect(v: Vectors, mean: Callable[[torch.Tensor], torch.Tensor] = _plain_mean) -> torch.Tensor:
    """flip(M) - flip(none) on the clips of the resample that both get right clean (nan where none
    does): a ratio of means. A clip drawn twice counts twice, as in any bootstrap of a ratio."""
    x = {k: t.double() for k, t in v.items()}
    both = x["mc"] * x["nc"]
    diff = both * ((1 - x["mn"]) - (1 - x["nn"]))
    return _ratio(mean(diff), mean(both))


def _ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / b.clamp(min=1e-12), torch.full_like(a, float("nan")))


# -- power ----------------------------------------------------------------------------------------
def minimal_detectable_effect(n: int, discordant_share: float, alpha: float = ALPHA, power: float = POWER
                              ) -> Optional[float]:
    """The smallest flip effect delta that McNemar's test on n paired clips detects with `power` at
    two-sided level `alpha` (Connor 1987; see the module docstring), as a share of the n clips.
    None when even delta = 1 is out of reach (tiny n)."""
    return detectable_mean_effect(n, discordant_share, 1.0, alpha, power)


def detectable_mean_effect(n: int, second_moment: float, spread: float = 1.0, alpha: float = ALPHA,
                           power: float = POWER) -> Optional[float]:
    """The smallest mean difference delta that a paired test on n clips (differences in [-1, 1])
    detects with `power` at two-sided level `alpha`, by the normal approximation under the
    alternative: sqrt(n) delta = z_a sqrt(m2) + z_b sqrt(m2 - delta^2) with
    m2 = max(second_moment, spread * delta, delta^2) (see the module docstring). McNemar's case:
    second_moment = the discordant share, spread = 1. None when even delta = 1 is out of reach."""
    if n <= 0:
        return None
    z_a, z_b = NormalDist().inv_cdf(1 - alpha / 2), NormalDist().inv_cdf(power)

    def gap(delta: np.ndarray) -> np.ndarray:  # >= 0 where delta is detected with `power`
        m2 = np.maximum(np.maximum(second_moment, spread * delta), delta ** 2)
        return math.sqrt(n) * delta - z_a * np.sqrt(m2) - z_b * np.sqrt(np.maximum(m2 - delta ** 2, 0.0))

    grid = np.linspace(0.0, 1.0, 2001)[1:]
    reached = np.nonzero(gap(grid) >= 0)[0]
    if reached.size == 0:
        return None
    first = int(reached[0])
    lo, hi = (grid[first - 1] if first else 0.0), grid[first]  # the first crossing, refined
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if gap(np.array(mid)) < 0 else (lo, mid)
    return float(hi)


def sign_flip_p(differences: torch.Tensor, seed: int = 0, samples: int = 10_000) -> float:
    """Two-sided paired permutation p of mean(differences) = 0 (see the module docstring); the
    observed pattern counts as one of the samples, so p is never 0."""
    n = differences.numel()
    if n == 0 or bool((differences == 0).all()):
        return 1.0
    generator = torch.Generator().manual_seed(seed)
    signs = torch.randint(0, 2, (samples, n), generator=generator, dtype=torch.int8).float() * 2 - 1
    observed = differences.double().mean().abs()
    extreme = int(((signs.double() @ differences.double()).abs() / n >= observed - 1e-12).sum())
    return (extreme + 1) / (samples + 1)


def pooled_detectable_effect(differences: torch.Tensor, flip_shares: torch.Tensor, alpha: float = ALPHA,
                             power: float = POWER) -> Optional[float]:
    """The smallest mean flip difference the sign-flip test on these clips detects with `power`,
    computed under the alternative (see the module docstring): `differences` the per-clip mean
    flip differences d_i, `flip_shares` the share of the conditions in which each clip flips for
    either model (f_i). One condition gives Connor's McNemar figure."""
    n = differences.numel()
    if n < 2:
        return None
    second_moment = float((differences.double() ** 2).mean())
    return detectable_mean_effect(n, second_moment, co_flip_share(flip_shares), alpha, power)


def co_flip_share(flip_shares: torch.Tensor) -> float:
    """s = sum f_i^2 / sum f_i: the mean share of conditions flipped on a clip, weighted by its
    flips (how many conditions a flip brings along); 1 where no clip flips at all."""
    f = flip_shares.double()
    total = float(f.sum())
    return float((f ** 2).sum()) / total if total > 0 else 1.0


def flip_shares(mc: torch.Tensor, nc: torch.Tensor, mn: torch.Tensor, nn: torch.Tensor) -> torch.Tensor:
    """Per clip of S (both right clean): the share of the conditions (stacked (conditions, clips),
    or one condition) in which the noise turns it wrong for the method or for the baseline."""
    both = mc.bool() & nc.bool()
    either = (~mn.bool()) | (~nn.bool())
    share = either.double().mean(0) if either.dim() > 1 else either.double()
    return share[both]


def flip_differences(mc: torch.Tensor, nc: torch.Tensor, mn: torch.Tensor, nn: torch.Tensor) -> torch.Tensor:
    """Per clip of S (both right clean): flipped for M minus flipped for none, averaged over the
    conditions when `mn`/`nn` are stacked (conditions, clips)."""
    both = mc.bool() & nc.bool()
    diff = (~mn.bool()).float() - (~nn.bool()).float()
    if diff.dim() > 1:
        diff = diff.mean(0)
    return diff[both]

