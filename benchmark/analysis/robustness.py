"""Robustness statistics across records: does pruning change what noise costs?

The one place robustness is computed: the report and the leaderboard both lay out `compare`'s
comparisons, and nothing is written back into the records (a `robustness` block that earlier runs
wrote into noisy records is ignored).

For a model, task split and length bucket, each pruned method is compared with the baseline
(`BASELINE`, the unpruned model) on the very same clips, clean and under each corruption:
- drop = clean - noisy, retention = noisy / clean, consistency = share of clips whose prediction the
  noise leaves unchanged;
- pruning effect = drop(method) - drop(baseline), with a paired bootstrap interval over clips (all
  four outcome vectors resampled together), and McNemar's exact test of the method's noisy outcomes
  against the baseline's;
- the floor: when the baseline's noisy score is within its interval of chance, a method that starts
  lower can "drop less" for that reason alone, so such comparisons are flagged;
- selection stability: Jaccard overlap of the patches kept on the clean and on the noisy version of
  the same clip (1 by construction for content-blind selection such as `random`).
Pure functions of records (dicts as written by the runner, or `Record`s).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from benchmark.core.registry import BASELINE
from benchmark.measure.metrics import bootstrap_interval, mean_average_precision, resampled_map
from benchmark.records.record import GroupKey, Record, RecordLike, as_records, method_sort_key

BOOTSTRAP_SAMPLES = 2000
MAP_BOOTSTRAP_SAMPLES = 200  # mAP is recomputed per resample: costlier

# What a comparison finds, decided by the interval of the pruning effect alone.
DEGRADES, IMPROVES, NO_EFFECT = "degrades robustness", "improves robustness", "no detectable effect"
DIRECTIONS = (DEGRADES, IMPROVES, NO_EFFECT)
FLOOR_NOTE = "near chance: floor effect likely"

# (model, task, bucket, method id, corruption id): one record each
Key = Tuple[str, str, Optional[str], str, Optional[str]]


@dataclass
class Comparison:
    model: str
    task: str  # name/split
    bucket: Optional[str]
    method: str  # method id
    method_name: str
    keep_rate: Optional[float]
    corruption: str  # corruption id, e.g. white@20dB
    corruption_order: Tuple  # the noisy record's `Record.corruption_order`
    metric: str
    clips: int
    clean: float
    noisy: float
    drop: float
    retention: Optional[float]
    consistency: Optional[float]
    none_clean: float  # the baseline's
    none_noisy: float
    none_drop: float
    effect: float  # drop(method) - drop(baseline); > 0: pruning makes noise cost more
    effect_ci95: Tuple[float, float]
    mcnemar_p: Optional[float]  # method vs baseline, noisy outcomes, same clips
    near_chance: bool  # the baseline's noisy score is within its interval of chance
    jaccard: Optional[float]  # clean vs noisy kept patches, mean over clips
    direction: str  # one of DIRECTIONS, from effect_ci95 alone
    verdict: str  # the direction in words, with the floor flag

    @property
    def method_sort_key(self) -> Tuple:
        """Where the compared method sorts, as its records do (`Record.method_sort_key`)."""
        return method_sort_key(self.method_name, self.keep_rate, self.method)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def record_key(record: Record) -> Key:
    return record.group + (record.method.id, record.corruption_id)


def index_records(records: Iterable[Record]) -> Dict[Key, Record]:
    """Records by (model, task, bucket, method id, corruption id); a later record of a key wins."""
    return {record_key(r): r for r in records}


def compare(records: Sequence[RecordLike], seed: int = 0) -> List[Comparison]:
    """Every (pruned method, corruption) of every (model, task, bucket) that has the four records
    it needs: method clean and noisy, baseline clean and noisy. Failed records are left out."""
    index = index_records(r for r in as_records(records) if r.ok)
    out = []
    map_cache: Dict[Tuple, Tuple[float, List[float]]] = {}  # shared by the comparisons of this call
    for key, noisy in sorted(index.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        *group, method_id, corruption = key
        if corruption is None or method_id == BASELINE:
            continue
        group = tuple(group)
        clean = index.get(group + (method_id, None))
        base_clean = index.get(group + (BASELINE, None))
        base_noisy = index.get(group + (BASELINE, corruption))
        if clean is None or base_clean is None or base_noisy is None:
            continue
        out.append(_compare_one(group, clean, noisy, base_clean, base_noisy, seed, map_cache))
    return out


def _compare_one(group: GroupKey, clean: Record, noisy: Record, base_clean: Record, base_noisy: Record, seed: int,
                 map_cache: Dict) -> Comparison:
    metric = clean.metric
    ids = common_ids([clean, noisy, base_clean, base_noisy])
    four = (("mc", clean), ("mn", noisy), ("nc", base_clean), ("nn", base_noisy))
    if metric == "accuracy":
        c = {name: outcomes(r, ids) for name, r in four}
        scores = {k: float(v.float().mean()) for k, v in c.items()}
        effect_ci = _paired_bootstrap_accuracy(c, seed)
        mcnemar = mcnemar_exact(c["mn"], c["nn"])
        consistency = _consistency(clean, noisy, ids)
        chance = 1.0 / clean.num_classes if clean.num_classes else None
        near_chance = chance is not None and _within_chance(c["nn"], chance, seed)
    else:
        targets = _targets(clean, ids)
        draws = _map_draws(len(ids), seed)  # the same draws for all four records
        m = {name: _map_and_resamples(r, ids, targets, draws, map_cache) for name, r in four}
        scores = {k: v[0] for k, v in m.items()}
        effect_ci = _paired_bootstrap_map({k: v[1] for k, v in m.items()})
        mcnemar, consistency, near_chance = None, None, False
    drop = scores["mc"] - scores["mn"]
    none_drop = scores["nc"] - scores["nn"]
    effect = drop - none_drop
    return Comparison(
        model=group[0], task=group[1], bucket=group[2], method=clean.method.id, method_name=clean.method.name,
        keep_rate=clean.method.keep_rate, corruption=noisy.corruption_id, corruption_order=noisy.corruption_order,
        metric=metric, clips=len(ids), clean=scores["mc"], noisy=scores["mn"], drop=drop,
        retention=scores["mn"] / scores["mc"] if scores["mc"] > 0 else None,
        consistency=consistency, none_clean=scores["nc"], none_noisy=scores["nn"], none_drop=none_drop,
        effect=effect, effect_ci95=effect_ci, mcnemar_p=mcnemar, near_chance=near_chance,
        jaccard=None if merges_only(clean) else selection_jaccard(clean, noisy, ids),
        direction=effect_direction(effect_ci), verdict=verdict(effect_ci, near_chance),
    )


def effect_direction(effect_ci: Tuple[float, float]) -> str:
    """DEGRADES when the interval of the effect lies above 0, IMPROVES when below, else NO_EFFECT."""
    lo, hi = effect_ci
    if lo > 0:
        return DEGRADES
    if hi < 0:
        return IMPROVES
    return NO_EFFECT


def verdict(effect_ci: Tuple[float, float], near_chance: bool) -> str:
    return effect_direction(effect_ci) + (f" ({FLOOR_NOTE})" if near_chance else "")


# -- per-clip vectors ---------------------------------------------------------------------------
def common_ids(records: Sequence[Record]) -> List[str]:
    """The clips every record holds, in the first record's order."""
    common = set(records[0].clips.ids)
    for r in records[1:]:
        common &= set(r.clips.ids)
    return [i for i in records[0].clips.ids if i in common]


