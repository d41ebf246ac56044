"""Features of a task variant: computed once per clip and variant, shared by every method.

clip -> waveform -> its length (`lengths`: trimmed, or a seeded length) -> corruption (seeded per
clip) -> length bucket crop -> front end -> fbank. A variant with `lengths` keeps every clip at its
own frame count (the batching strategy pads, prunebench.data.batching).
Results are kept on disk in the cache folder (prunebench.data.shards: shards of clips in the
dtype the model runs, memory-mapped and read per batch), keyed by everything that defines them (data fingerprint,
variant, front end, seed, storage format), so reruns and resumed runs reuse them; the run keeps a
few variants' memory maps (or, without the disk cache, their tensors).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from prunebench.core.cache import cache_dir
from prunebench.core.progress import Progress
from prunebench.core.errors import DataError
from prunebench.audio.kaldi import FrontEnd
from prunebench.tasks.base import Task
from prunebench.tasks.corruption import ClipContext
from prunebench.data.shards import (SHARD_CLIPS, STORAGE, ShardedFbanks, complete_shard, lazy_fbanks, read_index,
                                   remove_stale_tmp, write_index, write_shard)
from prunebench.data.silence import silent_fraction
from prunebench.data.variant import TaskVariant
from prunebench.metrics import get_metric

log = logging.getLogger(__name__)
FEATURE_VERSION = 3  # 3: sharded float16 memory-mapped cache folders (2: one .pt file)


@dataclass
class FeatureSet:
    ids: List[str]
    # each (frames, mel_bins) float32, normalised; from the disk cache a ShardedFbanks that reads
    # each clip from its memory-mapped shard when indexed
    fbanks: Sequence[torch.Tensor]
    valid_frames: torch.Tensor  # (n,) frames that are real audio, not padding
    labels: torch.Tensor  # (n,) class index, or (n, classes) multi-hot
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    cropped: List[str] = field(default_factory=list)  # clips longer than the model input: their end is cut
    # (n,) share of the clean clip's 25 ms frames that are digital silence (below -80 dBFS): noise
    # changes such frames wholesale, so robustness can be read against it
    silent_fraction: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.ids)

    def frames(self, i: int) -> int:
        """Frames of clip i, without reading a memory-mapped clip."""
        fbanks = self.fbanks
        return fbanks.frames(i) if isinstance(fbanks, ShardedFbanks) else int(fbanks[i].shape[0])

    def batches(self, batch_size: int) -> Iterator[Tuple[List[int], torch.Tensor, torch.Tensor]]:
        """(indices, fbank batch, valid frames); clips of equal length batched together."""
        by_length: Dict[int, List[int]] = {}
        for i in range(len(self)):
            by_length.setdefault(self.frames(i), []).append(i)
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), batch_size):
                idx = group[start:start + batch_size]
                yield idx, torch.stack([self.fbanks[i] for i in idx]), self.valid_frames[idx]


@dataclass
class FeatureCounter:
    computed: int = 0
    loaded: int = 0

    def __str__(self) -> str:
        return f"features: {self.computed} clips computed, {self.loaded} reused from cache"


COUNTER = FeatureCounter()


class FeatureStore:
    """Computes features of task variants once; memory + disk cache."""

    def __init__(self, disk_cache: bool = True, on_bad_clip: str = "error", run_seed: int = 0, keep_in_memory: int = 3,
                 progress: bool = True, store_dtype: str = "float32"):
        if store_dtype not in STORAGE:
            raise ValueError(f"store_dtype {store_dtype!r}: expected one of {', '.join(STORAGE)}")
        self.disk_cache = disk_cache
        self.store_dtype = store_dtype  # the dtype the model runs: float32 keeps results exact
        self.progress = progress  # a bar over the clips while features are computed
        self.on_bad_clip = on_bad_clip
        self.run_seed = run_seed
        self.keep_in_memory = keep_in_memory  # variants held at once (a clean one beside noisy ones)
        self._memory: "OrderedDict[str, FeatureSet]" = OrderedDict()
        self.last = ""  # how the last get() was served, one line for the run log

    def get(self, variant: TaskVariant, frontend: FrontEnd, split: str = "test", min_frames: int = 1) -> FeatureSet:
        """Features of every clip of a variant's split. `min_frames`: clips with fewer real frames
        (shorter than one patch) are bad clips: an error naming the file, or a counted skip."""
        task = variant.task
        clips = task.test_clips() if split == "test" else task.train_clips()
        key = self._key(variant, frontend, split, task.fingerprint(clips))
        if key in self._memory:
            self._memory.move_to_end(key)
            self.last = f"features {variant.id} ({split}): {len(self._memory[key])} clips already in memory"
            return self._require_frames(self._memory[key], clips, min_frames)
        folder = cache_dir("features", key) if self.disk_cache else None
        features = _read(folder) if folder is not None else None
        if features is not None:
            COUNTER.loaded += len(features)
            self.last = f"features {variant.id} ({split}): {len(features)} clips reused from cache"
        else:
            features, computed = self._compute(variant, frontend, clips, split, folder)
            COUNTER.computed += computed  # every listed clip went through the front end (or failed)
            COUNTER.loaded += len(clips) - computed  # shards an interrupted run had finished
            self.last = f"features {variant.id} ({split}): {computed} clips computed"
            if computed < len(clips):
                self.last += f", {len(clips) - computed} reused from finished shards"
        if features.skipped:
            self.last += f", {len(features.skipped)} skipped"
        self._memory[key] = features
        while len(self._memory) > self.keep_in_memory:
            self._memory.popitem(last=False)
        return self._require_frames(features, clips, min_frames)

    def _require_frames(self, features: FeatureSet, clips, min_frames: int) -> FeatureSet:
        """Clips with fewer real frames than `min_frames` (shorter than one patch): an error naming
        the file, or (on_bad_clip: skip) left out, counted and listed with the other skips."""
        short = [i for i, n in enumerate(features.valid_frames.tolist()) if n < min_frames]
        if not short:
            return features
        paths = {c.id: c.path for c in clips}
        reasons = {i: f"{paths.get(features.ids[i], features.ids[i])}: {int(features.valid_frames[i])} frames of audio, "
                      f"shorter than one patch ({min_frames} frames)" for i in short}
        if self.on_bad_clip != "skip":
            raise DataError(reasons[short[0]])
        keep = [i for i in range(len(features)) if i not in reasons]
        if not keep:
            raise DataError(f"no usable clips: all {len(features)} are shorter than one patch ({min_frames} frames)")
        self.last += f", {len(short)} shorter than one patch skipped"
        for i in short:
            log.warning("skipped clip %s", reasons[i])
        return replace(
            features, ids=[features.ids[i] for i in keep], fbanks=take(features.fbanks, keep),
            valid_frames=features.valid_frames[keep], labels=features.labels[keep],
            skipped=features.skipped + [(features.ids[i], reasons[i]) for i in short],
            silent_fraction=None if features.silent_fraction is None else features.silent_fraction[keep])

    def _key(self, variant: TaskVariant, frontend: FrontEnd, split: str, fingerprint: str) -> str:
        corruption = variant.corruption
        spec = {
            "version": FEATURE_VERSION, "variant": variant.id, "split": split, "data": fingerprint,
            "frontend": frontend.config(), "seed": self.run_seed,
            "corruption": None if corruption is None else corruption.params,
            "corruption_data": None if corruption is None else corruption.fingerprint(),
            "bucket": None if variant.bucket is None else variant.bucket.params,
            **({} if variant.lengths is None else {"lengths": variant.lengths.params}),
            "on_bad_clip": self.on_bad_clip, "store": STORAGE[self.store_dtype].__name__, "shard_clips": SHARD_CLIPS,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def _compute(self, variant: TaskVariant, frontend: FrontEnd, clips, split: str,
                 folder: Optional[Path]) -> Tuple[FeatureSet, int]:
        """(features, clips computed): SHARD_CLIPS clips at a time. With a cache folder each chunk
        goes to a shard on disk as soon as it is done (the finished shards of an interrupted run are
        reused) and the variant is read back memory-mapped, so memory does not grow with its size."""
        task = variant.task
        listing_skipped = list(task.skipped_entries(split))  # left out while listing (unknown label, missing file)
        entries: List[Dict[str, Any]] = []
        fbanks: List[torch.Tensor] = []
        metas: List[Dict[str, Any]] = []
        computed = 0
        if folder is not None:
            remove_stale_tmp(folder)
        with Progress(len(clips), f"features {variant.id} ({split})", self.progress, unit="clip") as bar:
            for k, start in enumerate(range(0, len(clips), SHARD_CLIPS)):
                chunk = clips[start:start + SHARD_CLIPS]
                listed = [c.id for c in chunk]
                meta = complete_shard(folder, k, listed) if folder is not None else None
                if meta is not None:
                    bar.update(len(chunk))
                    metas.append(meta)
                    continue
                done, chunk_fbanks, skipped = self._compute_chunk(variant, frontend, chunk, bar)
                computed += len(chunk)
                if folder is not None:
                    metas.append(write_shard(folder, k, listed, done, chunk_fbanks, skipped, STORAGE[self.store_dtype]))
                else:
                    entries += done
                    fbanks += chunk_fbanks
                    listing_skipped += skipped
        usable = sum(len(m["clips"]) for m in metas) + len(entries)
        if not usable:
            skipped_count = len(listing_skipped) + sum(len(m["skipped"]) for m in metas)
            raise DataError(f"{variant.id}: no usable clips ({skipped_count} skipped)")
        if folder is None:
            features = _assemble(entries, fbanks, listing_skipped, task.metric, task.num_classes)
        else:
            write_index(folder, metas, {"version": FEATURE_VERSION, "metric": task.metric,
                                        "num_classes": task.num_classes, "skipped": [list(s) for s in listing_skipped]})
            features = _read(folder)
        if features.cropped:
            log.info("%s: %d clips longer than the model input were cropped", variant.id, len(features.cropped))
        return features, computed

    def _compute_chunk(self, variant: TaskVariant, frontend: FrontEnd, chunk, bar: Progress
                       ) -> Tuple[List[Dict[str, Any]], List[torch.Tensor], List[Tuple[str, str]]]:
        """(clip entries, fbanks, skipped) of a chunk of clips; a bad clip raises or is skipped."""
        entries, fbanks, skipped = [], [], []
        for clip in chunk:
            bar.update()
            try:
                stats: dict = {}
                fbank, n_valid, was_cropped = clip_features(variant, frontend, clip, self.run_seed, stats)
            except DataError as exc:
                if self.on_bad_clip != "skip":
                    raise
                skipped.append((clip.id, str(exc)))
                log.warning("skipped clip %s: %s", clip.id, exc)
                continue
            entries.append({"id": clip.id, "valid": int(n_valid), "labels": list(clip.labels),
                            "silent": stats["silent_fraction"], "cropped": bool(was_cropped)})
            fbanks.append(fbank)
        return entries, fbanks, skipped


def frontend_for(model_config, task: Task) -> FrontEnd:
    """The front end of the model's family (Kaldi fbank for audio ViTs, Whisper's log-mel) for a
    task; `model_config` is the model's EncoderConfig (models sit above data, so it is not named)."""
    return model_config.frontend(task.sample_rate, task.norm_stats)


