"""The published board's pruning-aware studies (records/studies.py): per study, the comparison of
prunebench.analysis.pruning_aware (clean accuracy against `none`, flip effects and effective
robustness off the shelf and pruning-aware) and where each regime's kept tokens lie
(prunebench.analysis.placement_regimes; the store holds no audio, so no silent share)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

from prunebench.analysis.placement_regimes import compare_placement, regime_cells
from prunebench.analysis.pruning_aware import against_control, baseline, compare, line_notes, read_aware, table_cells, testbed_lines
from prunebench.records.record import load_results
from prunebench.records.studies import store_studies


@dataclass(frozen=True)
class StudyView:
    name: str
    title: str
    about: str
    against: str  # what the pruning-aware models are read against
    headers: List[str]
    rows: List[List[str]]
    testbed: List[str]  # the line per noise, or nothing without a testbed
    placement_headers: List[str]
    placement_rows: List[List[str]]


def study_views(store: Path) -> List[StudyView]:
    views = []
    for study in store_studies(store):
        every = load_results(study.off_the_shelf, testbed=True)
        grid = [r for r in every if r.testbed is None]
        members = [r for r in every if r.testbed is not None]
        if study.testbed_track is not None:  # the track's published testbed, on this study's variants
            variants = {r.variant for r in grid}
            members += [r for r in load_results(study.testbed_records(), testbed=True)
                        if r.testbed is not None and r.variant in variants]
        aware = read_aware([str(f) for f in study.aware_folders()])
        against = "the off-the-shelf none"
        if study.control_folder is not None:  # the unpruned model given the same extra training
            grid = against_control(grid, load_results(study.control_folder), str(study.control_folder))
            against = "the control (none given the same extra training)"
        lines = testbed_lines(members, baseline(grid))
        headers, rows = table_cells(compare(grid, aware, 0, lines=lines))
        notes = line_notes(lines)
        placement_headers, placement_rows = regime_cells(compare_placement([r for r in every if r.testbed is None], aware))
        views.append(StudyView(study.name, study.title, study.about, against, headers, rows, notes,
                               placement_headers, placement_rows))
    return views
