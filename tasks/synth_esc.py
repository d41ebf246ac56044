"""synth-esc: a procedurally generated dataset in the very layout of ESC-50.

Ten event classes (barks, sirens, rain, clock ticks, bird chirps, engines, knocks, bells, wind,
whistles), each drawn with random pitch, timing and gain, placed at a random time on a quiet
coloured-noise background. Deterministic by seed. It is written as audio files + `meta/esc50.csv`
so the default benchmark goes through the real ESC-50 loader.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
import soundfile as sf

from prunebench.core.cache import cache_dir
from prunebench.core.params import require_number
from prunebench.core.registry import register_task

from prunebench.tasks.esc50 import ESC50, FOLDS

GENERATOR_VERSION = 7
DEFAULT_SECONDS = 5.0  # ESC-50's clip length


def _envelope(n: int, attack: float, decay: float, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _tone(freq: np.ndarray | float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    freq = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return np.sin(2 * np.pi * np.cumsum(freq) / sr + rng.uniform(0, 2 * np.pi))


def shaped_noise(n: int, rng: np.random.Generator, sr: int, lo: float = 0.0, hi: float | None = None, slope: float = 0.0) -> np.ndarray:
    """Gaussian noise with power only in [lo, hi] Hz and amplitude ~ f^(-slope/2) (1: pink, 2: brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    gain = np.where((freqs >= lo) & (freqs <= (hi or sr / 2)), 1.0, 0.0)
    if slope:
        gain = gain / np.maximum(freqs, 1.0) ** (slope / 2)
    out = np.fft.irfft(spectrum * gain, n)
    return out / (np.abs(out).max() + 1e-12)


def bark(rng, sr):
    parts = []
    for _ in range(rng.integers(1, 4)):
        n = int(rng.uniform(0.12, 0.25) * sr)
        f0 = rng.uniform(350, 700) * np.linspace(1.0, rng.uniform(0.75, 0.9), n)
        voice = sum(_tone(f0 * h, n, sr, rng) / h for h in range(1, 9))
        voice = voice + 0.3 * shaped_noise(n, rng, sr, 300, 3000)
        parts += [voice * _envelope(n, 0.01, rng.uniform(0.05, 0.1), sr), np.zeros(int(rng.uniform(0.1, 0.35) * sr))]
    return np.concatenate(parts)


def siren(rng, sr):
    n = int(rng.uniform(2.0, 4.0) * sr)
    t = np.arange(n) / sr
    freq = rng.uniform(900, 1300) + rng.uniform(300, 500) * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)
    return sum(_tone(freq * h, n, sr, rng) / h ** 1.5 for h in range(1, 4))


def rain(rng, sr):
    n = int(rng.uniform(3.0, 5.0) * sr)
    hiss = 0.4 * shaped_noise(n, rng, sr, 2000, 7500)
    drops = np.zeros(n)
    drops[rng.integers(0, n, size=int(n / sr * 150))] = rng.uniform(0.3, 1.0, size=int(n / sr * 150))
    kernel = np.exp(-np.arange(int(0.004 * sr)) / (0.001 * sr)) * rng.choice([-1, 1], int(0.004 * sr))
    return hiss + np.convolve(drops, kernel, mode="same")


def clock_tick(rng, sr):
    period = rng.uniform(0.3, 0.6)
    n = int(rng.uniform(2.5, 4.5) * sr)
    out = np.zeros(n)
    tick_n = int(0.04 * sr)
    f = rng.uniform(800, 1500)
    for i, start in enumerate(np.arange(0, n - tick_n, int(period * sr))):
        pitch = f if i % 2 == 0 else f * 1.25  # tick, tock
        out[start:start + tick_n] += _tone(pitch, tick_n, sr, rng) * _envelope(tick_n, 0.0005, 0.01, sr)
    return out


def chirps(rng, sr):
    parts = []
    up = rng.random() < 0.5
    for _ in range(rng.integers(3, 7)):
        n = int(rng.uniform(0.06, 0.12) * sr)
        lo, hi = rng.uniform(4500, 5200), rng.uniform(6200, 7200)
        sweep = np.linspace(lo, hi, n) if up else np.linspace(hi, lo, n)
        parts += [_tone(sweep, n, sr, rng) * np.hanning(n), np.zeros(int(rng.uniform(0.08, 0.2) * sr))]
    return np.concatenate(parts)


