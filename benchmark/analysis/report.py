"""`prunebench report DIR`: the research question answered in plain text for a results folder.

For each model, task and length bucket, and each pruned method and keep rate: does pruning make
noise cost more than it costs the unpruned model (the baseline, `none`) on the same clips, by how
much, and how sure? The answer is the conditional flip rate: among the clips both the method and
the baseline get right clean, the share the noise turns wrong, method minus baseline, with its
paired bootstrap interval, McNemar's exact p on those clips, and the smallest flip effect the
comparison could have detected (80% power); a drop in points would credit a method that is worse
clean for having less to lose. Beside it, per condition (corruption at an SNR): the drop effect
(drop(method) - drop(baseline), in points) and the retention effect with their intervals,
prediction consistency, the chance-floor flag and selection stability. Per method and keep rate
the conditions not at the floor are pooled into mean effects with paired bootstrap intervals (the
same clip draws for every condition). For cross-validated runs
(several folds of one task) it shows each fold and the mean over folds, and pools the folds' clips
(each clip is evaluated once, by the model that did not train on it). A pure function of the
records; the statistics are `prunebench.analysis.robustness.compare`'s, the same the leaderboard
shows.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from tabulate import tabulate

from prunebench.analysis.effective import effective_robustness
from prunebench.analysis.effective_report import effective_section
from prunebench.analysis.paired import ALPHA
from prunebench.analysis.speed import ISO_SPEEDS, iso_speed_table, speed_curves
from prunebench.analysis.token_placement_report import placement_section
from prunebench.analysis.robustness import (DEGRADES, IMPROVES, NO_EFFECT, NO_VERDICT, Comparison, Key, NoVerdict, Pooled,
                                           common_ids, compare, index_records, merges_only, outcomes, pool)
from prunebench.core.registry import BASELINE
from prunebench.metrics import get_metric
from prunebench.records.record import POOLED_SPLIT, Record, RecordLike, as_records, load_results

Index = Dict[Key, Record]
QUESTION = [
    "Question: does token pruning, tuned for throughput, make noise cost more than it costs the",
    f"unpruned model? Flip effect = flip rate(method) - flip rate({BASELINE}), in points: among the clips both",
    "get right clean, the share the noise turns wrong; > 0: pruning degrades robustness. The answer: the",
    "flip effect's 95% interval (paired bootstrap over clips) excludes 0 and p < 0.05 (McNemar's exact test",
    "on those clips; pooled over conditions: sign-flip permutation test of the clips' mean flip differences).",
    "'could have detected >= X': the smallest flip effect found with 80% power at p < 0.05, computed under",
    "the alternative (Connor 1987 for one condition; pooled: its form for per-clip mean differences).",
    f"Beside it: drop effect = drop(method) - drop({BASELINE}) and retention effect = noisy/clean(method) -",
    f"noisy/clean({BASELINE}), which credit a method that is worse clean for having less to lose. floor:",
    f"{BASELINE}'s noisy score is within its interval of chance (left out of pooling).",
]


def report_folder(results_dir: str | Path, seed: int = 0) -> str:
    return build_report(load_results(results_dir, testbed=True), str(results_dir), seed)


def build_report(records: Sequence[RecordLike], source: str = "records", seed: int = 0) -> str:
    """The report of the grid's records; testbed members among them feed the effective-robustness
    section alone."""
    every = as_records(records)
    effective, effective_answers = effective_section(effective_robustness(every, seed))
    records = [r for r in every if r.testbed is None]
    ok = [r for r in records if r.ok]
    not_ok = len(records) - len(ok)
    pooled = pool_folds(ok)
    unusable: List[NoVerdict] = []
    comparisons = compare(ok + pooled, seed, unusable)
    lines = [f"prunebench report: {source}",
             f"{len(ok)} records" + (f" ({not_ok} not ok, left out)" if not_ok else "")
             + f"; models: {', '.join(sorted({r.model for r in ok})) or 'none'}"]
    if not ok:
        return "\n".join(lines + ["nothing to report"]) + "\n"
    lines += [""] + QUESTION
    answers: List[str] = []
    index = index_records(ok + pooled)
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
    no_verdict = _no_verdict_lines(unusable)
    lines += [""] + no_verdict if no_verdict else []
    answers += no_verdict
    lines += effective
    answers += effective_answers
    lines += _speed_section(ok)
    lines += _iso_speed_section(ok, comparisons, seed)
    lines += placement_section(ok)
    missing = _missing_baselines(ok)
    if missing:
        lines += ["", f"Not compared (no clean or no `{BASELINE}` record to pair with): " + ", ".join(missing[:12])
                  + (f" and {len(missing) - 12} more" if len(missing) > 12 else "")]
    head = ["", "ANSWER"] + (answers or ["no method has the four records a comparison needs "
                                         f"(method and {BASELINE}, clean and noisy)"])
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
    pooled: Optional[Pooled] = None  # metrics with flips (accuracy): pooled drop, flip and retention effects
    flip_rate: Optional[float] = None  # mean over the usable conditions
    none_flip_rate: Optional[float] = None


def _group_section(model, task, bucket, group: List[Comparison], index: Index,
                   seed) -> Tuple[List[str], List[str], List["MethodSummary"]]:
    """The section's lines, its answer lines, and its per-method summaries (reused by the fold table)."""
    first = group[0]
    scale = 100.0
    scorer = get_metric(first.metric)
    unit = scorer.unit
    where = f"{model} on {task}" + (f" at {bucket}" if bucket else "") + f" ({first.clips} clips, {first.metric}"
    classes = _num_classes(index, first)
    chance = scorer.chance(classes) if classes else None
    if chance is not None:
        where += f", chance {scorer.format(chance)}"
    lines = [f"== {where}) ==", _baseline_line(group, unit)]
    silence = _silence_line(group, index)
    if silence:
        lines.append(silence)
    summaries = _summaries(group, index, seed)
    lines += _summary_table(summaries, scale) + _condition_table(group, scale) + _mcnemar_lines(group)
    answers = [f"{where}):"]
    for s in summaries:
        answers.append(f"  {s.name}{'' if s.keep is None else ' keep ' + _keep(s.keep)}: {_sentence(s, scale)}")
    return lines, answers, summaries


