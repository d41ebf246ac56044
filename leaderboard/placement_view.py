"""The "where the tokens go" figures: one per model and task (prunebench.analysis.token_placement).

A 2-D grid (an audio ViT's patches): per method, the keep frequency by mel-band row and time span,
clean beside the noisiest condition, as heatmaps. A 1-D encoder (Whisper: one row of tokens over
time): the time profile, keep frequency per span of the clip, one line per method, clean and at the
noisiest condition. Records of several folds of one task are pooled.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional

from markupsafe import Markup

from prunebench.analysis.table import group_title
from prunebench.analysis.token_placement import SPANS, Placement, by_group, noisiest, placements, pool_splits
from prunebench.leaderboard.plots import Series, heatmap_plot, line_plot
from prunebench.records.record import RecordLike


@dataclass
class PlacementGroup:
    model: str
    task: str
    bucket: Optional[str]
    figures: List[Markup] = field(default_factory=list)
    not_placed: List[str] = field(default_factory=list)  # "label: reason"

    @property
    def title(self) -> str:
        return group_title(self.model, self.task, self.bucket or "full")


def placement_groups(records: Iterable[RecordLike], colors: Dict[str, str]) -> List[PlacementGroup]:
    out = []
    for (model, task, bucket), items in by_group(pool_splits(placements(list(records)))).items():
        placed = [p for p in items if p.no_selection is None and p.keep is not None]
        group = PlacementGroup(model, task, bucket)
        group.not_placed = list(dict.fromkeys(f"{p.label}: {p.no_selection}" for p in items if p.no_selection))
        if placed:
            worst = noisiest(placed)
            group.figures = _heatmaps(placed, worst) if placed[0].rows > 1 else _profiles(placed, worst, colors)
        if group.figures or group.not_placed:
            out.append(group)
    return out


def _heatmaps(placed: List[Placement], worst: Optional[str]) -> List[Markup]:
    figures = []
    for method in dict.fromkeys(p.method for p in placed):
        mine = {p.variant: p for p in placed if p.method == method}
        if "clean" not in mine:
            continue
        clean = mine["clean"]
        panels = [("clean", clean.keep_frequency(SPANS))]
        if worst in mine:
            panels.append((worst, mine[worst].keep_frequency(SPANS)))
        jaccard = mine[worst].jaccard if worst in mine else None
        title = clean.label + (f" (J {jaccard:.2f})" if jaccard is not None else "")
        figures.append(heatmap_plot(panels, f"time, {SPANS} spans of the clip", "mel band (row)", title))
    return figures


def _profiles(placed: List[Placement], worst: Optional[str], colors: Dict[str, str]) -> List[Markup]:
    figures = []
    ticks = [(s + 0.5, f"{(s + 0.5) / SPANS * 100:.0f}%") for s in range(0, SPANS, 2)]
    for variant in ["clean"] + ([worst] if worst else []):
        series = []
        for p in placed:
            if p.variant != variant:
                continue
            freq = p.keep_frequency(SPANS)[0]
            label = p.label + (f" (J {p.jaccard:.2f})" if p.jaccard is not None else "")
            series.append(Series(label, colors.get(p.method, "#888888"),
                                 [(s + 0.5, v * 100, None) for s, v in enumerate(freq) if v is not None]))
        if series:
            figures.append(line_plot(series, "position in the clip", "tokens kept (%)", f"time profile, {variant}", ticks))
    return figures
