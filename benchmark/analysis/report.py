"""`prunebench report DIR`: the research question answered in plain text for a results folder.

For each model, task and length bucket, and each pruned method and keep rate: does pruning make
noise cost more than it costs the unpruned model (`none`) on the same clips, by how much, and how
sure? Per condition (corruption at an SNR) it shows the pruning effect (drop(method) -
drop(none), in points) with its paired bootstrap interval, McNemar's p against none, retention,
prediction consistency, the chance-floor flag and selection stability; per method and keep rate
it pools the conditions not at the floor into one mean effect with a paired bootstrap interval
(the same clip draws for every condition). For cross-validated runs (several folds of one task)
it shows each fold and the mean over folds, and pools the folds' clips (each clip is evaluated
once, by the model that did not train on it). A pure function of the records.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from tabulate import tabulate

from benchmark.measure.metrics import bootstrap_interval
from benchmark.records.store import load_records
from benchmark.analysis.robustness import (BOOTSTRAP_SAMPLES, Comparison, _common_ids, _outcomes, compare, corruption_id,
                         group_key, merges_only, verdict)

POOLED_SPLIT = "all-folds"
ALPHA = 0.05


def report_folder(results_dir: str | Path, seed: int = 0) -> str:
    return build_report(load_records(results_dir), str(results_dir), seed)


def build_report(records: Sequence[Dict[str, Any]], source: str = "records", seed: int = 0) -> str:
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    not_ok = len(records) - len(ok)
    pooled = pool_folds(ok)
    comparisons = compare(ok + pooled, seed)
    lines = [f"prunebench report: {source}",
             f"{len(ok)} records" + (f" ({not_ok} not ok, left out)" if not_ok else "")
             + f"; models: {', '.join(sorted({r['model']['name'] for r in ok})) or 'none'}"]
    if not ok:
        return "\n".join(lines + ["nothing to report"]) + "\n"
    lines += ["",
              "Question: does token pruning, tuned for throughput, make noise cost more than it costs the",
              "unpruned model? Pruning effect = drop(method) - drop(none) on the same clips, in points of the",
              "metric; > 0: pruning degrades robustness. 95% intervals: paired bootstrap over clips. p: McNemar's",
              "exact test, method vs none on the noisy clips. floor: none's noisy score is within its interval of",
              "chance, where a method that starts lower 'drops less' for that reason alone (left out of pooling)."]
    answers: List[str] = []
    index = _index(ok + pooled)
    groups: "OrderedDict[Tuple, List[Comparison]]" = OrderedDict()
    for c in comparisons:
        groups.setdefault((c.model, c.task, c.bucket), []).append(c)
    pooled_groups = {(m, t.rsplit("/", 1)[0], b) for (m, t, b) in groups if t.endswith("/" + POOLED_SPLIT)}
    for (model, task, bucket), group in sorted(groups.items(), key=lambda kv: _group_order(kv[0])):
        base = (model, task.rsplit("/", 1)[0], bucket)
        if base in pooled_groups and not task.endswith("/" + POOLED_SPLIT):
            continue  # a fold of a cross-validated task: in the per-fold table of the pooled section
        section, answer, summaries = _group_section(model, task, bucket, group, index, seed)
        lines += [""] + section
        answers += answer
        if base in pooled_groups:
            lines += _fold_table(base, summaries, comparisons, index)
    lines += _speed_section(ok)
    missing = _missing_baselines(ok)
    if missing:
        lines += ["", "Not compared (no clean or no `none` record to pair with): " + ", ".join(missing[:12])
                  + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")]
    head = ["", "ANSWER"] + (answers or ["no method has the four records a comparison needs "
                                         "(method and none, clean and noisy)"])
    return "\n".join(lines[:2] + head + lines[2:]) + "\n"


# -- one (model, task, bucket) --------------------------------------------------------------------
@dataclass
class MethodSummary:
    method: str
    name: str
    keep: Optional[float]
    clean: float
    none_clean: float
    effects: List[float]
    effect: Optional[float]
    effect_ci: Optional[Tuple[float, float]]
    degrades: int
    improves: int
    floored: int
    retention: Optional[float]
    consistency: Optional[float]
    jaccard: Optional[float]
    merges: bool
    intensity: Optional[float]
    padding: Optional[float]
    verdict: str


def _group_section(model, task, bucket, group: List[Comparison], index,
                   seed) -> Tuple[List[str], List[str], List["MethodSummary"]]:
    """The section's lines, its answer lines, and its per-method summaries (reused by the fold table)."""
    first = group[0]
    scale = 100.0
    unit = "%" if first.metric == "accuracy" else ""
    where = f"{model} on {task}" + (f" at {bucket}" if bucket else "") + f" ({first.clips} clips, {first.metric}"
    classes = _num_classes(index, first)
    if first.metric == "accuracy" and classes:
        where += f", chance {100 / classes:.1f}%"
    lines = [f"== {where}) =="]
    base = _baseline_line(group, unit)
    lines.append(base)
    silence = _silence_line(group, index)
    if silence:
        lines.append(silence)
    holm = holm_significant([c.mcnemar_p for c in group if c.mcnemar_p is not None])
    summaries = _summaries(group, index, seed)
    table = []
    for s in summaries:
        table.append([s.name, _keep(s.keep), _pct(s.clean, scale), _signed(s.clean - s.none_clean, scale),
                      _effect(s.effect, s.effect_ci, scale), _signed(max(s.effects), scale) if s.effects else "",
                      f"{s.degrades}/{s.improves}/{len(s.effects) - s.degrades - s.improves}" + (f" (+{s.floored} floor)" if s.floored else ""),
                      _num(s.retention, 3), _num(s.consistency, 3), _jaccard(s), _signed(s.intensity, 1, 2), _num(s.padding, 2), s.verdict])
    lines += ["", "Per method and keep rate (conditions pooled, floor left out):",
              tabulate(table, headers=["method", "keep", "clean", "vs none", "effect [95% CI]", "worst", "worse/better/n.s.",
                                       "retention", "consistency", "jaccard", "kept-dropped int.", "pad kept", "answer"],
                       tablefmt="simple", disable_numparse=True)]
    detail = []
    for c in sorted(group, key=_comparison_order):
        flags = []
        if c.near_chance:
            flags.append("floor")
        if c.mcnemar_p is not None and c.mcnemar_p < ALPHA:
            flags.append("p<0.05")
        detail.append([c.method_name, _keep(c.keep_rate), c.corruption, _pct(c.noisy, scale), _signed(c.drop, scale),
                       _signed(c.none_drop, scale), _effect(c.effect, c.effect_ci95, scale), _p(c.mcnemar_p),
                       _num(c.retention, 3), _num(c.consistency, 3), _num(c.jaccard, 3), " ".join(flags)])
    lines += ["", "Per condition:",
              tabulate(detail, headers=["method", "keep", "noise", "noisy", "drop", "none drop", "effect [95% CI]", "p",
                                        "retention", "consistency", "jaccard", "flags"], tablefmt="simple", disable_numparse=True)]
    tested = [c for c in group if c.mcnemar_p is not None]
    if tested:
        raw = sum(c.mcnemar_p < ALPHA for c in tested)
        lines.append(f"McNemar: {raw} of {len(tested)} comparisons at p < {ALPHA} ({holm} after Holm's correction "
                     f"for {len(tested)} tests; about {ALPHA * len(tested):.1f} expected by chance alone).")
    answers = [f"{where}):"]
    for s in summaries:
        answers.append(f"  {s.name}{'' if s.keep is None else ' keep ' + _keep(s.keep)}: {_sentence(s, scale)}")
    return lines, answers, summaries


