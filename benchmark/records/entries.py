"""The results store's entries: the published board's content, one folder per entry.

Layout: `<store>/<track>/<entry id>/` holds `entry.json`, the entry's records as a results folder
(`records/`, JSON and sidecars) and the source of each method it ranks (`sources/<file>`).
`published` is the project's own run of a track (every built-in method and `none`); every other
entry is a submission merged by `prunebench leaderboard --add` (one method, and the `none` it was
timed against). `entry.json` says what the board shows beside the numbers: the track and its
version, the division (closed: same model, weights and data as the published `none`, proven by
equal predictions; open: another checkpoint or fine-tuned weights), each ranked method's source
file and sha256, and the system that measured it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from prunebench.core.errors import DataError
from prunebench.records.store_files import PUBLISHED, RECORDS, read_document, write_document
from prunebench.records.studies import STUDIES

ENTRY_SCHEMA = "prunebench-entry-1"
ENTRY_FILE = "entry.json"
SOURCES = "sources"
CLOSED, OPEN = "closed", "open"


@dataclass(frozen=True)
class MethodSource:
    name: str
    file: str  # inside the entry's folder, e.g. sources/topk.py
    sha256: str


@dataclass(frozen=True)
class Entry:
    track: str
    track_version: int
    protocol: int
    division: str  # CLOSED or OPEN
    kind: str  # "published" or "submission"
    methods: List[MethodSource]  # the methods the entry ranks (a submission: one)
    system: Dict[str, Any]  # the machine that measured it (prunebench.submit.system)
    folder: Path = field(default=Path("."), compare=False)
    missing: List[str] = field(default_factory=list)  # pairs of the track a partial published run lacks

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def records_folder(self) -> Path:
        return self.folder / RECORDS

    def to_dict(self) -> Dict[str, Any]:
        return {"schema": ENTRY_SCHEMA, "track": self.track, "track_version": self.track_version,
                "protocol": self.protocol, "division": self.division, "kind": self.kind,
                "methods": [{"name": m.name, "file": m.file, "sha256": m.sha256} for m in self.methods],
                "system": self.system, "missing": list(self.missing)}

    def write(self, folder: Path) -> None:
        write_document(folder / ENTRY_FILE, self.to_dict())

    @classmethod
    def read(cls, folder: Path) -> "Entry":
        def build(raw: Dict[str, Any]) -> "Entry":
            methods = [MethodSource(str(m["name"]), str(m["file"]), str(m["sha256"])) for m in raw["methods"]]
            return cls(str(raw["track"]), int(raw["track_version"]), int(raw["protocol"]), str(raw["division"]),
                       str(raw["kind"]), methods, dict(raw.get("system") or {}), Path(folder),
                       [str(m) for m in raw.get("missing") or []])
        return read_document(Path(folder) / ENTRY_FILE, ENTRY_SCHEMA, build, "store entry")

    def source_text(self, method: MethodSource) -> str:
        return (self.folder / method.file).read_text(encoding="utf-8")


def store_entries(store: Path) -> Dict[str, List[Entry]]:
    """Every entry of a store, by track (tracks and entries in name order, `published` first; the
    pruning-aware studies' folder is not a track: records/studies.py)."""
    store = Path(store)
    if not store.is_dir():
        raise DataError(f"results store not found: {store}")
    out: Dict[str, List[Entry]] = {}
    for track in sorted(p for p in store.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != STUDIES):
        folders = sorted((p for p in track.iterdir() if (p / ENTRY_FILE).is_file()),
                         key=lambda p: (p.name != PUBLISHED, p.name))
        if folders:
            out[track.name] = [Entry.read(p) for p in folders]
    return out
