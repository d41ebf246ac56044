"""Reading labelled clip lists: csv or json manifests (AST's style included) and label maps.

A manifest lists one clip per entry: a path (relative to the dataset root, or absolute), one or
several labels, and optionally a split or fold. Accepted forms:
- csv with a `path` (or `filename`, `wav`, `file`) column, a `label` (one, taken whole) or
  `labels` (several, separated by `;`, or by `,` when there is no `;`) column, and optionally
  `split` or `fold`;
- json: AST's `{"data": [{"wav": PATH, "labels": "MID1,MID2"}, ...]}`, or a plain list of such
  objects (the same keys as the csv columns; `labels` may also be a list).
A label map (AudioSet's `class_labels_indices.csv`: index,mid,display_name; or a csv with an index
and a name column; a .txt with one name per line; a json list) fixes the label space: a label of
an entry may be any of a row's names (mid, display_name, name...) or its index.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from prunebench.core.errors import DataError

PATH_KEYS = ("path", "filename", "wav", "file", "audio")
LABEL_KEYS = ("labels", "label", "target", "category", "class")
NAME_COLUMNS = ("mid", "display_name", "name", "category", "label", "class")


@dataclass(frozen=True)
class Entry:
    """One manifest entry before its labels are resolved."""

    path: str
    labels: Tuple[str, ...]
    split: Optional[str]
    where: str  # "FILE line N" / "FILE entry N": named in errors


def read_manifest(path: Path) -> List[Entry]:
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _read_json(path)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    raise DataError(f"manifest {path}: expected a .csv, .tsv or .json file")


def _read_csv(path: Path, delimiter: str) -> List[Entry]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = list(reader)
    path_key = next((k for k in PATH_KEYS if k in columns), None)
    label_key = next((k for k in LABEL_KEYS if k in columns), None)
    if path_key is None or label_key is None:
        need = "a path column (" + "/".join(PATH_KEYS) + ")" if path_key is None else "a label column (" + "/".join(LABEL_KEYS) + ")"
        raise DataError(f"manifest {path}: needs {need}; has: {', '.join(columns) or 'none'}")
    entries = []
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): v for k, v in row.items()}
        entries.append(_entry(row, path_key, label_key, f"{path} line {line}"))
    if not entries:
        raise DataError(f"manifest {path}: no entries")
    return entries


def _read_json(path: Path) -> List[Entry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"manifest {path}: malformed JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]  # AST's layout
    if not isinstance(data, list):
        raise DataError(f"manifest {path}: expected AST's {{\"data\": [...]}} or a list of entries")
    entries = []
    for i, item in enumerate(data):
        where = f"{path} entry {i}"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected an object with a path and labels, got {item!r}")
        path_key = next((k for k in PATH_KEYS if k in item), None)
        label_key = next((k for k in LABEL_KEYS if k in item), None)
        if path_key is None or label_key is None:
            raise DataError(f"{where}: needs a path key ({'/'.join(PATH_KEYS)}) and a labels key ({'/'.join(LABEL_KEYS)})")
        entries.append(_entry(item, path_key, label_key, where))
    if not entries:
        raise DataError(f"manifest {path}: no entries")
    return entries


def _entry(row: Dict[str, Any], path_key: str, label_key: str, where: str) -> Entry:
    path = str(row.get(path_key) or "").strip()
    if not path:
        raise DataError(f"{where}: empty {path_key}")
    labels = split_labels(row.get(label_key), whole=label_key != "labels")
    if not labels:
        raise DataError(f"{where}: no label")
    split = None
    if row.get("split") not in (None, ""):
        split = str(row["split"]).strip()
    elif row.get("fold") not in (None, ""):
        fold = str(row["fold"]).strip()
        split = f"fold{fold}" if fold.isdigit() else fold
    return Entry(path, labels, split, where)


def split_labels(value: Any, whole: bool = False) -> Tuple[str, ...]:
    """Label tokens of a cell: a list, a single label (`whole`), or `a;b` / `a,b` text."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip() for v in value if str(v).strip())
    text = str(value).strip()
    if whole or not text:
        return (text,) if text else ()
    separator = ";" if ";" in text else ","
    return tuple(t.strip() for t in text.split(separator) if t.strip())


@dataclass
class LabelMap:
    names: List[str]  # display name per index
    lookup: Dict[str, int]  # any accepted token -> index
    source: str

    def index(self, token: str) -> Optional[int]:
        return self.lookup.get(token)


def read_label_map(path: Path) -> LabelMap:
    """AudioSet's class_labels_indices.csv (index,mid,display_name), another csv with an index and
    name column, a .txt (one name per line) or a .json list of names."""
    if not path.is_file():
        raise DataError(f"label map not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return _from_names(names, str(path))
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataError(f"label map {path}: malformed JSON: {exc}") from None
        if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
            raise DataError(f"label map {path}: expected a JSON list of class names")
        return _from_names(data, str(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    name_columns = [c for c in NAME_COLUMNS if c in columns]
    if not name_columns:
        raise DataError(f"label map {path}: needs a name column ({'/'.join(NAME_COLUMNS)}); has: {', '.join(columns) or 'none'}")
    if not rows:
        raise DataError(f"label map {path}: no rows")
    size = len(rows)
    names: List[Optional[str]] = [None] * size
    lookup: Dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if "index" in columns:
            try:
                index = int(row["index"])
            except ValueError:
                raise DataError(f"label map {path} line {line}: index must be an integer, got {row['index']!r}") from None
        else:
            index = line - 2
        if not 0 <= index < size or names[index] is not None:
            raise DataError(f"label map {path} line {line}: index {index} out of 0..{size - 1} or repeated")
        names[index] = row.get("display_name") or row[name_columns[0]]
        lookup[str(index)] = index
        for column in name_columns:
            if row.get(column):
                lookup.setdefault(row[column], index)
    return LabelMap([n or f"class{i}" for i, n in enumerate(names)], lookup, str(path))


def _from_names(names: List[str], source: str) -> LabelMap:
    if not names:
        raise DataError(f"label map {source}: no names")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"label map {source}: {duplicates[0]!r} listed twice")
    lookup = {n: i for i, n in enumerate(names)}
    lookup.update({str(i): i for i in range(len(names))})
    return LabelMap(list(names), lookup, source)


def label_map_from_data(tokens: List[str], source: str) -> LabelMap:
    """Without a label map: integer labels 0..max, or the sorted distinct names."""
    distinct = sorted(set(tokens))
    if distinct and all(t.isdigit() for t in distinct):
        size = max(int(t) for t in distinct) + 1
        return LabelMap([str(i) for i in range(size)], {str(i): i for i in range(size)}, source)
    return _from_names(distinct, source)
