"""Length buckets: task defaults, pad and native modes, batches grouped by length, and clips
shorter than one patch."""
import numpy as np
import pytest
import soundfile as sf
import torch

from prunebench.run.config import parse_config
from prunebench.core.errors import ConfigError, DataError
from prunebench.data.features import FeatureStore
from prunebench.audio.kaldi import FrontEnd
from prunebench.core.registry import TASKS
from prunebench.run.work import variant_frontend
from prunebench.tasks.buckets import LengthBucket
from prunebench.data.variant import TaskVariant

from conftest import TINY, write_esc_layout

BASE = {"models": [{"name": "ast-tiny", "overrides": TINY}], "methods": ["none"]}


def test_buckets_default_to_the_task_lengths(tmp_path):
    cfg = parse_config({**BASE, "tasks": [
        {"name": "esc50", "root": str(tmp_path), "buckets": [{"mode": ["pad", "native"]}]},
        {"name": "as20k", "root": str(tmp_path), "buckets": [{}]}]})
    assert [v.id for v in cfg.tasks[0].variants] == [
        "esc50/fold5", "esc50/fold5+len1s", "esc50/fold5+len2s", "esc50/fold5+len5s",
        "esc50/fold5+len1s-native", "esc50/fold5+len2s-native", "esc50/fold5+len5s-native"]
    assert [v.id for v in cfg.tasks[1].variants] == ["as20k/eval", "as20k/eval+len2.5s", "as20k/eval+len5s", "as20k/eval+len10s"]


def test_noisy_buckets_cross_corruptions_with_lengths(tmp_path):
    entry = {"name": "esc50", "root": str(tmp_path), "corruptions": [{"name": "white", "snr_db": 10}],
             "buckets": [{"seconds": 1, "mode": "native"}]}
    plain = parse_config({**BASE, "tasks": [entry]})
    assert [v.id for v in plain.tasks[0].variants] == ["esc50/fold5", "esc50/fold5+white@10dB", "esc50/fold5+len1s-native"]
    crossed = parse_config({**BASE, "tasks": [{**entry, "noisy_buckets": True}]})
    assert crossed.tasks[0].variants[-1].id == "esc50/fold5+white@10dB+len1s-native"
    assert crossed.tasks[0].variants[-1].clean.id == "esc50/fold5+len1s-native"
    with pytest.raises(ConfigError, match="listed more than once"):
        parse_config({**BASE, "tasks": [{**entry, "buckets": [{"seconds": [1, 1]}]}]})


def test_native_mode_keeps_the_clip_length_and_the_model_runs_it(tmp_path, tiny_model):
    root = write_esc_layout(tmp_path / "esc", clips_per_fold=1, classes=2, seconds=1.0)
    task = TASKS.get("esc50")(root=str(root))
    base = FrontEnd(target_frames=128)
    store = FeatureStore(disk_cache=False)
    pad = store.get(TaskVariant(task, bucket=LengthBucket(seconds=0.5)), variant_frontend(base, TaskVariant(task, bucket=LengthBucket(seconds=0.5))))
    native_variant = TaskVariant(task, bucket=LengthBucket(seconds=0.5, mode="native"))
    native = store.get(native_variant, variant_frontend(base, native_variant))
    assert pad.fbanks[0].shape[0] == 128 and int(pad.valid_frames[0]) == 48  # 0.5 s: 48 frames of audio
    assert native.fbanks[0].shape[0] == 48 and int(native.valid_frames[0]) == 48
    batches = list(native.batches(8))
    assert len(batches) == 1 and batches[0][1].shape == (2, 48, 128)
    with torch.inference_mode():
        logits, state = tiny_model.forward_with_state(batches[0][1])
    assert logits.shape == (2, 5) and state.grid == (8, 3)  # 3 patch columns: positions cropped


def test_batches_group_clips_of_equal_length(tmp_path):
    root = write_esc_layout(tmp_path / "esc", clips_per_fold=1, classes=2, seconds=1.0)
    short = root / "audio" / "5-00-A-0.wav"
    sf.write(str(short), np.sin(np.arange(8000) / 5).astype(np.float32), 16000)  # 0.5 s among 1 s clips
    task = TASKS.get("esc50")(root=str(root))
    native = FeatureStore(disk_cache=False).get(TaskVariant(task), FrontEnd(target_frames=None))
    shapes = [tuple(fbank.shape) for _, fbank, _ in native.batches(8)]
    assert shapes == [(1, 48, 128), (1, 98, 128)]


@pytest.mark.parametrize("mode", ["pad", "native"])
def test_clip_shorter_than_one_patch(tmp_path, mode):
    root = write_esc_layout(tmp_path / "esc", clips_per_fold=1, classes=2, seconds=1.0)
    tiny = root / "audio" / "5-10-A-1.wav"
    sf.write(str(tiny), np.sin(np.arange(1600) / 5).astype(np.float32), 16000)  # 0.1 s: 8 frames
    task = TASKS.get("esc50")(root=str(root))
    variant = TaskVariant(task, bucket=LengthBucket(seconds=1, mode=mode))
    frontend = variant_frontend(FrontEnd(target_frames=128), variant)
    with pytest.raises(DataError, match=f"{tiny}: 8 frames of audio, shorter than one patch \\(16 frames\\)"):
        FeatureStore(disk_cache=False).get(variant, frontend, min_frames=16)
    features = FeatureStore(disk_cache=False, on_bad_clip="skip").get(variant, frontend, min_frames=16)
    assert features.ids == ["5-00-A-0"] and [s[0] for s in features.skipped] == ["5-10-A-1"]


def test_skipping_a_short_clip_keeps_the_other_fields(tmp_path):
    """The filtered feature set keeps `cropped` and the kept clips' silent fractions in their own fields."""
    root = write_esc_layout(tmp_path / "esc", clips_per_fold=1, classes=2, seconds=1.0)
    sf.write(str(root / "audio" / "5-10-A-1.wav"), np.sin(np.arange(1600) / 5).astype(np.float32), 16000)
    task = TASKS.get("esc50")(root=str(root))
    variant = TaskVariant(task, bucket=LengthBucket(seconds=1, mode="pad"))
    frontend = variant_frontend(FrontEnd(target_frames=128), variant)
    full = FeatureStore(disk_cache=False).get(variant, frontend)
    kept = FeatureStore(disk_cache=False, on_bad_clip="skip").get(variant, frontend, min_frames=16)
    assert kept.cropped == full.cropped
    assert full.silent_fraction is not None
    assert kept.silent_fraction.tolist() == full.silent_fraction[[full.ids.index("5-00-A-0")]].tolist()