def _summary_table(summaries: List[MethodSummary], scale: float) -> List[str]:
    table = []
    for s in summaries:
        p = s.pooled
        table.append([s.name, _keep(s.keep), _pct(s.clean, scale), _signed(s.clean - s.none_clean, scale),
                      _effect(p.flip_effect, p.flip_effect_ci95, scale) if p else "", _p(p.flip_p) if p else "",
                      _effect(s.effect, s.effect_ci, scale),
                      f"{s.degrades}/{s.improves}/{len(s.effects) - s.degrades - s.improves}" + (f" (+{s.floored} floor)" if s.floored else ""),
                      _effect(p.retention_effect, p.retention_effect_ci95, 1, 3) if p else "",
                      _num(s.consistency, 3), _jaccard(s), _signed(s.intensity, 1, 2), _num(s.padding, 2),
                      s.verdict + _could_have_detected(s.verdict, p.flip_mde if p else None, p is not None)])
    return ["", "Per method and keep rate (conditions pooled, floor left out; flip and drop effects in points):",
            tabulate(table, headers=["method", "keep", "clean", f"vs {BASELINE}", "flip effect [95% CI]", "p",
                                     "drop effect [95% CI]", "worse/better/n.s.", "retention effect [95% CI]",
                                     "consistency", "jaccard", "kept-dropped int.", "pad kept", "answer"],
                     tablefmt="simple", disable_numparse=True)]


def _condition_table(group: List[Comparison], scale: float) -> List[str]:
    detail = []
    for c in sorted(group, key=_comparison_order):
        flags = ["floor"] if c.near_chance else []
        if c.flip_mcnemar_p is not None and c.flip_mcnemar_p < ALPHA:
            flags.append("p<0.05")
        flips = "" if c.flip_rate is None else f"{_pct(c.flip_rate, scale)}/{_pct(c.none_flip_rate, scale)} of {c.flip_clips}"
        detail.append([c.method_name, _keep(c.keep_rate), c.corruption, _pct(c.noisy, scale), flips,
                       _effect(c.flip_effect, c.flip_effect_ci95, scale), _p(c.flip_mcnemar_p),
                       _signed(c.drop, scale), _signed(c.none_drop, scale), _effect(c.effect, c.effect_ci95, scale),
                       _effect(c.retention_effect, c.retention_effect_ci95, 1, 3), _num(c.consistency, 3),
                       _num(c.jaccard, 3), " ".join(flags),
                       c.flip_verdict + _could_have_detected(c.flip_verdict, c.flip_mde, c.flip_clips is not None)])
    return ["", f"Per condition (flips: % of the clips right clean for both that the noise turns wrong, method/{BASELINE}):",
            tabulate(detail, headers=["method", "keep", "noise", "noisy", "flips", "flip effect [95% CI]", "p",
                                      "drop", f"{BASELINE} drop", "drop effect [95% CI]", "retention effect [95% CI]",
                                      "consistency", "jaccard", "flags", "answer"], tablefmt="simple", disable_numparse=True)]


