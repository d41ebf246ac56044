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
- the conditional flip rate (accuracy tasks; the answer): among the clips both the method and the
  baseline get right clean, the share the noise turns wrong, for each; the flip effect (method minus
  baseline) with its paired bootstrap interval, McNemar's exact test on those clips, and the
  smallest flip effect the comparison could have detected (80% power, alpha 0.05). A drop in points
  credits a method that is worse clean for having less to lose; the flip rate starts both from the
  same clips. The formulas are in `prunebench.analysis.paired`;
- the retention effect = noisy/clean of the method minus that of the baseline, with its interval;
- the floor: when the baseline's noisy score is within its interval of chance, a method that starts
  lower can "drop less" for that reason alone, so such comparisons are flagged;
- selection stability: Jaccard overlap of the patches kept on the clean and on the noisy version of
  the same clip (1 by construction for content-blind selection such as `random`).
Pure functions of records (dicts as written by the runner, or `Record`s).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch

from prunebench.analysis.paired import (ALPHA, bootstrap_draws, drop_effect, flip_counts, flip_differences,
                                       flip_effect, flip_shares, mcnemar_exact_p, minimal_detectable_effect,
                                       paired_bootstrap, pooled_detectable_effect, retention_effect, sign_flip_p)
from prunebench.core.registry import BASELINE
from prunebench.metrics import get_metric
from prunebench.metrics.bootstrap import bootstrap_interval
from prunebench.records.record import GroupKey, Record, RecordLike, as_records, method_sort_key

BOOTSTRAP_SAMPLES = 2000
MAP_BOOTSTRAP_SAMPLES = 200  # mAP is recomputed per resample: costlier

# What a comparison finds: `direction` from the interval of the drop effect alone, `flip_direction`
# (the answer) from the flip effect's interval and McNemar's p together.
DEGRADES, IMPROVES, NO_EFFECT = "degrades robustness", "improves robustness", "no detectable effect"
DIRECTIONS = (DEGRADES, IMPROVES, NO_EFFECT)
NO_VERDICT = "no verdict"  # the records cannot answer (too few clips, no clip in common, NaN): the reason follows
MIN_FLIP_CLIPS = 2  # clips right clean for both that a flip effect needs
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
    # the conditional flip rate (None for mAP tasks, whose clips are not right or wrong)
    flip_clips: Optional[int] = None  # clips both the method and the baseline get right clean
    flip_rate: Optional[float] = None  # share of them the noise turns wrong for the method
    none_flip_rate: Optional[float] = None  # ... for the baseline
    flip_effect: Optional[float] = None  # flip_rate - none_flip_rate; > 0: pruning makes noise cost more
    flip_effect_ci95: Optional[Tuple[float, float]] = None
    flip_mcnemar_p: Optional[float] = None  # exact, on the discordant flips of those clips
    flip_mde: Optional[float] = None  # smallest flip effect detectable at 80% power, alpha 0.05
    retention_effect: Optional[float] = None  # retention(method) - retention(baseline)
    no_verdict: Optional[str] = None  # why the flip effect gives no answer (flip_verdict says "no verdict: ...")
    retention_effect_ci95: Optional[Tuple[float, float]] = None
    flip_direction: str = NO_EFFECT  # the answer: flip effect for accuracy, else `direction`
    flip_verdict: str = NO_EFFECT  # flip_direction in words, with the floor flag

    @property
    def method_sort_key(self) -> Tuple:
        """Where the compared method sorts, as its records do (`Record.method_sort_key`)."""
        return method_sort_key(self.method_name, self.keep_rate, self.method)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def record_key(record: Record) -> Key:
    return record.group + (record.method.id, record.corruption_id)


def index_records(records: Iterable[Record]) -> Dict[Key, Record]:
    """Records by (model, task, bucket, method id, corruption id); a later record of a key wins.
    Testbed members (effective robustness) are not the grid's models: left out."""
    return {record_key(r): r for r in records if r.testbed is None}


