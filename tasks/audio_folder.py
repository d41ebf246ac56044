"""audio-folder: any labelled folder or manifest as a task, so a new dataset needs no code.

Three layouts:
- `root/<split>/<class>/*.wav` (split folders, e.g. train/ and test/, or fold1/ ... fold5/);
- `root/<class>/*.wav` with `folds: N`: every file goes to fold1..foldN by a hash of its path
  (deterministic; note that near-duplicate recordings may land in different folds, which is why
  ESC-50 ships official folds: prefer a manifest with a fold column when the data has one);
- a manifest (`manifest: FILE`, csv or json, see tasks/manifest.py) with a split or fold column,
  or one manifest per split (`manifest: {train: train.json, eval: eval.json}`).
Labels are class folder names, or the manifest's labels resolved through `labels: FILE` (a label
map) when given. Several labels per clip make a multi-label task scored by mAP (`metric: auto`);
`metric:` names any registered metric instead (`prunebench list`), e.g. top5-accuracy.
The evaluated split is `split`; the model trains on every other split (or on `train_split`).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from prunebench.core.errors import ConfigError, DataError, did_you_mean
from prunebench.audio.kaldi import AUDIOSET_STATS, ESC50_STATS
from prunebench.core.params import require_number
from prunebench.core.registry import METRICS, register_task
from prunebench.metrics.accuracy import Accuracy
from prunebench.metrics.map import MeanAveragePrecision

from prunebench.tasks.base import Clip, Task, check_disjoint
from prunebench.tasks.manifest import Entry, LabelMap, label_map_from_data, read_label_map, read_manifest

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus", ".w64", ".caf")
NAMED_STATS = {"audioset": AUDIOSET_STATS, "esc50": ESC50_STATS}


def audio_files(folder: Path) -> List[Path]:
    """Audio files under a folder (recursively), sorted: the order never depends on the disk."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def longest_clip_seconds(clips: List[Clip], root: Path) -> float:
    """The longest clip's duration by its file header (a file without one is decoded)."""
    import soundfile as sf

    from prunebench.audio.decode import load_audio

    longest = 0.0
    for clip in clips:
        try:
            seconds = sf.info(str(clip.path)).duration
        except Exception:  # a format soundfile cannot read (mp3 on old libsndfile): decode it
            try:
                seconds = load_audio(clip.path, 16000).numel() / 16000
            except Exception:  # a bad clip: the features report it (an error, or a counted skip)
                continue
        longest = max(longest, float(seconds))
    if longest <= 0:
        raise DataError(f"{root}: no clip with audio to take the nominal length from; set clip_seconds")
    return longest


