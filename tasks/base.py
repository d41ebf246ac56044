"""What a task is: a labelled clip source, its label space, metric and front-end statistics."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import torch

from benchmark.audio import load_audio
from benchmark.params import Configurable


@dataclass(frozen=True)
class Clip:
    id: str  # stable within the task (file name without extension)
    path: Path
    labels: Tuple[int, ...]  # one label (single-label tasks) or several (multi-label)
    fold: Optional[int] = None


class Task(Configurable):
    """A labelled clip source. Subclasses fill in the metadata and list their clips."""

    kind: ClassVar[str] = "task"
    metric: ClassVar[str] = "accuracy"  # or "map" (multi-label)
    sample_rate: ClassVar[int] = 16000
    clip_seconds: ClassVar[float] = 5.0
    norm_stats: ClassVar[Tuple[float, float]] = (-4.2677393, 4.5689974)  # AudioSet by default
    license: ClassVar[str] = ""

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
        """Hash of what defines the data: task parameters, clip ids, labels, file sizes and times.

        Size and modification time stand in for the content (hashing a large dataset's audio
        would cost minutes): a regenerated or replaced file changes its time."""
        digest = hashlib.sha256()
        # The data location is not part of it: a moved dataset is the same data.
        params = {k: v for k, v in _jsonable(self.params).items() if k != "root"}
        digest.update(json.dumps({"task": self.name, "params": params}, sort_keys=True).encode())
        for clip in clips:
            stat = clip.path.stat() if clip.path.exists() else None
            size, mtime = (stat.st_size, stat.st_mtime_ns) if stat else (-1, -1)
            digest.update(f"{clip.id}|{clip.labels}|{size}|{mtime}\n".encode())
        return digest.hexdigest()

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name, "split": self.split, "params": _jsonable(self.params)}


def _jsonable(params: Dict[str, Any]) -> Dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in params.items()}