def _summaries(group: List[Comparison], index, seed) -> List[MethodSummary]:
    by_method: "OrderedDict[str, List[Comparison]]" = OrderedDict()
    for c in sorted(group, key=_comparison_order):
        by_method.setdefault(c.method, []).append(c)
    out = []
    for method, cs in by_method.items():
        usable = [c for c in cs if not c.near_chance]
        effects = [c.effect for c in usable]
        effect, ci = (None, None)
        if usable:
            effect = sum(effects) / len(effects)
            if usable[0].metric == "accuracy":
                effect, ci = pooled_effect(index, usable, seed)
        degrades = sum(c.effect_ci95[0] > 0 for c in usable)
        improves = sum(c.effect_ci95[1] < 0 for c in usable)
        first = cs[0]
        clean_record = index.get((first.model, first.task, first.bucket, method, None))
        selection = (clean_record or {}).get("selection") or {}
        merges = merges_only(clean_record or {})
        out.append(MethodSummary(
            method=method, name=first.method_name, keep=first.keep_rate, clean=first.clean, none_clean=first.none_clean,
            effects=effects, effect=effect, effect_ci=ci, degrades=degrades, improves=improves,
            floored=len(cs) - len(usable),
            retention=_mean([c.retention for c in usable]), consistency=_mean([c.consistency for c in usable]),
            jaccard=_mean([c.jaccard for c in usable]), merges=merges,
            intensity=selection.get("kept_minus_dropped"), padding=selection.get("kept_padding_share"),
            verdict=_verdict(effect, ci, usable),
        ))
    return out


