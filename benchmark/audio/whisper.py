"""Whisper's own front end: the log-mel its encoder was trained on, native length or the 30 s window.

As openai-whisper's `log_mel_spectrogram` (and faster-whisper's, the same numbers): STFT with
n_fft 400, hop 160, a periodic Hann window, centred with reflect padding, the last frame dropped;
power spectrum; slaney-normalised slaney-scale mel filters (80 bins, 128 for large-v3); log10 of
the power clamped at 1e-10; clamped again at 8 below the clip's maximum (80 dB); then (x + 4) / 4.
Built from torchaudio's STFT and mel filter functions. Modes, by `target_frames`:
- None ("native"): the clip's own frames, `samples // 160`, rounded down to an even count (the
  encoder's stride-2 convolution makes one token of two frames; a 5 s clip is 500 frames, 250 tokens);
- 3000 ("pad30", as Whisper was trained): the waveform zero-padded to 30 s before the STFT, so
  the padding is silence at its own clamp value, exactly as Whisper pads;
- any other count: padded (or cropped) the same way to that many frames (length buckets in pad mode).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import torch
import torchaudio.functional as AF

from prunebench.core.errors import DataError

N_FFT = 400
HOP = 160
SAMPLE_RATE = 16000
PAD30_FRAMES = 3000  # 30 s: Whisper's window, 1500 encoder positions
FRAMES_PER_TOKEN = 2  # conv2 has stride 2
DYNAMIC_RANGE = 8.0  # log10 units below the maximum: 80 dB


@dataclass(frozen=True)
class WhisperFrontEnd:
    sample_rate: int = SAMPLE_RATE
    num_mel_bins: int = 80
    target_frames: Optional[int] = None  # None: native length; 3000: Whisper's 30 s window
    max_frames: int = PAD30_FRAMES  # the encoder's positions cover this many frames

    def config(self) -> dict:
        return {"family": "whisper", **asdict(self)}

    def frames_for_samples(self, samples: int) -> int:
        """Frames of a native-length clip of `samples` samples (even: whole tokens)."""
        return (samples // HOP) // FRAMES_PER_TOKEN * FRAMES_PER_TOKEN

    def frames_for_seconds(self, seconds: float) -> int:
        return self.frames_for_samples(int(round(seconds * self.sample_rate)))

    def __call__(self, waveform: torch.Tensor, source: str = "<clip>") -> Tuple[torch.Tensor, int]:
        """(normalised log-mel (frames, mel_bins), number of frames that hold the clip's audio)."""
        self._check(waveform, source)
        native = self.frames_for_samples(waveform.numel())
        if self.target_frames is None:
            return log_mel(waveform[: native * HOP], self.num_mel_bins)[:native], native
        samples = self.target_frames * HOP
        wave = torch.nn.functional.pad(waveform, (0, max(0, samples - waveform.numel())))[:samples]
        return log_mel(wave, self.num_mel_bins), min(native, self.target_frames)

    def padding_value(self) -> float:
        """What a frame of silence becomes for a clip whose log-mel maximum is 0 (log10 units):
        (0 - 8 + 4) / 4. Whisper's padding value depends on the clip; this stands for it in
        measurement batches, whose content does not change the compute."""
        return (0.0 - DYNAMIC_RANGE + 4.0) / 4.0

    def pad_features(self, fbank: torch.Tensor, frames: int) -> torch.Tensor:
        """A native-length clip's log-mel padded (or cropped) to `frames` with what silence past its
        end becomes: the clip's floor, its maximum less 80 dB ((max - 8 + 4) / 4 in normalised
        units), at most the log of 1e-10. The STFT frames at the clip's end read reflected samples
        here and zeros in a waveform padded before the STFT: those frames differ slightly."""
        n = fbank.shape[0]
        if n >= frames:
            return fbank[:frames]
        floor = max(float(fbank.max()) - DYNAMIC_RANGE / 4.0, (-10.0 + 4.0) / 4.0)
        tail = torch.full((frames - n, fbank.shape[1]), floor, dtype=fbank.dtype)
        return torch.cat([fbank, tail])

    def _check(self, waveform: torch.Tensor, source: str) -> None:
        if waveform.ndim != 1:
            raise DataError(f"{source}: expected a mono waveform, got shape {tuple(waveform.shape)}")
        if self.sample_rate != SAMPLE_RATE:
            raise DataError(f"{source}: Whisper's front end takes {SAMPLE_RATE} Hz audio, the task gives {self.sample_rate} Hz")
        frames = self.frames_for_samples(waveform.numel())
        if frames < FRAMES_PER_TOKEN:
            raise DataError(f"{source}: clip of {waveform.numel()} samples is shorter than one encoder token "
                            f"({FRAMES_PER_TOKEN * HOP} samples)")
        if self.target_frames == self.max_frames and frames > self.max_frames:
            raise DataError(f"{source}: clip of {waveform.numel() / SAMPLE_RATE:.2f} s is longer than Whisper's 30 s "
                            f"window (pad30); crop it with a length bucket or use the native mode")
        if self.target_frames is None and frames > self.max_frames:
            raise DataError(f"{source}: clip of {waveform.numel() / SAMPLE_RATE:.2f} s has {frames} frames, more than "
                            f"the encoder's {self.max_frames} positions (30 s)")


_FILTERS: dict = {}
_WINDOWS: dict = {}


def mel_filters(num_mel_bins: int) -> torch.Tensor:
    """(n_fft // 2 + 1, mels) slaney mel filters, as librosa.filters.mel(sr=16000, n_fft=400) used by Whisper."""
    if num_mel_bins not in _FILTERS:
        _FILTERS[num_mel_bins] = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, num_mel_bins, SAMPLE_RATE,
                                                    norm="slaney", mel_scale="slaney")
    return _FILTERS[num_mel_bins]


def log_mel(waveform: torch.Tensor, num_mel_bins: int = 80) -> torch.Tensor:
    """Whisper's normalised log-mel of a 16 kHz mono waveform, (frames, mels), frames = samples // 160."""
    if "hann" not in _WINDOWS:
        _WINDOWS["hann"] = torch.hann_window(N_FFT)
    stft = torch.stft(waveform.float(), N_FFT, HOP, window=_WINDOWS["hann"], center=True, pad_mode="reflect",
                      return_complex=True)
    power = stft[..., :-1].abs() ** 2  # (freqs, frames)
    mel = mel_filters(num_mel_bins).T @ power
    log_spec = mel.clamp(min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - DYNAMIC_RANGE)
    return ((log_spec + 4.0) / 4.0).T.contiguous()
