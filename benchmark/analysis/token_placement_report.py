"""The report's "where the tokens go" section (prunebench.analysis.token_placement computes it): per
model, task and bucket, where each method keeps its tokens clean, and how far noise moves them.

One builder for `prunebench report` and benchmarks/token_placement.py (which adds the silent share,
computed from the clips' audio); `markdown` gives the tables of docs/results.md.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

from tabulate import tabulate

from prunebench.analysis.token_placement import (NO_SELECTION, THIRDS, Placement, Silence, by_group, noisiest, placements,
                                                 pool_splits)
from prunebench.records.record import RecordLike

INTRO = [
    "Where the kept tokens lie, at the final reduction, in % of the kept tokens: mel bands (the patch",
    "grid's rows in thirds, lowest first; a 1-D encoder such as Whisper's has one row, no band profile),",
    "time (thirds of the clip), padding and digital silence (columns at least half in the clean clip's",
    "frames below -80 dBFS); 'of all': the share of every patch that is silent. J: mean per-clip Jaccard",
    "of the kept sets, clean vs noisy (1: noise leaves the selection alone).",
]


def placement_section(records: Sequence[RecordLike], silence: Optional[Silence] = None,
                      keeps: Optional[Sequence[float]] = None, markdown: bool = False) -> List[str]:
    """The section's lines; `keeps`: only these keep rates (the baseline always)."""
    found = pool_splits(placements(records, silence))
    if not found:
        return []
    if all(p.no_selection is not None for p in found):
        return ["", f"Where the tokens go: {NO_SELECTION} (no record holds kept-patch masks: unpruned or merging "
                    "methods, or records written before masks were stored)"]
    fmt = "github" if markdown else "simple"
    lines = ["", "WHERE THE TOKENS GO"] + INTRO
    if silence is None:
        lines.append("silent: not computed (it needs the clips' audio: python benchmarks/token_placement.py DIR)")
    for (model, task, bucket), items in by_group(found).items():
        items = [p for p in items if keeps is None or p.keep is None or any(abs(p.keep - k) < 1e-9 for k in keeps)]
        placed = [p for p in items if p.no_selection is None]
        where = f"{model} on {task}" + (f" at {bucket}" if bucket else "")
        if not placed:
            lines += ["", f"{where}: {NO_SELECTION} in any of its {len(items)} records"]
            continue
        lines += ["", f"== {where} ({placed[0].rows} mel-band row(s), {placed[0].clips} clips) =="]
        lines += [tabulate(_clean_rows(placed), headers=_clean_headers(placed), tablefmt=fmt, disable_numparse=True)]
        noisy = _noisy_table(placed, fmt)
        lines += ["", *noisy] if noisy else []
        lines += _not_placed(items)
    return lines


def _clean_headers(placed: List[Placement]) -> List[str]:
    return ["method", "keep", "clips", "bands low/mid/top", "time first/mid/last", "padding", "silent",
            "silent of all"]


def _clean_rows(placed: List[Placement]) -> List[List[str]]:
    rows = []
    for p in placed:
        if p.corruption is not None:
            continue
        bands = "/".join(_pct(v) for v in p.band_shares()) if p.rows >= THIRDS else "one row"
        rows.append([p.method_name, _keep(p.keep), str(p.clips), bands, "/".join(_pct(v) for v in p.time_shares()),
                     _pct(p.padding_share, 1), _pct(p.silent_share, 1), _pct(p.silent_present, 1)])
    return rows


def _noisy_table(placed: List[Placement], fmt: str) -> List[str]:
    conditions = list(dict.fromkeys(p.corruption for p in placed if p.corruption is not None))
    if not conditions:
        return []
    worst = noisiest(placed)
    two_d = placed[0].rows >= THIRDS
    headers = ["method", "keep"] + [f"J {c}" for c in conditions]
    silent = any(p.silent_share is not None for p in placed)
    if worst:
        headers += ([f"bands at {worst}"] if two_d else []) + [f"time at {worst}"] + ([f"silent at {worst}"] if silent else [])
    rows = []
    for method in dict.fromkeys(p.method for p in placed if p.keep is not None):  # the baseline's J is 1
        mine = {p.variant: p for p in placed if p.method == method}
        first = next(iter(mine.values()))
        row = [first.method_name, _keep(first.keep)] + [_num(mine[c].jaccard) if c in mine else "" for c in conditions]
        if worst:
            at = mine.get(worst)
            row += (["/".join(_pct(v) for v in at.band_shares()) if at else ""] if two_d else [])
            row += ["/".join(_pct(v) for v in at.time_shares()) if at else ""]
            row += [_pct(at.silent_share, 1) if at else ""] if silent else []
        rows.append(row)
    return ["Does noise move the selection?", tabulate(rows, headers=headers, tablefmt=fmt, disable_numparse=True)]


def _not_placed(items: List[Placement]) -> List[str]:
    seen = {}
    for p in items:
        if p.no_selection is not None:
            seen.setdefault(p.label, (p.no_selection, []))[1].append(p.variant)
    return [f"{label}: {reason} ({len(variants)} variant(s))" for label, (reason, variants) in seen.items()]


def _pct(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}"


def _num(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _keep(keep: Optional[float]) -> str:
    return "-" if keep is None else f"{keep:g}"
