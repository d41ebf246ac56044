"""ESC-50: a local copy in the official layout (`audio/` + `meta/esc50.csv`), or the Hub copy.

Local: any sample rate and any format soundfile reads (the release is 44.1 kHz WAV; a 16 kHz FLAC
copy works the same). Hub (`source: hub`): the `datasets` copy (default `ashraq/esc50`: the
official csv columns plus an `audio` column); the audio bytes are decoded with soundfile, so
neither torchcodec nor ffmpeg is needed. `hub_id` may also be a local folder of such parquet files.

The split is by official fold, never shuffled: `split: fold5` evaluates fold 5 with a model
trained on folds 1-4 (the single-fold quick mode); `split: all` in a run config expands into the
five folds, one model each (the official 5-fold protocol).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Tuple

import torch

from prunebench.audio.decode import prepare_waveform
from prunebench.core.errors import ConfigError, DataError
from prunebench.audio.kaldi import ESC50_STATS
from prunebench.core.registry import register_task
from prunebench.metrics.accuracy import Accuracy

from prunebench.tasks.base import Clip, Task, check_disjoint

REQUIRED_COLUMNS = ("filename", "fold", "target", "category")
FOLDS = (1, 2, 3, 4, 5)
SOURCES = ("local", "hub")
DEFAULT_HUB_ID = "ashraq/esc50"


@register_task("esc50")
class ESC50(Task):
    """ESC-50 (Piczak 2015): 2000 clips of 5 s, 50 classes, 5 official folds; accuracy."""

    name = "esc50"
    defaults = {"root": None, "split": "fold5", "source": "local", "hub_id": DEFAULT_HUB_ID, "revision": None}
    metric = Accuracy.name
    clip_seconds = 5.0
    norm_stats: ClassVar[Tuple[float, float]] = ESC50_STATS
    license = "CC BY-NC 3.0 (ESC-10 subset: CC BY 3.0)"
    meta_file = "meta/esc50.csv"
    default_bucket_seconds = (1.0, 2.0, 5.0)

    def validate(self) -> None:
        if self.params["source"] not in SOURCES:
            raise ConfigError(f"task {self.name!r}: source must be one of {SOURCES}, got {self.params['source']!r}")
        self.hub = self.params["source"] == "hub"
        if not self.hub and self.params["root"] in (None, ""):
            raise ConfigError(f"task {self.name!r}: set root: the folder holding audio/ and {self.meta_file} "
                              f"(or source: hub for the Hub copy)")
        self.root = None if self.hub else Path(self.params["root"]).expanduser()
        self._dataset = None
        self.validate_split()

    def validate_split(self) -> None:
        split = str(self.params["split"])
        if split == "test":
            split = "fold5"
        if split not in {f"fold{f}" for f in FOLDS}:
            raise ConfigError(f"task {self.name!r}: split must be fold1..fold5, test (fold5) or all (five folds), "
                              f"got {self.params['split']!r}")
        self.test_fold = int(split[4:])
        self._rows: List[Dict[str, Any]] = []

    @property
    def split(self) -> str:
        return f"fold{self.test_fold}"

    def cross_validation_splits(self) -> List[str]:
        return [f"fold{f}" for f in FOLDS]

    def rows(self) -> List[Dict[str, Any]]:
        if not self._rows:
            self._rows = self._hub_rows() if self.hub else read_meta(self.root, self.meta_file)
        return self._rows

    @property
    def class_names(self) -> List[str]:
        names: Dict[int, str] = {}
        for row in self.rows():
            names.setdefault(int(row["target"]), row["category"])
        return [names.get(i, f"class{i}") for i in range(max(names) + 1)]

    def clips(self, folds: Tuple[int, ...]) -> List[Clip]:
        if self.hub:
            return [Clip(Path(row["filename"]).stem, Path(self.source_name()) / row["filename"], (int(row["target"]),),
                         int(row["fold"]), index=row["index"])
                    for row in self.rows() if int(row["fold"]) in folds]
        audio = self.root / "audio"
        return [
            Clip(Path(row["filename"]).stem, audio / row["filename"], (int(row["target"]),), int(row["fold"]))
            for row in self.rows()
            if int(row["fold"]) in folds
        ]

    def test_clips(self) -> List[Clip]:
        return self.clips((self.test_fold,))

    def train_clips(self) -> List[Clip]:
        clips = self.clips(tuple(f for f in FOLDS if f != self.test_fold))
        check_disjoint(self.test_clips(), clips, self.source_name())
        return clips

    def source_name(self) -> str:
        return f"hub:{self.params['hub_id']}" if self.hub else str(self.root / self.meta_file)

    # -- the Hub copy ------------------------------------------------------------------------
    def load(self, clip: Clip) -> torch.Tensor:
        if clip.index is None:
            return super().load(clip)
        audio = self.dataset()[clip.index]["audio"]
        source = str(clip.path)
        return decode_audio_bytes(audio, self.sample_rate, source)

    def dataset(self):
        """The Hub copy as a `datasets.Dataset` whose audio column is left undecoded (bytes)."""
        if self._dataset is None:
            self._dataset = load_hub_dataset(self.params["hub_id"], self.params["revision"], REQUIRED_COLUMNS + ("audio",))
        return self._dataset

    def _hub_rows(self) -> List[Dict[str, Any]]:
        ds = self.dataset()
        columns = {c: list(ds[c]) for c in REQUIRED_COLUMNS}
        rows = [{**{c: columns[c][i] for c in REQUIRED_COLUMNS}, "index": i} for i in range(len(ds))]
        where = self.source_name()
        check_rows(rows, lambda i: f"{where} row {i}")
        return rows

    def fingerprint(self, clips: List[Clip]) -> str:
        if not self.hub:
            return super().fingerprint(clips)
        import hashlib
        import json

        digest = hashlib.sha256()
        digest.update(json.dumps({"task": self.name, "hub": self.params["hub_id"], "revision": self.params["revision"],
                                  "data": getattr(self.dataset(), "_fingerprint", None)}, sort_keys=True).encode())
        for clip in clips:
            digest.update(f"{clip.id}|{clip.labels}|{clip.index}\n".encode())
        return digest.hexdigest()


def load_hub_dataset(hub_id: str, revision: Any, required: Tuple[str, ...]):
    """`datasets.load_dataset(hub_id)` (a Hub id or a local folder of parquet files), its audio
    column cast to undecoded bytes; a missing column is an error naming it."""
    import datasets

    try:
        ds = datasets.load_dataset(hub_id, split="train", revision=revision)
    except Exception as exc:  # network, missing repository, unreadable files
        text = str(exc).strip().splitlines()
        raise DataError(f"cannot load the Hub dataset {hub_id!r}: {text[0] if text else type(exc).__name__}") from None
    missing = [c for c in required if c not in ds.column_names]
    if missing:
        raise DataError(f"Hub dataset {hub_id!r}: missing column(s) {', '.join(missing)} (has: {', '.join(ds.column_names)})")
    if isinstance(ds.features.get("audio"), datasets.Audio):
        ds = ds.cast_column("audio", datasets.Audio(decode=False))
    return ds


def decode_audio_bytes(audio: Any, sample_rate: int, source: str) -> torch.Tensor:
    """A Hub audio cell ({"bytes", "path"}) decoded with soundfile to a mono waveform."""
    import soundfile as sf

    if not isinstance(audio, dict):
        raise DataError(f"{source}: audio cell is {type(audio).__name__}, expected {{bytes, path}}")
    data = audio.get("bytes")
    try:
        if data:
            samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        elif audio.get("path") and Path(audio["path"]).is_file():
            samples, rate = sf.read(audio["path"], dtype="float32", always_2d=True)
        else:
            raise DataError(f"{source}: audio cell holds neither bytes nor a readable file")
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot decode audio {source}: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    return prepare_waveform(samples, rate, sample_rate, source=source)


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
    check_rows(rows, lambda i: f"{meta} line {i + 2}")
    for line, row in enumerate(rows, start=2):
        if not (root / "audio" / row["filename"]).is_file():
            raise DataError(f"{meta} line {line}: audio file not found: {root / 'audio' / row['filename']}")
    return rows


def check_rows(rows: List[Dict[str, Any]], where) -> None:
    """Folds 1..5, integer targets, each file listed once (a file in two folds would leak)."""
    if not rows:
        raise DataError(f"{where(0)}: no rows")
    seen: Dict[str, int] = {}
    for i, row in enumerate(rows):
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except (TypeError, ValueError):
            raise DataError(f"{where(i)}: fold and target must be integers, got {row['fold']!r}, {row['target']!r}") from None
        if fold not in FOLDS or target < 0:
            raise DataError(f"{where(i)}: fold must be 1..5 and target >= 0, got {fold}, {target}")
        stem = Path(str(row["filename"])).stem
        if stem in seen:
            raise DataError(f"{where(i)}: {row['filename']} is listed twice (first at {where(seen[stem])})")
        seen[stem] = i
