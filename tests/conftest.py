"""Shared fixtures: a private cache folder, a tiny model, small synthetic data the tests make."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

def _find_real_esc50() -> Path:
    """../shared/data/esc50-16k beside the checkout, or above it (worktrees sit one level deeper)."""
    for parent in Path(__file__).resolve().parents[1:4]:
        candidate = parent / "shared" / "data" / "esc50-16k"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "esc50-16k"


REAL_ESC50 = _find_real_esc50()
TINY = dict(embed_dim=64, depth=4, num_heads=2, target_frames=128)  # 8 x 8 = 64 patches


def pytest_configure(config):
    """The test session gets its own cache: nothing leaks in from ~/.cache or out to it."""
    os.environ["PRUNEBENCH_CACHE"] = tempfile.mkdtemp(prefix="prunebench-test-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(os.environ.get("PRUNEBENCH_CACHE", ""), ignore_errors=True)


@pytest.fixture
def tiny_model():
    from prunebench.models import build_model

    torch.manual_seed(0)
    return build_model("ast-tiny", num_classes=5, **TINY).eval()


def write_esc_layout(root: Path, clips_per_fold: int = 2, classes: int = 3, seconds: float = 1.0, sr: int = 16000) -> Path:
    """A small dataset in ESC-50's layout: tones of a class-specific pitch plus a little noise."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    rows = ["filename,fold,target,category,esc10,src_file,take"]
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for target in range(classes):
        for fold in range(1, 6):
            for take in range(clips_per_fold):
                name = f"{fold}-{target}{take}-A-{target}.wav"
                wave = 0.5 * np.sin(2 * np.pi * 300 * (target + 1) * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(str(root / "audio" / name), wave.astype(np.float32), sr)
                rows.append(f"{name},{fold},{target},class{target},False,{target}{take},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """(synth-esc root with 2 clips per fold, checkpoint of a seeded random-init tiny model):
    runs that need a model but not a trained one skip training."""
    from prunebench.models import build_model, save_checkpoint

    base = tmp_path_factory.mktemp("tiny-checkpoint")
    torch.manual_seed(0)
    model = build_model("ast-tiny", num_classes=10, **TINY)
    path = base / "ast-tiny-random.pt"
    save_checkpoint(model.eval(), path, {"note": "seeded random init, for tests"})
    return base / "synth", path


def run_config(root, checkpoint, methods=None, snr_db=(10,), throughput=False, **extra):
    """A small run config (synth-esc, 2 clips per fold, the tiny checkpoint) as a dict."""
    return {
        "seed": 0,
        "models": [{"name": "ast-tiny", "checkpoint": str(checkpoint)}],
        "tasks": [{"name": "synth-esc", "root": str(root), "clips_per_fold": 2,
                   "corruptions": [{"name": "white", "snr_db": list(snr_db)}] if snr_db else []}],
        "methods": methods or [{"name": "none"}, {"name": "topk", "keep_rate": [1.0, 0.5]}],
        "measure": {"throughput": throughput, "batch_size": 8, "warmup": 1, "repeats": 1},
        **extra,
    }