def compare(records: Sequence[RecordLike], seed: int = 0, unusable: Optional[List["NoVerdict"]] = None
            ) -> List[Comparison]:
    """Every (pruned method, corruption) of every (model, task, bucket) that has the four records
    it needs: method clean and noisy, baseline clean and noisy. Failed records are left out; so are
    comparisons whose records cannot be compared (no clip in common, an outcome or score that is
    not a number: `unusable_reason`), each appended to `unusable` with its reason when given."""
    index = index_records(r for r in as_records(records) if r.ok)
    out = []
    map_cache: Dict[Tuple, Tuple[float, List[float]]] = {}  # shared by the comparisons of this call
    invalid_cache: Dict[int, Set[int]] = {}  # id(record) -> its invalid clips, likewise
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
        reason = unusable_reason([clean, noisy, base_clean, base_noisy], invalid_cache)
        if reason is not None:
            if unusable is not None:
                unusable.append(NoVerdict(group[0], group[1], group[2], method_id, clean.method.name,
                                          clean.method.keep_rate, corruption, reason))
            continue
        comparison = _compare_one(group, clean, noisy, base_clean, base_noisy, seed, map_cache)
        if comparison.no_verdict is not None:
            comparison.flip_verdict = f"{NO_VERDICT}: {comparison.no_verdict}"
        out.append(comparison)
    return out


@dataclass
class NoVerdict:
    """A comparison its records cannot support, and why (see `unusable_reason`)."""

    model: str
    task: str
    bucket: Optional[str]
    method: str  # method id
    method_name: str
    keep_rate: Optional[float]
    corruption: str
    reason: str


def unusable_reason(records: Sequence[Record], cache: Optional[Dict[int, Set[int]]] = None) -> Optional[str]:
    """Why these records (method clean and noisy, baseline clean and noisy) cannot be compared, or
    None: a record without clips, no clip common to all, or a clip whose outcome is not right or
    wrong (NaN, None) or whose scores are not finite. A NaN counted as right would be a silent
    guess, so the comparison gets no verdict instead. `cache`: each record's invalid clips, checked
    once per record (a baseline's records recur in every comparison)."""
    cache = {} if cache is None else cache
    for r in records:
        if not r.clips.ids:
            return f"{_label(r)} holds no clips"
    ids = common_ids(records)
    if not ids:
        return "the four records share no clip"
    for r in records:
        if r.clips.correct is None and r.clips.scores is None:
            return f"{_label(r)} holds no per-clip outcomes or scores"
        if id(r) not in cache:
            cache[id(r)] = _invalid_clips(r)
        invalid = cache[id(r)]
        bad = next((i for i in _positions(r, ids) if i in invalid), None) if invalid else None
        if bad is not None:
            what = (f"outcome {r.clips.correct[bad]!r}, not right or wrong" if r.clips.correct is not None
                    else "a score that is not a number")
            return f"{_label(r)}: clip {r.clips.ids[bad]} has {what}"
    return None


def _invalid_clips(record: Record) -> Set[int]:
    """Positions of the clips whose outcome is not right or wrong (accuracy-like metrics) or whose
    scores are not all finite (score-based metrics such as mAP)."""
    if record.clips.correct is not None:
        return {i for i, value in enumerate(record.clips.correct) if not _is_outcome(value)}
    scores = np.asarray(record.clips.scores, dtype=np.float32)
    finite = np.isfinite(scores).reshape(len(scores), -1).all(axis=1)
    return set(np.nonzero(~finite)[0].tolist())


def _is_outcome(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1))


def _label(record: Record) -> str:
    return f"{record.method.id} {record.corruption_id or 'clean'}"


def _compare_one(group: GroupKey, clean: Record, noisy: Record, base_clean: Record, base_noisy: Record, seed: int,
                 map_cache: Dict) -> Comparison:
    ids = common_ids([clean, noisy, base_clean, base_noisy])
    four = {"mc": clean, "mn": noisy, "nc": base_clean, "nn": base_noisy}
    flips = get_metric(clean.metric).flips  # each clip right or wrong: the flip family applies
    if flips:
        found = _accuracy_stats(four, ids, seed)
    else:
        found = _map_stats(four, ids, seed, map_cache)
    scores = found.pop("scores")
    drop, none_drop = scores["mc"] - scores["mn"], scores["nc"] - scores["nn"]
    effect_ci, near_chance = found["effect_ci95"], found["near_chance"]
    direction = effect_direction(effect_ci)
    if found.get("flip_effect_ci95") is not None:
        flip_dir = flip_direction(found["flip_effect_ci95"], found["flip_mcnemar_p"])
    else:
        flip_dir = NO_EFFECT if flips else direction
    return Comparison(
        model=group[0], task=group[1], bucket=group[2], method=clean.method.id, method_name=clean.method.name,
        keep_rate=clean.method.keep_rate, corruption=noisy.corruption_id, corruption_order=noisy.corruption_order,
        metric=clean.metric, clips=len(ids), clean=scores["mc"], noisy=scores["mn"], drop=drop,
        retention=scores["mn"] / scores["mc"] if scores["mc"] > 0 else None,
        none_clean=scores["nc"], none_noisy=scores["nn"], none_drop=none_drop, effect=drop - none_drop,
        jaccard=None if merges_only(clean) else selection_jaccard(clean, noisy, ids),
        direction=direction, verdict=_with_floor(direction, near_chance),
        flip_direction=flip_dir, flip_verdict=_with_floor(flip_dir, near_chance), **found,
    )


