"""Reading audio: any format soundfile reads, downmixed to mono, resampled, checked.

Bad input, and what happens to it (each error names the file; with `on_bad_clip: skip` the clip
is skipped instead, and counted and listed in every record of the run):
- missing, empty (0 bytes), corrupt or undecodable file: error;
- truncated WAV (header declares more audio than the file holds): error, though libsndfile
  would silently read the part that is there; truncated FLAC/Ogg fail to decode: error;
- zero samples: error; NaN or infinite samples: error (the count is given);
- any sample rate (8, 44.1, 48 kHz...): resampled to the task's rate (torchaudio, sinc);
- several channels (stereo, 5.1): downmixed to the mean of the channels;
- shorter than one 25 ms analysis window: error (in the front end); shorter than the model's
  input: zero-padded before normalisation, as AST; longer: cropped to the model's input, and
  counted (`data.cropped` in every record).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from prunebench.core.errors import DataError


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Return a mono float32 waveform of shape (samples,) at `sample_rate`.

    Raises DataError naming the file for a missing, unreadable, empty or non-finite file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"audio file not found: {path}")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise DataError(f"cannot read audio file {path}: {_short(exc)}") from None
    missing = wav_missing_bytes(path)
    if missing:
        raise DataError(f"audio file {path} is truncated: its header declares {missing} more bytes of audio than the file holds")
    return prepare_waveform(data, file_rate, sample_rate, source=str(path))


def wav_missing_bytes(path: Path) -> Optional[int]:
    """For a RIFF/WAVE file, how many bytes of the declared data chunk are missing (None: not a
    WAV file, size unknown, or complete). Streamed WAVs declare 0 or 0xFFFFFFFF: not judged."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            offset = 12
            while offset + 8 <= size:
                f.seek(offset)
                chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
                if chunk_id == b"data":
                    if chunk_size in (0, 0xFFFFFFFF):
                        return None
                    available = size - offset - 8
                    return chunk_size - available if chunk_size > available else None
                offset += 8 + chunk_size + (chunk_size & 1)
    except OSError:
        return None
    return None


def prepare_waveform(
    data: np.ndarray, file_rate: int, sample_rate: int, source: str = "<array>"
) -> torch.Tensor:
    """Check, downmix (frames, channels) or (frames,) audio to mono and resample it."""
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise DataError(f"audio file {source} is empty (0 samples)")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise DataError(f"audio file {source} has {bad} NaN or infinite samples")
    if file_rate <= 0:
        raise DataError(f"audio file {source} has an invalid sample rate {file_rate}")
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)))
    if file_rate != sample_rate:
        wave = AF.resample(wave, orig_freq=int(file_rate), new_freq=int(sample_rate))
    return wave


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
