"""Effective robustness: a model's noisy accuracy against the line that unpruned models lie on.

Taori et al. (NeurIPS 2020) and Miller et al. (ICML 2021, "accuracy on the line"): across a testbed
of models, probit(noisy accuracy) is close to linear in probit(clean accuracy). A weaker model is
less robust whatever made it weak; the line says how much noisy accuracy its clean accuracy buys.
Per model, task and noise condition (corruption at an SNR):

- the line: y = a x + b by least squares, x = probit(clean), y = probit(noisy) of the testbed
  members (prunebench.train.testbed: unpruned probes spread in clean accuracy), with R^2 and each
  member's residual (in probit units). Accuracies are clipped to [1/(2n), 1 - 1/(2n)] on n clips
  before the probit, so 0% and 100% stay finite;
- each grid model's (every method, `none` included) effective robustness
      ER = noisy - Phi(a * probit(clean) + b)       (a share; the report shows points)
  > 0: more robust than its clean accuracy predicts (above the line), < 0: below it;
- a paired bootstrap interval over clips: each resample draws the same clips for every record
  (members and methods, clean and noisy), refits the line on the members' resampled accuracies and
  recomputes ER, so the interval carries the line's uncertainty too; 2.5th-97.5th percentiles;
- could have detected: (z_{1-alpha/2} + z_{1-beta}) * sd(ER over the resamples), the smallest ER a
  two-sided test at alpha 0.05 finds with 80% power when ER's estimate is normal with the
  bootstrap's standard error;
- the band of the figure: the 2.5th-97.5th percentiles of the refitted lines at each clean accuracy.

No verdict, with the reason, where the line cannot be trusted: fewer than MIN_MEMBERS members
(never a fit through two or three points), a clean-accuracy spread under MIN_SPREAD, or
R^2 < MIN_R2 (accuracy is not on a line at that noise). Per method, the conditions with a line are
pooled into a mean ER with its interval (the same resamples), and into its distance from `none`'s
mean ER on the same resamples (where the unpruned model itself lies off the line, at a harsh noise,
that is what pruning adds). A method whose clean accuracy lies
outside the members' range is flagged: its ER is read off an extrapolated line.
Pure functions of records; accuracy tasks only (a clip must be right or wrong).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Collection, Dict, List, Optional, Sequence, Set, Tuple

import torch

from prunebench.analysis.paired import ALPHA, POWER, bootstrap_draws
from prunebench.analysis.robustness import common_ids, outcomes, unusable_reason
from prunebench.core.registry import BASELINE
from prunebench.metrics.accuracy import Accuracy
from prunebench.metrics.bootstrap import bootstrap_interval
from prunebench.records.record import Record, RecordLike, as_records, method_sort_key

MIN_MEMBERS = 4  # testbed members a line needs
MIN_SPREAD = 0.10  # clean-accuracy range of the members (max - min) a line needs
MIN_R2 = 0.80  # below: accuracy is not on a line at that noise, no verdict
BAND_POINTS = 41
ABOVE, BELOW, ON = "above the line", "below the line", "on the line"

GroupKey = Tuple[str, str]  # model, task id


@dataclass(frozen=True)
class Line:
    slope: float
    intercept: float
    r2: Optional[float]  # None where the members' noisy probits do not vary
    rmse: float  # of the residuals, probit units

    def predict(self, clean: float, n: int) -> float:
        """The noisy accuracy the line gives at a clean accuracy (on n clips)."""
        return float(NormalDist().cdf(self.slope * probit(clean, n) + self.intercept))


@dataclass
class Point:
    """A model on the figure: its name, clean and noisy accuracy (shares)."""

    name: str
    clean: float
    noisy: float
    residual: Optional[float] = None  # members: probit(noisy) - line, probit units
    block: Optional[int] = None  # members: the block the encoder is cut after
    epoch: Optional[int] = None  # epoch members: the fine-tuning's epoch (the whole model)

    @property
    def group(self) -> Optional[str]:
        """The members' kind for the residual table: `block k` (probes cut there) or `epochs`."""
        if self.epoch is not None:
            return "epochs"
        return None if self.block is None else f"block {self.block}"


@dataclass
class MethodER:
    method: str  # method id
    method_name: str
    keep_rate: Optional[float]
    clean: float
    noisy: float
    predicted: Optional[float]  # the line's noisy accuracy at `clean`
    er: Optional[float]  # noisy - predicted (share)
    ci95: Optional[Tuple[float, float]]
    mde: Optional[float]  # smallest |ER| detectable with 80% power
    verdict: str  # ABOVE, BELOW, ON, or "no verdict: ..."
    extrapolated: bool = False  # its clean accuracy lies outside the members' range

    @property
    def sort_key(self) -> Tuple:
        return method_sort_key(self.method_name, self.keep_rate, self.method)