def _accuracy_stats(four: Dict[str, Record], ids: List[str], seed: int) -> Dict[str, Any]:
    """Scores and every paired statistic of an accuracy comparison, on one set of bootstrap draws."""
    c = {name: outcomes(r, ids) for name, r in four.items()}
    draws = bootstrap_draws(len(ids), seed, BOOTSTRAP_SAMPLES)
    flips = flip_counts(c["mc"], c["mn"], c["nc"], c["nn"])
    enough = flips.n >= MIN_FLIP_CLIPS
    scores = {k: float(v.float().mean()) for k, v in c.items()}
    clean = four["mc"]
    chance = get_metric(clean.metric).chance(clean.num_classes) if clean.num_classes else None
    return dict(
        scores=scores, effect_ci95=paired_bootstrap(c, drop_effect, draws),
        mcnemar_p=mcnemar_exact(c["mn"], c["nn"]), consistency=_consistency(clean, four["mn"], ids),
        near_chance=chance is not None and _within_chance(c["nn"], chance, seed),
        flip_clips=flips.n, flip_rate=flips.method_rate, none_flip_rate=flips.none_rate, flip_effect=flips.effect,
        flip_effect_ci95=paired_bootstrap(c, flip_effect, draws) if enough else None,
        flip_mcnemar_p=mcnemar_exact_p(flips.only_method, flips.only_none) if enough else None,
        flip_mde=minimal_detectable_effect(flips.n, flips.discordant_share) if enough else None,
        no_verdict=None if enough else too_few_clips(flips.n),
        retention_effect=_retention_effect(scores), retention_effect_ci95=paired_bootstrap(c, retention_effect, draws),
    )


def _map_stats(four: Dict[str, Record], ids: List[str], seed: int, map_cache: Dict) -> Dict[str, Any]:
    """Scores and the drop effect's interval of an mAP comparison (no per-clip right or wrong)."""
    targets = _targets(four["mc"], ids)
    draws = _map_draws(len(ids), seed)  # the same draws for all four records
    m = {name: _map_and_resamples(r, ids, targets, draws, map_cache) for name, r in four.items()}
    scores = {k: v[0] for k, v in m.items()}
    return dict(scores=scores, effect_ci95=_paired_bootstrap_map({k: v[1] for k, v in m.items()}),
                mcnemar_p=None, consistency=None, near_chance=False, retention_effect=_retention_effect(scores))


def _retention_effect(scores: Dict[str, float]) -> Optional[float]:
    if scores["mc"] <= 0 or scores["nc"] <= 0:
        return None
    return scores["mn"] / scores["mc"] - scores["nn"] / scores["nc"]


def effect_direction(effect_ci: Tuple[float, float]) -> str:
    """DEGRADES when the interval of the effect lies above 0, IMPROVES when below, else NO_EFFECT."""
    lo, hi = effect_ci
    if lo > 0:
        return DEGRADES
    if hi < 0:
        return IMPROVES
    return NO_EFFECT


def flip_direction(flip_ci: Tuple[float, float], p: Optional[float], alpha: float = ALPHA) -> str:
    """The answer of an accuracy comparison: DEGRADES (IMPROVES) when the flip effect's interval lies
    above (below) 0 and McNemar's p on the same clips is below alpha; NO_EFFECT otherwise."""
    if p is None or p >= alpha:
        return NO_EFFECT
    return effect_direction(flip_ci)


def verdict(effect_ci: Tuple[float, float], near_chance: bool) -> str:
    return _with_floor(effect_direction(effect_ci), near_chance)


def _with_floor(direction: str, near_chance: bool) -> str:
    return direction + (f" ({FLOOR_NOTE})" if near_chance else "")


# -- pooled over conditions ----------------------------------------------------------------------
@dataclass
class Pooled:
    """A method's comparisons of one (model, task, bucket) pooled over conditions: the mean effects
    with paired bootstrap intervals (the same clip draws in every condition)."""

    conditions: int
    effect: float  # mean drop effect
    effect_ci95: Optional[Tuple[float, float]]
    flip_clips: int  # both right clean: the same clips in every condition (clean records are shared)
    flip_effect: Optional[float]  # mean flip effect
    flip_effect_ci95: Optional[Tuple[float, float]]
    flip_p: Optional[float]  # sign-flip permutation test of the per-clip mean flip differences (McNemar for one)
    flip_mde: Optional[float]  # what that test could detect at 80% power, under the alternative (paired.py)
    retention_effect: Optional[float]  # mean retention effect
    retention_effect_ci95: Optional[Tuple[float, float]]
    direction: str  # from the flip effect's interval and p


