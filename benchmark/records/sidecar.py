"""The per-clip arrays of a record that are too big for its JSON, in a compressed sidecar beside it.

`per_clip.scores` (class scores of mAP tasks, clips x classes), `per_clip.kept_patches` (a
patch mask per clip) and `per_clip.frames` (each clip's real input frames, where clips have
lengths of their own) go into `<record stem>.npz` beside `<record stem>.json`: scores as float16,
masks as packed bits, frames as int32. The JSON names the sidecar with its size and sha256 in `per_clip.sidecar`.
Reading a record checks that the sidecar is there at its size; its arrays are read (and the
sha256 checked) only when a reader asks for them. A missing, truncated or altered sidecar is a
DataError naming the record and the sidecar. Records that hold the lists inline (written before
sidecars) read as they are.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from prunebench.core.errors import DataError
from prunebench.core.files import atomic_write

ARRAYS = ("scores", "kept_patches", "frames")  # the per_clip keys a sidecar holds
SIDECAR = "sidecar"  # the per_clip key naming it


def sidecar_path(record_path: Path) -> Path:
    return Path(record_path).with_suffix(".npz")


def pack_masks(masks: List[Optional[str]]) -> Dict[str, np.ndarray]:
    """Hex masks (bit p = patch p kept; None: no mask) as packed bytes and their hex widths."""
    widths = np.array([-1 if m is None else len(m) for m in masks], dtype=np.int32)
    size = max(1, (int(widths.max(initial=0)) * 4 + 7) // 8)
    packed = np.zeros((len(masks), size), dtype=np.uint8)
    for row, mask in enumerate(masks):
        if mask is not None:
            packed[row] = np.frombuffer(int(mask, 16).to_bytes(size, "little"), dtype=np.uint8)
    return {"kept_patches_bits": packed, "kept_patches_width": widths}


def unpack_masks(packed: np.ndarray, widths: np.ndarray) -> List[Optional[str]]:
    """The hex masks `pack_masks` packed, exactly as they were written."""
    return [None if w < 0 else format(int.from_bytes(row.tobytes(), "little"), f"0{w}x")
            for row, w in zip(packed, widths.tolist())]


def encode(per_clip: Dict[str, Any]) -> Optional[bytes]:
    """The npz bytes of a per_clip's big arrays; None when it has none of them."""
    arrays: Dict[str, np.ndarray] = {}
    scores = per_clip.get("scores")
    if scores is not None:
        arrays["scores"] = np.asarray(scores, dtype=np.float16)
    masks = per_clip.get("kept_patches")
    if masks is not None:
        arrays.update(pack_masks(list(masks)))
    frames = per_clip.get("frames")
    if frames is not None:
        arrays["frames"] = np.asarray(frames, dtype=np.int32)
    if not arrays:
        return None
    return npz_bytes(arrays)


def npz_bytes(arrays: Dict[str, np.ndarray]) -> bytes:
    """A compressed .npz (np.load reads it) with fixed zip timestamps, so that equal arrays give
    equal bytes and equal sha256 (np.savez_compressed stamps the time of writing)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    return buffer.getvalue()


def write_sidecar(record_path: Path, data: bytes, tmp_mark: str) -> Dict[str, Any]:
    """Write the sidecar of a record atomically (before the record names it); its reference."""
    path = sidecar_path(record_path)
    try:
        atomic_write(path, data, tmp_mark)
    except OSError as exc:
        raise DataError(f"cannot write the sidecar {path} of result {record_path}: {exc.strerror or exc}") from None
    return {"file": path.name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def check_present(record_path: Path, ref: Dict[str, Any]) -> None:
    """The sidecar a record names is there at the size written (cheap: no read)."""
    path = Path(record_path).parent / str(ref.get("file"))
    if not path.is_file():
        raise DataError(f"result {record_path}: its sidecar {path} is missing: rerun with --overwrite to recompute it")
    size = path.stat().st_size
    if size != ref.get("bytes"):
        raise DataError(f"result {record_path}: its sidecar {path} is truncated or altered ({size} bytes, "
                        f"{ref.get('bytes')} written): rerun with --overwrite to recompute it")


class Sidecar:
    """The arrays of one record's sidecar, read and checked against its sha256 on first use."""

    def __init__(self, record_path: Path, ref: Dict[str, Any]):
        self.record_path, self.ref = Path(record_path), ref
        self.path = self.record_path.parent / str(ref["file"])
        self._arrays: Optional[Dict[str, Any]] = None

    def get(self, name: str) -> Any:
        """`scores` (clips x classes float32 array), `kept_patches` (hex masks) or `frames` (ints);
        None if absent."""
        if self._arrays is None:
            self._arrays = self._load()
        return self._arrays.get(name)

    def _load(self) -> Dict[str, Any]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise DataError(f"result {self.record_path}: its sidecar {self.path} is unreadable "
                            f"({exc.strerror or exc}): rerun with --overwrite to recompute it") from None
        if hashlib.sha256(data).hexdigest() != self.ref.get("sha256"):
            raise DataError(f"result {self.record_path}: its sidecar {self.path} does not match the sha256 the "
                            f"record names (altered or truncated): rerun with --overwrite to recompute it")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays: Dict[str, Any] = {}
            if "scores" in npz:
                arrays["scores"] = npz["scores"].astype(np.float32)
            if "kept_patches_bits" in npz:
                arrays["kept_patches"] = unpack_masks(npz["kept_patches_bits"], npz["kept_patches_width"])
            if "frames" in npz:
                arrays["frames"] = npz["frames"].astype(int).tolist()
        return arrays
