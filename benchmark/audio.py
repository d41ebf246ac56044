"""Reading audio: any format soundfile reads, downmixed to mono, resampled, checked."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .errors import DataError


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
    return prepare_waveform(data, file_rate, sample_rate, source=str(path))


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
