"""Where the tokens go, off the shelf against pruning-aware (issue 24 item 5): does training with the
method in place move what it keeps, and does noise move it less or more afterwards?

Per pruning-aware folder (one method at its tuned keep rate, docs/pruning-aware.md) and the same
method's records in the off-the-shelf folder, folds pooled by clip:
- per regime, the clean selection's placement (prunebench.analysis.token_placement: time thirds, mel
  band thirds on a 2-D grid, the share of kept tokens in padding and in digital silence) and the mean
  per-clip Jaccard of the kept sets, clean vs noisy, averaged over the noise variants;
- between the regimes, the mean per-clip Jaccard of the clean kept sets (1: training left the
  selection alone; a frozen encoder under a refitted head gives exactly 1).

A method that keeps no selection (ToMe merges, drops no patch) gets its reason, not figures.
A pure function of the records (and of the silence the caller read from the audio).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from tabulate import tabulate

from prunebench.analysis.robustness import common_ids, selection_jaccard
from prunebench.analysis.token_placement import THIRDS, Placement, Silence, placements, pool_splits
from prunebench.core.errors import DataError
from prunebench.records.record import Record

REGIMES = ("off", "aware")


@dataclass(frozen=True)
class RegimePlacement:
    method: str  # method id
    method_name: str
    keep: Optional[float]
    clean: Dict[str, Placement]  # regime -> the clean selection's placement (splits pooled)
    noise_jaccard: Dict[str, Optional[float]]  # regime -> mean over noisy variants of the clean-vs-noisy Jaccard
    between: Optional[float]  # clean kept sets, off vs aware: mean per-clip Jaccard over the common clips
    no_selection: Optional[str] = None


def compare_placement(off: Sequence[Record], aware: Dict[str, Sequence[Record]],
                      silence: Optional[Silence] = None) -> List[RegimePlacement]:
    """One row per pruning-aware folder (method id -> its records) against the off-the-shelf records."""
    rows = []
    for method_id, records in sorted(aware.items()):
        regimes = {"off": [r for r in off if r.ok and r.method.id == method_id],
                   "aware": [r for r in records if r.ok and r.method.id == method_id]}
        for name, mine in regimes.items():
            if not any(r.corruption is None for r in mine):
                raise DataError(f"no clean record of {method_id} {'off the shelf' if name == 'off' else 'pruning-aware'}")
        rows.append(_row(method_id, regimes, silence))
    return rows


def _row(method_id: str, regimes: Dict[str, List[Record]], silence: Optional[Silence]) -> RegimePlacement:
    placed = {name: pool_splits(placements(records, silence)) for name, records in regimes.items()}
    clean = {name: next(p for p in items if p.corruption is None) for name, items in placed.items()}
    first = clean["off"]
    reason = next((p.no_selection for p in clean.values() if p.no_selection is not None), None)
    if reason is not None:
        return RegimePlacement(method_id, first.method_name, first.keep, clean, {}, None, reason)
    noise = {name: _mean([p.jaccard for p in items if p.corruption is not None]) for name, items in placed.items()}
    return RegimePlacement(method_id, first.method_name, first.keep, clean, noise, _between(regimes))


def _between(regimes: Dict[str, List[Record]]) -> Optional[float]:
    """Off vs aware clean selections, split by split, weighted by the clips compared."""
    aware = {r.task_id: r for r in regimes["aware"] if r.corruption is None}
    total, clips = 0.0, 0
    for off in (r for r in regimes["off"] if r.corruption is None and r.task_id in aware):
        ids = common_ids([off, aware[off.task_id]])
        value = selection_jaccard(off, aware[off.task_id], ids)
        if value is not None:
            total, clips = total + value * len(ids), clips + len(ids)
    return total / clips if clips else None


def _mean(values: List[Optional[float]]) -> Optional[float]:
    have = [v for v in values if v is not None]
    return sum(have) / len(have) if have else None


def regime_cells(rows: Sequence[RegimePlacement]) -> Tuple[List[str], List[List[str]]]:
    """Per method, as headers and text cells: off / aware for each placement figure, and the
    off-vs-aware Jaccard."""
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}"  # noqa: E731
    pct1 = lambda v: "-" if v is None else f"{100 * v:.1f}"  # noqa: E731
    num = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    body = []
    for row in rows:
        both = lambda f: " / ".join(f(row.clean[name]) for name in REGIMES)  # noqa: E731
        keep = "-" if row.keep is None else f"{row.keep:g}"
        if row.no_selection is not None:
            body.append([row.method_name, keep, "", row.no_selection, "", "", "", "", ""])
            continue
        two_d = row.clean["off"].rows >= THIRDS
        bands = both(lambda p: "/".join(pct(v) for v in p.band_shares())) if two_d else "one row"
        body.append([row.method_name, keep, str(row.clean["aware"].clips), bands,
                     both(lambda p: "/".join(pct(v) for v in p.time_shares())),
                     both(lambda p: pct1(p.padding_share)), both(lambda p: pct1(p.silent_share)),
                     " / ".join(num(row.noise_jaccard.get(name)) for name in REGIMES), num(row.between)])
    headers = ["method", "keep", "clips", "bands low/mid/top: off / aware", "time thirds: off / aware",
               "padding %: off / aware", "silent %: off / aware", "J clean vs noisy: off / aware", "J off vs aware"]
    return headers, body


def regime_table(rows: Sequence[RegimePlacement], markdown: bool = False) -> str:
    headers, body = regime_cells(rows)
    return tabulate(body, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)
