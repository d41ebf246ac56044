"""The kept-patches view: for a few example clips, the input spectrogram with the patches each
method kept, clean beside noisy.

Spectrograms come from the records' `examples` (small 8-bit images stored by the runner, see
prunebench.data.examples), masks from `per_clip.kept_patches` of the same records, so the view needs
nothing but the results folder. The page's script draws them on canvases; everything it shows as
text is set with textContent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from prunebench.analysis.patch_grid import token_geometry
from prunebench.analysis.robustness import mask_jaccard
from prunebench.analysis.table import CLEAN, group_title
from prunebench.records.record import Record, RecordLike, as_records

MAX_CLIPS = 3


@dataclass
class KeptGroup:
    key: str  # element id suffix, not from user data
    model: str
    task: str
    bucket: str
    corruptions: List[str]
    clips: List[str]
    methods: List[Tuple[str, str]]  # (method id, label)
    data: Dict[str, Any] = field(default_factory=dict)  # what the script needs, embedded as JSON

    @property
    def title(self) -> str:
        return group_title(self.model, self.task, self.bucket)


def kept_patch_groups(records: Iterable[RecordLike], colors: Dict[str, str], max_clips: int = MAX_CLIPS) -> List[KeptGroup]:
    grouped: Dict[Tuple[str, str, str], List[Record]] = {}
    for r in as_records(records):
        grouped.setdefault((r.model, r.task_id, r.bucket_label), []).append(r)
    out = []
    for (model, task, bucket), rs in sorted(grouped.items()):
        group = _group(f"k{len(out)}", model, task, bucket, rs, colors, max_clips)
        if group is not None:
            out.append(group)
    return out


def _group(key: str, model: str, task: str, bucket: str, records: List[Record], colors: Dict[str, str],
           max_clips: int) -> Optional[KeptGroup]:
    images: Dict[str, Dict[str, Dict[str, Any]]] = {}  # variant key -> clip -> encoded image
    for r in records:
        for example in r.examples.get("clips", []):
            images.setdefault(_variant(r), {}).setdefault(str(example["id"]), example)
    clean_images = images.get(CLEAN, {})
    if not clean_images:
        return None
    corruptions = list(dict.fromkeys(r.corruption_id for r in sorted(records, key=lambda r: r.corruption_order)
                                     if r.corruption_id in images))
    clips = sorted(c for c in clean_images if all(c in images[v] for v in corruptions))[:max_clips]
    if not clips:
        return None
    by_method: Dict[str, Dict[str, Record]] = {}
    order: Dict[str, Tuple] = {}
    for r in records:
        by_method.setdefault(r.method.id, {})[_variant(r)] = r
        order[r.method.id] = r.method_sort_key
    methods, method_data = [], []
    for mid in sorted(by_method, key=lambda m: order[m]):
        variants = by_method[mid]
        if CLEAN in variants:
            label, data = _method_data(variants, corruptions, clips, colors.get(mid, "#888888"))
            methods.append((mid, label))
            method_data.append(data)
    patch, stride = token_geometry(records[0].model_config)
    data = {
        "patch": patch, "stride": stride, "clips": clips, "corruptions": corruptions,
        "images": {v: {c: images[v][c] for c in clips} for v in [CLEAN] + corruptions},
        "methods": method_data,
    }
    return KeptGroup(key, model, task, bucket, corruptions, clips, methods, data)


def _variant(record: Record) -> str:
    return record.corruption_id or CLEAN


def _method_data(variants: Dict[str, Record], corruptions: List[str], clips: List[str],
                 color: str) -> Tuple[str, Dict[str, Any]]:
    """A method's label and what the script draws for it: per variant and clip, the kept-patch mask
    and whether the clip was right, and the clean-vs-noisy overlap."""
    first = variants[CLEAN]
    keep = first.method.keep_rate
    label = first.method.name + (f" keep {keep:g}" if keep is not None and not first.method.is_baseline else "")
    cells: Dict[str, Dict[str, Any]] = {}
    jaccard: Dict[str, Dict[str, Optional[float]]] = {}
    first_at = _positions(first)
    for variant, r in variants.items():
        if variant != CLEAN and variant not in corruptions:
            continue
        at = _positions(r)  # once per record: records can hold tens of thousands of clips
        cells[variant] = {clip: _cell(r, at.get(clip)) for clip in clips}
        if variant != CLEAN:
            jaccard[variant] = {clip: _jaccard(first, r, first_at.get(clip), at.get(clip)) for clip in clips}
    return label, {"id": first.method.id, "label": label, "color": color, "cells": cells, "jaccard": jaccard}


def _positions(record: Record) -> Dict[str, int]:
    """Clip id -> its index in the record's per-clip lists (ids are unique within a record)."""
    return {clip: i for i, clip in enumerate(record.clips.ids)}


def _cell(record: Record, i: Optional[int]) -> Optional[Dict[str, Any]]:
    if i is None:
        return None
    masks, correct = record.clips.kept_patches, record.clips.correct
    return {"mask": masks[i] if masks else None, "correct": None if correct is None else int(bool(correct[i]))}


def _jaccard(clean: Record, noisy: Record, i: Optional[int], j: Optional[int]) -> Optional[float]:
    """The clip's clean-vs-noisy kept-patch overlap; i, j: its index in each record."""
    if i is None or j is None:
        return None
    a, b = clean.clips.kept_patches, noisy.clips.kept_patches
    if not a or not b:
        return None
    value = mask_jaccard(a[i], b[j])
    return None if value is None else round(value, 3)