def _positions(record: Record, ids: Sequence[str]) -> List[int]:
    where = {clip: i for i, clip in enumerate(record.clips.ids)}
    return [where[i] for i in ids]


def outcomes(record: Record, ids: Sequence[str]) -> torch.Tensor:
    """Whether each clip of `ids` was classified correctly (bool)."""
    correct = record.clips.correct
    return torch.tensor([bool(correct[i]) for i in _positions(record, ids)])


def _scores(record: Record, ids: Sequence[str]) -> torch.Tensor:
    scores = record.clips.scores
    return torch.tensor([scores[i] for i in _positions(record, ids)], dtype=torch.float32)


def _targets(record: Record, ids: Sequence[str]) -> torch.Tensor:
    """Multi-hot targets from the per-clip label ids of a multi-label record."""
    labels = record.clips.labels
    multi_hot = torch.zeros(len(ids), record.num_classes)
    for row, i in enumerate(_positions(record, ids)):
        multi_hot[row, labels[i]] = 1.0
    return multi_hot


def _consistency(clean: Record, noisy: Record, ids: Sequence[str]) -> Optional[float]:
    if clean.clips.pred is None or noisy.clips.pred is None:
        return None
    a = [clean.clips.pred[i] for i in _positions(clean, ids)]
    b = [noisy.clips.pred[i] for i in _positions(noisy, ids)]
    return sum(x == y for x, y in zip(a, b)) / len(a)


