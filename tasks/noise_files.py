"""Real noise from recordings: `noise-files` draws a random segment of a random file of a folder
(babble, street, cafe...), seeded per clip, and adds it at the target SNR."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import ClassVar, Dict, List, Optional, Tuple

import torch

from prunebench.audio.decode import load_audio
from prunebench.core.errors import ConfigError, DataError
from prunebench.core.file_digest import content_sha256, remember
from prunebench.core.registry import register_corruption

from prunebench.tasks.audio_folder import AUDIO_EXTENSIONS, audio_files
from prunebench.tasks.corruption import AdditiveNoise, fit_segment, is_silent

DRAWS = 8  # tries for a segment that is not digital silence, before giving up on the clip


@register_corruption("noise-files")
class NoiseFiles(AdditiveNoise):
    """Real recordings from a folder (root: PATH): a seeded random segment of a random file, at snr_db."""

    name = "noise-files"
    defaults = {"snr_db": 20.0, "snr_mode": "clip", "root": None, "label": None}
    hidden_params: ClassVar[tuple] = ("root", "label")

    def validate(self) -> None:
        super().validate()
        if self.params["root"] in (None, ""):
            raise ConfigError("corruption 'noise-files': set root: a folder of noise recordings")
        label = self.params["label"]
        if label is not None and (not isinstance(label, str) or not label or any(c in label for c in "/\\@+ ")):
            raise ConfigError(f"corruption 'noise-files': label must be a short name without / \\ @ + or spaces, got {label!r}")
        self.root = Path(str(self.params["root"])).expanduser()
        if not self.root.is_dir():
            raise DataError(f"noise folder not found: {self.root}")
        self.files: List[Path] = audio_files(self.root)
        if not self.files:
            raise DataError(f"noise folder {self.root} holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
        self._cache: Dict[Tuple[Path, int], torch.Tensor] = {}

    @property
    def label(self) -> str:
        return "files-" + (self.params["label"] or self.root.name)

    def fingerprint(self) -> Optional[str]:
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f"{f.relative_to(self.root)}|{content_sha256(f)}\n".encode())
        remember()
        return digest.hexdigest()

    def recording(self, path: Path, sample_rate: int) -> torch.Tensor:
        key = (path, sample_rate)
        if key not in self._cache:
            self._cache[key] = load_audio(path, sample_rate)
        return self._cache[key]

    def draw(self, n: int, generator: torch.Generator, sample_rate: int) -> Tuple[Path, torch.Tensor]:
        """(file, n-sample segment): a random file, a random segment of it (looped if short)."""
        for _ in range(DRAWS):
            path = self.files[int(torch.randint(0, len(self.files), (1,), generator=generator))]
            segment = fit_segment(self.recording(path, sample_rate), n, generator)
            if not is_silent(segment):
                return path, segment
        raise DataError(f"noise folder {self.root}: {DRAWS} random segments in a row were digital silence "
                        f"(last from {path}); remove silent recordings")

    def noise(self, n, generator, sample_rate, context=None):
        return self.draw(n, generator, sample_rate)[1]