@dataclass
class Condition:
    """One model, task and noise condition: the testbed's line and every method's ER."""

    model: str
    task: str
    corruption: str
    corruption_order: Tuple
    clips: int
    members: List[Point]
    line: Optional[Line]
    band: List[Tuple[float, float, float]]  # (clean, noisy lo, noisy hi), accuracies
    no_verdict: Optional[str]  # why the line gives no verdict (None: it does)
    methods: List[MethodER] = field(default_factory=list)


@dataclass
class PooledER:
    """A method's ER averaged over the conditions with a line."""

    model: str
    task: str
    method: str
    method_name: str
    keep_rate: Optional[float]
    conditions: int
    er: float
    ci95: Optional[Tuple[float, float]]
    mde: Optional[float]
    verdict: str
    # ER minus `none`'s mean ER over the same conditions and resamples (None for `none`, or without it)
    vs_none: Optional[float] = None
    vs_none_ci95: Optional[Tuple[float, float]] = None
    vs_none_mde: Optional[float] = None


@dataclass
class EffectiveRobustness:
    conditions: List[Condition]
    pooled: List[PooledER]
    notes: List[str]  # (model, task) pairs that could not be read, with the reason


# -- probit and the line ------------------------------------------------------------------------
def probit(accuracy: float, n: int) -> float:
    """Phi^-1 of an accuracy clipped to [1/(2n), 1 - 1/(2n)]."""
    eps = 1.0 / (2 * n)
    return NormalDist().inv_cdf(min(max(accuracy, eps), 1 - eps))


def _probit(acc: torch.Tensor, n: int) -> torch.Tensor:
    eps = 1.0 / (2 * n)
    return torch.special.ndtri(acc.double().clamp(eps, 1 - eps))


def fit_line(clean: Sequence[float], noisy: Sequence[float], n: int) -> Tuple[Line, List[float]]:
    """Least squares of probit(noisy) on probit(clean); the line and each point's residual."""
    x = torch.tensor([probit(c, n) for c in clean], dtype=torch.float64)
    y = torch.tensor([probit(v, n) for v in noisy], dtype=torch.float64)
    slope, intercept = _slopes(x.unsqueeze(1), y.unsqueeze(1))
    a, b = float(slope[0]), float(intercept[0])
    residuals = y - (a * x + b)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = None if total <= 1e-12 else 1.0 - float((residuals ** 2).sum()) / total
    return Line(a, b, r2, math.sqrt(float((residuals ** 2).mean()))), residuals.tolist()