# -- statistics ---------------------------------------------------------------------------------
def _paired_bootstrap_accuracy(c: Dict[str, torch.Tensor], seed: int) -> Tuple[float, float]:
    n = len(c["mc"])
    draws = torch.randint(0, n, (BOOTSTRAP_SAMPLES, n), generator=torch.Generator().manual_seed(seed))
    mean = {k: v.float()[draws].mean(dim=1) for k, v in c.items()}
    effects = (mean["mc"] - mean["mn"]) - (mean["nc"] - mean["nn"])
    lo, hi = bootstrap_interval(effects.tolist())
    return (lo, hi)


def _map_draws(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, n, (MAP_BOOTSTRAP_SAMPLES, n), generator=torch.Generator().manual_seed(seed))


def _map_and_resamples(record: Record, ids: List[str], targets: torch.Tensor, draws: torch.Tensor,
                       cache: Dict) -> Tuple[float, List[float]]:
    """mAP of one record on `ids` and on each bootstrap draw. Computed once per (record, clips):
    the baseline's records and a method's clean record recur in many comparisons, and one AS-20K
    mAP takes seconds."""
    key = (id(record), tuple(ids))
    if key not in cache:
        scores = _scores(record, ids)
        cache[key] = (mean_average_precision(scores, targets), resampled_map(scores, targets, draws))
    return cache[key]


def _paired_bootstrap_map(m: Dict[str, List[float]]) -> Tuple[float, float]:
    """Interval of the pruning effect from the four records' mAPs on the same resamples."""
    effects = [(a - b) - (c - d) for a, b, c, d in zip(m["mc"], m["mn"], m["nc"], m["nn"])]
    lo, hi = bootstrap_interval(effects)
    return (lo, hi)


def mcnemar_exact(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (binomial test on discordant pairs)."""
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _within_chance(correct: torch.Tensor, chance: float, seed: int) -> bool:
    """Is chance inside the 95% bootstrap interval of this accuracy?"""
    n = len(correct)
    draws = torch.randint(0, n, (BOOTSTRAP_SAMPLES, n), generator=torch.Generator().manual_seed(seed + 1))
    lo, hi = bootstrap_interval(correct.float()[draws].mean(dim=1).tolist())
    return lo <= chance <= hi


def merges_only(record: Optional[Record]) -> bool:
    """The method reduced tokens yet dropped no patch (merging: every patch lives on in some
    token, and the token state gives no kept-patch map), so the overlap of kept patches says
    nothing and is left out."""
    if record is None:
        return False
    per_layer = record.tokens_per_layer
    reduced = bool(per_layer) and per_layer[-1].get("mlp", 0) < per_layer[0].get("attention", 0)
    if not reduced:
        return False
    if record.selection:
        return record.selection.get("clips_with_drops") == 0
    return not record.clips.kept_patches


def selection_jaccard(clean: RecordLike, noisy: RecordLike, ids: Sequence[str]) -> Optional[float]:
    """Mean Jaccard overlap of kept patches, clean vs noisy, per clip; None without pruning masks."""
    clean, noisy = as_records([clean, noisy])
    a, b = clean.clips.kept_patches, noisy.clips.kept_patches
    if not a or not b:
        return None
    total, counted = 0.0, 0
    for i, j in zip(_positions(clean, ids), _positions(noisy, ids)):
        value = mask_jaccard(a[i], b[j])
        if value is not None:
            total += value
            counted += 1
    return total / counted if counted else None


def mask_jaccard(a: Optional[str], b: Optional[str]) -> Optional[float]:
    """Jaccard overlap of two packed kept-patch masks (hex strings); None where either is missing."""
    if a is None or b is None:
        return None
    x, y = int(a, 16), int(b, 16)
    union = bin(x | y).count("1")
    return bin(x & y).count("1") / union if union else 1.0
