import hashlib

import pytest

from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import TASKS

from conftest import REAL_ESC50, write_esc_layout


def test_esc50_loader_splits_by_official_fold(tmp_path):
    root = write_esc_layout(tmp_path / "esc")
    task = TASKS.get("esc50")(root=str(root), split="fold2")
    test, train = task.test_clips(), task.train_clips()
    assert {c.fold for c in test} == {2}
    assert {c.fold for c in train} == {1, 3, 4, 5}
    assert not {c.id for c in test} & {c.id for c in train}
    assert task.num_classes == 3 and task.class_names == ["class0", "class1", "class2"]
    assert task.load(test[0]).shape == (16000,)


def test_missing_root_names_the_folder(tmp_path):
    task = TASKS.get("esc50")(root=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        task.test_clips()


def test_csv_without_expected_columns_names_the_column(tmp_path):
    root = write_esc_layout(tmp_path / "esc")
    meta = root / "meta" / "esc50.csv"
    meta.write_text(meta.read_text().replace("target", "label"))
    with pytest.raises(DataError, match="missing column.*target"):
        TASKS.get("esc50")(root=str(root)).test_clips()


def test_listed_file_missing_names_it(tmp_path):
    root = write_esc_layout(tmp_path / "esc")
    victim = sorted((root / "audio").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        TASKS.get("esc50")(root=str(root)).test_clips()


def test_bad_split_and_unknown_parameter_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="fold1..fold5"):
        TASKS.get("esc50")(root=str(tmp_path), split="fold9")
    with pytest.raises(ConfigError, match="did you mean 'split'"):
        TASKS.get("esc50")(root=str(tmp_path), splt="fold1")


def test_synth_esc_is_deterministic_and_in_esc50_layout(tmp_path):
    a = TASKS.get("synth-esc")(root=str(tmp_path / "a"), clips_per_fold=1, sample_rate=22050)
    b = TASKS.get("synth-esc")(root=str(tmp_path / "b"), clips_per_fold=1, sample_rate=22050)
    assert len(a.test_clips()) == 10 and len(a.train_clips()) == 40
    digest = lambda t: hashlib.sha256(b"".join(c.path.read_bytes() for c in t.test_clips())).hexdigest()
    assert digest(a) == digest(b)
    assert (tmp_path / "a" / "meta" / "esc50.csv").read_text().startswith("filename,fold,target,category")
    # files are written at 22.05 kHz and come back resampled to the task's 16 kHz
    assert a.load(a.test_clips()[0]).shape == (80000,)
    c = TASKS.get("synth-esc")(root=str(tmp_path / "c"), clips_per_fold=1, seed=1)
    assert digest(c) != digest(a)


@pytest.mark.skipif(not REAL_ESC50.is_dir(), reason="real ESC-50 not present")
def test_real_esc50_official_folds():
    task = TASKS.get("esc50")(root=str(REAL_ESC50), split="fold5")
    test, train = task.test_clips(), task.train_clips()
    assert len(test) == 400 and len(train) == 1600 and task.num_classes == 50
    assert task.class_names[0] == "dog"
    wave = task.load(test[0])
    assert wave.ndim == 1 and 79000 < wave.numel() < 81000