def _mcnemar_lines(group: List[Comparison]) -> List[str]:
    tested = [c for c in group if c.flip_mcnemar_p is not None]
    if not tested:
        return []
    raw = sum(c.flip_mcnemar_p < ALPHA for c in tested)
    holm = holm_significant([c.flip_mcnemar_p for c in tested])
    return [f"McNemar (flips): {raw} of {len(tested)} comparisons at p < {ALPHA} ({holm} after Holm's correction "
            f"for {len(tested)} tests; about {ALPHA * len(tested):.1f} expected by chance alone)."]


def _summaries(group: List[Comparison], index: Index, seed) -> List[MethodSummary]:
    by_method: "OrderedDict[str, List[Comparison]]" = OrderedDict()
    for c in sorted(group, key=_comparison_order):
        by_method.setdefault(c.method, []).append(c)
    out = []
    for method, cs in by_method.items():
        usable = [c for c in cs if not c.near_chance]
        effects = [c.effect for c in usable]
        pooled = pool(index, usable, seed) if usable and get_metric(usable[0].metric).flips else None
        effect = pooled.effect if pooled else (sum(effects) / len(effects) if usable else None)
        first = cs[0]
        clean_record = index.get((first.model, first.task, first.bucket, method, None))
        selection = clean_record.selection if clean_record is not None else {}
        out.append(MethodSummary(
            method=method, name=first.method_name, keep=first.keep_rate, clean=first.clean, none_clean=first.none_clean,
            effects=effects, effect=effect, effect_ci=pooled.effect_ci95 if pooled else None,
            degrades=sum(c.flip_direction == DEGRADES for c in usable),
            improves=sum(c.flip_direction == IMPROVES for c in usable), floored=len(cs) - len(usable),
            retention=_mean([c.retention for c in usable]), consistency=_mean([c.consistency for c in usable]),
            jaccard=_mean([c.jaccard for c in usable]), merges=merges_only(clean_record),
            intensity=selection.get("kept_minus_dropped"), padding=selection.get("kept_padding_share"),
            verdict=_verdict(pooled, usable), pooled=pooled, flip_rate=_mean([c.flip_rate for c in usable]),
            none_flip_rate=_mean([c.none_flip_rate for c in usable]),
        ))
    return out


def _verdict(pooled: Optional[Pooled], usable: List[Comparison]) -> str:
    if not usable:
        return "every condition at the chance floor: no answer"
    if pooled is None:
        return "mean drop effect only (no flip rate or pooled interval for mAP)"
    return pooled.direction


def _sentence(s: MethodSummary, scale: float) -> str:
    if s.effect is None:
        return s.verdict + "."
    p = s.pooled
    text = s.verdict
    if p is not None and p.flip_effect is not None:
        text += _could_have_detected(s.verdict, p.flip_mde)
        text += (f": flip effect {_effect(p.flip_effect, p.flip_effect_ci95, scale)} points, p {_p(p.flip_p)} "
                 f"({_pct(s.flip_rate, scale)}% vs {_pct(s.none_flip_rate, scale)}% of {p.flip_clips} clips right clean "
                 f"for both flipped); drop effect {_effect(s.effect, s.effect_ci, scale)}")
    else:
        text += f": drop effect {_effect(s.effect, s.effect_ci, scale)} points"
    text += f" over {len(s.effects)} condition(s); individually worse in {s.degrades}, better in {s.improves}"
    if p is not None and p.retention_effect is not None:
        text += f"; retention effect {_effect(p.retention_effect, p.retention_effect_ci95, 1, 3)}"
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


def _no_verdict_lines(unusable: List[NoVerdict]) -> List[str]:
    """The comparisons whose records cannot be compared, each with its reason (left out of every
    table and pooled figure; the rest of the report stands without them)."""
    if not unusable:
        return []
    lines = ["Not compared (the records cannot support a verdict; left out of every table and pooled figure):"]
    for u in sorted(unusable, key=lambda u: (u.model, u.task, str(u.bucket), u.method, u.corruption)):
        where = f"{u.model} on {u.task}" + (f" at {u.bucket}" if u.bucket else "")
        keep = "" if u.keep_rate is None else f" keep {_keep(u.keep_rate)}"
        lines.append(f"  {u.method_name}{keep} under {u.corruption} ({where}): {NO_VERDICT}: {u.reason}.")
    return lines


