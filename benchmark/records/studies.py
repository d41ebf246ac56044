"""The results store's pruning-aware studies: what the published board shows beside the tracks.

A study compares one model off the shelf against its pruning-aware versions (docs/pruning-aware.md):
`<store>/pruning-aware/<study>/` holds `study.json` (its title, what it is, which folder plays which
part) and one results folder per part, records only (JSON and sidecars):
- `off-the-shelf/`: `none` and every method at its tuned keep rate, on the unpruned model (and the
  testbed of effective robustness, where the run had one);
- one folder per pruning-aware model (one method each);
- `control/` (optional): the unpruned model given the same extra training, whose `none` the
  pruning-aware models are read against instead of the off-the-shelf `none`.
A study whose off-the-shelf model is a track's (the same frozen encoder) may name that track as
`testbed_track`: its published entry's testbed members are read in place, not copied.
Written only by `prunebench leaderboard --publish-aware` (prunebench.submit.store.publish_study).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from prunebench.core.errors import DataError
from prunebench.records.record import Record
from prunebench.records.store_files import published_records, read_document, write_document

STUDIES = "pruning-aware"  # the store's folder of studies (not a track)
STUDY_FILE = "study.json"
STUDY_SCHEMA = "prunebench-study-1"
OFF_THE_SHELF = "off-the-shelf"
CONTROL = "control"


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    about: str
    aware: List[str]  # the pruning-aware folders, one method each
    control: bool  # a control folder is there
    testbed_track: Optional[str] = None  # a track whose published testbed is this study's (same encoder)
    folder: Path = field(default=Path("."), compare=False)

    @property
    def off_the_shelf(self) -> Path:
        return self.folder / OFF_THE_SHELF

    @property
    def control_folder(self) -> Optional[Path]:
        return self.folder / CONTROL if self.control else None

    def aware_folders(self) -> List[Path]:
        return [self.folder / name for name in self.aware]

    def testbed_records(self) -> Optional[Path]:
        """The records folder of the track whose testbed this study reads, beside it in the store."""
        return None if self.testbed_track is None else published_records(self.folder.parent.parent, self.testbed_track)

    def to_dict(self) -> Dict[str, Any]:
        return {"schema": STUDY_SCHEMA, "title": self.title, "about": self.about, "aware": list(self.aware),
                "control": self.control, **({"testbed_track": self.testbed_track} if self.testbed_track else {})}

    def write(self, folder: Path) -> None:
        write_document(folder / STUDY_FILE, self.to_dict())

    @classmethod
    def read(cls, folder: Path) -> "Study":
        path = Path(folder) / STUDY_FILE
        study = read_document(path, STUDY_SCHEMA, lambda raw: cls(
            Path(folder).name, str(raw["title"]), str(raw.get("about") or ""), [str(a) for a in raw["aware"]],
            bool(raw.get("control")), raw.get("testbed_track"), Path(folder)), "store study")
        needs = [study.off_the_shelf, *study.aware_folders()] + ([study.control_folder] if study.control else [])
        for needed in needs + ([study.testbed_records()] if study.testbed_track else []):
            if not needed.is_dir():
                raise DataError(f"store study {path}: its folder {needed} is missing")
        return study


def store_studies(store: Path) -> List[Study]:
    """Every study of a store, in name order (none where the store has no studies folder)."""
    root = Path(store) / STUDIES
    if not root.is_dir():
        return []
    return [Study.read(p) for p in sorted(root.iterdir()) if (p / STUDY_FILE).is_file()]


def aware_method(records: List[Record], folder: Path) -> str:
    """The one method a pruning-aware folder's ok records (testbed members aside) evaluate."""
    methods = {r.method.id for r in records if r.ok and r.testbed is None}
    if len(methods) != 1:
        raise DataError(f"{folder}: a pruning-aware folder holds one method, found {sorted(methods) or 'none'}")
    return methods.pop()