def pooled_vectors(index: Dict[Key, Record], comparisons: Sequence[Comparison]) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """The outcome vectors of one method's comparisons on the clips all their records hold: mc and
    nc (clips), mn and nn stacked (conditions, clips); and those clips' ids."""
    c0 = comparisons[0]
    group = (c0.model, c0.task, c0.bucket)
    mc_r, nc_r = index[group + (c0.method, None)], index[group + (BASELINE, None)]
    noisy = [(index[group + (c.method, c.corruption)], index[group + (BASELINE, c.corruption)]) for c in comparisons]
    ids = common_ids([mc_r, nc_r] + [r for pair in noisy for r in pair])
    v = {"mc": outcomes(mc_r, ids), "nc": outcomes(nc_r, ids),
         "mn": torch.stack([outcomes(m, ids) for m, _ in noisy]), "nn": torch.stack([outcomes(n, ids) for _, n in noisy])}
    return v, ids


def pool(index: Dict[Key, Record], comparisons: Sequence[Comparison], seed: int) -> Pooled:
    """Pool accuracy comparisons of one method and group (each with its four records in `index`)."""
    v, ids = pooled_vectors(index, comparisons)
    draws = bootstrap_draws(len(ids), seed, BOOTSTRAP_SAMPLES)
    whole = {k: x.float() for k, x in v.items()}
    differences = flip_differences(v["mc"], v["nc"], v["mn"], v["nn"])
    clips = differences.numel()
    n = clips if clips >= MIN_FLIP_CLIPS else 0  # fewer: no flip effect; the drop and retention effects stand
    flip_ci = paired_bootstrap(v, _mean_over_conditions(flip_effect), draws) if n else None
    # one condition: exact McNemar on the discordant pairs; several: the sign-flip test of the
    # per-clip mean differences (a sign test on them would ignore their size)
    single = len(comparisons) == 1
    more, fewer = int((differences > 0).sum()), int((differences < 0).sum())
    flip_p = (mcnemar_exact_p(more, fewer) if single else sign_flip_p(differences, seed)) if n else None
    # under the alternative (paired.py): McNemar's Connor figure for one condition, its pooled form for several
    mde = pooled_detectable_effect(differences, flip_shares(v["mc"], v["nc"], v["mn"], v["nn"])) if n else None
    retention = retention_effect(whole).mean(0)
    return Pooled(
        conditions=len(comparisons), effect=float(drop_effect(whole).mean(0)),
        effect_ci95=paired_bootstrap(v, _mean_over_conditions(drop_effect), draws), flip_clips=clips,
        flip_effect=float(differences.mean()) if n else None, flip_effect_ci95=flip_ci, flip_p=flip_p,
        flip_mde=mde,
        retention_effect=None if torch.isnan(retention) else float(retention),
        retention_effect_ci95=paired_bootstrap(v, _mean_over_conditions(retention_effect), draws),
        direction=(flip_direction(flip_ci, flip_p) if flip_ci is not None
                   else NO_EFFECT if n else f"{NO_VERDICT}: {too_few_clips(clips)}"),
    )


def too_few_clips(n: int) -> str:
    return (f"{n} clip{'' if n == 1 else 's'} right clean for both (a flip effect needs at least "
            f"{MIN_FLIP_CLIPS})")


def _mean_over_conditions(statistic):
    """A per-condition statistic of stacked noisy vectors (conditions first), averaged over them."""
    return lambda v, **options: statistic(v, **options).mean(0)


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
    scores = np.asarray(record.clips.scores, dtype=np.float32)  # a sidecar's array or an old record's lists
    return torch.from_numpy(scores[_positions(record, ids)])


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
        metric = get_metric(record.metric)
        cache[key] = (metric.from_scores(scores, targets), metric.resampled(scores, targets, draws))
    return cache[key]


def _paired_bootstrap_map(m: Dict[str, List[float]]) -> Tuple[float, float]:
    """Interval of the pruning effect from the four records' mAPs on the same resamples."""
    effects = [(a - b) - (c - d) for a, b, c, d in zip(m["mc"], m["mn"], m["nc"], m["nn"])]
    lo, hi = bootstrap_interval(effects)
    return (lo, hi)


def mcnemar_exact(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes (`paired.mcnemar_exact_p` on the
    discordant pairs)."""
    return mcnemar_exact_p(int((a & ~b).sum()), int((~a & b).sum()))


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
