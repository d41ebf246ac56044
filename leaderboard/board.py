"""The published board: the results store (prunebench.records.entries) as one self-contained page.

One table per track, one row per method configuration of every entry (the published run's methods
and `none`; each submission's method): clean score with its interval; robustness, the flip effect
against the entry's own `none` pooled over the track's noise conditions, with its interval and p;
the accuracy-matched effective robustness (prunebench.analysis.effective, pooled over the noise
conditions with its interval) where the track's published entry holds the testbed of unpruned
models it is read against (a closed-division submission is read against the same testbed: same
model, weights and clips), "—" otherwise (never an estimate), with the figure of the testbed,
its line and the methods per noise condition; the speedup over `none` measured interleaved on the entry's machine,
with the device; GMACs; the division; the method source's sha256, linked to the source shown on
the page; and the machine. Cross-validated tracks pool their folds' clips (each clip evaluated once
by the model that did not train on it); their speedup is the median over folds. After the tracks,
the store's pruning-aware studies (studies_view.py).
"""
from __future__ import annotations

import functools
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from jinja2 import Environment, PackageLoader, select_autoescape

from prunebench.analysis.effective import PooledER, effective_robustness
from prunebench.analysis.report import pool_folds
from prunebench.analysis.robustness import compare, index_records, pool
from prunebench.analysis.schema import metric as metric_display
from prunebench.leaderboard.effective_view import EffectiveGroup, effective_groups
from prunebench.leaderboard.plots import colors_for
from prunebench.leaderboard.studies_view import study_views
from prunebench.records.entries import CLOSED, PUBLISHED, Entry, store_entries
from prunebench.records.record import Record, load_results

# the published store: results-store/ at the top of the repository (a source checkout, an editable
# install); $PRUNEBENCH_STORE or --store name another
STORE = Path(os.environ.get("PRUNEBENCH_STORE") or Path(__file__).resolve().parents[1] / "results-store")
DASH = "\u2014"


@dataclass(frozen=True)
class Interval:
    value: float
    low: Optional[float] = None
    high: Optional[float] = None

    def text(self, scale: float = 1.0, signed: bool = False, digits: int = 1) -> str:
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
        main = fmt.format(self.value * scale)
        if self.low is None or self.high is None:
            return main
        return f"{main} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


@dataclass
class BoardRow:
    track: str
    method: str
    params: str
    entry: str  # the store entry's id
    clean: Optional[Interval]
    clean_text: str
    flip: Optional[Interval]  # pooled flip effect in points; None: no noisy comparison
    flip_p: Optional[float]
    flip_conditions: int
    effective: Optional[Interval]  # accuracy-matched effective robustness; None: not in the records
    speedup: Optional[float]
    device: str
    gmacs: Optional[float]
    division: str
    source_sha: str
    source_anchor: str
    machine: str

    @property
    def flip_text(self) -> str:
        if self.method == "none" and self.flip is not None:
            return "0 (reference)"
        if self.flip is None:
            return DASH
        p = "" if self.flip_p is None else (", p<0.001" if self.flip_p < 0.001 else f", p={self.flip_p:.3f}")
        return self.flip.text(signed=True) + p


@dataclass
class TrackBoard:
    name: str
    version: int
    rows: List[BoardRow] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)  # pairs the published run lacks (a partial run)
    effective: List[EffectiveGroup] = field(default_factory=list)  # the figures; empty: no testbed


@dataclass(frozen=True)
class EntryRecords:
    """One entry's grid records, the view its rows read (folds pooled where there are several), its
    testbed members pooled alike (effective robustness), and the rows' records in that view (a
    submission's own none left out: the published none is the reference row)."""
    entry: Entry
    records: List[Record]
    view: List[Record]
    members: List[Record]

    @classmethod
    def read(cls, entry: Entry) -> "EntryRecords":
        every = load_results(entry.records_folder, testbed=True)
        records = [r for r in every if r.testbed is None]
        members = [r for r in every if r.testbed is not None]
        return cls(entry, records, pool_folds(records) or records, pool_folds(members) or members)

    @property
    def ranked(self) -> List[Record]:
        names = {m.name for m in self.entry.methods}
        return [r for r in self.view if self.entry.kind == PUBLISHED or r.method.name in names]


EffectiveIndex = Dict[Tuple[str, str, str], PooledER]


@dataclass(frozen=True)
class Source:
    anchor: str
    name: str
    entry: str
    sha256: str
    text: str


