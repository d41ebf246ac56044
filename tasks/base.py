"""What a task is: a labelled clip source, its label space, metric and front-end statistics."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import torch

from prunebench.audio.decode import load_audio
from prunebench.core.file_digest import content_sha256, remember
from prunebench.core.params import Configurable
from prunebench.core.registry import TASKS
from prunebench.metrics.accuracy import Accuracy


@dataclass(frozen=True)
class Clip:
    id: str  # stable within the task (file name without extension)
    path: Path  # the audio file, or a name for clips held in a dataset (Hub copies)
    labels: Tuple[int, ...]  # one label (single-label tasks) or several (multi-label)
    fold: Optional[int] = None
    index: Optional[int] = None  # row in an in-memory dataset (Hub copies); None: read `path`


class Task(Configurable):
    """A labelled clip source. Subclasses fill in the metadata and list their clips."""

    kind: ClassVar[str] = "task"
    metric: ClassVar[str] = Accuracy.name  # a registered metric's name (prunebench.metrics)
    sample_rate: ClassVar[int] = 16000
    clip_seconds: ClassVar[float] = 5.0
    norm_stats: ClassVar[Tuple[float, float]] = (-4.2677393, 4.5689974)  # AudioSet by default
    license: ClassVar[str] = ""
    # Length buckets used when a bucket entry gives no `seconds` (ESC-50: 1, 2, 5 s).
    default_bucket_seconds: ClassVar[Tuple[float, ...]] = (1.0, 2.0, 5.0)
    # "error" or "skip": what to do with a bad manifest entry (unknown label, missing file). The run
    # config's `on_bad_clip` sets it; skipped entries are counted and listed in every record.
    on_bad_clip: str = "error"

    # -- what subclasses provide ------------------------------------------------------------
    @property
    def split(self) -> str:
        """Name of the evaluated split, e.g. 'fold5'."""
        raise NotImplementedError

    @property
    def class_names(self) -> List[str]:
        raise NotImplementedError

    def test_clips(self) -> List[Clip]:
        raise NotImplementedError

    def train_clips(self) -> List[Clip]:
        raise NotImplementedError

    def cross_validation_splits(self) -> List[str]:
        """The splits of `split: all` (one model per held-out split); tasks with folds override."""
        from prunebench.core.errors import ConfigError

        raise ConfigError(f"task {self.name!r} has no cross-validation folds: split: all is for fold-based tasks")

    def skipped_entries(self, which: str) -> List[Tuple[str, str]]:
        """(clip id, reason) of the entries of the 'test' or 'train' clips left out while listing
        them (only with on_bad_clip: skip); they are recorded beside the clips skipped later."""
        return []

    # -- shared ----------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def id(self) -> str:
        return f"{self.name}/{self.split}"

    def load(self, clip: Clip) -> torch.Tensor:
        """The clip's mono waveform at the task's sample rate."""
        return load_audio(clip.path, self.sample_rate)

    def fingerprint(self, clips: List[Clip]) -> str:
        """Hash of what defines the data: task parameters, clip ids, labels and each file's content
        (its sha256, remembered per file version by prunebench.core.file_digest: a dataset copied
        anew, with new file times, is the same data and keeps its cached trainings and features)."""
        digest = hashlib.sha256()
        params = self.fingerprint_params()
        digest.update(json.dumps({"task": self.name, "params": params}, sort_keys=True).encode())
        for clip in clips:
            digest.update(f"{clip.id}|{clip.labels}|{clip_content(clip)}\n".encode())
        remember()
        return digest.hexdigest()

    def fingerprint_params(self) -> Dict[str, Any]:
        """The parameters that define the data. The data location is not one: a moved dataset is
        the same data."""
        return {k: v for k, v in _jsonable(self.params).items() if k != "root"}

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "split": self.split, "params": _jsonable(self.params)}


def clip_content(clip: Clip) -> str:
    """The sha256 of a clip's file ("-1" for a clip without one: a row of a Hub dataset, or missing)."""
    return content_sha256(clip.path) if clip.index is None and clip.path.exists() else "-1"


def _jsonable(params: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}


def check_disjoint(test: List[Clip], train: List[Clip], where: str) -> None:
    """DataError when a clip (by id or file) is both evaluated and trained on: a leak."""
    train_ids = {c.id for c in train}
    train_paths = {c.path for c in train if c.index is None}
    for clip in test:
        if clip.id in train_ids or (clip.index is None and clip.path in train_paths):
            from prunebench.core.errors import DataError

            raise DataError(f"{where}: clip {clip.id} ({clip.path}) is in both the evaluated and the training split")


TASKS.require_base(Task)