@register_task("audio-folder")
class AudioFolder(Task):
    """Any labelled folder (root/<split>/<class>/, root/<class>/ + folds) or csv/json manifest."""

    name = "audio-folder"
    defaults = {"root": None, "manifest": None, "labels": None, "split": "test", "train_split": None,
                "folds": None, "metric": "auto", "sample_rate": 16000, "clip_seconds": None, "norm_stats": "audioset"}
    license = "as the dataset's"

    def validate(self) -> None:
        where = f"task {self.name!r}"
        if self.params["root"] in (None, ""):
            raise ConfigError(f"{where}: set root: the dataset folder (manifest paths are relative to it)")
        self.root = Path(self.params["root"]).expanduser()
        manifest = self.params.get("manifest")
        if manifest is not None and not isinstance(manifest, (str, dict)):
            raise ConfigError(f"{where}: manifest must be a file or a mapping {{split: file}}, got {manifest!r}")
        folds = self.params.get("folds")
        if folds is not None:
            require_number(where, "folds", folds, 2, 100)
        chosen = self.params.get("metric", "auto")
        if chosen != "auto" and (not isinstance(chosen, str) or chosen not in METRICS):
            raise ConfigError(f"{where}: metric must be auto or a registered metric ({', '.join(METRICS.names())}), "
                              f"got {chosen!r}{did_you_mean(str(chosen), METRICS.names())}")
        self.sample_rate = int(self.params.get("sample_rate", 16000))
        require_number(where, "sample_rate", self.sample_rate, 1000, 384_000)
        declared = self.params.get("clip_seconds")
        if declared is not None:
            require_number(where, "clip_seconds", declared, 0.0, 36_000, lo_open=True)
        self._seconds: Optional[float] = None if declared is None else float(declared)
        self.norm_stats = self._stats(self.params.get("norm_stats", "audioset"), where)
        self._loaded: Optional[Tuple[Dict[str, List[Clip]], Dict[str, List[Tuple[str, str]]], LabelMap]] = None

    @property
    def clip_seconds(self) -> float:  # type: ignore[override]
        """The nominal clip length: `clip_seconds` when declared, else the dataset's longest clip
        (measured once, from the files' headers)."""
        if self._seconds is None:
            self._seconds = longest_clip_seconds([c for clips in self.data()[0].values() for c in clips], self.root)
        return self._seconds

    @property
    def default_bucket_seconds(self) -> Tuple[float, ...]:  # type: ignore[override]
        return tuple(round(self.clip_seconds * f, 3) for f in (0.25, 0.5, 1.0))

    @staticmethod
    def _stats(value: Any, where: str) -> Tuple[float, float]:
        if isinstance(value, str) and value in NAMED_STATS:
            return NAMED_STATS[value]
        if (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
                and value[1] > 0):
            return float(value[0]), float(value[1])
        raise ConfigError(f"{where}: norm_stats must be {' or '.join(NAMED_STATS)} or [mean, std], got {value!r}")

    # -- the Task interface ------------------------------------------------------------------
    @property
    def split(self) -> str:
        return str(self.params["split"])

    @property
    def metric(self) -> str:  # type: ignore[override]
        chosen = self.params.get("metric", "auto")
        if chosen != "auto":
            return chosen
        splits, _, _ = self.data()
        single = all(len(c.labels) == 1 for clips in splits.values() for c in clips)
        return (Accuracy if single else MeanAveragePrecision).name

    @property
    def class_names(self) -> List[str]:
        return list(self.data()[2].names)

    def test_clips(self) -> List[Clip]:
        splits = self.data()[0]
        if self.split not in splits:
            raise DataError(f"{self.root}: no split {self.split!r}; the data has: {', '.join(sorted(splits))}")
        return splits[self.split]

    def train_clips(self) -> List[Clip]:
        splits = self.data()[0]
        names = self._train_split_names(splits)
        clips = [c for name in names for c in splits[name]]
        if not clips:
            raise DataError(f"{self.root}: nothing to train on besides split {self.split!r}")
        check_disjoint(self.test_clips(), clips, str(self.root))
        return clips

    def _train_split_names(self, splits: Dict[str, List[Clip]]) -> List[str]:
        chosen = self.params.get("train_split")
        if chosen is None:
            return [s for s in sorted(splits) if s != self.split]
        if chosen not in splits:
            raise DataError(f"{self.root}: no train_split {chosen!r}; the data has: {', '.join(sorted(splits))}")
        return [chosen]

    def skipped_entries(self, which: str) -> List[Tuple[str, str]]:
        skipped = self.data()[1]
        names = [self.split] if which == "test" else self._train_split_names(self.data()[0])
        return [s for name in names for s in skipped.get(name, [])]

    def cross_validation_splits(self) -> List[str]:
        folds = self.params.get("folds")
        if folds:
            return [f"fold{i}" for i in range(1, int(folds) + 1)]
        names = sorted((s for s in self.data()[0] if re.fullmatch(r"fold\d+", s)), key=lambda s: int(s[4:]))
        if len(names) < 2:
            raise ConfigError(f"task {self.name!r} at {self.root}: split: all needs fold splits (fold1, fold2, ...) "
                              f"or folds: N; the data has: {', '.join(sorted(self.data()[0]))}")
        return names

    # -- reading the data --------------------------------------------------------------------
    def data(self) -> Tuple[Dict[str, List[Clip]], Dict[str, List[Tuple[str, str]]], LabelMap]:
        """(clips per split, skipped entries per split, label map), read once."""
        if self._loaded is None:
            self._loaded = self._read()
        return self._loaded

    def _read(self):
        if not self.root.is_dir():
            raise DataError(f"dataset root not found: {self.root}")
        manifest = self.params.get("manifest")
        if manifest is None:
            entries = self._folder_entries()
        elif isinstance(manifest, dict):
            entries = []
            for split, file in manifest.items():
                entries += [Entry(e.path, e.labels, str(split), e.where) for e in read_manifest(self._resolve(file))]
        else:
            entries = read_manifest(self._resolve(manifest))
        entries = self._assign_folds(entries)
        labels = self._label_map(entries)
        return (*self._clips(entries, labels), labels)

    def _resolve(self, file: Any) -> Path:
        path = Path(str(file)).expanduser()
        return path if path.is_absolute() else self.root / path

    def _folder_entries(self) -> List[Entry]:
        subfolders = sorted(p for p in self.root.iterdir() if p.is_dir())
        direct = [p for p in subfolders if any(f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS for f in p.iterdir())]
        entries: List[Entry] = []
        if direct:  # root/<class>/files
            for folder in subfolders:
                entries += [Entry(str(f.relative_to(self.root)), (folder.name,), None, str(f)) for f in audio_files(folder)]
        else:  # root/<split>/<class>/files
            for split in subfolders:
                for folder in sorted(p for p in split.iterdir() if p.is_dir()):
                    entries += [Entry(str(f.relative_to(self.root)), (folder.name,), split.name, str(f))
                                for f in audio_files(folder)]
        if not entries:
            raise DataError(f"{self.root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in root/<class>/ or root/<split>/<class>/")
        return entries

    def _assign_folds(self, entries: List[Entry]) -> List[Entry]:
        folds = self.params.get("folds")
        missing = [e for e in entries if e.split is None]
        if not missing:
            if folds:
                raise ConfigError(f"task {self.name!r}: folds: {folds} is for data without splits; {self.root} has its own")
            return entries
        if not folds:
            raise DataError(f"{missing[0].where}: no split for {missing[0].path}: give the data split folders, a split or "
                            f"fold column, or set folds: N to assign folds by a hash of each path")
        out = []
        for e in entries:
            if e.split is None:
                h = int.from_bytes(hashlib.sha256(e.path.encode()).digest()[:8], "little")
                e = Entry(e.path, e.labels, f"fold{h % int(folds) + 1}", e.where)
            out.append(e)
        return out

    def _label_map(self, entries: List[Entry]) -> LabelMap:
        if self.params.get("labels"):
            return read_label_map(self._resolve(self.params["labels"]))
        return label_map_from_data([t for e in entries for t in e.labels], str(self.root))

    def _clips(self, entries: List[Entry], labels: LabelMap):
        splits: Dict[str, List[Clip]] = {}
        skipped: Dict[str, List[Tuple[str, str]]] = {}
        seen: Dict[str, str] = {}
        for e in entries:
            path = self._resolve(e.path)
            clip_id = clip_id_for(e.path)
            if clip_id in seen:
                raise DataError(f"{e.where}: clip {clip_id} listed twice (first at {seen[clip_id]}): "
                                f"a clip in two splits would leak")
            seen[clip_id] = e.where
            problem = None
            unknown = [t for t in e.labels if labels.index(t) is None]
            if unknown:
                problem = f"label {unknown[0]!r} is not in the label map {labels.source}"
            elif not path.is_file():
                problem = f"audio file not found: {path}"
            if problem:
                if self.on_bad_clip != "skip":
                    raise DataError(f"{e.where}: {problem} (on_bad_clip: skip leaves such entries out, counted)")
                skipped.setdefault(e.split, []).append((clip_id, problem))
                continue
            index = tuple(sorted({labels.index(t) for t in e.labels}))
            fold = int(e.split[4:]) if re.fullmatch(r"fold\d+", e.split or "") else None
            splits.setdefault(e.split, []).append(Clip(clip_id, path, index, fold))
        return splits, skipped

    def describe(self) -> Dict[str, Any]:
        out = super().describe()
        out["metric"] = self.metric
        return out


def clip_id_for(relative: str) -> str:
    """The path without its extension ("dog/001"), so equal file names in two classes stay apart."""
    p = Path(relative)
    return str(p.with_suffix("")) if not p.is_absolute() else p.stem
