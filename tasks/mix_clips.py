"""`mix-clips`: another clip of the same dataset as noise, from a disjoint fold and another class.

For a clip under evaluation, the noise is a clip of the task's *training* split (so never a clip
of the evaluated fold: folds do not leak into each other) whose labels share nothing with the
clip's own, drawn at random (seeded per clip), a random segment of it (looped if shorter), added
at the target SNR. The model has heard these clips in training, under their own labels: the noise
is a confusable sound event, the hardest kind of real noise for a classifier.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import register_corruption

from prunebench.tasks.base import Clip
from prunebench.tasks.corruption import AdditiveNoise, ClipContext, fit_segment, is_silent

DRAWS = 8


@register_corruption("mix-clips")
class MixClips(AdditiveNoise):
    """Another clip of the dataset (training folds, another class) as noise, at snr_db."""

    name = "mix-clips"

    def validate(self) -> None:
        super().validate()
        self._pools: Dict[str, List[Clip]] = {}  # training clips per task id

    def pool(self, context: ClipContext) -> List[Clip]:
        """Candidate noise clips for this clip: training split, another fold, no shared label."""
        task = context.task
        if task.id not in self._pools:
            self._pools[task.id] = task.train_clips()
        clips = self._pools[task.id]
        own = set(context.clip.labels)
        return [c for c in clips if not own & set(c.labels) and c.id != context.clip.id
                and (c.fold is None or c.fold != context.clip.fold)]

    def choose(self, context: ClipContext, generator: torch.Generator,
               candidates: Optional[List[Clip]] = None) -> Clip:
        """One candidate at random; `candidates`: the clip's pool, when the caller already has it."""
        candidates = self.pool(context) if candidates is None else candidates
        if not candidates:
            raise DataError(f"clip {context.clip.id}: mix-clips found no training clip of another class to mix in")
        return candidates[int(torch.randint(0, len(candidates), (1,), generator=generator))]

    def draw(self, n: int, generator: torch.Generator, sample_rate: int, context: ClipContext) -> Tuple[Clip, torch.Tensor]:
        candidates = self.pool(context)  # once: it filters the whole training split
        for _ in range(DRAWS):
            other = self.choose(context, generator, candidates)
            segment = fit_segment(context.task.load(other), n, generator)
            if not is_silent(segment):
                return other, segment
        raise DataError(f"clip {context.clip.id}: {DRAWS} clips drawn to mix in were digital silence (last {other.path})")

    def noise(self, n, generator, sample_rate, context=None):
        if context is None:
            raise ConfigError("corruption 'mix-clips' needs the dataset: it is applied by the runner to a task's clips")
        return self.draw(n, generator, sample_rate, context)[1]
