"""ESC-50: the Hub copy through `datasets` (on a local parquet copy the test makes), the official
5-fold protocol in run configs, one checkpoint per fold, and folds that never leak."""
import io
import json

import numpy as np
import pytest
import soundfile as sf

from prunebench.run.config import parse_config
from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import TASKS

from conftest import TINY, write_esc_layout


def write_hub_copy(folder, clips_per_fold=2, classes=3, rate=44100):
    """A parquet file laid out as the Hub copy (ashraq/esc50): the csv columns plus an audio column
    of encoded bytes, with `datasets`' feature metadata (Audio)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {k: [] for k in ("filename", "fold", "target", "category", "esc10", "src_file", "take", "audio")}
    t = np.arange(rate) / rate
    for target in range(classes):
        for fold in range(1, 6):
            for take in range(clips_per_fold):
                name = f"{fold}-{target}{take}-A-{target}.wav"
                buf = io.BytesIO()
                sf.write(buf, (0.5 * np.sin(2 * np.pi * 300 * (target + 1) * t)).astype(np.float32), rate, format="WAV")
                values = (name, fold, target, f"class{target}", False, int(f"{target}{take}"), "A",
                          {"bytes": buf.getvalue(), "path": name})
                for key, value in zip(rows, values):
                    rows[key].append(value)
    table = pa.table(rows)
    features = {k: {"dtype": str(table.schema.field(k).type), "_type": "Value"} for k in rows if k != "audio"}
    features["audio"] = {"_type": "Audio"}
    table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    (folder / "data").mkdir(parents=True)
    pq.write_table(table, str(folder / "data" / "train-00000-of-00001.parquet"))
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return tmp_path


def test_hub_copy_decodes_bytes_with_soundfile(hub_cache):
    hub = write_hub_copy(hub_cache / "hub")
    task = TASKS.get("esc50")(source="hub", hub_id=str(hub), split="fold3")
    test, train = task.test_clips(), task.train_clips()
    assert len(test) == 6 and len(train) == 24 and {c.fold for c in test} == {3}
    assert task.class_names == ["class0", "class1", "class2"]
    wave = task.load(test[0])  # 44.1 kHz WAV bytes, resampled to 16 kHz
    assert wave.shape == (16000,) and float(wave.abs().max()) > 0.4
    # the same clips as the local layout of the same data: same ids, labels and folds
    local = TASKS.get("esc50")(root=str(write_esc_layout(hub_cache / "esc")), split="fold3")
    assert [(c.id, c.labels, c.fold) for c in test] == [(c.id, c.labels, c.fold) for c in local.test_clips()]


def test_hub_copy_without_a_column_names_it(hub_cache):
    import pyarrow.parquet as pq

    hub = write_hub_copy(hub_cache / "hub")
    path = hub / "data" / "train-00000-of-00001.parquet"
    pq.write_table(pq.read_table(str(path)).drop(["fold"]).replace_schema_metadata(None), str(path))
    task = TASKS.get("esc50")(source="hub", hub_id=str(hub))
    with pytest.raises(DataError, match="missing column.*fold"):
        task.test_clips()


def test_hub_source_needs_no_root_and_local_does():
    with pytest.raises(ConfigError, match="set root"):
        TASKS.get("esc50")()
    with pytest.raises(ConfigError, match="source must be"):
        TASKS.get("esc50")(source="ftp")
    TASKS.get("esc50")(source="hub")  # nothing is loaded until clips are listed


def test_folds_never_leak(tmp_path):
    root = write_esc_layout(tmp_path / "esc")
    for fold in range(1, 6):
        task = TASKS.get("esc50")(root=str(root), split=f"fold{fold}")
        test, train = task.test_clips(), task.train_clips()
        assert {c.fold for c in test} == {fold} and fold not in {c.fold for c in train}
        assert not {c.id for c in test} & {c.id for c in train}
        assert len(test) + len(train) == 30
    meta = root / "meta" / "esc50.csv"
    lines = meta.read_text().splitlines()
    name = lines[1].split(",")[0]
    meta.write_text("\n".join(lines + [f"{name},2,0,class0,False,1,A"]) + "\n")  # the same file in another fold
    with pytest.raises(DataError, match=f"{name} is listed twice"):
        TASKS.get("esc50")(root=str(root)).test_clips()


BASE = {"models": [{"name": "ast-tiny", "overrides": TINY}], "methods": ["none"]}


def test_split_all_expands_into_five_folds(tmp_path):
    cfg = parse_config({**BASE, "tasks": [{"name": "esc50", "root": str(tmp_path), "split": "all",
                                           "corruptions": [{"name": "white", "snr_db": 10}]}]})
    assert [t.task.id for t in cfg.tasks] == [f"esc50/fold{f}" for f in range(1, 6)]
    assert [v.id for v in cfg.tasks[4].variants] == ["esc50/fold5", "esc50/fold5+white@10dB"]
    quick = parse_config({**BASE, "tasks": [{"name": "esc50", "root": str(tmp_path), "split": ["fold2", "fold5"]}]})
    assert [t.task.id for t in quick.tasks] == ["esc50/fold2", "esc50/fold5"]


def test_one_checkpoint_per_fold(tmp_path):
    tasks = [{"name": "esc50", "root": str(tmp_path), "split": "all"}]
    pattern = parse_config({**BASE, "tasks": tasks, "models": [{"name": "ast-tiny", "checkpoint": "/ckpt/tiny-{split}.pt"}]})
    assert [pattern.models[0].checkpoint_for(t.task) for t in pattern.tasks] == [f"/ckpt/tiny-fold{f}.pt" for f in range(1, 6)]
    mapping = {f"fold{f}": f"/ckpt/m{f}.pt" for f in range(1, 6)}
    cfg = parse_config({**BASE, "tasks": tasks, "models": [{"name": "ast-tiny", "checkpoint": mapping}]})
    assert cfg.models[0].checkpoint_for(cfg.tasks[2].task) == "/ckpt/m3.pt"
    del mapping["fold4"]
    with pytest.raises(ConfigError, match="no entry for 'fold4'"):
        parse_config({**BASE, "tasks": tasks, "models": [{"name": "ast-tiny", "checkpoint": mapping}]})
    with pytest.raises(ConfigError, match="would test each fold on a model trained on it"):
        parse_config({**BASE, "tasks": tasks, "models": [{"name": "ast-tiny", "checkpoint": "/ckpt/one.pt"}]})
    # a single fold with a single file is the quick mode
    single = parse_config({**BASE, "tasks": [{"name": "esc50", "root": str(tmp_path)}],
                           "models": [{"name": "ast-tiny", "checkpoint": "/ckpt/one.pt"}]})
    assert single.models[0].checkpoint_for(single.tasks[0].task) == "/ckpt/one.pt"


def test_split_all_on_a_task_without_folds_is_a_config_error(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    sf.write(str(tmp_path / "train" / "a" / "x.wav"), np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(ConfigError, match="split: all needs fold splits"):
        parse_config({**BASE, "tasks": [{"name": "audio-folder", "root": str(tmp_path), "split": "all"}]})
