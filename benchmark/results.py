"""Result records: one JSON file per (model, method config, task variant), written atomically.

Layout: `<out>/<model>/<method-id>/<task>/<split+variant>.json`, e.g.
`results/ast-tiny/topk-keep_rate=0.5/synth-esc/fold5+white@20dB.json`.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from .errors import DataError

SCHEMA = "prunebench-result-1"
REQUIRED_FIELDS = ("schema", "model", "method", "task", "metrics", "per_clip", "macs", "tokens", "provenance")


def result_path(out: str | Path, model: str, method_id: str, variant_id: str) -> Path:
    return Path(out) / _safe(model) / _safe(method_id) / (variant_id + ".json")


def _safe(part: str) -> str:
    """Path-safe id: separators would create folders, so they are replaced."""
    return part.replace("/", "_").replace("\\", "_")


def write_record(path: Path, record: Dict[str, Any]) -> None:
    """Validate, then write to a temporary file, fsync and rename: never a partial record."""
    validate_record(record, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_record(path: Path) -> Dict[str, Any]:
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"result file {path} is unreadable or corrupted: {exc}") from None
    validate_record(record, str(path))
    return record


def validate_record(record: Any, where: str) -> None:
    if not isinstance(record, dict):
        raise DataError(f"result {where}: not a JSON object")
    if record.get("schema") != SCHEMA:
        raise DataError(f"result {where}: unknown schema {record.get('schema')!r} (expected {SCHEMA})")
    missing = [k for k in REQUIRED_FIELDS if k not in record]
    if missing:
        raise DataError(f"result {where}: missing field(s) {', '.join(missing)}")
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise DataError(f"result {where}: metrics must be a non-empty object")
    for name, value in metrics.items():
        if not isinstance(value, dict) or not isinstance(value.get("value"), (int, float)):
            raise DataError(f"result {where}: metrics.{name}.value must be a number")


def iter_result_files(out: str | Path) -> Iterator[Path]:
    root = Path(out)
    if not root.is_dir():
        raise DataError(f"results folder not found: {root}")
    for path in sorted(root.rglob("*.json")):
        if not path.name.startswith("."):
            yield path


def load_records(out: str | Path) -> List[Dict[str, Any]]:
    """Every record of a results folder, each validated; a bad file is an error naming it."""
    records = []
    for path in iter_result_files(out):
        record = read_record(path)
        record["_path"] = str(path)
        records.append(record)
    return records


def provenance(seed: int, config: Dict[str, Any], config_hash: str, device: str) -> Dict[str, Any]:
    import timm
    import torch
    import torchaudio

    from . import __version__

    return {
        "git_commit": git_commit(),
        "versions": {
            "prunebench": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "torchaudio": torchaudio.__version__, "timm": timm.__version__,
        },
        "device": device,
        "host": {"machine": platform.machine(), "processor": platform.processor() or None, "cpus": os.cpu_count(),
                 "threads": torch.get_num_threads()},
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config_hash": config_hash,
        "config": config,
    }


def git_commit() -> Optional[str]:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
