"""Executors: where the units of a run execute (this process, or a Ray cluster)."""
from __future__ import annotations

from typing import Any

from prunebench.core.errors import ConfigError, did_you_mean
from prunebench.run.executors.base import Executor, Sink

EXECUTORS = ("local", "ray")


def make_executor(name: str = "local", echo=print, progress: bool = True, **options: Any) -> Executor:
    """`local` (the default) or `ray` (options: address, methods_per_task, max_retries)."""
    if name == "local":
        from prunebench.run.executors.local import LocalExecutor

        return LocalExecutor(echo=echo, progress=progress)
    if name == "ray":
        from prunebench.run.executors.ray_cluster import RayExecutor

        return RayExecutor(echo=echo, **options)
    raise ConfigError(f"unknown executor {name!r}{did_you_mean(name, EXECUTORS)}; known: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "Executor", "Sink", "make_executor"]
