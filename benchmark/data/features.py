"""Features of a task variant: computed once per clip and variant, shared by every method.

clip -> waveform -> corruption (seeded per clip) -> length bucket crop -> front end -> fbank.
Results are kept in memory for the run and on disk in the cache folder, keyed by everything that
defines them (data fingerprint, variant, front end, seed), so reruns and resumed runs reuse them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from benchmark.core.cache import cache_dir
from benchmark.core.progress import Progress
from benchmark.core.errors import DataError
from benchmark.audio.kaldi import FrontEnd
from benchmark.tasks.base import Task
from benchmark.tasks.corruption import ClipContext, frame_powers
from benchmark.data.variant import TaskVariant

log = logging.getLogger(__name__)
FEATURE_VERSION = 2


@dataclass
class FeatureSet:
    ids: List[str]
    fbanks: List[torch.Tensor]  # each (frames, mel_bins), normalised
    valid_frames: torch.Tensor  # (n,) frames that are real audio, not padding
    labels: torch.Tensor  # (n,) class index, or (n, classes) multi-hot
    skipped: List[Tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    cropped: List[str] = field(default_factory=list)  # clips longer than the model input: their end is cut
    # (n,) share of the clean clip's 25 ms frames that are digital silence (below -80 dBFS): noise
    # changes such frames wholesale, so robustness can be read against it
    silent_fraction: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, batch_size: int) -> Iterator[Tuple[List[int], torch.Tensor, torch.Tensor]]:
        """(indices, fbank batch, valid frames); clips of equal length batched together."""
        by_length: Dict[int, List[int]] = {}
        for i, f in enumerate(self.fbanks):
            by_length.setdefault(f.shape[0], []).append(i)
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
                 progress: bool = True):
        self.disk_cache = disk_cache
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
        path = cache_dir("features") / f"{key}.pt" if self.disk_cache else None
        features = _read(path) if path is not None else None
        if features is not None:
            COUNTER.loaded += len(features)
            self.last = f"features {variant.id} ({split}): {len(features)} clips reused from cache"
        else:
            features = self._compute(variant, frontend, clips, split)
            COUNTER.computed += len(clips)  # every listed clip went through the front end (or failed)
            self.last = f"features {variant.id} ({split}): {len(features)} clips computed"
            if path is not None:
                _write(path, features)
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
            features, ids=[features.ids[i] for i in keep], fbanks=[features.fbanks[i] for i in keep],
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
            "on_bad_clip": self.on_bad_clip,
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:24]

    def _compute(self, variant: TaskVariant, frontend: FrontEnd, clips, split: str = "test") -> FeatureSet:
        task = variant.task
        ids, fbanks, valid, labels, silent, cropped = [], [], [], [], [], []
        skipped = list(task.skipped_entries(split))  # left out while listing (unknown label, missing file)
        with Progress(len(clips), f"features {variant.id} ({split})", self.progress, unit="clip") as bar:
            for clip in clips:
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
                ids.append(clip.id)
                fbanks.append(fbank)
                valid.append(n_valid)
                labels.append(clip.labels)
                silent.append(stats["silent_fraction"])
                if was_cropped:
                    cropped.append(clip.id)
        if not ids:
            raise DataError(f"{variant.id}: no usable clips ({len(skipped)} skipped)")
        if cropped:
            log.info("%s: %d clips longer than the model input were cropped", variant.id, len(cropped))
        return FeatureSet(ids, fbanks, torch.tensor(valid), encode_labels(labels, task.metric, task.num_classes), skipped,
                          cropped, torch.tensor(silent))


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


def silent_fraction(wave: torch.Tensor, sample_rate: int, floor_dbfs: float = -80.0) -> float:
    """Share of the 25 ms frames whose RMS is below `floor_dbfs` (digital silence)."""
    power = frame_powers(wave, sample_rate)
    if power is None:
        return float(wave.double().pow(2).mean() < 10 ** (floor_dbfs / 10))
    return float((power < 10 ** (floor_dbfs / 10)).double().mean())


def encode_labels(labels: List[Tuple[int, ...]], metric: str, num_classes: int) -> torch.Tensor:
    if metric == "accuracy":
        return torch.tensor([l[0] for l in labels], dtype=torch.long)
    multi_hot = torch.zeros(len(labels), num_classes)
    for i, l in enumerate(labels):
        multi_hot[i, list(l)] = 1.0
    return multi_hot


def _read(path: Path) -> Optional[FeatureSet]:
    if not path.is_file():
        return None
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
        # Own storage per clip: a view into the stacked tensor would carry (and pickle, when
        # features travel to another process) the whole variant with every clip.
        fbanks = [f.clone() for f in payload["fbanks"]]
        return FeatureSet(payload["ids"], fbanks, payload["valid_frames"], payload["labels"],
                          [tuple(s) for s in payload["skipped"]], list(payload["cropped"]), payload.get("silent_fraction"))
    except Exception as exc:  # a damaged cache file is rebuilt, never trusted
        log.warning("feature cache %s unreadable (%s); recomputing", path, exc)
        return None


def _write(path: Path, features: FeatureSet) -> None:
    same_length = len({f.shape for f in features.fbanks}) == 1
    payload = {
        "ids": features.ids,
        "fbanks": torch.stack(features.fbanks) if same_length else features.fbanks,
        "valid_frames": features.valid_frames,
        "labels": features.labels,
        "skipped": [list(s) for s in features.skipped],
        "cropped": features.cropped,
        "silent_fraction": features.silent_fraction,
    }
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(payload, str(tmp))
    os.replace(tmp, path)
