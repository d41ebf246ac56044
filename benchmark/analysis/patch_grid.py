"""The patch grid of a record and its kept-patch masks: a token's extent over (mel, frames), the
grid's rows (mel bands) and columns (time), and the decoding of a packed mask.

A record's `per_clip.kept_patches` holds one hex string per clip, bit p = patch p kept, patches
numbered row-major over the grid (p = row * columns + column; row 0 = the lowest mel bins). A clip
at its own length (`per_clip.frames`) has its own number of columns, the padding columns cut
(prunebench.measure.evaluate.clip_grid). One owner for Python readers; the leaderboard's script
reads the same layout (bitSet in leaderboard.html.j2).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from prunebench.core.errors import DataError
from prunebench.records.record import Record


def token_geometry(config: Dict[str, Any]) -> Tuple[List[int], List[int]]:
    """(kernel, stride) of a token over (mel, frames): an audio ViT's square patch at its strides,
    or a Whisper token's 2 frames of every mel bin (a model config with `positions`)."""
    if "positions" in config:
        mel, frames = int(config.get("num_mel_bins", 80)), int(config.get("patch_size", 2))
        return [mel, frames], [mel, frames]
    p = int(config.get("patch_size", 16))
    return [p, p], [int(config.get("fstride", 16)), int(config.get("tstride", 16))]


def columns_for_frames(config: Dict[str, Any], frames: int) -> int:
    """Patch columns of `frames` input frames."""
    (_, k), (_, s) = token_geometry(config)
    return max(0, (frames - k) // s + 1)


def record_grid(record: Record) -> Tuple[int, int]:
    """(rows, columns) of the grid the record's clips ran on: the record's own (`macs.grid`), else
    what its model config gives for its input length."""
    if record.patch_grid is not None:
        return record.patch_grid
    config = record.model_config
    (km, _), (sm, _) = token_geometry(config)
    frames = config.get("target_frames")
    if "num_mel_bins" not in config or frames is None:
        raise DataError(f"{record.path or record.variant}: no patch grid (macs.grid) and no num_mel_bins/target_frames "
                        f"in the model config to derive it")
    return (int(config["num_mel_bins"]) - km) // sm + 1, columns_for_frames(config, int(frames))


def clip_columns(record: Record, grid: Tuple[int, int], frames: Optional[List[int]], i: int) -> int:
    """Columns of clip i: its own (clips at their own length) or the grid's."""
    return grid[1] if frames is None else min(grid[1], columns_for_frames(record.model_config, int(frames[i])))


def decode_mask(text: str, rows: int, columns: int) -> torch.Tensor:
    """A packed mask as a (rows, columns) bool tensor. A mask with a bit set beyond the grid is a
    DataError: the record's grid and its masks disagree."""
    bits = int(text, 16)
    n = rows * columns
    if bits >> n:
        raise DataError(f"kept-patch mask {text[:16]}... has bits beyond its {rows}x{columns} grid")
    flags = format(bits, f"0{n}b")[::-1] if n else ""  # flags[p]: patch p
    return torch.frombuffer(bytearray(flags.encode("ascii")), dtype=torch.uint8).sub(ord("0")).bool().reshape(rows, columns)
