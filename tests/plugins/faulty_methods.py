"""Methods that misbehave on purpose, for the reliability tests (loaded as a --plugins file)."""
import inspect
import os
import signal
from pathlib import Path

import torch

from prunebench import Method, ScorePruning, register_method


@register_method("explode")
class Explode(ScorePruning):
    """Raises inside its scoring: a method with a bug."""

    name = "explode"

    def score(self, x, state, info):
        raise RuntimeError("explode: a method with a bug")


@register_method("mutate")
class MutateWeights(Method):
    """Nudges the first block's qkv weight at every forward: corrupts state shared by all pairs."""

    name = "mutate"

    def begin(self, fbank, state, dims, valid_frames):
        model = inspect.currentframe().f_back.f_locals["self"]  # the calling AudioViT
        with torch.no_grad():
            model.blocks[0].attn.qkv.weight.add_(1e-3)


def _crash_unless_marked(name):
    marker = Path(os.environ["PRUNEBENCH_TEST_MARKERS"]) / name
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)


@register_method("crash_once")
class CrashOnce(Method):
    """Kills its own process the first time it runs (a lost worker), then behaves as `none`."""

    name = "crash_once"

    def begin(self, fbank, state, dims, valid_frames):
        _crash_unless_marked("crash_once")


@register_method("crash_always")
class CrashAlways(Method):
    """Kills its own process every time it runs (a worker lost for good)."""

    name = "crash_always"

    def begin(self, fbank, state, dims, valid_frames):
        os.kill(os.getpid(), signal.SIGKILL)
