"""The results store's small JSON documents (an entry's entry.json, a study's study.json): one way
to write them and one way to read them, checked against their schema; and the names of the
folders every part of the store finds the project's runs by."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, TypeVar

from prunebench.core.errors import DataError

T = TypeVar("T")

PUBLISHED = "published"  # a track's entry of the project's own run: <store>/<track>/published/
RECORDS = "records"  # an entry's records folder


def published_records(store: Path, track: str) -> Path:
    """The records folder of a track's published entry (the project's own run)."""
    return Path(store) / track / PUBLISHED / RECORDS


def write_document(path: Path, document: Dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def read_document(path: Path, schema: str, build: Callable[[Dict[str, Any]], T], what: str) -> T:
    """`build(raw)` of the JSON at `path` whose schema is `schema`; any failure is a DataError naming
    the file (`what`: "store entry", "store study")."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("schema") != schema:
            raise ValueError(f"schema {raw.get('schema')!r}, expected {schema}")
        return build(raw)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{what} {path}: unreadable ({exc})") from None
