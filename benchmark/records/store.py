"""The record's file format: one JSON file per (model, method config, task variant), its schema
checked, written atomically with its sidecar. Only `prunebench.records.record.Record` calls it.

Layout: `<out>/<model>/<method-id>/<task>/<split+variant>.json`, e.g.
`results/ast-tiny/topk-keep_rate=0.5/synth-esc/fold5+white@20dB.json`, with its per-clip scores and
kept patches in `fold5+white@20dB.npz` beside it (prunebench.records.sidecar).

A record has `status: ok` (scores, per-clip outcomes, MACs, tokens, throughput) or
`status: failed` (the error, its traceback and the stage that raised). Both are checked against the
schema below when written and when read: a file that does not fit, an unknown schema version, a
corrupted file is an error naming the file, never a row. A failed record is not a finished one: a
rerun retries the pair.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from prunebench.core.errors import DataError
from prunebench.core.files import atomic_write, pid_alive
from prunebench.core.version import VERSION
from prunebench.records.sidecar import ARRAYS, SIDECAR, check_present, encode, sidecar_path, write_sidecar

# 4: the pair's identity (its resume key) and the measure settings that changed its result;
# 3: scores and kept patches in a sidecar (prunebench.records.sidecar); 2: every per-clip list inline.
# Records of 2 and 3 read and are upgraded (Record.from_dict).
SCHEMA = "prunebench-result-4"
READ_SCHEMAS = ("prunebench-result-2", "prunebench-result-3", SCHEMA)
OK, FAILED = "ok", "failed"
STATUSES = (OK, FAILED)
TMP_MARK = ".tmp"

# Required fields as dotted paths -> accepted JSON types. More fields may be present.
_STR, _INT, _NUM, _DICT, _LIST, _NONE = str, int, (int, float), dict, list, type(None)
COMMON_FIELDS: Dict[str, Any] = {
    "model.name": _STR,
    "method.name": _STR, "method.id": _STR, "method.params": _DICT,
    "task.name": _STR, "task.split": _STR, "task.variant": _STR,
    "provenance.config_hash": _STR, "provenance.seed": _INT,
}
OK_FIELDS: Dict[str, Any] = {
    "model.checkpoint_sha256": _STR,
    "metrics": _DICT, "per_clip.ids": _LIST, "data.clips": _INT,
    "macs.per_sample": _NUM, "macs.units": _STR, "tokens.per_layer": _LIST, "throughput": (_DICT, _NONE),
}
IDENTITY_FIELDS: Dict[str, Any] = {"identity.key": _STR, "identity.parts": _DICT, "measure": _DICT}  # schema 4
FAILED_FIELDS: Dict[str, Any] = {"error.type": _STR, "error.message": _STR, "error.traceback": _STR, "error.stage": _STR}


def result_path(out: str | Path, model: str, method_id: str, variant_id: str) -> Path:
    return Path(out) / _safe(model) / _safe(method_id) / (variant_id + ".json")


def _safe(part: str) -> str:
    """Path-safe id: separators would create folders, so they are replaced."""
    return part.replace("/", "_").replace("\\", "_")


class InvalidRecord(DataError):
    """A record does not fit the schema (on write: a bug in a method or in prunebench)."""


def write_record(path: Path, record: Dict[str, Any]) -> None:
    """Validate, then write to a temporary file, fsync and rename: never a partial record.

    A kill at any moment leaves either the previous file or the new one, and at worst a hidden
    temporary file (`.<name>.tmp<pid>`), which readers ignore and `remove_stale_temporaries` clears.
    Raises InvalidRecord for a record that does not fit the schema, DataError if the file cannot
    be written.
    """
    validate_record(record, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    record, sidecar = _with_sidecar(path, record)
    try:
        text = json.dumps(record, indent=1, sort_keys=True, allow_nan=False)
    except ValueError as exc:  # NaN or infinity somewhere: not valid JSON
        raise InvalidRecord(f"result {path}: {exc}") from None
    try:
        atomic_write(path, text.encode("utf-8"), TMP_MARK)
    except OSError as exc:
        raise DataError(f"cannot write result file {path}: {exc.strerror or exc}") from None
    if not sidecar:
        sidecar_path(path).unlink(missing_ok=True)  # one an overwritten record had
    _fsync_dir(path.parent)


def _with_sidecar(path: Path, record: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
    """The record as its JSON holds it: scores and kept patches moved to the sidecar, which is
    written first (a record never names a sidecar that is not there); whether it has one."""
    per_clip = record.get("per_clip")
    data = encode(per_clip) if isinstance(per_clip, dict) else None
    if data is None:
        return record, False
    ref = write_sidecar(path, data, TMP_MARK)
    inline = {k: v for k, v in per_clip.items() if k not in ARRAYS}
    return {**record, "per_clip": {**inline, SIDECAR: ref}}, True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_record(path: Path) -> Dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
        record = json.loads(text, parse_constant=_reject_constant)
    except (OSError, ValueError) as exc:
        raise DataError(f"result file {path} is unreadable or corrupted ({_one_line(exc)}): delete it or rerun with --overwrite") from None
    validate_record(record, str(path))
    ref = (record.get("per_clip") or {}).get(SIDECAR)
    if ref is not None:
        check_present(Path(path), ref)
        record["_file"] = str(Path(path).absolute())  # where a Record finds the sidecar
    return record


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def validate_record(record: Any, where: str) -> None:
    """Raise DataError naming `where` and the field unless `record` fits the schema."""
    if not isinstance(record, dict):
        raise InvalidRecord(f"result {where}: not a JSON object")
    schema = record.get("schema")
    if schema not in READ_SCHEMAS:
        if _schema_number(schema) > _schema_number(SCHEMA):
            raise InvalidRecord(f"result {where}: field schema is {schema!r}, newer than this prunebench reads "
                                f"({SCHEMA}): upgrade prunebench")
        raise InvalidRecord(f"result {where}: unknown schema version {schema!r} (this prunebench reads "
                            f"{', '.join(READ_SCHEMAS)}); rerun with --overwrite to recompute it")
    status = record.get("status")
    if status not in STATUSES:
        raise InvalidRecord(f"result {where}: status must be one of {', '.join(STATUSES)}, got {status!r}")
    fields = {**COMMON_FIELDS, **(OK_FIELDS if status == OK else FAILED_FIELDS), **(IDENTITY_FIELDS if schema == SCHEMA else {})}
    for dotted, types in fields.items():
        value = _lookup(record, dotted, where)
        if isinstance(value, bool) or not isinstance(value, types):
            raise InvalidRecord(f"result {where}: field {dotted} must be {_type_names(types)}, got {_short_repr(value)}")
    if status == OK:
        _validate_ok(record, where)


def _validate_ok(record: Dict[str, Any], where: str) -> None:
    metrics = record["metrics"]
    if not metrics:
        raise InvalidRecord(f"result {where}: metrics must be a non-empty object")
    for name, value in metrics.items():
        number = value.get("value") if isinstance(value, dict) else None
        if not _finite(number):
            raise InvalidRecord(f"result {where}: metrics.{name}.value must be a finite number, got {_short_repr(number)}")
        interval = value.get("ci95")
        if interval is not None and not (isinstance(interval, list) and len(interval) == 2 and all(_finite(v) for v in interval)):
            raise InvalidRecord(f"result {where}: metrics.{name}.ci95 must be [low, high], got {_short_repr(interval)}")
    per_clip = record["per_clip"]
    n = len(per_clip["ids"])
    for key in ("pred", "correct", "scores", "kept_patches", "frames"):
        values = per_clip.get(key)
        if values is not None and (not isinstance(values, (list, np.ndarray)) or len(values) != n):
            raise InvalidRecord(f"result {where}: per_clip.{key} must be a list of {n} entries, one per clip id")
    if isinstance(per_clip.get("scores"), np.ndarray) and not np.isfinite(per_clip["scores"]).all():
        raise InvalidRecord(f"result {where}: per_clip.scores must be finite numbers")
    ref = per_clip.get(SIDECAR)
    if ref is not None and not (isinstance(ref, dict) and isinstance(ref.get("file"), str)
                                and isinstance(ref.get("sha256"), str) and isinstance(ref.get("bytes"), int)):
        raise InvalidRecord(f"result {where}: per_clip.{SIDECAR} must be {{file, bytes, sha256}}, got {_short_repr(ref)}")
    if not _finite(record["macs"]["per_sample"]) or record["macs"]["per_sample"] < 0:
        raise InvalidRecord(f"result {where}: macs.per_sample must be a finite number >= 0")
    if record["data"]["clips"] != n:
        raise InvalidRecord(f"result {where}: data.clips is {record['data']['clips']} but per_clip holds {n} clip ids")


def _schema_number(schema: Any) -> int:
    """N of `prunebench-result-N`; -1 for anything else."""
    prefix = "prunebench-result-"
    tail = schema[len(prefix):] if isinstance(schema, str) and schema.startswith(prefix) else ""
    return int(tail) if tail.isdigit() else -1


def _lookup(record: Dict[str, Any], dotted: str, where: str) -> Any:
    value: Any = record
    walked = []
    for key in dotted.split("."):
        walked.append(key)
        if not isinstance(value, dict) or key not in value:
            raise InvalidRecord(f"result {where}: missing field {'.'.join(walked)}")
        value = value[key]
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _type_names(types: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", dict: "an object", list: "a list", type(None): "null"}
    types = types if isinstance(types, tuple) else (types,)
    if set(types) == {int, float}:
        return "a number"
    return " or ".join(names.get(t, t.__name__) for t in types)


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _one_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def iter_result_files(out: str | Path) -> Iterator[Path]:
    root = Path(out)
    if not root.is_dir():
        raise DataError(f"results folder not found: {root}")
    for path in sorted(root.rglob("*.json")):
        if not path.name.startswith("."):
            yield path


def remove_stale_temporaries(out: str | Path) -> List[Path]:
    """Delete temporary files left by writers that were killed (their process is gone)."""
    root = Path(out)
    removed = []
    if not root.is_dir():
        return removed
    for tmp in [*root.rglob(f".*.json{TMP_MARK}*"), *root.rglob(f".*.npz{TMP_MARK}*")]:
        pid_text = tmp.name.rsplit(TMP_MARK, 1)[1]
        if pid_text.isdigit() and _process_alive(int(pid_text)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    return pid == os.getpid() or pid_alive(pid)


def provenance(seed: int, config: Dict[str, Any], config_hash: str, device: str,
               executor: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    import torch

    return {
        "git_commit": git_commit(),
        "versions": _versions(),
        "device": device,
        "host": {"name": platform.node(), "machine": platform.machine(), "processor": platform.processor() or None,
                 "cpus": os.cpu_count(), "threads": torch.get_num_threads()},
        "executor": executor or {"name": "local"},
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config_hash": config_hash,
        "config": config,
    }


@lru_cache(maxsize=1)
def _versions() -> Dict[str, str]:
    import timm
    import torch
    import torchaudio

    return {"prunebench": VERSION, "python": platform.python_version(), "torch": torch.__version__,
            "torchaudio": torchaudio.__version__, "timm": timm.__version__}


@lru_cache(maxsize=1)
def git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
