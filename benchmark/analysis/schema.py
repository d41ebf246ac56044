"""The display schema: how every measure is labelled, scaled, formatted and ranked.

Tables, plots and sorting read these entries, so a new column needs an entry here, never a
template change. A task metric's entry comes from the metric itself (its label, unit, scale and
digits in `prunebench.metrics`), so a new metric needs none here; a metric not registered in this
process (a plugin's, not loaded) is shown with `default_metric`.
`higher_is_better` decides the best value of a column, the Pareto frontier and the first sort
direction; None means the column is not ranked.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Optional

from prunebench.core.registry import BASELINE, METRICS
from prunebench.metrics import get_metric


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str = ""  # shown in headers and axis titles
    scale: float = 1.0  # displayed = stored * scale
    digits: int = 1
    higher_is_better: Optional[bool] = None
    style: str = "fixed"  # fixed | signed (explicit +) | pvalue | integer
    description: str = ""

    def display(self, value: Any) -> Optional[float]:
        """The value in display units (None stays None)."""
        return None if value is None else float(value) * self.scale

    def format(self, value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if self.style == "pvalue":
            return "<0.001" if value < 0.001 else f"{value:.3f}"
        if self.style == "integer":
            return f"{int(round(value))}"
        shown = float(value) * self.scale
        return f"{shown:+.{self.digits}f}" if self.style == "signed" else f"{shown:.{self.digits}f}"

    @property
    def heading(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _percent(key: str, label: str, description: str = "") -> Measure:
    """A share or score stored in [0, 1], shown in percent, higher is better."""
    return Measure(key, label, "%", 100.0, 1, True, description=description)


def _points(key: str, label: str, description: str = "", style: str = "fixed") -> Measure:
    """A difference of scores, shown in percentage points, lower is better."""
    return Measure(key, label, "pp", 100.0, 1, False, style=style, description=description)


# Columns of the main and length-bucket tables.
COLUMNS: Dict[str, Measure] = {
    "mean_noisy": _percent("mean_noisy", "mean noisy", "mean score over the corruptions of the row's task"),
    "gmacs": Measure("gmacs", "GMACs", "", 1e-9, 3, False,
                     description="multiply-accumulates per sample, clean input (1 MAC = 2 FLOPs)"),
    "samples_per_s": Measure("samples_per_s", "throughput", "samples/s", 1.0, 1, True,
                             description="median over repeats, batch of the run, on the record's device"),
    "speedup": Measure("speedup", "speedup", "x", 1.0, 2, True,
                       description=f"throughput / throughput of {BASELINE}, timed interleaved in the same process"),
}

# Columns of the robustness table (prunebench.analysis.robustness.Comparison fields).
ROBUSTNESS: Dict[str, Measure] = {
    "clips": Measure("clips", "clips", style="integer"),
    "clean": _percent("clean", "clean"),
    "noisy": _percent("noisy", "noisy"),
    "drop": _points("drop", "drop", "clean - noisy"),
    "none_drop": _points("none_drop", f"drop of {BASELINE}"),
    "effect": _points("effect", "pruning effect", f"drop(method) - drop({BASELINE}) on the same clips; > 0: pruning "
                      "makes noise cost more", style="signed"),
    "flip_effect": _points("flip_effect", "flip effect", f"flip rate(method) - flip rate({BASELINE}): of the clips both "
                           "get right clean, the share the noise turns wrong; > 0: pruning makes noise cost more",
                           style="signed"),
    "flip_p": Measure("flip_p", "p", style="pvalue",
                      description=f"exact McNemar test of the flips, method against {BASELINE}, on the clips both get right clean"),
    "mcnemar_p": Measure("mcnemar_p", "p", style="pvalue",
                         description=f"exact McNemar test, noisy outcomes of the method against {BASELINE}"),
    "retention": _percent("retention", "retention", "noisy / clean"),
    "consistency": _percent("consistency", "consistency", "share of clips whose prediction the noise leaves unchanged"),
    "jaccard": Measure("jaccard", "selection Jaccard", "", 1.0, 2, True,
                       description="overlap of the patches kept on the clean and the noisy clip"),
}

# Axes of the plots.
AXES: Dict[str, Measure] = {
    "gmacs": COLUMNS["gmacs"],
    "samples_per_s": COLUMNS["samples_per_s"],
    "snr_db": Measure("snr_db", "SNR", "dB", 1.0, 0, None),
    "keep_rate": Measure("keep_rate", "keep rate", "", 1.0, 2, None),
}


def metric(name: str) -> Measure:
    """The display entry of a task metric (the score columns: clean, each corruption, mean noisy),
    as the registered metric shows itself; a metric unknown here gets `default_metric`."""
    if name not in METRICS:
        return default_metric(name)
    m = get_metric(name)
    return Measure(m.name, m.label, m.unit, m.scale, m.digits, m.higher_is_better, description=m.description)


def default_metric(name: str) -> Measure:
    return Measure(name, name, "", 1.0, 3, True, description="no display entry: shown as stored")


def score_measure(metric_name: str, key: str, label: str) -> Measure:
    """A score column (clean, a corruption) formatted as the task's metric."""
    return replace(metric(metric_name), key=key, label=label)
