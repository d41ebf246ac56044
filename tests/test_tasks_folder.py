"""audio-folder (any labelled folder or manifest) and as20k (AudioSet, AST-style manifests, mAP),
on data the tests make."""
import json

import numpy as np
import pytest
import soundfile as sf

from prunebench.core.errors import ConfigError, DataError
from prunebench.data.features import FeatureStore
from prunebench.audio.kaldi import AUDIOSET_STATS, FrontEnd
from prunebench.core.registry import TASKS
from prunebench.data.variant import TaskVariant


def write(path, seconds=0.5, sr=16000, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)


def test_split_folders(tmp_path):
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            for i in range(2):
                write(tmp_path / split / cls / f"{i}.wav")
    task = TASKS.get("audio-folder")(root=str(tmp_path))
    assert task.class_names == ["cat", "dog"] and task.metric == "accuracy"
    test, train = task.test_clips(), task.train_clips()
    assert sorted(c.id for c in test) == ["test/cat/0", "test/cat/1", "test/dog/0", "test/dog/1"]
    assert len(train) == 4 and {c.labels for c in train} == {(0,), (1,)}
    # no clip_seconds declared: the nominal length is the longest clip's (0.5 s), buckets scaled to it
    assert task.norm_stats == AUDIOSET_STATS and task.clip_seconds == 0.5
    assert task.default_bucket_seconds == (0.125, 0.25, 0.5)
    assert TASKS.get("audio-folder")(root=str(tmp_path), clip_seconds=5.0).default_bucket_seconds == (1.25, 2.5, 5.0)


def test_class_folders_with_hash_folds(tmp_path):
    for cls in ("a", "b", "c"):
        for i in range(10):
            write(tmp_path / cls / f"{i}.flac")
    with pytest.raises(DataError, match="set folds: N"):
        TASKS.get("audio-folder")(root=str(tmp_path)).test_clips()
    tasks = [TASKS.get("audio-folder")(root=str(tmp_path), folds=3, split=f"fold{f}") for f in (1, 2, 3)]
    tests = [{c.id for c in t.test_clips()} for t in tasks]
    assert sum(map(len, tests)) == 30 and not (tests[0] & tests[1]) and not (tests[1] & tests[2])
    for t, ids in zip(tasks, tests):
        assert not ids & {c.id for c in t.train_clips()}  # folds never leak
    again = TASKS.get("audio-folder")(root=str(tmp_path), folds=3, split="fold1")
    assert {c.id for c in again.test_clips()} == tests[0]  # deterministic
    assert tasks[0].cross_validation_splits() == ["fold1", "fold2", "fold3"]


def test_csv_manifest_with_folds_and_multiple_labels(tmp_path):
    for i in range(6):
        write(tmp_path / "clips" / f"{i}.wav")
    rows = ["path,labels,fold"] + [f"clips/{i}.wav,{'speech;music' if i % 2 else 'speech'},{1 + i % 3}" for i in range(6)]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    task = TASKS.get("audio-folder")(root=str(tmp_path), manifest="list.csv", split="fold2")
    assert task.metric == "map" and task.class_names == ["music", "speech"]
    assert {c.labels for c in task.test_clips()} == {(0, 1), (1,)}
    assert task.cross_validation_splits() == ["fold1", "fold2", "fold3"]


def ast_style(tmp_path, eval_labels=None):
    """A small AS-20K in AST's layout: class_labels_indices.csv, train.json and eval.json."""
    labels = ["index,mid,display_name", '0,/m/09x0r,"Speech"', '1,/m/04rlf,"Music"', '2,/m/0jbk,"Animal"',
              '3,/m/07yv9,"Vehicle, car"']
    (tmp_path / "class_labels_indices.csv").write_text("\n".join(labels) + "\n")
    mids = ["/m/09x0r", "/m/04rlf", "/m/0jbk", "/m/07yv9"]
    for split, n in (("train", 8), ("eval", 6)):
        data = []
        for i in range(n):
            path = tmp_path / "audio" / split / f"Y{split}{i}.wav"
            write(path, seconds=1.0, freq=200.0 * (1 + i % 4))
            chosen = [mids[i % 4], mids[(i + 1) % 4]] if i % 3 == 0 else [mids[i % 4]]
            data.append({"wav": str(path) if i % 2 else f"audio/{split}/Y{split}{i}.wav", "labels": ",".join(chosen)})
        if split == "eval" and eval_labels is not None:
            data[0]["labels"] = eval_labels
        (tmp_path / f"{split}.json").write_text(json.dumps({"data": data}))
    return tmp_path