def _could_have_detected(direction: str, mde: Optional[float], flips: bool = True) -> str:
    """Beside "no detectable effect": how large a flip effect the comparison would have found
    (nothing where there is no flip rate: mAP tasks)."""
    if not flips or not direction.startswith(NO_EFFECT):
        return ""
    if mde is None:
        return " (too few clips to detect any flip effect)"
    return f" (could have detected >= {100 * mde:.1f} points)"


def _baseline_line(group: List[Comparison], unit: str) -> str:
    seen = OrderedDict()
    for c in sorted(group, key=_comparison_order):
        seen.setdefault(c.corruption, c)
    c0 = next(iter(seen.values()))
    parts = [f"clean {_pct(c0.none_clean, 100)}{unit}"]
    parts += [f"{c.corruption} {_pct(c.none_noisy, 100)}{unit} (drop {_signed(c.none_drop, 100)})" for c in seen.values()]
    return f"{BASELINE}: " + "; ".join(parts)


SILENT = 0.25  # clips with at least this share of digitally silent frames


def _silence_line(group: List[Comparison], index: Index) -> Optional[str]:
    """The baseline's drop on clips with much digital silence against the others (metrics with flips):
    noise changes the log-mel of silence wholesale, so such clips can dominate the drop."""
    c0 = group[0]
    clean = index.get((c0.model, c0.task, c0.bucket, BASELINE, None))
    if not get_metric(c0.metric).flips or not clean or clean.clips.silent_fraction is None:
        return None
    silent_ids = {i for i, f in zip(clean.clips.ids, clean.clips.silent_fraction) if f >= SILENT}
    if not silent_ids or len(silent_ids) == len(clean.clips.ids):
        return None
    drops = {True: [], False: []}
    for corruption in sorted({c.corruption for c in group}):
        noisy = index.get((c0.model, c0.task, c0.bucket, BASELINE, corruption))
        if noisy is None:
            continue
        ids = common_ids([clean, noisy])
        a, b = outcomes(clean, ids).float(), outcomes(noisy, ids).float()
        is_silent = torch.tensor([i in silent_ids for i in ids])
        for flag in (True, False):
            part = is_silent if flag else ~is_silent
            if bool(part.any()):
                drops[flag].append(float(a[part].mean() - b[part].mean()))
    if not drops[True] or not drops[False]:
        return None
    return (f"digital silence: {len(silent_ids)} clips have >= {SILENT:.0%} silent frames; {BASELINE}'s mean drop on them "
            f"{_signed(_mean(drops[True]), 100)} points, on the others {_signed(_mean(drops[False]), 100)}")


# -- cross-validation ---------------------------------------------------------------------------
FOLD = re.compile(r"fold(\d+)$")


def pool_folds(records: Sequence[RecordLike]) -> List[Record]:
    """For each (model, task, bucket, method, corruption) seen on two or more folds: one record of
    all folds' clips (`Record.pooled`); a testbed member pools with itself alone."""
    groups: Dict[Tuple, List[Record]] = {}
    for r in as_records(records):
        if FOLD.match(r.split):
            member = r.testbed.member if r.testbed is not None else None
            groups.setdefault((r.model, member, r.task, r.bucket, r.method.id, r.corruption_id), []).append(r)
    pooled = []
    for rs in groups.values():
        splits = sorted({r.split for r in rs})
        if len(splits) < 2 or len(splits) != len(rs):
            continue
        pooled.append(Record.pooled(sorted(rs, key=lambda r: _fold_number(r.split))))
    return pooled


def _fold_table(base, summaries: List["MethodSummary"], comparisons: List[Comparison], index: Index) -> List[str]:
    """Each fold's mean pruning effect per method (floor left out), the mean over folds, and the
    effect pooled over all folds' clips with its interval."""
    model, task_name, bucket = base
    pooled_baseline = index.get((model, f"{task_name}/{POOLED_SPLIT}", bucket, BASELINE, None))
    folds = pooled_baseline.per_fold if pooled_baseline is not None else {}
    fold_names = sorted(folds, key=_fold_number)
    lines = ["", f"Cross-validation over {len(fold_names)} folds (one model per held-out fold); {BASELINE}'s clean score per fold: "
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
                    + [_signed(sum(known) / len(known), 100) if known else "", _effect(s.effect, s.effect_ci, 100),
                       _effect(s.pooled.flip_effect, s.pooled.flip_effect_ci95, 100) if s.pooled else "", s.verdict])
    lines += ["Drop effect per fold (mean over conditions not at the floor, points), mean over folds, all folds' clips pooled;",
              "the answer is the pooled flip effect's:",
              tabulate(rows, headers=["method", "keep"] + fold_names + ["mean", "pooled [95% CI]", "flip effect [95% CI]", "answer"],
                       tablefmt="simple", disable_numparse=True)]
    return lines