def entry_rows(read: EntryRecords, effective: EffectiveIndex) -> List[BoardRow]:
    """The rows of one entry: every method configuration of the published run, a submission's method;
    `effective`: the track's accuracy-matched effective robustness by (model, task, method id)."""
    entry, records, view = read.entry, read.records, read.view
    index = index_records(view)
    by_method: Dict[str, list] = {}
    for c in compare(view):
        if not c.near_chance:
            by_method.setdefault(c.method, []).append(c)
    speeds = _speedups(records)
    sources = {m.name: m for m in entry.methods}
    machine = _machine(entry)
    rows = []
    for r in sorted((r for r in read.ranked if r.corruption is None and r.bucket is None), key=lambda r: r.method_sort_key):
        comparisons = by_method.get(r.method.id, [])
        flip, flip_p = None, None
        if r.method.is_baseline:
            flip = Interval(0.0) if any(c.none_flip_rate is not None for cs in by_method.values() for c in cs) else None
        elif comparisons and comparisons[0].flip_rate is not None:
            p = pool(index, comparisons, 0)
            if p.flip_effect is not None:
                ci = p.flip_effect_ci95 or (None, None)
                flip = Interval(100 * p.flip_effect, None if ci[0] is None else 100 * ci[0], None if ci[1] is None else 100 * ci[1])
                flip_p = p.flip_p
        metric = metric_display(r.metric)
        ci = r.score_ci
        clean = Interval(r.score, *(ci if ci else (None, None)))
        source = sources.get(r.method.name)
        speed, device = speeds.get(r.method.id, (None, ""))
        rows.append(BoardRow(
            track=entry.track, method=r.method.name, params=r.method.params_text, entry=entry.id, clean=clean,
            clean_text=_score_text(metric, clean), flip=flip, flip_p=flip_p, flip_conditions=len(comparisons),
            effective=_effective(effective.get((r.model, r.task_id, r.method.id))), speedup=speed, device=device, gmacs=None if r.macs is None else r.macs / 1e9,
            division=entry.division, source_sha=source.sha256 if source else "",
            source_anchor=_anchor(entry, source.name) if source else "", machine=machine))
    return rows


def testbed_members(reads: List[EntryRecords]) -> List[Record]:
    """The testbed members the track's published entry holds (folds pooled as its grid is)."""
    return next((read.members for read in reads if read.entry.kind == PUBLISHED), [])


def track_effective(reads: List[EntryRecords], members: List[Record]) -> Tuple[EffectiveIndex, List[EffectiveGroup]]:
    """Effective robustness of the ranked rows of every closed-division entry against the
    published testbed: by (model, task, method id) for the table, and the figures."""
    if not members:
        return {}, []
    ranked = [r for read in reads if read.entry.division == CLOSED for r in read.ranked]
    result = effective_robustness(ranked + members)
    colors = colors_for(list(dict.fromkeys(r.method.id for r in sorted(ranked, key=lambda r: r.method_sort_key))))
    index = {(e.model, e.task, e.method): e for e in result.pooled if e.er is not None}
    return index, effective_groups(result, colors)


def _effective(pooled: Optional[PooledER]) -> Optional[Interval]:
    """The accuracy-matched effective robustness in points, where the entry's records hold the
    testbed it is read against (prunebench.analysis.effective); None otherwise, shown as a dash."""
    if pooled is None:
        return None
    low, high = pooled.ci95 or (None, None)
    return Interval(100 * pooled.er, None if low is None else 100 * low, None if high is None else 100 * high)


def _score_text(metric, clean: Interval) -> str:
    if clean.low is None:
        return metric.format(clean.value)
    return f"{metric.format(clean.value)} [{metric.format(clean.low)}, {metric.format(clean.high)}]"


def _speedups(records: List[Record]) -> Dict[str, Tuple[Optional[float], str]]:
    """Per method id: the median over folds of the clean records' speedup over none, and the device."""
    found: Dict[str, List[float]] = {}
    devices: Dict[str, str] = {}
    for r in records:
        speed = r.throughput.get("speedup_vs_none")
        if r.corruption is None and r.bucket is None and speed is not None:
            found.setdefault(r.method.id, []).append(float(speed))
            devices[r.method.id] = str(r.throughput.get("device") or "")
    return {m: (statistics.median(v), devices[m]) for m, v in found.items()}


def _machine(entry: Entry) -> str:
    s = entry.system
    chip = s.get("gpu") or s.get("cpu") or "unknown machine"
    return f"{chip}, {s.get('threads')} threads, torch {s.get('torch')}"


def _anchor(entry: Entry, method: str) -> str:
    return f"src-{entry.track}-{entry.id}-{method}"


def collect_board(store: Path) -> Tuple[List[TrackBoard], List[Source]]:
    boards, sources = [], []
    for track, entries in store_entries(store).items():
        reads = [EntryRecords.read(e) for e in entries]
        effective, figures = track_effective(reads, testbed_members(reads))
        board = TrackBoard(track, max(e.track_version for e in entries),
                           missing=[m for e in entries if e.kind == PUBLISHED for m in e.missing], effective=figures)
        for read in reads:
            board.rows += entry_rows(read, effective if read.entry.division == CLOSED else {})
            entry = read.entry
            for m in entry.methods:
                sources.append(Source(_anchor(entry, m.name), m.name, f"{track}/{entry.id}", m.sha256, entry.source_text(m)))
        boards.append(board)
    return boards, sources


@functools.lru_cache(maxsize=1)
def _template():
    env = Environment(loader=PackageLoader("prunebench.leaderboard", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      trim_blocks=True, lstrip_blocks=True)
    return env.get_template("board.html.j2")


def render_board(store: Path, out_file: Path) -> Path:
    """Write the published board of a results store into one self-contained HTML file."""
    boards, sources = collect_board(Path(store))
    html = _template().render(boards=boards, sources=sources, studies=study_views(Path(store)), dash=DASH)
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
