"""Robustness statistics across records: does pruning change what noise costs?

For a model, task split and length bucket, each pruned method is compared with `none` on the very
same clips, clean and under each corruption:
- drop = clean - noisy, retention = noisy / clean, consistency = share of clips whose prediction the
  noise leaves unchanged;
- pruning effect = drop(method) - drop(none), with a paired bootstrap interval over clips (all four
  outcome vectors resampled together), and McNemar's exact test of the method's noisy outcomes
  against none's;
- the floor: when none's noisy score is within its interval of chance, a method that starts lower
  can "drop less" for that reason alone, so such comparisons are flagged;
- selection stability: Jaccard overlap of the patches kept on the clean and on the noisy version of
  the same clip (1 by construction for content-blind selection such as `random`).
Pure functions of records (dicts as written by the runner).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from benchmark.measure.metrics import bootstrap_interval, mean_average_precision, resampled_map

BOOTSTRAP_SAMPLES = 2000
MAP_BOOTSTRAP_SAMPLES = 200  # mAP is recomputed per resample: costlier


@dataclass
class Comparison:
    model: str
    task: str  # name/split
    bucket: Optional[str]
    method: str  # method id
    method_name: str
    keep_rate: Optional[float]
    corruption: str  # corruption id, e.g. white@20dB
    metric: str
    clips: int
    clean: float
    noisy: float
    drop: float
    retention: Optional[float]
    consistency: Optional[float]
    none_clean: float
    none_noisy: float
    none_drop: float
    effect: float  # drop(method) - drop(none); > 0: pruning makes noise cost more
    effect_ci95: Tuple[float, float]
    mcnemar_p: Optional[float]  # method vs none, noisy outcomes, same clips
    near_chance: bool  # none's noisy score is within its interval of chance
    jaccard: Optional[float]  # clean vs noisy kept patches, mean over clips
    verdict: str

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def group_key(record: Dict[str, Any]) -> Tuple[str, str, Optional[str]]:
    task = record["task"]
    bucket = task.get("bucket")
    return record["model"]["name"], f"{task['name']}/{task['split']}", None if bucket is None else bucket.get("id")


def corruption_id(record: Dict[str, Any]) -> Optional[str]:
    corruption = record["task"].get("corruption")
    return None if corruption is None else corruption["id"]


def compare(records: Sequence[Dict[str, Any]], seed: int = 0) -> List[Comparison]:
    """Every (pruned method, corruption) of every (model, task, bucket) that has the four records
    it needs: method clean and noisy, none clean and noisy."""
    index: Dict[Tuple, Dict[str, Any]] = {}
    for r in records:
        if r.get("status", "ok") != "ok":
            continue
        index[group_key(r) + (r["method"]["id"], corruption_id(r))] = r
    out = []
    map_cache: Dict[Tuple, Tuple[float, List[float]]] = {}  # shared by the comparisons of this call
    for key, noisy in sorted(index.items(), key=lambda kv: tuple(str(k) for k in kv[0])):
        *group, method_id, corruption = key
        if corruption is None or method_id == "none":
            continue
        group = tuple(group)
        clean = index.get(group + (method_id, None))
        base_clean = index.get(group + ("none", None))
        base_noisy = index.get(group + ("none", corruption))
        if clean is None or base_clean is None or base_noisy is None:
            continue
        out.append(_compare_one(group, clean, noisy, base_clean, base_noisy, seed, map_cache))
    return out


def _compare_one(group, clean, noisy, base_clean, base_noisy, seed: int, map_cache: Dict) -> Comparison:
    metric = next(iter(clean["metrics"]))
    ids = _common_ids([clean, noisy, base_clean, base_noisy])
    method = clean["method"]
    num_classes = clean["model"]["config"]["num_classes"] if "config" in clean["model"] else None
    if metric == "accuracy":
        c = {name: _outcomes(r, ids) for name, r in
             (("mc", clean), ("mn", noisy), ("nc", base_clean), ("nn", base_noisy))}
        scores = {k: float(v.float().mean()) for k, v in c.items()}
        effect_ci = _paired_bootstrap_accuracy(c, seed)
        mcnemar = mcnemar_exact(c["mn"], c["nn"])
        consistency = _consistency(clean, noisy, ids)
        chance = 1.0 / num_classes if num_classes else None
        near_chance = chance is not None and _within_chance(c["nn"], chance, seed)
    else:
        targets = _targets(clean, ids)
        draws = _map_draws(len(ids), seed)  # the same draws for all four records
        m = {name: _map_and_resamples(r, ids, targets, draws, map_cache) for name, r in
             (("mc", clean), ("mn", noisy), ("nc", base_clean), ("nn", base_noisy))}
        scores = {k: v[0] for k, v in m.items()}
        effect_ci = _paired_bootstrap_map({k: v[1] for k, v in m.items()})
        mcnemar, consistency, near_chance = None, None, False
    drop = scores["mc"] - scores["mn"]
    none_drop = scores["nc"] - scores["nn"]
    effect = drop - none_drop
    return Comparison(
        model=group[0], task=group[1], bucket=group[2], method=method["id"], method_name=method["name"],
        keep_rate=method["params"].get("keep_rate"), corruption=corruption_id(noisy), metric=metric, clips=len(ids),
        clean=scores["mc"], noisy=scores["mn"], drop=drop,
        retention=scores["mn"] / scores["mc"] if scores["mc"] > 0 else None,
        consistency=consistency, none_clean=scores["nc"], none_noisy=scores["nn"], none_drop=none_drop,
        effect=effect, effect_ci95=effect_ci, mcnemar_p=mcnemar, near_chance=near_chance,
        jaccard=None if merges_only(clean) else selection_jaccard(clean, noisy, ids), verdict=verdict(effect_ci, near_chance),
    )


def verdict(effect_ci: Tuple[float, float], near_chance: bool) -> str:
    lo, hi = effect_ci
    if lo > 0:
        text = "degrades robustness"
    elif hi < 0:
        text = "improves robustness"
    else:
        text = "no detectable effect"
    return text + (" (near chance: floor effect likely)" if near_chance else "")


# -- per-clip vectors ---------------------------------------------------------------------------
def _common_ids(records: Sequence[Dict[str, Any]]) -> List[str]:
    common = set(records[0]["per_clip"]["ids"])
    for r in records[1:]:
        common &= set(r["per_clip"]["ids"])
    return [i for i in records[0]["per_clip"]["ids"] if i in common]


def _positions(record: Dict[str, Any], ids: Sequence[str]) -> List[int]:
    where = {clip: i for i, clip in enumerate(record["per_clip"]["ids"])}
    return [where[i] for i in ids]


def _outcomes(record: Dict[str, Any], ids: Sequence[str]) -> torch.Tensor:
    correct = record["per_clip"]["correct"]
    return torch.tensor([bool(correct[i]) for i in _positions(record, ids)])


def _scores(record: Dict[str, Any], ids: Sequence[str]) -> torch.Tensor:
    scores = record["per_clip"]["scores"]
    return torch.tensor([scores[i] for i in _positions(record, ids)], dtype=torch.float32)


def _targets(record: Dict[str, Any], ids: Sequence[str]) -> torch.Tensor:
    """Multi-hot targets from the per-clip label ids of a multi-label record."""
    labels = record["per_clip"]["labels"]
    multi_hot = torch.zeros(len(ids), record["model"]["config"]["num_classes"])
    for row, i in enumerate(_positions(record, ids)):
        multi_hot[row, labels[i]] = 1.0
    return multi_hot


def _consistency(clean: Dict[str, Any], noisy: Dict[str, Any], ids: Sequence[str]) -> Optional[float]:
    if "pred" not in clean["per_clip"] or "pred" not in noisy["per_clip"]:
        return None
    a = [clean["per_clip"]["pred"][i] for i in _positions(clean, ids)]
    b = [noisy["per_clip"]["pred"][i] for i in _positions(noisy, ids)]
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


def _map_and_resamples(record, ids: List[str], targets: torch.Tensor, draws: torch.Tensor,
                       cache: Dict) -> Tuple[float, List[float]]:
    """mAP of one record on `ids` and on each bootstrap draw. Computed once per (record, clips):
    none's records and a method's clean record recur in many comparisons, and one AS-20K mAP
    takes seconds."""
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


def merges_only(record: Dict[str, Any]) -> bool:
    """The method reduced tokens yet dropped no patch (merging: every patch lives on in some
    token, and the token state gives no kept-patch map), so the overlap of kept patches says
    nothing and is left out."""
    per_layer = (record.get("tokens") or {}).get("per_layer") or []
    reduced = bool(per_layer) and per_layer[-1].get("mlp", 0) < per_layer[0].get("attention", 0)
    if not reduced:
        return False
    selection = record.get("selection")
    if selection:
        return selection.get("clips_with_drops") == 0
    return not (record.get("per_clip") or {}).get("kept_patches")


def selection_jaccard(clean: Dict[str, Any], noisy: Dict[str, Any], ids: Sequence[str]) -> Optional[float]:
    """Mean Jaccard overlap of kept patches, clean vs noisy, per clip; None without pruning masks."""
    a, b = clean["per_clip"].get("kept_patches"), noisy["per_clip"].get("kept_patches")
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


# -- robustness in each record ------------------------------------------------------------------
def record_robustness(records: Sequence[Dict[str, Any]], seed: int = 0) -> List[Tuple[Dict[str, Any], Dict[str, Any]]]:
    """(noisy record, its `robustness` block) for every noisy record whose clean counterpart (same
    model, task, bucket and method) is among `records`: clean and noisy score, drop, retention,
    consistency, selection Jaccard, and for pruned methods the comparison with `none`
    (`vs_none`: pruning effect with its paired bootstrap interval, McNemar p, floor flag, verdict)."""
    index: Dict[Tuple, Dict[str, Any]] = {}
    for r in records:
        if r.get("status", "ok") == "ok":
            index[group_key(r) + (r["method"]["id"], corruption_id(r))] = r
    comparisons = {(c.model, c.task, c.bucket, c.method, c.corruption): c for c in compare(list(index.values()), seed)}
    out = []
    for key, noisy in index.items():
        *group, method_id, corruption = key
        clean = index.get(tuple(group) + (method_id, None))
        if corruption is None or clean is None:
            continue
        block = _drop_stats(clean, noisy)
        c = comparisons.get(tuple(group) + (method_id, corruption))
        block["vs_none"] = None if c is None else {
            "none_drop": c.none_drop, "effect": c.effect, "effect_ci95": list(c.effect_ci95),
            "mcnemar_p": c.mcnemar_p, "near_chance": c.near_chance, "verdict": c.verdict,
        }
        out.append((noisy, block))
    return out


def _drop_stats(clean: Dict[str, Any], noisy: Dict[str, Any]) -> Dict[str, Any]:
    ids = _common_ids([clean, noisy])
    metric = next(iter(clean["metrics"]))
    if metric == "accuracy":
        a, b = float(_outcomes(clean, ids).float().mean()), float(_outcomes(noisy, ids).float().mean())
    else:
        targets = _targets(clean, ids)
        a, b = mean_average_precision(_scores(clean, ids), targets), mean_average_precision(_scores(noisy, ids), targets)
    return {
        "clean_variant": clean["task"].get("variant"), "metric": metric, "clips": len(ids),
        "clean": a, "noisy": b, "drop": a - b, "retention": b / a if a > 0 else None,
        "consistency": _consistency(clean, noisy, ids),
        "jaccard": None if merges_only(clean) else selection_jaccard(clean, noisy, ids),
    }


def annotate_files(out, model_name: str, task_entry, methods, seed: int = 0) -> int:
    """Write the `robustness` block into every noisy record of one model on one task (all its
    variants and methods present under `out`); returns how many records changed."""
    from benchmark.records.store import read_record, result_path, write_record

    if all(variant.corruption is None for variant in task_entry.variants):
        return 0  # clean (or bucket-only) variants: no noisy record to annotate, nothing to read
    paths = {}
    for variant in task_entry.variants:
        for method in methods:
            path = result_path(out, model_name, method.id, variant.id)
            if path.is_file():
                paths[(method.id, variant.id)] = path
    records = {key: read_record(path) for key, path in paths.items()}
    changed = 0
    for noisy, block in record_robustness(list(records.values()), seed):
        key = (noisy["method"]["id"], noisy["task"]["variant"])
        if key in paths and noisy.get("robustness") != block:
            noisy["robustness"] = block
            write_record(paths[key], noisy)
            changed += 1
    return changed


def annotate_run(out, config) -> int:
    """`annotate_files` for every model and task entry of a run config (called once a run ends;
    records written by earlier, interrupted runs are included)."""
    return sum(annotate_files(out, model.name, entry, config.methods, config.seed)
               for model in config.models for entry in config.tasks)