def test_as20k_reads_ast_style_manifests(tmp_path):
    task = TASKS.get("as20k")(root=str(ast_style(tmp_path)))
    assert task.metric == "map" and task.num_classes == 4 and task.class_names[3] == "Vehicle, car"
    assert task.norm_stats == AUDIOSET_STATS and task.clip_seconds == 10.0
    assert task.default_bucket_seconds == (2.5, 5.0, 10.0)
    test, train = task.test_clips(), task.train_clips()
    assert len(test) == 6 and len(train) == 8
    assert test[0].labels == (0, 1) and test[1].labels == (1,)
    # mAP features: multi-hot labels over the 4 classes
    features = FeatureStore(disk_cache=False).get(TaskVariant(task), FrontEnd(target_frames=128))
    assert features.labels.shape == (6, 4) and features.labels[0].tolist() == [1.0, 1.0, 0.0, 0.0]


def test_label_missing_from_the_label_map_names_the_entry(tmp_path):
    root = ast_style(tmp_path, eval_labels="/m/09x0r,/m/nosuch")
    task = TASKS.get("as20k")(root=str(root))
    with pytest.raises(DataError, match=r"eval.json entry 0: label '/m/nosuch' is not in the label map .*class_labels_indices.csv"):
        task.test_clips()


def test_bad_entries_skipped_are_counted_and_recorded(tmp_path):
    root = ast_style(tmp_path, eval_labels="/m/nosuch")
    (root / "audio" / "eval" / "Yeval2.wav").unlink()  # AudioSet downloads always miss some clips
    task = TASKS.get("as20k")(root=str(root))
    task.on_bad_clip = "skip"
    assert len(task.test_clips()) == 4
    features = FeatureStore(disk_cache=False, on_bad_clip="skip").get(TaskVariant(task), FrontEnd(target_frames=128))
    reasons = dict(features.skipped)
    assert len(features) == 4 and len(reasons) == 2
    assert "'/m/nosuch' is not in the label map" in reasons["audio/eval/Yeval0"]
    assert "audio file not found" in reasons["audio/eval/Yeval2"]


def test_a_clip_in_both_splits_is_a_leak(tmp_path):
    root = ast_style(tmp_path)
    train = json.loads((root / "train.json").read_text())
    train["data"].append(json.loads((root / "eval.json").read_text())["data"][1])
    (root / "train.json").write_text(json.dumps(train))
    with pytest.raises(DataError, match="listed twice.*leak"):
        TASKS.get("as20k")(root=str(root)).test_clips()


@pytest.mark.parametrize("params, error, message", [
    ({}, ConfigError, "set root"),
    ({"root": "/no/such/folder"}, DataError, "dataset root not found"),
    ({"root": ".", "metric": "f1"}, ConfigError, "metric must be"),
    ({"root": ".", "norm_stats": "imagenet"}, ConfigError, "norm_stats must be"),
])
def test_bad_parameters(params, error, message):
    with pytest.raises(error, match=message):
        TASKS.get("audio-folder")(**params).test_clips()


def test_manifest_without_a_label_column_names_the_file(tmp_path):
    (tmp_path / "m.csv").write_text("path,split\nx.wav,test\n")
    with pytest.raises(DataError, match="m.csv: needs a label column"):
        TASKS.get("audio-folder")(root=str(tmp_path), manifest="m.csv").test_clips()
