"""A submission bundle's layout and manifest.

    BUNDLE/bundle.json      schema, track and its version, protocol, the method, the plugin file
                            and its sha256, the system description, and the sha256 of every file
                            under records/ (written when the run has finished)
    BUNDLE/plugin/FILE.py   the plugin's source, as submitted
    BUNDLE/records/         the records and sidecars, a results folder (the method and `none`)
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

from prunebench.core.files import atomic_write

BUNDLE_SCHEMA = "prunebench-bundle-1"
MANIFEST = "bundle.json"
PLUGIN = "plugin"
RECORDS = "records"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def record_files(records: Path) -> Dict[str, str]:
    """Every record and sidecar under `records`: path relative to the bundle -> sha256."""
    root = records.parent
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(records.rglob("*"))
            if p.is_file() and p.suffix in (".json", ".npz") and not p.name.startswith(".")}


@dataclass
class Manifest:
    raw: Dict[str, Any]

    @property
    def track(self) -> str:
        return str(self.raw.get("track"))

    @property
    def plugin_file(self) -> str:
        return str((self.raw.get("plugin") or {}).get("file"))

    @property
    def plugin_sha256(self) -> str:
        return str((self.raw.get("plugin") or {}).get("sha256"))

    @property
    def method(self) -> Dict[str, Any]:
        return dict(self.raw.get("method") or {})

    @property
    def files(self) -> Dict[str, str]:
        return dict(self.raw.get("files") or {})

    @property
    def system(self) -> Dict[str, Any]:
        return dict(self.raw.get("system") or {})

    def write(self, bundle: Path) -> None:
        text = json.dumps(self.raw, indent=1, sort_keys=True) + "\n"
        atomic_write(Path(bundle) / MANIFEST, text.encode("utf-8"))

    @classmethod
    def read(cls, bundle: Path) -> "Manifest":
        """The manifest as written; ValueError (for the schema check to name) if it is not JSON."""
        return cls(json.loads((Path(bundle) / MANIFEST).read_text(encoding="utf-8")))