def engine(rng, sr):
    n = int(rng.uniform(2.5, 5.0) * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(25, 60) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t))
    hum = sum(_tone(f0 * h, n, sr, rng) / h for h in range(1, 21))
    rumble = 0.5 * shaped_noise(n, rng, sr, 20, 400)
    return (hum + rumble) * (1 + 0.3 * np.sin(2 * np.pi * f0 / 2 * t))


def knock(rng, sr):
    parts = []
    f = rng.uniform(80, 200)
    for _ in range(rng.integers(2, 6)):
        n = int(0.1 * sr)
        body = _tone(f, n, sr, rng) + 0.5 * _tone(f * rng.uniform(2.0, 2.5), n, sr, rng)
        hit = body * _envelope(n, 0.001, 0.03, sr)
        parts += [hit, np.zeros(int(rng.uniform(0.05, 0.2) * sr))]
    return np.concatenate(parts)


def bells(rng, sr):
    f = rng.uniform(250, 400)
    strikes = rng.integers(1, 4)
    n = int((strikes + 1.5) * sr)
    out = np.zeros(n)
    strike_n = int(2.0 * sr)
    for s in range(strikes):
        start = int(s * sr)
        m = min(strike_n, n - start)
        partials = sum(_tone(f * r, m, sr, rng) * _envelope(m, 0.002, rng.uniform(0.6, 1.5) / r ** 0.5, sr) for r in (0.5, 1.0, 1.19, 1.5, 2.0, 2.52, 3.0))
        out[start:start + m] += partials
    return out


def wind(rng, sr):
    n = int(rng.uniform(3.0, 5.0) * sr)
    t = np.arange(n) / sr
    gust = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * t + rng.uniform(0, 6))
    return shaped_noise(n, rng, sr, 30, 1200, slope=1.0) * gust


def whistle(rng, sr):
    n = int(rng.uniform(0.4, 0.9) * sr)
    t = np.arange(n) / sr
    freq = rng.uniform(3000, 4000) + 40 * np.sin(2 * np.pi * rng.uniform(5, 7) * t)
    return _tone(freq, n, sr, rng) * np.minimum(1, np.minimum(t, t[::-1]) / 0.05)


CLASSES: Dict[str, Callable] = {
    "dog_bark": bark, "siren": siren, "rain": rain, "clock_tick": clock_tick, "chirping_birds": chirps,
    "engine": engine, "door_knock": knock, "church_bells": bells, "wind": wind, "whistle": whistle,
}


def make_clip(category: str, rng: np.random.Generator, sr: int, seconds: float) -> np.ndarray:
    """One clip: events of `category` at random times, random gain, on a quieter background.

    Short events (under 1.5 s, and under half the clip) occur 2-4 times, so every clip carries enough evidence of its class
    for a tiny ViT trained from scratch for a few minutes to learn it.
    """
    n = int(round(seconds * sr))
    # A real recording's noise floor: coloured noise 25-40 dB under the events, so added test
    # noise at 20 dB SNR is a shift of degree, not the first sound the model ever hears in a gap.
    clip = rng.uniform(0.01, 0.05) * shaped_noise(n, rng, sr, 20, None, slope=rng.uniform(0.5, 2.0))
    gain = rng.uniform(0.3, 0.9)
    first = CLASSES[category](rng, sr)[:n]
    # an event filling half a short clip is repeated no more (5 s clips: the 1.5 s rule alone)
    copies = 1 if len(first) > min(1.5 * sr, 0.5 * n) else int(rng.integers(2, 5))
    for i in range(copies):
        event = first if i == 0 else CLASSES[category](rng, sr)[:n]
        event = event / (np.abs(event).max() + 1e-12) * gain * rng.uniform(0.7, 1.0)
        start = rng.integers(0, n - len(event) + 1)
        clip[start:start + len(event)] += event
    return np.clip(clip, -1, 1).astype(np.float32)