# -- speed ----------------------------------------------------------------------------------------
def _speed_section(records: Sequence[Record]) -> List[str]:
    """Measured speedup against the baseline and the MAC ratio, per method and length bucket (clean)."""
    rows: "OrderedDict[Tuple[str, str], Dict[str, str]]" = OrderedDict()
    columns: Dict[str, Tuple] = {}  # bucket label -> its order
    baseline_macs: Dict[Tuple, float] = {}
    for r in records:
        if r.corruption is None and r.method.id == BASELINE:
            baseline_macs[r.group] = r.macs
    for r in sorted(records, key=lambda r: (r.method_sort_key, str(r.group))):
        speedup = r.throughput.get("speedup_vs_none")
        if r.corruption is not None or speedup is None:
            continue
        columns.setdefault(r.bucket_label, r.bucket_order)
        ratio = baseline_macs.get(r.group, 0) / r.macs if r.macs else None
        cell = f"{speedup:.2f}x" + (f" ({ratio:.2f})" if ratio else "")
        rows.setdefault((r.model, r.method.id), {}).setdefault(r.bucket_label, cell)
    if not rows:
        return []
    ordered = sorted(columns, key=columns.get)
    table = [[m, method] + [cells.get(c, "") for c in ordered] for (m, method), cells in rows.items()]
    return ["", f"Speed: measured speedup vs {BASELINE} (MAC ratio) per length bucket, clean input:",
            tabulate(table, headers=["model", "method"] + ordered, tablefmt="simple", disable_numparse=True)]


def _iso_speed_section(records: Sequence[Record], comparisons: Sequence[Comparison], seed: int) -> List[str]:
    """Each method at equal measured speed (analysis.speed): keep rate, clean score, robustness effect."""
    rows = iso_speed_table(speed_curves(records, seed, comparisons))
    if not rows:
        return []
    headers = ["model", "task", "bucket", "method"] + [f"at {s:g}x" for s in ISO_SPEEDS]
    return ["", f"At equal measured speed (speedup vs {BASELINE}, this machine): keep rate, clean score, robustness "
                "effect in points (flip effect; drop effect for mAP); ~ interpolated between two measured "
                "configurations, empty outside the measured range:",
            tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)]


# -- helpers ------------------------------------------------------------------------------------
def holm_significant(pvalues: Sequence[float], alpha: float = ALPHA) -> int:
    """How many hypotheses Holm's step-down procedure rejects at family-wise level alpha."""
    rejected = 0
    for i, p in enumerate(sorted(pvalues)):
        if p > alpha / (len(pvalues) - i):
            break
        rejected += 1
    return rejected


def _missing_baselines(records: Sequence[Record]) -> List[str]:
    index = index_records(records)
    missing = []
    for (model, task, bucket, method, corruption), r in index.items():
        if corruption is None:
            continue
        need = [(method, None), (BASELINE, None), (BASELINE, corruption)]
        if any((model, task, bucket) + n not in index for n in need):
            missing.append(f"{method} on {r.variant or task}")
    return missing


def _num_classes(index: Index, c: Comparison) -> Optional[int]:
    r = index.get((c.model, c.task, c.bucket, BASELINE, None))
    return None if r is None else r.num_classes


def _group_order(key):
    model, task, bucket = key
    pooled = task.endswith("/" + POOLED_SPLIT)
    return (model, task.rsplit("/", 1)[0], pooled, _fold_number(task), str(bucket))


def _fold_number(task: str) -> int:
    m = FOLD.search(task)
    return int(m.group(1)) if m else 0


def _comparison_order(c: Comparison) -> Tuple:
    return (c.method_sort_key, c.corruption_order)


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


def _effect(effect: Optional[float], ci, scale: float, digits: int = 1) -> str:
    if effect is None:
        return ""
    text = f"{scale * effect:+.{digits}f}"
    if ci is not None:
        text += f" [{scale * ci[0]:+.{digits}f}, {scale * ci[1]:+.{digits}f}]"
    return text


def _jaccard(s: MethodSummary) -> str:
    if s.merges:
        return "n/a (merges)"
    if s.jaccard is None:
        return ""
    return f"{s.jaccard:.3f}" + (" (fixed)" if s.jaccard >= 0.9999 else "")