def pooled_effect(index, comparisons: List[Comparison], seed: int) -> Tuple[float, Optional[Tuple[float, float]]]:
    """Mean pruning effect over conditions, with a paired bootstrap interval: every resample draws
    the same clips for the method's and none's clean and noisy outcomes in every condition."""
    c0 = comparisons[0]
    key = (c0.model, c0.task, c0.bucket)
    records = {"mc": index[key + (c0.method, None)], "nc": index[key + ("none", None)]}
    noisy = [(index[key + (c.method, c.corruption)], index[key + ("none", c.corruption)]) for c in comparisons]
    ids = _common_ids([records["mc"], records["nc"]] + [r for pair in noisy for r in pair])
    mc, nc = _outcomes(records["mc"], ids).float(), _outcomes(records["nc"], ids).float()
    mn = torch.stack([_outcomes(m, ids).float() for m, _ in noisy])
    nn = torch.stack([_outcomes(n, ids).float() for _, n in noisy])
    point = float((mc.mean() - nc.mean()) - (mn.mean(1) - nn.mean(1)).mean())
    draws = torch.randint(0, len(ids), (BOOTSTRAP_SAMPLES, len(ids)), generator=torch.Generator().manual_seed(seed))
    samples = (mc[draws].mean(1) - nc[draws].mean(1)) - (mn[:, draws].mean(2) - nn[:, draws].mean(2)).mean(0)
    lo, hi = bootstrap_interval(samples.tolist())
    return point, (lo, hi)


def _verdict(effect, ci, usable: List[Comparison]) -> str:
    if not usable:
        return "every condition at the chance floor: no answer"
    if ci is None:
        return "mean effect only (no interval for mAP pooling)"
    return verdict(ci, False)


def _sentence(s: MethodSummary, scale: float) -> str:
    if s.effect is None:
        return s.verdict + "."
    text = f"{s.verdict}: pruning effect {_effect(s.effect, s.effect_ci, scale)} points over {len(s.effects)} condition(s)"
    text += f"; individually worse in {s.degrades}, better in {s.improves}"
    if s.retention is not None:
        text += f"; retention {s.retention:.2f}"
    if s.consistency is not None:
        text += f", consistency {s.consistency:.2f}"
    if s.merges:
        text += "; selection: merges tokens, drops no patch"
    elif s.jaccard is not None:
        text += f"; clean/noisy selection overlap {s.jaccard:.2f}" + (" (input-independent)" if s.jaccard >= 0.9999 else "")
    if s.floored:
        text += f"; {s.floored} condition(s) at the floor left out"
    return text + "."


def _baseline_line(group: List[Comparison], unit: str) -> str:
    seen = OrderedDict()
    for c in sorted(group, key=_comparison_order):
        seen.setdefault(c.corruption, c)
    c0 = next(iter(seen.values()))
    parts = [f"clean {_pct(c0.none_clean, 100)}{unit}"]
    parts += [f"{c.corruption} {_pct(c.none_noisy, 100)}{unit} (drop {_signed(c.none_drop, 100)})" for c in seen.values()]
    return "none: " + "; ".join(parts)


SILENT = 0.25  # clips with at least this share of digitally silent frames


def _silence_line(group: List[Comparison], index) -> Optional[str]:
    """none's drop on clips with much digital silence against the others (accuracy only): noise
    changes the log-mel of silence wholesale, so such clips can dominate the drop."""
    c0 = group[0]
    clean = index.get((c0.model, c0.task, c0.bucket, "none", None))
    if c0.metric != "accuracy" or not clean or "silent_fraction" not in clean["per_clip"]:
        return None
    silent_ids = {i for i, f in zip(clean["per_clip"]["ids"], clean["per_clip"]["silent_fraction"]) if f >= SILENT}
    if not silent_ids or len(silent_ids) == len(clean["per_clip"]["ids"]):
        return None
    drops = {True: [], False: []}
    for corruption in sorted({c.corruption for c in group}):
        noisy = index.get((c0.model, c0.task, c0.bucket, "none", corruption))
        if noisy is None:
            continue
        ids = _common_ids([clean, noisy])
        a, b = _outcomes(clean, ids).float(), _outcomes(noisy, ids).float()
        is_silent = torch.tensor([i in silent_ids for i in ids])
        for flag in (True, False):
            part = is_silent if flag else ~is_silent
            if bool(part.any()):
                drops[flag].append(float(a[part].mean() - b[part].mean()))
    if not drops[True] or not drops[False]:
        return None
    return (f"digital silence: {len(silent_ids)} clips have >= {SILENT:.0%} silent frames; none's mean drop on them "
            f"{_signed(_mean(drops[True]), 100)} points, on the others {_signed(_mean(drops[False]), 100)}")


