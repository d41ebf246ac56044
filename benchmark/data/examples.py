"""Example spectrograms stored in result records, so the leaderboard can show which patches each
method kept without the audio: the leaderboard stays a pure function of the results folder.

A few clips per task variant, chosen by a hash of the clip id (the same clips in every variant and
for every method, whatever clips were skipped), each the model's input (normalised log-mel, mel
rows x frames) average-pooled to a small image and quantised to 8 bits: about 5 KB per clip as
base64. Which patches were kept comes from `per_clip.kept_patches` of the same record.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

EXAMPLE_CLIPS = 3
IMAGE_ROWS = 32  # mel rows of the stored image (128 mel bins -> 4 per row)
IMAGE_COLS = 128  # time columns of the stored image at the model's nominal length


def example_ids(ids: Sequence[str], count: int = EXAMPLE_CLIPS) -> List[str]:
    """`count` clip ids chosen by hash: stable across variants, methods and skipped clips."""
    ranked = sorted(ids, key=lambda i: hashlib.sha1(str(i).encode()).hexdigest())
    return sorted(ranked[:count])


def example_spectrograms(ids: Sequence[str], fbanks: Sequence[torch.Tensor], valid_frames: Optional[torch.Tensor],
                         nominal_frames: int, count: int = EXAMPLE_CLIPS) -> Dict[str, Any]:
    """The `examples` field of a record: {"clips": [{id, frames, mel_bins, valid_frames, rows, cols,
    lo, hi, data}]}, data = base64 of rows x cols uint8, row 0 = lowest mel bin."""
    where = {clip: i for i, clip in enumerate(ids)}
    clips = []
    for clip in example_ids(ids, count):
        i = where[clip]
        valid = None if valid_frames is None else int(valid_frames[i])
        clips.append(encode_image(clip, fbanks[i], valid, nominal_frames))
    return {"clips": clips}


def encode_image(clip: str, fbank: torch.Tensor, valid: Optional[int], nominal_frames: int) -> Dict[str, Any]:
    frames, mel = fbank.shape
    # Columns scale with the clip: a native-length 2 s clip gets fewer columns than a 10 s one.
    cols = max(1, min(frames, round(IMAGE_COLS * frames / max(nominal_frames, 1))))
    rows = min(IMAGE_ROWS, mel)
    image = F.adaptive_avg_pool2d(fbank.float().t()[None, None], (rows, cols))[0, 0]
    lo, hi = float(image.min()), float(image.max())
    scale = (hi - lo) or 1.0
    pixels = ((image - lo) / scale * 255).round().clamp(0, 255).to(torch.uint8)
    return {
        "id": str(clip), "frames": frames, "mel_bins": mel, "valid_frames": valid, "rows": rows, "cols": cols,
        "lo": round(lo, 4), "hi": round(hi, 4),
        "data": base64.b64encode(pixels.contiguous().numpy().tobytes()).decode("ascii"),
    }


def decode_image(example: Dict[str, Any]) -> torch.Tensor:
    """(rows, cols) float image back from an encoded example (quantised to 1/255 of its range)."""
    raw = base64.b64decode(example["data"])
    rows, cols = int(example["rows"]), int(example["cols"])
    if len(raw) != rows * cols:
        raise ValueError(f"example {example.get('id')!r}: {len(raw)} bytes for a {rows} x {cols} image")
    pixels = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(rows, cols).float()
    return example["lo"] + pixels / 255 * (example["hi"] - example["lo"])