def clip_features(variant: TaskVariant, frontend: FrontEnd, clip, run_seed: int,
                  stats: Optional[dict] = None) -> Tuple[torch.Tensor, int, bool]:
    """The normalised fbank of one clip under a variant, its number of real frames, and whether
    the clip was longer than the model input (its end cut off: counted in every record).
    `stats`, when given, receives the clean clip's `silent_fraction` (over the bucket's crop)."""
    task = variant.task
    wave = task.load(clip)
    if variant.lengths is not None:
        wave = variant.lengths(wave, task.sample_rate, clip.id, str(clip.path))
    if stats is not None:
        clean = variant.bucket.crop(wave, task.sample_rate) if variant.bucket is not None else wave
        stats["silent_fraction"] = silent_fraction(clean, task.sample_rate)
    if variant.corruption is not None:
        wave = variant.corruption(wave, task.sample_rate, task.id, clip.id, run_seed, context=ClipContext(task, clip))
    if variant.bucket is not None:
        wave = variant.bucket.crop(wave, task.sample_rate)
    source = str(clip.path)
    fbank, n_valid = frontend(wave, source=source)
    if not torch.isfinite(fbank).all():
        raise DataError(f"audio file {source}: its features are not finite (samples of extreme magnitude?)")
    native = frontend.frames_for_samples(wave.numel())
    return fbank, n_valid, frontend.target_frames is not None and native > frontend.target_frames


