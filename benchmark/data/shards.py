"""The on-disk feature cache of one task variant: shards of clips, memory-mapped and read per batch.

A cache is a folder named by the feature key. Each shard holds the frames of up to SHARD_CLIPS
listed clips, concatenated into one raw (frames, mel_bins) .npy in the run's STORAGE dtype, with a JSON beside
it (shard-NNNNN.json: its clips' ids, offsets, valid frames, labels, ...; the shard's size and
sha256). Both are written atomically, the JSON after the .npy, so a shard with its JSON is complete:
an interrupted run resumes and computes only the shards that are missing. index.json, written
last, says the variant is complete.

A clip's trailing frames that are one constant (the normalised zero padding up to the model input)
are not stored: the clip keeps that value and is padded back on read, exactly. Clips are read from
the memory map one at a time and converted to float32, so the model's numerics and the memory a
variant takes do not depend on its size.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from prunebench.core.errors import DataError
from prunebench.core.files import atomic_write, file_sha256, pid_alive

SHARD_CLIPS = 256  # clips per shard: about 67 MB of float16 at 1024 frames x 128 mel bins
# The storage dtype follows the dtype the model runs: a float32 run reads exactly the features it
# computed (float16 storage moves near-tie top-k choices); a float16/bfloat16 run's autocast rounds
# the input anyway, so half storage costs it (almost) nothing. bfloat16 is stored as float16: more
# mantissa, and normalised log-mel stays far inside float16's range.
STORAGE = {"float32": np.float32, "float16": np.float16, "bfloat16": np.float16}
INDEX = "index.json"


@dataclass(frozen=True)
class Row:
    """Where one clip's frames are: shard, first row, rows stored, frames in all, padding value."""
    shard: int
    offset: int
    stored: int
    frames: int
    pad: Optional[float]


# Shards mapped at once per sequence. A map's pages that were read count in the process's resident
# memory until it is closed, so keeping every map open grew a run's peak RSS with the data set
# (measured: +212 MiB from 1000 to 2000 ten-second clips); reads go in clip order, so two suffice.
OPEN_MAPS = 2


class ShardedFbanks(Sequence):
    """The fbanks of a variant as a sequence of (frames, mel_bins) float32 tensors, each read from
    its shard's memory map when indexed: nothing but the last OPEN_MAPS maps is held."""

    def __init__(self, paths: List[Path], rows: List[Row]):
        self.paths, self.rows = paths, rows
        self._maps: "OrderedDict[int, np.ndarray]" = OrderedDict()

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self.rows[i]
        stored = torch.from_numpy(np.array(self._map(row.shard)[row.offset:row.offset + row.stored], dtype=np.float32))
        if row.frames == row.stored:
            return stored
        tail = torch.full((row.frames - row.stored, stored.shape[1]), row.pad, dtype=torch.float32)
        return torch.cat([stored, tail])

    def frames(self, i: int) -> int:
        return self.rows[i].frames

    def subset(self, keep: List[int]) -> "ShardedFbanks":
        return ShardedFbanks(self.paths, [self.rows[i] for i in keep])

    def _map(self, shard: int) -> np.ndarray:
        if shard in self._maps:
            self._maps.move_to_end(shard)
        else:
            self._maps[shard] = open_shard(self.paths[shard])
            if len(self._maps) > OPEN_MAPS:
                self._maps.popitem(last=False)  # the last reference: the file is unmapped
        return self._maps[shard]

    def __getstate__(self) -> Dict[str, Any]:  # the maps are reopened, not pickled
        return {"paths": self.paths, "rows": self.rows}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["paths"], state["rows"])


def open_shard(path: Path) -> np.ndarray:
    """The memory map of a shard; a missing, truncated or unreadable one is a DataError naming it."""
    try:
        array = np.load(str(path), mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"feature cache shard {path} is missing: delete its folder {path.parent} to rebuild it") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"feature cache shard {path} is truncated or damaged ({exc}): delete its folder "
                        f"{path.parent} to rebuild it") from None
    if array.ndim != 2:
        raise DataError(f"feature cache shard {path}: expected (frames, mel_bins), got shape {array.shape}")
    return array


