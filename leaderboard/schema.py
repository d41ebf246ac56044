"""The display schema: how every measure is labelled, scaled, formatted and ranked.

Tables, plots and sorting read these entries, so a new metric or column needs an entry here (or
none at all: an unknown metric is shown with `default_metric`), never a template change.
`higher_is_better` decides the best value of a column, the Pareto frontier and the first sort
direction; None means the column is not ranked.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Optional


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


# Task metrics: the score columns (clean, each corruption, mean noisy) use these.
METRICS: Dict[str, Measure] = {
    "accuracy": Measure("accuracy", "accuracy", "%", 100.0, 1, True, description="top-1 accuracy"),
    "map": Measure("map", "mAP", "%", 100.0, 1, True, description="macro average precision"),
}

# Columns of the main and length-bucket tables.
COLUMNS: Dict[str, Measure] = {
    "mean_noisy": Measure("mean_noisy", "mean noisy", "%", 100.0, 1, True,
                          description="mean score over the corruptions of the row's task"),
    "gmacs": Measure("gmacs", "GMACs", "", 1e-9, 3, False,
                     description="multiply-accumulates per sample, clean input (1 MAC = 2 FLOPs)"),
    "samples_per_s": Measure("samples_per_s", "throughput", "samples/s", 1.0, 1, True,
                             description="median over repeats, batch of the run, on the record's device"),
    "speedup": Measure("speedup", "speedup", "x", 1.0, 2, True,
                       description="throughput / throughput of none, timed interleaved in the same process"),
}

# Columns of the robustness table (benchmark.analysis.robustness.Comparison fields).
ROBUSTNESS: Dict[str, Measure] = {
    "clips": Measure("clips", "clips", style="integer"),
    "clean": Measure("clean", "clean", "%", 100.0, 1, True),
    "noisy": Measure("noisy", "noisy", "%", 100.0, 1, True),
    "drop": Measure("drop", "drop", "pp", 100.0, 1, False, description="clean - noisy"),
    "none_drop": Measure("none_drop", "drop of none", "pp", 100.0, 1, False),
    "effect": Measure("effect", "pruning effect", "pp", 100.0, 1, False, style="signed",
                      description="drop(method) - drop(none) on the same clips; > 0: pruning makes noise cost more"),
    "mcnemar_p": Measure("mcnemar_p", "p", style="pvalue",
                         description="exact McNemar test, noisy outcomes of the method against none"),
    "retention": Measure("retention", "retention", "%", 100.0, 1, True, description="noisy / clean"),
    "consistency": Measure("consistency", "consistency", "%", 100.0, 1, True,
                           description="share of clips whose prediction the noise leaves unchanged"),
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
    """The display entry of a task metric; unknown metrics get `default_metric`."""
    return METRICS.get(name) or default_metric(name)


def default_metric(name: str) -> Measure:
    return Measure(name, name, "", 1.0, 3, True, description="no display entry: shown as stored")


def score_measure(metric_name: str, key: str, label: str) -> Measure:
    """A score column (clean, a corruption) formatted as the task's metric."""
    return replace(metric(metric_name), key=key, label=label)
