"""The sharded feature cache: float32 (exact) or float16 shards read back memory-mapped as the features computed,
padding restored exactly, a truncated shard an error naming it, an interrupted run resuming with
only its unfinished shard rebuilt."""
import os

import numpy as np
import pytest
import torch

import prunebench.data.features as features_module
from prunebench.audio.kaldi import FrontEnd
from prunebench.core.errors import DataError
from prunebench.core.registry import TASKS
from prunebench.data.features import FeatureStore
from prunebench.data.shards import ShardedFbanks
from prunebench.data.variant import TaskVariant

from conftest import write_esc_layout


@pytest.fixture
def task(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(features_module, "SHARD_CLIPS", 2)  # 3 clips in fold 5: two shards
    root = write_esc_layout(tmp_path / "esc", clips_per_fold=1, classes=3, seconds=0.5)
    return TASKS.get("esc50")(root=str(root))


def folder_of(tmp_path):
    (folder,) = [p for p in (tmp_path / "cache" / "features").iterdir() if p.is_dir()]
    return folder


def test_cached_features_are_the_computed_ones_in_float16(task, tmp_path):
    frontend = FrontEnd(target_frames=128)
    memory = FeatureStore(disk_cache=False, progress=False).get(TaskVariant(task), frontend)
    FeatureStore(progress=False, store_dtype="float16").get(TaskVariant(task), frontend)
    cached = FeatureStore(progress=False, store_dtype="float16").get(TaskVariant(task), frontend)  # read from disk
    assert isinstance(cached.fbanks, ShardedFbanks) and len(list(folder_of(tmp_path).glob("shard-*.npy"))) == 2
    assert cached.ids == memory.ids and torch.equal(cached.valid_frames, memory.valid_frames)
    assert torch.equal(cached.labels, memory.labels) and torch.equal(cached.silent_fraction, memory.silent_fraction)
    for a, b in zip(cached.fbanks, memory.fbanks):
        valid = 48  # 0.5 s of audio; the rest is padding, restored exactly
        assert a.dtype == torch.float32 and a.shape == b.shape == (128, 128)
        assert torch.equal(a[valid:], b[valid:])
        assert torch.allclose(a[:valid], b[:valid], atol=2e-3, rtol=1e-3)
    batches = list(cached.batches(2))
    assert [len(i) for i, _, _ in batches] == [2, 1] and batches[0][1].shape == (2, 128, 128)


def test_float32_storage_is_exact(task):
    frontend = FrontEnd(target_frames=128)
    memory = FeatureStore(disk_cache=False, progress=False).get(TaskVariant(task), frontend)
    FeatureStore(progress=False).get(TaskVariant(task), frontend)
    cached = FeatureStore(progress=False).get(TaskVariant(task), frontend)
    assert all(torch.equal(a, b) for a, b in zip(cached.fbanks, memory.fbanks))


def test_a_truncated_shard_is_an_error_naming_it(task, tmp_path):
    frontend = FrontEnd(target_frames=128)
    FeatureStore(progress=False).get(TaskVariant(task), frontend)
    shard = folder_of(tmp_path) / "shard-00001.npy"
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size - 100)
    with pytest.raises(DataError, match="shard-00001.npy is truncated"):
        FeatureStore(progress=False).get(TaskVariant(task), frontend)


def test_an_interrupted_run_rebuilds_only_its_unfinished_shard(task, tmp_path):
    frontend = FrontEnd(target_frames=128)
    first = FeatureStore(progress=False).get(TaskVariant(task), frontend)
    folder = folder_of(tmp_path)
    kept = (folder / "shard-00000.npy").stat().st_mtime_ns
    # as if killed while writing shard 1: its temporary file left, no shard, no index
    os.replace(folder / "shard-00001.npy", folder / "shard-00001.npy.tmp999999")
    (folder / "shard-00001.json").unlink()
    (folder / "index.json").unlink()
    store = FeatureStore(progress=False)
    again = store.get(TaskVariant(task), frontend)
    assert "1 clips computed, 2 reused from finished shards" in store.last
    assert (folder / "shard-00000.npy").stat().st_mtime_ns == kept and not list(folder.glob("*.tmp*"))
    assert all(torch.equal(a, b) for a, b in zip(first.fbanks, again.fbanks))


def test_native_length_clips_keep_their_frames(task):
    frontend = FrontEnd(target_frames=None)
    memory = FeatureStore(disk_cache=False, progress=False).get(TaskVariant(task), frontend)
    FeatureStore(progress=False).get(TaskVariant(task), frontend)
    cached = FeatureStore(progress=False).get(TaskVariant(task), frontend)
    assert [cached.frames(i) for i in range(len(cached))] == [f.shape[0] for f in memory.fbanks] == [48, 48, 48]
    assert np.allclose(cached.fbanks[2].numpy(), memory.fbanks[2].numpy(), atol=2e-3, rtol=1e-3)


def test_reading_keeps_only_the_last_maps_open_and_reopens_the_others(task, monkeypatch):
    import prunebench.data.shards as shards

    monkeypatch.setattr(features_module, "SHARD_CLIPS", 1)  # one shard per clip
    monkeypatch.setattr(shards, "OPEN_MAPS", 1)
    frontend = FrontEnd(target_frames=128)
    memory = FeatureStore(disk_cache=False, progress=False).get(TaskVariant(task), frontend)
    FeatureStore(progress=False).get(TaskVariant(task), frontend)
    cached = FeatureStore(progress=False).get(TaskVariant(task), frontend).fbanks
    for i in (0, 1, 2, 0, 2):  # shard 0 is unmapped after the first read, then mapped again
        assert torch.equal(cached[i], memory.fbanks[i])
        assert list(cached._maps) == [i]  # a read page of a closed map no longer counts in RSS


def test_a_dataset_copied_anew_is_the_same_data_and_a_changed_file_is_not(task, tmp_path):
    """The shared ESC-50 is copied anew at every session start: new file times, same bytes. The
    fingerprint (the key of cached trainings and features) follows the content, not the times."""
    import shutil

    from prunebench.core.file_digest import content_sha256

    clips = task.train_clips()
    before = task.fingerprint(clips)
    copy = tmp_path / "esc-copy"
    shutil.copytree(task.params["root"], copy)  # new times
    moved = TASKS.get("esc50")(root=str(copy))
    assert moved.fingerprint(moved.train_clips()) == before
    one = moved.train_clips()[0].path
    os.utime(one, ns=(1, 1))
    assert moved.fingerprint(moved.train_clips()) == before  # a touched file, the same bytes
    data = bytearray(one.read_bytes())
    data[-1] ^= 1
    one.write_bytes(bytes(data))
    assert content_sha256(one) != content_sha256(clips[0].path)
    assert moved.fingerprint(moved.train_clips()) != before
    assert list((tmp_path / "cache" / "digests").glob("*.json"))  # remembered for the next process
