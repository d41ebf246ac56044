"""Where the tokens go (issue 24 item 5): per record (model, method, keep rate, variant), where on the
patch grid the tokens kept at the final reduction lie.

- mel bands: the grid's rows (an audio ViT's patch rows, low frequencies first; a 1-D Whisper
  encoder's tokens span every mel bin, one row: it has no band profile);
- time: the grid's columns, each placed in a span of the clip by its centre (BINS bins, summed into
  10 spans or 3 thirds);
- padding: the share of kept patches that are only padding (`selection.kept_padding_share`, which the
  run computed from the input);
- silence: the share of kept patches that lie in the clean clip's digital silence (its 25 ms frames
  below -80 dBFS, prunebench.data.silence), given per clip as 10 ms steps by the caller (the
  records hold only each clip's silent share); a column is silent when at least half of the real
  frames it spans are;
- stability: the mean per-clip Jaccard of the kept sets, clean vs each noisy variant
  (prunebench.analysis.robustness.selection_jaccard).

A record without kept-patch masks (the baseline keeps everything; a merging method drops no patch;
records written before masks were stored) is listed with `no_selection` saying why, never dropped.
A pure function of the records (and the silence handed in).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from prunebench.core.errors import DataError
from prunebench.analysis.patch_grid import clip_columns, decode_mask, record_grid, token_geometry
from prunebench.analysis.robustness import common_ids, merges_only, selection_jaccard
from prunebench.records.record import POOLED_SPLIT, Record, RecordLike, as_records

BINS = 30  # time bins per clip: 30 sums into the 10 spans of the figure and the 3 thirds of the tables
SPANS = 10
THIRDS = 3
NO_SELECTION = "no selection recorded"
# task id (name/split) -> clip id -> the clean clip's silence per 10 ms frame step
Silence = Mapping[str, Mapping[str, Sequence[bool]]]


@dataclass
class Placement:
    """Where one record's kept tokens lie; counts summed over its clips."""

    model: str
    task: str  # name/split
    bucket: Optional[str]
    method: str  # method id
    method_name: str
    keep: Optional[float]
    corruption: Optional[str]  # None: clean
    snr_db: Optional[float] = None
    clips: int = 0
    rows: int = 0
    kept: List[List[float]] = field(default_factory=list)  # rows x BINS: kept patches
    present: List[List[float]] = field(default_factory=list)  # rows x BINS: patches the clips have
    padding_share: Optional[float] = None
    silent_share: Optional[float] = None  # mean over clips: kept patches that are silent / kept
    silent_present: Optional[float] = None  # mean over clips: patches that are silent / patches
    jaccard: Optional[float] = None  # noisy variants: mean per-clip Jaccard against the clean record
    no_selection: Optional[str] = None

    @property
    def label(self) -> str:
        return self.method_name + (f" keep {self.keep:g}" if self.keep is not None else "")

    @property
    def variant(self) -> str:
        return self.corruption or "clean"

    def band_shares(self, groups: int = THIRDS) -> List[float]:
        """Share of the kept tokens in each of `groups` equal groups of rows, lowest mel bands
        first; one group where the grid has fewer rows (a 1-D encoder: [1.0])."""
        groups = max(1, min(groups, self.rows))
        totals = [0.0] * groups
        for r, row in enumerate(self.kept):
            totals[r * groups // self.rows] += sum(row)
        return _shares(totals)

    def time_shares(self, spans: int = THIRDS) -> List[float]:
        """Share of the kept tokens in each of `spans` equal spans of the clip, first first."""
        return _shares(_spans([sum(col) for col in zip(*self.kept)], spans))

    def keep_frequency(self, spans: int = SPANS) -> List[List[Optional[float]]]:
        """rows x spans: kept / present (the chance a patch there is kept; None where no clip has one)."""
        out = []
        for kept, present in zip(self.kept, self.present):
            k, n = _spans(kept, spans), _spans(present, spans)
            out.append([a / b if b else None for a, b in zip(k, n)])
        return out


def placements(records: Sequence[RecordLike], silence: Optional[Silence] = None) -> List[Placement]:
    """One Placement per ok record of the grid (testbed members left out), in the report's order:
    model, task, bucket, method, clean first."""
    ok = [r for r in as_records(records) if r.ok and r.testbed is None]
    clean = {(r.model, r.task_id, r.bucket, r.method.id): r for r in ok if r.corruption is None}
    out = []
    caches: Dict[Tuple[str, str], Dict] = {}  # a clip's silent columns depend on the model's token geometry
    for r in sorted(ok, key=lambda r: (r.model, r.task_id, r.bucket_order, r.method_sort_key, r.corruption_order)):
        cache = caches.setdefault((r.model, r.task_id), {})
        p = placement(r, None if silence is None or r.bucket is not None else silence.get(r.task_id), cache)
        base = clean.get((r.model, r.task_id, r.bucket, r.method.id))
        if r.corruption is not None and base is not None and p.no_selection is None:
            p.jaccard = selection_jaccard(base, r, common_ids([base, r]))
        out.append(p)
    return out


def placement(record: Record, silence: Optional[Mapping[str, Sequence[bool]]] = None,
              cache: Optional[Dict] = None) -> Placement:
    """Where the record's kept tokens lie; `silence`: clip id -> its clean silence per 10 ms step;
    `cache`: silent columns per (clip, columns), shared by the records of one model."""
    r = record
    cache = {} if cache is None else cache
    p = Placement(r.model, r.task_id, r.bucket, r.method.id, r.method.name,
                  None if r.method.is_baseline else r.method.keep_rate, r.corruption_id,
                  None if r.corruption is None else r.corruption.snr_db)
    masks = r.clips.kept_patches
    if not masks or all(m is None for m in masks) or merges_only(r):
        p.no_selection = NO_SELECTION + _why_none(r)
        return p
    try:
        rows, columns = record_grid(r)
    except DataError as exc:  # masks without a grid to lay them on: listed with the reason
        p.no_selection = f"not placed: {exc}"
        return p
    frames = r.clips.frames
    p.rows = rows
    kept_sum, present_sum = torch.zeros(rows, BINS, dtype=torch.float64), torch.zeros(rows, BINS, dtype=torch.float64)
    silent_kept: List[float] = []
    silent_all: List[float] = []
    for i, (cid, mask) in enumerate(zip(r.clips.ids, masks)):
        if mask is None:
            continue
        cols = clip_columns(r, (rows, columns), frames, i)
        if frames is not None:
            # a clip at its own length: the model's grid for it can hold one more (partly padded)
            # column than its frames give; widen to what the mask uses
            cols = max(cols, -(-int(mask, 16).bit_length() // rows))
        try:
            kept = decode_mask(mask, rows, cols).double()
        except DataError as exc:  # the record's grid and its masks disagree: listed with the reason
            p.no_selection = f"not placed: clip {cid}: {exc}"
            return p
        to_bins = _bin_matrix(cols)
        kept_sum += kept @ to_bins
        present_sum += torch.ones(rows, cols, dtype=torch.float64) @ to_bins
        p.clips += 1
        steps = None if silence is None else silence.get(cid)
        if steps is not None:
            key = (cid, cols)
            if key not in cache:
                cache[key] = silent_columns(r.model_config, steps, cols)
            silent = cache[key]
            n_kept = float(kept.sum())
            if n_kept:
                silent_kept.append(float(kept[:, silent].sum()) / n_kept)
            silent_all.append(float(silent.double().mean()) if cols else 0.0)
    p.kept, p.present = kept_sum.tolist(), present_sum.tolist()
    p.padding_share = r.selection.get("kept_padding_share")
    if silence is not None:
        p.silent_share = _mean(silent_kept)
        p.silent_present = _mean(silent_all)
    return p


def silent_columns(config: Mapping, steps: Sequence[bool], columns: int) -> torch.Tensor:
    """(columns,) bool: a column is silent when at least half of the real frames it spans (the 10 ms
    steps of the clip) are; a column of padding alone is not."""
    (_, k), (_, s) = token_geometry(dict(config))
    flags = torch.tensor([bool(x) for x in steps], dtype=torch.float64)
    csum = torch.cat([torch.zeros(1, dtype=torch.float64), flags.cumsum(0)])
    start = (torch.arange(columns) * s).clamp(max=flags.numel())
    end = (start + k).clamp(max=flags.numel())
    count = (end - start).double()
    return (count > 0) & (csum[end] - csum[start] >= 0.5 * count)


@functools.lru_cache(maxsize=64)
def _bin_matrix(columns: int) -> torch.Tensor:
    """(columns, BINS) one-hot: column t in the bin of its centre."""
    m = torch.zeros(columns, BINS, dtype=torch.float64)
    for t in range(columns):
        m[t, min(BINS - 1, int(BINS * (t + 0.5) / columns))] = 1.0
    return m


def _spans(bins: Sequence[float], spans: int) -> List[float]:
    out = [0.0] * spans
    for b, v in enumerate(bins):
        out[b * spans // len(bins)] += v
    return out


def _shares(totals: List[float]) -> List[float]:
    total = sum(totals)
    return [t / total if total else 0.0 for t in totals]


def _mean(values: List[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def _why_none(record: Record) -> str:
    if record.method.is_baseline:
        return f" ({record.method.name} keeps every token)"
    if merges_only(record):
        return " (the method merges tokens: no patch is dropped)"
    return ""


def pool_splits(items: Sequence[Placement]) -> List[Placement]:
    """Placements of several splits of one task (cross-validation folds) pooled into one per
    (model, task, bucket, method, variant), split `all-folds`: counts summed, shares and Jaccard
    weighted by clips. A task with one split is returned as it is."""
    splits: Dict[Tuple[str, str], set] = {}
    for p in items:
        splits.setdefault((p.model, p.task.split("/")[0]), set()).add(p.task)
    out: List[Placement] = []
    index: Dict[Tuple, Placement] = {}
    for p in items:
        name = p.task.split("/")[0]
        if len(splits[(p.model, name)]) == 1:
            out.append(p)
            continue
        key = (p.model, name, p.bucket, p.method, p.corruption)
        if key not in index:
            index[key] = Placement(p.model, f"{name}/{POOLED_SPLIT}", p.bucket, p.method, p.method_name, p.keep,
                                   p.corruption, p.snr_db)
            out.append(index[key])
        _add(index[key], p)
    return out


def _add(total: Placement, p: Placement) -> None:
    if p.no_selection is not None:
        total.no_selection = total.no_selection or p.no_selection
        return
    n, m = total.clips, p.clips
    for name in ("padding_share", "silent_share", "silent_present", "jaccard"):
        a, b = getattr(total, name), getattr(p, name)
        setattr(total, name, b if a is None or not n else a if b is None else (a * n + b * m) / (n + m))
    if not total.kept:
        total.rows, total.kept, total.present = p.rows, [list(r) for r in p.kept], [list(r) for r in p.present]
    else:
        total.kept = [[a + b for a, b in zip(x, y)] for x, y in zip(total.kept, p.kept)]
        total.present = [[a + b for a, b in zip(x, y)] for x, y in zip(total.present, p.present)]
    total.clips = n + m


def noisiest(items: Sequence[Placement]) -> Optional[str]:
    """The corruption at the lowest SNR among the placements (of equals, the last by name)."""
    noisy = [p for p in items if p.corruption is not None and p.snr_db is not None]
    if not noisy:
        return None
    return max(noisy, key=lambda p: (-p.snr_db, p.corruption)).corruption


def by_group(items: Sequence[Placement]) -> Dict[Tuple[str, str, Optional[str]], List[Placement]]:
    """Placements per (model, task, bucket), in order."""
    out: Dict[Tuple[str, str, Optional[str]], List[Placement]] = {}
    for p in items:
        out.setdefault((p.model, p.task, p.bucket), []).append(p)
    return out
