"""Record sidecars: scores and kept patches beside the JSON in a compressed .npz named with its
sha256, read when asked for; a missing or altered sidecar an error naming both files; records
with the lists inline (written before sidecars) still read."""
import json

import numpy as np
import pytest

from prunebench.core.errors import DataError
from prunebench.records.record import as_record
from prunebench.records.sidecar import pack_masks, unpack_masks
from leaderboard_records import record_documents
from prunebench.records.store import read_record, result_path, write_record

from leaderboard_records import mask, make_record


def map_record(n=6, classes=5):
    record = make_record("topk", 0.5, metric="map", correct=[1] * n, kept=[mask([0, 3, 5]), None] + [mask([1])] * (n - 2))
    del record["per_clip"]["pred"], record["per_clip"]["correct"]
    rng = np.random.default_rng(0)
    record["per_clip"]["scores"] = rng.random((n, classes)).astype(np.float16)
    record["per_clip"]["labels"] = [[i % classes] for i in range(n)]
    return record


def written(tmp_path, record):
    path = result_path(tmp_path, "ast-tiny", record["method"]["id"], record["task"]["variant"])
    write_record(path, record)
    return path


def test_scores_and_masks_go_to_the_sidecar_and_read_back(tmp_path):
    record = map_record()
    path = written(tmp_path, record)
    raw = json.loads(path.read_text())
    ref = raw["per_clip"]["sidecar"]
    assert "scores" not in raw["per_clip"] and "kept_patches" not in raw["per_clip"]
    assert ref["file"] == "fold5.npz" and (path.parent / "fold5.npz").stat().st_size == ref["bytes"]
    (loaded,) = record_documents(tmp_path)
    clips = as_record(loaded).clips
    assert clips.sidecar is not None and clips.sidecar._arrays is None  # not read until asked for
    assert np.array_equal(clips.scores, record["per_clip"]["scores"].astype(np.float32))
    assert clips.kept_patches == record["per_clip"]["kept_patches"]
    write_record(path, record)  # the same record again: the same bytes, the same sha256
    assert json.loads(path.read_text())["per_clip"]["sidecar"] == ref


def test_a_missing_or_altered_sidecar_names_both_files(tmp_path):
    path = written(tmp_path, map_record())
    sidecar = path.with_suffix(".npz")
    data = sidecar.read_bytes()
    sidecar.write_bytes(data[:-10])
    with pytest.raises(DataError, match=rf"result {path}: its sidecar {sidecar} is truncated"):
        read_record(path)
    sidecar.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    clips = as_record({**read_record(path), "_path": str(path)}).clips
    with pytest.raises(DataError, match=rf"result {path}: its sidecar {sidecar} does not match the sha256"):
        clips.scores
    sidecar.unlink()
    with pytest.raises(DataError, match=rf"result {path}: its sidecar {sidecar} is missing"):
        read_record(path)


def test_a_record_with_the_lists_inline_still_reads(tmp_path):
    record = map_record()
    record["schema"] = "prunebench-result-2"
    record["per_clip"]["scores"] = [[round(float(v), 5) for v in row] for row in record["per_clip"]["scores"]]
    path = result_path(tmp_path, "ast-tiny", record["method"]["id"], record["task"]["variant"])
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record, indent=1))
    clips = as_record(record_documents(tmp_path)[0]).clips
    assert clips.scores == record["per_clip"]["scores"] and clips.kept_patches == record["per_clip"]["kept_patches"]


def test_an_accuracy_record_without_masks_has_no_sidecar(tmp_path):
    path = written(tmp_path, make_record("none"))
    assert not path.with_suffix(".npz").exists() and "sidecar" not in json.loads(path.read_text())["per_clip"]


def test_masks_of_any_width_pack_exactly():
    masks = ["0f", None, "8000000000000000000000000000000001", "000"]
    packed = pack_masks(masks)
    assert unpack_masks(packed["kept_patches_bits"], packed["kept_patches_width"]) == masks
