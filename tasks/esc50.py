"""ESC-50 in its official layout: `audio/` + `meta/esc50.csv`, five official folds.

Any sample rate and any format soundfile reads (the release is 44.1 kHz WAV; a 16 kHz FLAC copy
works the same). The split is by official fold, never shuffled.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar, Dict, List, Tuple

from benchmark.errors import ConfigError, DataError
from benchmark.frontend import ESC50_STATS
from benchmark.registry import register_task

from .base import Clip, Task

REQUIRED_COLUMNS = ("filename", "fold", "target", "category")
FOLDS = (1, 2, 3, 4, 5)


@register_task("esc50")
class ESC50(Task):
    """ESC-50 (Piczak 2015): 2000 clips of 5 s, 50 classes, 5 official folds; accuracy."""

    name = "esc50"
    defaults = {"root": None, "split": "fold5"}
    metric = "accuracy"
    clip_seconds = 5.0
    norm_stats: ClassVar[Tuple[float, float]] = ESC50_STATS
    license = "CC BY-NC 3.0 (ESC-10 subset: CC BY 3.0)"
    meta_file = "meta/esc50.csv"

    def validate(self) -> None:
        if self.params["root"] in (None, ""):
            raise ConfigError(f"task {self.name!r}: set root: the folder holding audio/ and {self.meta_file}")
        self.root = Path(self.params["root"]).expanduser()
        self.validate_split()

    def validate_split(self) -> None:
        split = str(self.params["split"])
        if split == "test":
            split = "fold5"
        if split not in {f"fold{f}" for f in FOLDS}:
            raise ConfigError(f"task {self.name!r}: split must be fold1..fold5 (or test), got {self.params['split']!r}")
        self.test_fold = int(split[4:])
        self._rows: List[Dict[str, str]] = []

    @property
    def split(self) -> str:
        return f"fold{self.test_fold}"

    def rows(self) -> List[Dict[str, str]]:
        if not self._rows:
            self._rows = read_meta(self.root, self.meta_file)
        return self._rows

    @property
    def class_names(self) -> List[str]:
        names: Dict[int, str] = {}
        for row in self.rows():
            names.setdefault(int(row["target"]), row["category"])
        return [names.get(i, f"class{i}") for i in range(max(names) + 1)]

    def clips(self, folds: Tuple[int, ...]) -> List[Clip]:
        audio = self.root / "audio"
        return [
            Clip(Path(row["filename"]).stem, audio / row["filename"], (int(row["target"]),), int(row["fold"]))
            for row in self.rows()
            if int(row["fold"]) in folds
        ]

    def test_clips(self) -> List[Clip]:
        return self.clips((self.test_fold,))

    def train_clips(self) -> List[Clip]:
        return self.clips(tuple(f for f in FOLDS if f != self.test_fold))


def read_meta(root: Path, meta_file: str) -> List[Dict[str, str]]:
    """Rows of the metadata csv, checked: columns present, values well formed, files present."""
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root}")
    meta = root / meta_file
    if not meta.is_file():
        raise DataError(f"metadata file not found: {meta}")
    with open(meta, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise DataError(f"{meta}: missing column(s) {', '.join(missing)} (has: {', '.join(columns) or 'none'})")
        rows = list(reader)
    if not rows:
        raise DataError(f"{meta}: no rows")
    for line, row in enumerate(rows, start=2):
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except (TypeError, ValueError):
            raise DataError(f"{meta} line {line}: fold and target must be integers, got {row['fold']!r}, {row['target']!r}") from None
        if fold not in FOLDS or target < 0:
            raise DataError(f"{meta} line {line}: fold must be 1..5 and target >= 0, got {fold}, {target}")
        if not (root / "audio" / row["filename"]).is_file():
            raise DataError(f"{meta} line {line}: audio file not found: {root / 'audio' / row['filename']}")
    return rows