# -- cross-validation ---------------------------------------------------------------------------
FOLD = re.compile(r"fold(\d+)$")


def pool_folds(records: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """For each (model, task, bucket, method, corruption) seen on two or more folds: one record of
    all folds' clips (split `all-folds`), its score the mean over folds."""
    groups: Dict[Tuple, List[Dict[str, Any]]] = {}
    for r in records:
        if not FOLD.match(str(r["task"].get("split", ""))):
            continue
        model, task, bucket = group_key(r)
        key = (model, r["task"]["name"], bucket, r["method"]["id"], corruption_id(r))
        groups.setdefault(key, []).append(r)
    pooled = []
    for key, rs in groups.items():
        splits = sorted({r["task"]["split"] for r in rs})
        if len(splits) < 2 or len(splits) != len(rs):
            continue
        rs = sorted(rs, key=lambda r: _fold_number(r["task"]["split"]))
        metric = next(iter(rs[0]["metrics"]))
        per_clip: Dict[str, Any] = {}
        for field in ("ids", "correct", "pred", "scores", "labels", "kept_patches", "silent_fraction"):
            values = [r["per_clip"].get(field) for r in rs]
            if all(v is not None for v in values):
                per_clip[field] = [x for v in values for x in v]
        task = dict(rs[0]["task"])
        task.update(split=POOLED_SPLIT, variant=task.get("variant", "").replace(rs[0]["task"]["split"], POOLED_SPLIT, 1),
                    folds=splits)
        value = sum(r["metrics"][metric]["value"] for r in rs) / len(rs)
        pooled.append({**rs[0], "task": task, "per_clip": per_clip, "metrics": {metric: {"value": value}},
                       "per_fold": {r["task"]["split"]: r["metrics"][metric]["value"] for r in rs}})
    return pooled


def _fold_table(base, summaries: List["MethodSummary"], comparisons: List[Comparison], index) -> List[str]:
    """Each fold's mean pruning effect per method (floor left out), the mean over folds, and the
    effect pooled over all folds' clips with its interval."""
    model, task_name, bucket = base
    folds = index.get((model, f"{task_name}/{POOLED_SPLIT}", bucket, "none", None), {}).get("per_fold", {})
    fold_names = sorted(folds, key=_fold_number)
    lines = ["", f"Cross-validation over {len(fold_names)} folds (one model per held-out fold); none's clean score per fold: "
             + ", ".join(f"{f} {100 * folds[f]:.1f}" for f in fold_names)
             + f"; mean {100 * sum(folds.values()) / max(1, len(folds)):.1f}."]
    rows = []
    for s in summaries:
        per_fold = []
        for fold in fold_names:
            fold_cs = [c for c in comparisons if c.model == model and c.task == f"{task_name}/{fold}"
                       and c.bucket == bucket and c.method == s.method and not c.near_chance]
            per_fold.append(_mean([c.effect for c in fold_cs]))
        known = [v for v in per_fold if v is not None]
        rows.append([s.name, _keep(s.keep)] + [_signed(v, 100) for v in per_fold]
                    + [_signed(sum(known) / len(known), 100) if known else "", _effect(s.effect, s.effect_ci, 100), s.verdict])
    lines += ["Pruning effect per fold (mean over conditions not at the floor, points), mean over folds, all folds' clips pooled:",
              tabulate(rows, headers=["method", "keep"] + fold_names + ["mean", "pooled [95% CI]", "answer"],
                       tablefmt="simple", disable_numparse=True)]
    return lines


# -- speed ----------------------------------------------------------------------------------------
def _speed_section(records: Sequence[Dict[str, Any]]) -> List[str]:
    """Measured speedup against none and the MAC ratio, per method and length bucket (clean)."""
    rows: "OrderedDict[Tuple[str, str], Dict[str, str]]" = OrderedDict()
    columns: List[str] = []
    none_macs: Dict[Tuple, float] = {}
    for r in records:
        if corruption_id(r) is None and r["method"]["id"] == "none":
            none_macs[group_key(r)] = r["macs"]["per_sample"]
    for r in sorted(records, key=lambda r: (_method_key(r), str(group_key(r)))):
        speed = r.get("throughput") or {}
        if corruption_id(r) is not None or speed.get("speedup_vs_none") is None:
            continue
        model, task, bucket = group_key(r)
        column = f"{bucket or 'full'}"
        if column not in columns:
            columns.append(column)
        ratio = none_macs.get(group_key(r), 0) / r["macs"]["per_sample"] if r["macs"]["per_sample"] else None
        cell = f"{speed['speedup_vs_none']:.2f}x" + (f" ({ratio:.2f})" if ratio else "")
        rows.setdefault((r["model"]["name"], r["method"]["id"]), {}).setdefault(column, cell)
    if not rows:
        return []
    columns.sort(key=_bucket_order)
    table = [[m, method] + [cells.get(c, "") for c in columns] for (m, method), cells in rows.items()]
    return ["", "Speed: measured speedup vs none (MAC ratio) per length bucket, clean input:",
            tabulate(table, headers=["model", "method"] + columns, tablefmt="simple", disable_numparse=True)]


# -- helpers ------------------------------------------------------------------------------------
def holm_significant(pvalues: Sequence[float], alpha: float = ALPHA) -> int:
    """How many hypotheses Holm's step-down procedure rejects at family-wise level alpha."""
    rejected = 0
    for i, p in enumerate(sorted(pvalues)):
        if p > alpha / (len(pvalues) - i):
            break
        rejected += 1
    return rejected


def _index(records: Sequence[Dict[str, Any]]) -> Dict[Tuple, Dict[str, Any]]:
    return {group_key(r) + (r["method"]["id"], corruption_id(r)): r for r in records}


def _missing_baselines(records: Sequence[Dict[str, Any]]) -> List[str]:
    index = _index(records)
    missing = []
    for (model, task, bucket, method, corruption), r in index.items():
        if corruption is None:
            continue
        need = [(method, None), ("none", None), ("none", corruption)]
        if any((model, task, bucket) + n not in index for n in need):
            missing.append(f"{method} on {r['task'].get('variant', task)}")
    return missing


def _num_classes(index, c: Comparison) -> Optional[int]:
    r = index.get((c.model, c.task, c.bucket, "none", None))
    return (((r or {}).get("model") or {}).get("config") or {}).get("num_classes")


def _group_order(key):
    model, task, bucket = key
    pooled = task.endswith("/" + POOLED_SPLIT)
    return (model, task.rsplit("/", 1)[0], pooled, _fold_number(task), str(bucket))


def _fold_number(task: str) -> int:
    m = FOLD.search(task)
    return int(m.group(1)) if m else 0


def _comparison_order(c: Comparison):
    return (c.method_name, -(c.keep_rate or 0), c.method, _corruption_order(c.corruption))


def _corruption_order(corruption: str):
    name, _, snr = corruption.partition("@")
    m = re.match(r"(-?[\d.]+)dB", snr)
    return (name, -float(m.group(1)) if m else 0.0, corruption)


def _method_key(r):
    keep = r["method"]["params"].get("keep_rate")
    return (r["method"]["name"] != "none", r["method"]["name"], -(keep or 0), r["method"]["id"])


def _bucket_order(column: str):
    m = re.match(r"len([\d.]+)s(-native)?$", column)
    return (column != "full", bool(m and m.group(2)), float(m.group(1)) if m else 0.0, column)


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _keep(keep: Optional[float]) -> str:
    return "" if keep is None else f"{keep:g}"


def _pct(value: Optional[float], scale: float) -> str:
    return "" if value is None else f"{scale * value:.1f}"


def _signed(value: Optional[float], scale: float, digits: int = 1) -> str:
    return "" if value is None else f"{scale * value:+.{digits}f}"


def _num(value: Optional[float], digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _p(p: Optional[float]) -> str:
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _effect(effect: Optional[float], ci, scale: float) -> str:
    if effect is None:
        return ""
    text = f"{scale * effect:+.1f}"
    if ci is not None:
        text += f" [{scale * ci[0]:+.1f}, {scale * ci[1]:+.1f}]"
    return text


def _jaccard(s: MethodSummary) -> str:
    if s.merges:
        return "n/a (merges)"
    if s.jaccard is None:
        return ""
    return f"{s.jaccard:.3f}" + (" (fixed)" if s.jaccard >= 0.9999 else "")
