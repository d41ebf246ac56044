"""Task variants: a task with at most one corruption and one length bucket, its clips at their
nominal length or at their own (`lengths`: trimmed to their content, or a seeded length each).

`esc50/fold5`, `esc50/fold5+white@0dB`, `esc50/fold5+len2s`, `esc50/fold5+trim+white@20dB`.
Variants are built from parameters, never written out by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from prunebench.tasks.base import Task
from prunebench.tasks.buckets import LengthBucket
from prunebench.tasks.corruption import Corruption
from prunebench.tasks.lengths import ClipLengths


@dataclass(frozen=True)
class TaskVariant:
    task: Task
    corruption: Optional[Corruption] = None
    bucket: Optional[LengthBucket] = None
    lengths: Optional[ClipLengths] = None  # None: every clip at the task's nominal length

    @property
    def id(self) -> str:
        parts = [self.task.id]
        if self.lengths is not None:
            parts.append(self.lengths.id)
        if self.corruption is not None:
            parts.append(self.corruption.id)
        if self.bucket is not None:
            parts.append(self.bucket.id)
        return "+".join(parts)

    def listed_clip_ids(self) -> List[str]:
        """The clips the variant is evaluated on: those listed, and those left out while listing
        (a record names both: its per-clip ids and its skipped clips)."""
        return [c.id for c in self.task.test_clips()] + [i for i, _ in self.task.skipped_entries("test")]

    @property
    def clean(self) -> "TaskVariant":
        """The same variant without its corruption (what robustness is measured against)."""
        return TaskVariant(self.task, None, self.bucket, self.lengths)

    def describe(self) -> Dict[str, Any]:
        out = {
            **self.task.describe(),
            "variant": self.id,
            "corruption": None if self.corruption is None else self.corruption.describe(),
            "bucket": None if self.bucket is None else self.bucket.describe(),
        }
        if self.lengths is not None:  # absent, as in records written before it: the nominal length
            out["lengths"] = {"id": self.lengths.id, "params": dict(self.lengths.params)}
        return out
