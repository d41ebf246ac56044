"""Where prunebench keeps what it can rebuild: generated data, features, default checkpoints.

`PRUNEBENCH_CACHE` overrides the location (default: ~/.cache/prunebench, or $XDG_CACHE_HOME).
Nothing here ever lives inside the repository.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    explicit = os.environ.get("PRUNEBENCH_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "prunebench"


def cache_dir(*parts: str) -> Path:
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
