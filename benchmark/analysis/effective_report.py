"""The report's effective-robustness section: the testbed's line per noise condition, how well it
fits, and every method's distance from it (prunebench.analysis.effective computes them)."""
from __future__ import annotations

from typing import List, Optional, Tuple

from tabulate import tabulate

from prunebench.analysis.effective import (MIN_MEMBERS, MIN_R2, MIN_SPREAD, Condition, EffectiveRobustness,
                                           MethodER, PooledER)

INTRO = [
    "Effective robustness (Taori et al. 2020; Miller et al. 2021): noisy accuracy minus what the line",
    "through the unpruned testbed models gives at the same clean accuracy, probit(noisy) = a * probit(clean) + b;",
    "< 0: less robust than its clean accuracy predicts (below the line), > 0: more. Interval: paired bootstrap",
    "over clips, the line refitted in every resample. 'could have detected': (z_0.975 + z_0.8) * the bootstrap sd.",
    f"No verdict where the testbed has fewer than {MIN_MEMBERS} members, its clean accuracies span under "
    f"{MIN_SPREAD * 100:g} points,",
    f"or R^2 < {MIN_R2:g} (accuracy is not on a line at that noise). '*': clean accuracy outside the testbed's range.",
]


def effective_section(result: EffectiveRobustness) -> Tuple[List[str], List[str]]:
    """(the section's lines, its answer lines)."""
    if not result.conditions and not result.notes:
        return [], []
    lines = ["", "EFFECTIVE ROBUSTNESS"] + INTRO
    answers: List[str] = []
    groups = sorted({(c.model, c.task) for c in result.conditions})
    for model, task in groups:
        conditions = sorted((c for c in result.conditions if (c.model, c.task) == (model, task)),
                            key=lambda c: c.corruption_order)
        lines += [""] + _group_lines(model, task, conditions)
        pooled = [p for p in result.pooled if (p.model, p.task) == (model, task)]
        if pooled:
            table = [[p.method_name, _keep(p.keep_rate), p.conditions, _points(p.er), _ci(p.ci95), _mde(p.mde), p.verdict,
                      _points(p.vs_none), _ci(p.vs_none_ci95), _mde(p.vs_none_mde)] for p in pooled]
            lines += ["", "Mean over the conditions on a line (the same resamples); 'vs none': ER minus none's mean ER,",
                      "what pruning adds where the unpruned model itself lies off the line:",
                      tabulate(table, headers=["method", "keep", "conditions", "ER", "[95% CI]", "could have detected",
                                               "verdict", "vs none", "[95% CI]", "could have detected"],
                               tablefmt="simple", disable_numparse=True)]
            answers += [_answer(model, task, p) for p in pooled]
        lines += [f"{model} on {task}: no noise condition has a line (no verdict)"] if not pooled else []
    lines += [f"Not read: {note}" for note in result.notes]
    return lines, answers


def _answer(model: str, task: str, p: PooledER) -> str:
    keep = f" keep {_keep(p.keep_rate)}" if p.keep_rate is not None else ""
    vs_none = f"; {_points(p.vs_none)} {_ci(p.vs_none_ci95)} vs none" if p.vs_none is not None else ""
    return (f"{model} on {task}, effective robustness, {p.method_name}{keep}: {_points(p.er)} points {_ci(p.ci95)} "
            f"over {p.conditions} conditions: {p.verdict} (could have detected {_mde(p.mde)}){vs_none}")


def _group_lines(model: str, task: str, conditions: List[Condition]) -> List[str]:
    first = conditions[0]
    cleans = [p.clean for p in first.members]
    span = f", clean {min(cleans) * 100:.1f}-{max(cleans) * 100:.1f}%" if cleans else ""
    lines = [f"== {model} on {task} ({first.clips} clips; testbed: {len(first.members)} members{span}) =="]
    fits = []
    for c in conditions:
        worst = max((p for p in c.members if p.residual is not None), key=lambda p: abs(p.residual), default=None)
        fit = c.line
        fits.append([c.corruption, len(c.members), _num(fit and fit.slope), _num(fit and fit.intercept),
                     _num(fit and fit.r2), _num(fit and fit.rmse),
                     f"{worst.name} {worst.residual:+.2f}" if worst else "", c.no_verdict or "line"])
    lines += ["The line per condition (probit units; residual: probit(noisy) - line):",
              tabulate(fits, headers=["condition", "members", "slope", "intercept", "R^2", "rmse", "largest residual",
                                      "verdict"], tablefmt="simple", disable_numparse=True)]
    lines += _residuals_by_block(conditions)
    rows = [[m.method_name, _keep(m.keep_rate), c.corruption, _pct(m.clean) + ("*" if m.extrapolated else ""),
             _pct(m.noisy), _pct(m.predicted), _points(m.er), _ci(m.ci95), _mde(m.mde), m.verdict]
            for c in conditions for m in sorted(c.methods, key=_method_key)]
    lines += ["", tabulate(rows, headers=["method", "keep", "condition", "clean", "noisy", "line", "ER", "[95% CI]",
                                          "could have detected", "verdict"], tablefmt="simple", disable_numparse=True)]
    return lines


def _residuals_by_block(conditions: List[Condition]) -> List[str]:
    """Where the line fits badly: the members' mean residual per block (a testbed mixes depths),
    and over the epoch members (the fine-tuning's trajectory) where there are any."""
    groups = sorted({p.group for c in conditions for p in c.members if p.group is not None},
                    key=lambda g: (g == "epochs", int(g.split()[1]) if g != "epochs" else 0))
    if len(groups) < 2:
        return []
    rows = []
    for c in conditions:
        cells = []
        for g in groups:
            res = [p.residual for p in c.members if p.group == g and p.residual is not None]
            cells.append(f"{sum(res) / len(res):+.2f}" if res else "")
        rows.append([c.corruption] + cells)
    return ["", "Mean residual of the members cut after each block, and of the epoch members (probit units):",
            tabulate(rows, headers=["condition"] + groups, tablefmt="simple", disable_numparse=True)]


def _method_key(m: MethodER) -> Tuple:
    return m.sort_key


def _keep(keep: Optional[float]) -> str:
    return "" if keep is None else f"{keep:g}"


def _pct(value: Optional[float]) -> str:
    return "" if value is None else f"{value * 100:.1f}"


def _points(value: Optional[float]) -> str:
    return "" if value is None else f"{value * 100:+.1f}"


def _ci(ci: Optional[Tuple[float, float]]) -> str:
    return "" if ci is None else f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"


def _mde(value: Optional[float]) -> str:
    return "" if value is None else f">= {value * 100:.1f}"


def _num(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.3f}"