def _assemble(entries: List[Dict[str, Any]], fbanks, skipped: List[Tuple[str, str]], metric: str,
              num_classes: int) -> FeatureSet:
    """A FeatureSet from clip entries (id, valid, labels, silent, cropped) and their fbanks."""
    labels = get_metric(metric).targets([tuple(e["labels"]) for e in entries], num_classes)
    return FeatureSet([e["id"] for e in entries], fbanks, torch.tensor([e["valid"] for e in entries]), labels,
                      skipped, [e["id"] for e in entries if e["cropped"]],
                      torch.tensor([e["silent"] for e in entries]))


def _read(folder: Path) -> Optional[FeatureSet]:
    """The features of a complete cache folder, memory-mapped; None when it is not complete yet.
    A missing or truncated shard of a complete folder is a DataError naming the file."""
    found = read_index(folder)
    if found is None:
        return None
    index, metas = found
    fbanks, entries = lazy_fbanks(folder, metas)
    skipped = [tuple(s) for s in index["skipped"]] + [tuple(s) for m in metas for s in m["skipped"]]
    return _assemble(entries, fbanks, skipped, index["metric"], index["num_classes"])


def take(fbanks: Sequence[torch.Tensor], keep: List[int]) -> Sequence[torch.Tensor]:
    """The fbanks of the clips `keep`: still memory-mapped when they were."""
    if isinstance(fbanks, ShardedFbanks):
        return fbanks.subset(keep)
    return [fbanks[i] for i in keep]
