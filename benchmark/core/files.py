"""Files that are never seen half-written, their sha256, and whether the process that left a
temporary one is still alive."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Callable, Union


def atomic_write(path: Path, data: Union[bytes, Callable[[BinaryIO], None]], tmp_mark: str = ".tmp") -> None:
    """Write `data` (bytes, or a function writing to the open file, which streams a large array) to
    a temporary file beside `path` (named with `tmp_mark` and this process's id), fsync it and
    rename it over `path`: a reader sees the old file or the new one, never part of it. The
    temporary file is removed on failure; OSError propagates for the caller to name."""
    tmp = path.with_name(f".{path.name}{tmp_mark}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            data(f) if callable(data) else f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_sha256(path: "str | Path") -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (checkpoints and shards are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