def stored_frames(fbank: torch.Tensor) -> Tuple[int, Optional[float]]:
    """Rows to store and the padding value: trailing rows equal to one constant are left out."""
    value = fbank[-1, 0]
    constant = (fbank == value).all(dim=1).flip(0).int().cumprod(0)
    trailing = int(constant.sum())
    if trailing == 0:
        return fbank.shape[0], None
    return fbank.shape[0] - trailing, float(value)


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def write_shard(folder: Path, k: int, listed: List[str], clips: List[Dict[str, Any]], fbanks: List[torch.Tensor],
                skipped: List[Tuple[str, str]], dtype: type = np.float16) -> Dict[str, Any]:
    """Shard k: the stored frames of `fbanks` (one per entry of `clips`) and its JSON; the JSON."""
    mel = fbanks[0].shape[1] if fbanks else 0
    parts, offset = [], 0
    for clip, fbank in zip(clips, fbanks):
        stored, pad = stored_frames(fbank)
        clip.update(offset=offset, stored=stored, frames=int(fbank.shape[0]), pad=pad)
        parts.append(fbank[:stored].numpy().astype(dtype))
        offset += stored
    array = np.concatenate(parts) if parts else np.zeros((0, mel), dtype=dtype)
    npy = folder / f"{shard_name(k)}.npy"
    atomic_write(npy, lambda f: np.save(f, array, allow_pickle=False))
    meta = {"file": npy.name, "bytes": npy.stat().st_size, "sha256": file_sha256(npy), "listed": listed,
            "clips": clips, "skipped": [list(s) for s in skipped]}
    atomic_write(folder / f"{shard_name(k)}.json", json.dumps(meta).encode())
    return meta


def complete_shard(folder: Path, k: int, listed: List[str]) -> Optional[Dict[str, Any]]:
    """Shard k's JSON when the shard is complete for these listed clips (size and sha256 match)."""
    try:
        meta = json.loads((folder / f"{shard_name(k)}.json").read_text())
        npy = folder / meta["file"]
        if meta["listed"] != listed or npy.stat().st_size != meta["bytes"] or file_sha256(npy) != meta["sha256"]:
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_stale_tmp(folder: Path) -> None:
    """Temporary files of writers that are gone (an interrupted run) take space and nothing else."""
    for tmp in folder.glob("*.tmp*"):
        pid = tmp.name.rsplit(".tmp", 1)[-1]
        if pid.isdigit() and not pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)




def write_index(folder: Path, metas: List[Dict[str, Any]], extra: Dict[str, Any]) -> None:
    index = {"shards": [{"file": m["file"], "bytes": m["bytes"], "sha256": m["sha256"]} for m in metas], **extra}
    atomic_write(folder / INDEX, json.dumps(index).encode())


def read_index(folder: Path) -> Optional[Tuple[Dict[str, Any], List[Dict[str, Any]]]]:
    """(index, shard JSONs) of a complete cache folder; None when there is none yet. A shard whose
    file is missing or of another size than written is a DataError naming the file."""
    path = folder / INDEX
    if not path.is_file():
        return None
    try:
        index = json.loads(path.read_text())
        metas = [json.loads((folder / (Path(s["file"]).stem + ".json")).read_text()) for s in index["shards"]]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"feature cache {path} is damaged ({exc}): delete {folder} to rebuild it") from None
    for shard in index["shards"]:
        npy = folder / shard["file"]
        size = npy.stat().st_size if npy.is_file() else None
        if size != shard["bytes"]:
            what = "missing" if size is None else f"truncated ({size} of {shard['bytes']} bytes)"
            raise DataError(f"feature cache shard {npy} is {what}: delete {folder} to rebuild it")
    return index, metas


def lazy_fbanks(folder: Path, metas: List[Dict[str, Any]]) -> Tuple[ShardedFbanks, List[Dict[str, Any]]]:
    """The memory-mapped fbanks of a cache folder and its clips' JSON entries, in order."""
    rows, clips = [], []
    for k, meta in enumerate(metas):
        for clip in meta["clips"]:
            rows.append(Row(k, clip["offset"], clip["stored"], clip["frames"], clip["pad"]))
            clips.append(clip)
    return ShardedFbanks([folder / m["file"] for m in metas], rows), clips
