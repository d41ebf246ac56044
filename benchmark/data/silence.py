"""Digital silence in a clip: its 25 ms frames below -80 dBFS (`per_clip.silent_fraction` of every
record), and the same at the front ends' 10 ms frame steps, so that it can be laid over a patch grid
(prunebench.analysis.token_placement: the share of kept tokens that are silent).

A clip's silence is a property of the clean clip, as the task's own loader gives it (no front end,
no model): noise turns such frames into noise wholesale.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import torch

from prunebench.audio.kaldi import shift_samples, window_samples
from prunebench.core.errors import DataError
from prunebench.core.progress import Progress
from prunebench.core.registry import TASKS
from prunebench.tasks.corruption import frame_powers

FLOOR_DBFS = -80.0


def silent_windows(wave: torch.Tensor, sample_rate: int, floor_dbfs: float = FLOOR_DBFS) -> Optional[torch.Tensor]:
    """Whether each whole 25 ms frame (not overlapping) is digital silence; None for a wave shorter
    than one frame."""
    power = frame_powers(wave, sample_rate)
    return None if power is None else power < 10 ** (floor_dbfs / 10)


def silent_fraction(wave: torch.Tensor, sample_rate: int, floor_dbfs: float = FLOOR_DBFS) -> float:
    """Share of the 25 ms frames that are digital silence."""
    windows = silent_windows(wave, sample_rate, floor_dbfs)
    if windows is None:
        return float(wave.double().pow(2).mean() < 10 ** (floor_dbfs / 10))
    return float(windows.double().mean())


def silent_steps(wave: torch.Tensor, sample_rate: int, floor_dbfs: float = FLOOR_DBFS) -> List[bool]:
    """Per 10 ms frame step of the front ends (step f: samples [f * hop, (f + 1) * hop)): whether
    the 25 ms frame holding the step's middle sample is digital silence. Steps past the last whole
    25 ms frame take its value."""
    windows = silent_windows(wave, sample_rate, floor_dbfs)
    hop = shift_samples(sample_rate)
    steps = -(-wave.numel() // hop)
    if windows is None:
        return [silent_fraction(wave, sample_rate, floor_dbfs) == 1.0] * steps
    size = max(1, window_samples(sample_rate))
    middle = torch.arange(steps) * hop + hop // 2
    index = (middle // size).clamp(max=windows.numel() - 1)
    return windows[index].tolist()


def task_silence(task_name: str, params: Dict, clip_ids: Iterable[str], progress: bool = False) -> Dict[str, List[bool]]:
    """Clip id -> `silent_steps` of the clean clips of a task (built from its name and parameters,
    as a record states them). A listed clip the task does not have is a DataError."""
    task = TASKS.get(task_name)(**params)
    clips = {c.id: c for c in task.test_clips()}
    wanted = list(clip_ids)
    missing = [c for c in wanted if c not in clips]
    if missing:
        raise DataError(f"task {task.id}: {len(missing)} clip(s) of the records are not in it, e.g. {missing[0]}")
    out: Dict[str, List[bool]] = {}
    with Progress(len(wanted), f"silence {task.id}", progress, unit="clip") as bar:
        for cid in wanted:
            out[cid] = silent_steps(task.load(clips[cid]), task.sample_rate)
            bar.update()
    return out
