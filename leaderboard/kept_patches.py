"""The kept-patches view: for a few example clips, the input spectrogram with the patches each
method kept, clean beside noisy.

Spectrograms come from the records' `examples` (small 8-bit images stored by the runner, see
benchmark.data.examples), masks from `per_clip.kept_patches` of the same records, so the view needs
nothing but the results folder. The page's script draws them on canvases; everything it shows as
text is set with textContent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from benchmark.analysis.robustness import mask_jaccard

from benchmark.leaderboard.table import (CLEAN, bucket_id, corruption_of, corruption_sort_key, group_title, keep_rate_of, method_sort_key,
                    task_id)

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


def kept_patch_groups(records: List[Dict[str, Any]], colors: Dict[str, str], max_clips: int = MAX_CLIPS) -> List[KeptGroup]:
    grouped: Dict[Tuple[str, str, str], List[Dict[str, Any]]] = {}
    for r in records:
        grouped.setdefault((str(r["model"]["name"]), task_id(r), bucket_id(r)), []).append(r)
    out = []
    for (model, task, bucket), rs in sorted(grouped.items()):
        group = _group(f"k{len(out)}", model, task, bucket, rs, colors, max_clips)
        if group is not None:
            out.append(group)
    return out


def token_geometry(config: Dict[str, Any]) -> Tuple[List[int], List[int]]:
    """(kernel, stride) of a token over (mel, frames): an audio ViT's square patch at its strides,
    or a Whisper token's 2 frames of every mel bin (a model config with `positions`)."""
    if "positions" in config:
        mel, frames = int(config.get("num_mel_bins", 80)), int(config.get("patch_size", 2))
        return [mel, frames], [mel, frames]
    p = int(config.get("patch_size", 16))
    return [p, p], [int(config.get("fstride", 16)), int(config.get("tstride", 16))]


def _group(key: str, model: str, task: str, bucket: str, records: List[Dict[str, Any]], colors: Dict[str, str],
           max_clips: int) -> Optional[KeptGroup]:
    images: Dict[str, Dict[str, Dict[str, Any]]] = {}  # variant key -> clip -> encoded image
    for r in records:
        variant = corruption_of(r) or CLEAN
        for example in (r.get("examples") or {}).get("clips", []):
            images.setdefault(variant, {}).setdefault(str(example["id"]), example)
    clean_images = images.get(CLEAN, {})
    if not clean_images:
        return None
    corruptions = list(dict.fromkeys(corruption_of(r) for r in sorted(records, key=corruption_sort_key)
                                     if corruption_of(r) in images))
    clips = sorted(c for c in clean_images if all(c in images[v] for v in corruptions))[:max_clips]
    if not clips:
        return None
    by_method: Dict[str, Dict[str, Dict[str, Any]]] = {}
    order: Dict[str, Tuple] = {}
    for r in records:
        by_method.setdefault(str(r["method"]["id"]), {})[corruption_of(r) or CLEAN] = r
        order[str(r["method"]["id"])] = method_sort_key(r)
    methods, method_data = [], []
    for mid in sorted(by_method, key=lambda m: order[m]):
        variants = by_method[mid]
        if CLEAN not in variants:
            continue
        first = variants[CLEAN]
        keep = keep_rate_of(first)
        label = str(first["method"]["name"]) + (f" keep {keep:g}" if keep is not None and first["method"]["name"] != "none" else "")
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
        methods.append((mid, label))
        method_data.append({"id": mid, "label": label, "color": colors.get(mid, "#888888"), "cells": cells,
                            "jaccard": jaccard})
    patch, stride = token_geometry(records[0]["model"].get("config") or {})
    data = {
        "patch": patch, "stride": stride, "clips": clips, "corruptions": corruptions,
        "images": {v: {c: images[v][c] for c in clips} for v in [CLEAN] + corruptions},
        "methods": method_data,
    }
    return KeptGroup(key, model, task, bucket, corruptions, clips, methods, data)


def _positions(record: Dict[str, Any]) -> Dict[str, int]:
    """Clip id -> its index in the record's per-clip lists (ids are unique within a record)."""
    return {clip: i for i, clip in enumerate((record.get("per_clip") or {}).get("ids") or [])}


def _cell(record: Dict[str, Any], i: Optional[int]) -> Optional[Dict[str, Any]]:
    if i is None:
        return None
    per_clip = record["per_clip"]
    masks = per_clip.get("kept_patches")
    correct = per_clip.get("correct")
    return {"mask": masks[i] if masks else None, "correct": None if correct is None else int(bool(correct[i]))}


def _jaccard(clean: Dict[str, Any], noisy: Dict[str, Any], i: Optional[int], j: Optional[int]) -> Optional[float]:
    """The clip's clean-vs-noisy kept-patch overlap; i, j: its index in each record."""
    if i is None or j is None:
        return None
    a, b = clean["per_clip"].get("kept_patches"), noisy["per_clip"].get("kept_patches")
    if not a or not b:
        return None
    value = mask_jaccard(a[i], b[j])
    return None if value is None else round(value, 3)
