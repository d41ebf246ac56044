"""The model input's length for a task: the one rule every part of a run and a training reads.

By default the front end's frame count of the task's nominal clip length, rounded up to whole
patches (AST's 5 s: 498 -> 512 frames, as registered; 1 s: 98 -> 112); an explicit frame count
wins; a family with a fixed window (Whisper's pad30) keeps it. `model_config` is the model's
EncoderConfig (models sit above data, so it is read, not imported).
"""
from __future__ import annotations

import math
from typing import Any, Optional

from prunebench.core.errors import DataError
from prunebench.tasks.base import Task


def task_frames(task: Task, model_config: Any) -> int:
    """Frames of the task's nominal clip under the model's front end, in whole patches."""
    frontend = model_config.frontend(task.sample_rate, task.norm_stats)
    native = frontend.frames_for_seconds(task.clip_seconds)
    patch = model_config.patch_size
    return max(patch, math.ceil(native / patch) * patch)


def input_frames_for(task: Task, model_config: Any, frames: Optional[int] = None) -> int:
    """The frame count a model runs at on `task`: `frames` when given, the family's fixed window
    when it has one, else the task's nominal length (task_frames)."""
    if frames is not None:
        return int(frames)
    if model_config.fixed_frames is not None:
        return model_config.fixed_frames
    return task_frames(task, model_config)


def check_frames(frames: int, model_config: Any, source: str, task: Optional[Task] = None) -> None:
    """DataError naming `source` (a checkpoint, a model) when the model's positions cannot be
    adapted to `frames` (fewer than one patch, or more than a fixed table covers)."""
    need = f"{frames} frames" + (f" (task {task.id}, {task.clip_seconds:g} s clips)" if task is not None else "")
    if frames < model_config.patch_size:
        raise DataError(f"{source}: {need} are fewer than one {model_config.patch_size}-frame patch")
    limit = model_config.max_frames
    if limit is not None and frames > limit:
        raise DataError(f"{source}: made for {model_config.target_frames} frames, its fixed positions cover at most "
                        f"{limit} frames and cannot be adapted to {need}")