def _slopes(x: torch.Tensor, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Least-squares slope and intercept of each column: x, y (points, fits)."""
    xm, ym = x.mean(0), y.mean(0)
    var = ((x - xm) ** 2).sum(0)
    slope = torch.where(var > 0, ((x - xm) * (y - ym)).sum(0) / var.clamp_min(1e-300), torch.full_like(var, float("nan")))
    return slope, ym - slope * xm


def line_rule(clean: Sequence[float], line: Optional[Line]) -> Optional[str]:
    """Why a testbed's line gives no verdict (None: it does). The rule: at least MIN_MEMBERS
    members, a clean-accuracy range of at least MIN_SPREAD, and R^2 >= MIN_R2."""
    if len(clean) < MIN_MEMBERS:
        return f"no verdict: the testbed has {len(clean)} members (a line needs {MIN_MEMBERS})"
    spread = max(clean) - min(clean)
    if spread < MIN_SPREAD:
        return (f"no verdict: the testbed's clean accuracies span {spread * 100:.1f} points "
                f"(a line needs {MIN_SPREAD * 100:g})")
    if line is None or line.r2 is None:
        return "no verdict: the testbed's noisy accuracies do not vary"
    if line.r2 < MIN_R2:
        return f"no verdict: accuracy is not on a line at this noise (R^2 {line.r2:.2f} < {MIN_R2:g})"
    return None


def direction(ci: Optional[Tuple[float, float]]) -> str:
    if ci is None:
        return "no verdict: no resample defined it"
    if ci[0] > 0:
        return ABOVE
    if ci[1] < 0:
        return BELOW
    return ON


def detectable(values: torch.Tensor, alpha: float = ALPHA, power: float = POWER) -> Optional[float]:
    """(z_{1-alpha/2} + z_{power}) * the bootstrap standard deviation."""
    values = values[~torch.isnan(values)]
    if values.numel() < 2:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * float(values.std())


# -- the records ----------------------------------------------------------------------------------
def effective_robustness(records: Sequence[RecordLike], seed: int = 0,
                         clips: Optional[Collection[str]] = None) -> EffectiveRobustness:
    """Every (model, task, noise condition) with testbed members (see the module docstring);
    `clips`: only these clip ids (e.g. the short ones), the line refitted on them."""
    records = [r for r in as_records(records) if r.ok]
    groups: Dict[GroupKey, List[Record]] = {}
    for r in records:  # clips at their own lengths (a bucket label) are a group of their own
        groups.setdefault((r.model, task_label(r)), []).append(r)
    result = EffectiveRobustness([], [], [])
    for key in sorted(groups):
        group = groups[key]
        if not any(r.testbed is not None for r in group):
            continue
        if any(r.metric != Accuracy.name for r in group):
            result.notes.append(f"{key[0]} on {key[1]}: effective robustness needs an accuracy task")
            continue
        _group(key, group, seed, result, None if clips is None else set(clips))
    return result


def task_label(r: Record) -> str:
    """The task a group is shown under: its id, and its lengths or bucket label where it has one."""
    return r.task_id if r.bucket is None else f"{r.task_id}+{r.bucket}"


def _group(key: GroupKey, group: List[Record], seed: int, result: EffectiveRobustness,
           clips: Optional[Set[str]] = None) -> None:
    members: Dict[str, Dict[Optional[str], Record]] = {}
    methods: Dict[str, Dict[Optional[str], Record]] = {}
    for r in group:
        (members.setdefault(r.testbed.member, {}) if r.testbed is not None else
         methods.setdefault(r.method.id, {}))[r.corruption_id] = r
    unusable = unusable_reason(group)
    if unusable:
        result.notes.append(f"{key[0]} on {key[1]}: {unusable}")
        return
    ids = [i for i in common_ids(group) if clips is None or i in clips]
    if len(ids) < 2:
        result.notes.append(f"{key[0]} on {key[1]}: {len(ids)} clips in common")
        return
    n = len(ids)
    draws = bootstrap_draws(n, seed)
    corruptions = sorted({c for by in members.values() for c in by if c is not None},
                         key=lambda c: next(r.corruption_order for r in group if r.corruption_id == c))
    resamples: Dict[str, List[torch.Tensor]] = {}  # method -> its ER over the resamples, per condition with a line
    points: Dict[str, List[float]] = {}
    conditions_of: Dict[str, List[str]] = {}  # method -> those conditions
    for corruption in corruptions:
        condition, resampled = _condition(key, corruption, members, methods, ids, draws)
        result.conditions.append(condition)
        for m in condition.methods if condition.no_verdict is None else []:
            if m.er is not None:
                resamples.setdefault(m.method, []).append(resampled[m.method])
                points.setdefault(m.method, []).append(m.er)
                conditions_of.setdefault(m.method, []).append(corruption)
    baseline = next((m for m in resamples if methods[m][None].method.id == BASELINE), None)
    for method in sorted(resamples, key=lambda m: _method_order(methods[m])):
        first = methods[method][None]
        stack = torch.stack(resamples[method]).mean(0)
        ci = _interval(stack)
        pooled = PooledER(key[0], key[1], method, first.method.name, first.method.keep_rate, len(points[method]),
                          sum(points[method]) / len(points[method]), ci, detectable(stack), direction(ci))
        if baseline is not None and method != baseline and conditions_of[method] == conditions_of[baseline]:
            difference = stack - torch.stack(resamples[baseline]).mean(0)
            pooled.vs_none = pooled.er - sum(points[baseline]) / len(points[baseline])
            pooled.vs_none_ci95, pooled.vs_none_mde = _interval(difference), detectable(difference)
        result.pooled.append(pooled)


def _interval(values: torch.Tensor) -> Optional[Tuple[float, float]]:
    """The 95% bootstrap interval of the resamples that define a value (None: none do)."""
    finite = values[~torch.isnan(values)]
    return tuple(bootstrap_interval(finite.tolist())) if finite.numel() else None


def _method_order(by: Dict[Optional[str], Record]) -> Tuple:
    return next(iter(by.values())).method_sort_key


@dataclass(frozen=True)
class TestbedLine:
    """One noise condition's line through the members, and its refits on every resample: what the
    effective robustness of any model on the same clips needs (prunebench.analysis.pruning_aware
    reads models of other folders against it)."""

    clean: List[float]  # the members' clean accuracies
    noisy: List[float]
    line: Optional[Line]  # None: fewer than MIN_MEMBERS members
    residuals: List[Optional[float]]
    no_verdict: Optional[str]  # line_rule's reason (None: the line gives a verdict)
    draws: torch.Tensor  # (samples, n) clip indices
    slopes: Optional[torch.Tensor] = None  # (samples,) the refitted lines
    intercepts: Optional[torch.Tensor] = None

    @property
    def n(self) -> int:
        return self.draws.shape[1]

    def er(self, clean: torch.Tensor, noisy: torch.Tensor) -> Tuple[float, float, torch.Tensor]:
        """A model's (predicted noisy accuracy, ER, ER over the resamples) from its per-clip
        outcomes (n,) clean and noisy, in the members' clip order. Needs a line."""
        n = self.n
        mc, mn = clean.double(), noisy.double()
        predicted = self.line.predict(float(mc.mean()), n)
        values = (mn @ self.draws.T / n) - torch.special.ndtr(self.slopes * _probit(mc @ self.draws.T / n, n) + self.intercepts)
        return predicted, float(mn.mean()) - predicted, values


def testbed_line(clean_v: torch.Tensor, noisy_v: torch.Tensor, draws: torch.Tensor) -> TestbedLine:
    """The line through members' per-clip outcomes (members, n) clean and noisy, refitted on every
    resample of `draws`."""
    n = draws.shape[1]
    clean, noisy = clean_v.double().mean(1).tolist(), noisy_v.double().mean(1).tolist()
    line, residuals = fit_line(clean, noisy, n) if len(clean) >= MIN_MEMBERS else (None, [None] * len(clean))
    result = TestbedLine(clean, noisy, line, residuals, line_rule(clean, line), draws)
    if line is None:
        return result
    xs, ys = _probit(clean_v.double() @ draws.T / n, n), _probit(noisy_v.double() @ draws.T / n, n)  # (members, samples)
    slopes, intercepts = _slopes(xs, ys)
    return TestbedLine(clean, noisy, line, residuals, result.no_verdict, draws, slopes, intercepts)


def _band(tl: TestbedLine) -> List[Tuple[float, float, float]]:
    """The 2.5th-97.5th percentiles of the refitted lines over the members' clean range (+-5 points)."""
    n = tl.n
    grid = torch.linspace(max(min(tl.clean) - 0.05, 0.5 / n), min(max(tl.clean) + 0.05, 1 - 0.5 / n), BAND_POINTS,
                          dtype=torch.float64)
    curves = torch.special.ndtr(tl.slopes.unsqueeze(1) * _probit(grid, n).unsqueeze(0) + tl.intercepts.unsqueeze(1))
    ok = ~torch.isnan(curves).any(1)
    if not bool(ok.any()):
        return []
    lo, hi = torch.quantile(curves[ok], 0.025, dim=0), torch.quantile(curves[ok], 0.975, dim=0)
    return [(float(g), float(a), float(b)) for g, a, b in zip(grid, lo, hi)]


def _member_order(ref) -> Tuple[int, float, int]:
    """Probes by block and share, an epoch member (whole model, all the clips) after them by epoch."""
    return ref.block, ref.train_fraction, -1 if ref.epoch is None else ref.epoch


def _condition(key: GroupKey, corruption: str, members, methods, ids: List[str], draws: torch.Tensor
               ) -> Tuple[Condition, Dict[str, torch.Tensor]]:
    n = len(ids)
    usable = {name: by for name, by in members.items() if None in by and corruption in by}
    names = sorted(usable, key=lambda m: _member_order(usable[m][None].testbed))
    clean_v = torch.stack([outcomes(usable[m][None], ids) for m in names]) if names else torch.zeros(0, n)
    noisy_v = torch.stack([outcomes(usable[m][corruption], ids) for m in names]) if names else torch.zeros(0, n)
    tl = testbed_line(clean_v, noisy_v, draws)
    line, reason = tl.line, tl.no_verdict
    points = [Point(m, c, v, r, usable[m][None].testbed.block, usable[m][None].testbed.epoch)
              for m, c, v, r in zip(names, tl.clean, tl.noisy, tl.residuals)]
    order = next(r.corruption_order for by in usable.values() for r in by.values() if r.corruption_id == corruption)
    condition = Condition(key[0], key[1], corruption, order, n, points, line, [], reason)
    if line is not None:
        condition.band = _band(tl)
    resampled: Dict[str, torch.Tensor] = {}  # method -> its ER over the resamples
    for method in sorted(methods, key=lambda m: _method_order(methods[m])):
        by = methods[method]
        if None not in by or corruption not in by:
            continue
        first = by[None]
        mc, mn = outcomes(by[None], ids).double(), outcomes(by[corruption], ids).double()
        clean_m, noisy_m = float(mc.mean()), float(mn.mean())
        if line is None:
            condition.methods.append(MethodER(method, first.method.name, first.method.keep_rate, clean_m, noisy_m,
                                              None, None, None, None, reason or "no verdict"))
            continue
        predicted, er, values = tl.er(mc, mn)
        resampled[method] = values
        ci = _interval(values)
        verdict = reason or direction(ci)
        outside = bool(tl.clean) and not (min(tl.clean) <= clean_m <= max(tl.clean))
        condition.methods.append(MethodER(method, first.method.name, first.method.keep_rate, clean_m, noisy_m,
                                          predicted, er, ci, detectable(values), verdict, outside))
    return condition, resampled