def generate(root: Path, seed: int, clips_per_fold: int, sample_rate: int, seconds: float = 5.0) -> None:
    """Write the dataset (audio/*.wav, meta/esc50.csv) atomically enough: the csv comes last."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows: List[dict] = []
    for target, category in enumerate(CLASSES):
        for fold in FOLDS:
            for take in range(clips_per_fold):
                src = 100000 + 1000 * target + 10 * fold + take
                rng = np.random.default_rng([seed, target, fold, take])
                filename = f"{fold}-{src}-A-{target}.wav"
                clip = make_clip(category, rng, sample_rate, seconds)
                sf.write(str(root / "audio" / filename), clip, sample_rate, subtype="PCM_16")
                rows.append(dict(filename=filename, fold=fold, target=target, category=category, esc10=False, src_file=src, take="A"))
    tmp = root / "meta" / "esc50.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, root / "meta" / "esc50.csv")


@register_task("synth-esc")
class SynthESC(ESC50):
    """Synthetic ESC-50 layout: 10 procedural event classes on quiet backgrounds, 5 folds, by seed."""

    name = "synth-esc"
    defaults = {"root": None, "split": "fold5", "seed": 0, "clips_per_fold": 10, "sample_rate": 16000,
                "clip_seconds": DEFAULT_SECONDS}
    # Log-mel statistics of this generator (seed 0, all clips), measured like AST's.
    norm_stats = (-6.1666, 3.0598)
    license = "generated; no licence restrictions"

    def validate(self) -> None:
        require_number("task 'synth-esc'", "clips_per_fold", self.params["clips_per_fold"], 1, 10_000)
        require_number("task 'synth-esc'", "sample_rate", self.params["sample_rate"], 8000, 192_000)
        require_number("task 'synth-esc'", "clip_seconds", self.params["clip_seconds"], 0.1, 60)
        self.clip_seconds = float(self.params["clip_seconds"])
        if self.clip_seconds != DEFAULT_SECONDS:  # ESC-50's 1, 2, 5 s buckets scaled to the clip
            self.default_bucket_seconds = tuple(round(self.clip_seconds * f, 3) for f in (0.2, 0.4, 1.0))
        if self.params["root"] in (None, ""):
            key = f"seed{self.params['seed']}-n{self.params['clips_per_fold']}-sr{self.params['sample_rate']}"
            key += "" if self.clip_seconds == DEFAULT_SECONDS else f"-s{self.clip_seconds:g}"
            key += f"-v{GENERATOR_VERSION}"
            self._generated_root = cache_dir("synth-esc") / key
        else:
            self._generated_root = Path(self.params["root"]).expanduser()
        self.root = self._generated_root
        self.hub, self._dataset = False, None
        self.validate_split()
        self._rows = []

    def fingerprint_params(self) -> Dict[str, Any]:
        # 5 s clips hash as before the length was a parameter (cached checkpoints keep their names)
        params = super().fingerprint_params()
        if params.get("clip_seconds") == DEFAULT_SECONDS:
            params.pop("clip_seconds")
        return params

    def generator_spec(self) -> Dict[str, Any]:
        """What the generated files depend on; the length only when it is not the default, so
        data generated before it was a parameter is still recognised (and not rewritten)."""
        spec = {"version": GENERATOR_VERSION, "seed": self.params["seed"], "clips_per_fold": self.params["clips_per_fold"],
                "sample_rate": self.params["sample_rate"]}
        if self.clip_seconds != DEFAULT_SECONDS:
            spec["clip_seconds"] = self.clip_seconds
        return spec

    def rows(self):
        if not self._rows:
            self.ensure_generated()
        return super().rows()

    def ensure_generated(self) -> Path:
        marker = self.root / "meta" / "generator.json"
        spec = self.generator_spec()
        if not (marker.is_file() and json.loads(marker.read_text()) == spec and (self.root / self.meta_file).is_file()):
            generate(self.root, spec["seed"], spec["clips_per_fold"], spec["sample_rate"], self.clip_seconds)
            marker.write_text(json.dumps(spec))
        return self.root
