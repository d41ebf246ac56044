"""The typed record: one reading of status, failure, method and corruption order for every reader,
and records of earlier writers still read."""
import json

import pytest

from prunebench.core.errors import DataError
from prunebench.core.registry import BASELINE
from prunebench.records.record import Failure, Record, as_record, is_ok, method_sort_key
from prunebench.records.identity import measure_part
from prunebench.records.record import Pair

from leaderboard_records import as_old, make_record


def test_an_old_record_without_status_reads_as_ok_unless_it_carries_an_error():
    old = as_old(make_record("topk", 0.5))
    del old["status"]
    assert Record.from_dict(old).ok and is_ok(old) and Record.from_dict(old).failure is None
    broken = {**old, "error": "RuntimeError: out of memory"}
    assert not Record.from_dict(broken).ok and not is_ok(broken)
    assert Record.from_dict(broken).failure.text == "RuntimeError: out of memory"
    assert not is_ok({**old, "status": "failed"})


def test_a_failed_record_reads_its_failure():
    ok = make_record("topk", 0.5, noise=("white", 20))
    try:
        raise DataError("clip c1 is silent\nsecond line")
    except DataError as exc:
        error = Failure.from_exception(exc, "evaluate").to_dict()
    pair = Pair(ok["model"], ok["method"], ok["task"], measure_part("float32", "cpu", "float32"), ("clip0",), 0)
    record = Record.failed(pair, Failure.read(error), ok["provenance"])
    assert record.status == "failed" and not record.ok
    failure = record.failure
    assert (failure.type, failure.stage, failure.input_error) == ("DataError", "evaluate", True)
    assert failure.message == "clip c1 is silent\nsecond line" and failure.first_line == "clip c1 is silent"
    assert "Traceback" in failure.traceback
    assert Failure.read(error) == failure and failure.to_dict() == error  # one builder, one reader
    # a crash (not prunebench's own error) keeps its class name in the message and is no input error
    crash = Failure.from_exception(ValueError("bad shape"), "timing", trace="")
    assert (crash.message, crash.input_error, crash.traceback) == ("ValueError: bad shape", False, "")


def test_a_failure_without_message_shows_its_type_or_that_it_failed():
    assert Failure.read({"type": "MemoryError", "message": ""}).text == "MemoryError"
    assert Failure.read(None).text == "failed"
    assert json.dumps(Failure("timing failed", stage="timing").to_dict(), sort_keys=True) == json.dumps(
        {"type": "RuntimeError", "message": "timing failed", "traceback": "", "stage": "timing", "input_error": False},
        sort_keys=True)


def test_method_sort_key_baseline_first_then_name_then_keep_rate_descending():
    records = [make_record("topk", 0.5), make_record("random", 0.5), make_record("topk"),
               make_record("topk", 0.9), make_record(BASELINE), make_record("topk", 1)]
    order = [r.method.id for r in sorted((Record.from_dict(r) for r in records), key=lambda r: r.method_sort_key)]
    # a method without a keep rate sorts before its keep rates, as if it kept everything
    assert order == [BASELINE, "random-keep_rate=0.5", "topk", "topk-keep_rate=1", "topk-keep_rate=0.9",
                     "topk-keep_rate=0.5"]
    assert method_sort_key("topk", None, "topk") < method_sort_key("topk", 1.0, "topk-keep_rate=1.0")


def test_corruption_order_from_params_and_from_an_old_record_without_params():
    noisy = [make_record("topk", 0.5, noise=("white", snr)) for snr in (0, 20, 10)] + [make_record("topk", 0.5, noise=("pink", 5))]
    order = [r.corruption_id for r in sorted(map(Record.from_dict, noisy), key=lambda r: r.corruption_order)]
    assert order == ["pink@5dB", "white@20dB", "white@10dB", "white@0dB"]  # by name, the cleanest first
    old = as_old(make_record("topk", 0.5, noise=("white", 10)))
    old["task"]["corruption"] = {"id": "white@10dB"}  # no name, no params: both read from the id
    fresh = Record.from_dict(make_record("topk", 0.5, noise=("white", 10)))
    assert Record.from_dict(old).corruption_order == fresh.corruption_order == ("white", -10.0, "white@10dB")
    assert Record.from_dict(old).corruption.snr_db == 10.0
    # the params, where a record has them, decide over the id
    odd = make_record("topk", 0.5, noise=("white", 10))
    odd["task"]["corruption"]["params"]["snr_db"] = 30
    assert Record.from_dict(odd).corruption_order == ("white", -30.0, "white@10dB")
    assert Record.from_dict(make_record("topk", 0.5)).corruption_order == ("", 0.0, "")


def test_the_record_reads_what_readers_need():
    raw = make_record("topk", 0.5, noise=("white", 20), bucket=(2, "native"), correct=[1, 0, 1, 1])
    raw["robustness"] = {"clean": 1.0, "noisy": 0.5}  # written by earlier runs: ignored, still reads
    r = as_record(raw)
    assert as_record(r) is r
    assert (r.model, r.task_id, r.bucket, r.bucket_label) == ("ast-tiny", "synth-esc/fold5", "len2s-native", "len2s-native")
    assert r.key == ("ast-tiny", "topk-keep_rate=0.5", "synth-esc/fold5+white@20dB+len2s-native")
    assert r.group == ("ast-tiny", "synth-esc/fold5", "len2s-native")
    assert (r.method.name, r.method.keep_rate, r.method.params_text, r.method.is_baseline) == ("topk", 0.5, "keep_rate=0.5", False)
    assert (r.metric, r.score, r.score_ci) == ("accuracy", 0.75, (pytest.approx(0.65), pytest.approx(0.85)))
    assert r.clips.ids == ["clip0", "clip1", "clip2", "clip3"] and r.clips.correct == [1, 0, 1, 1]
    assert r.macs == 2e9 and r.throughput["speedup_vs_none"] == 1.0 and r.num_classes == 4
    assert r.bucket_order == (True, "native", 2.0, "len2s-native")
    assert Record.from_dict(make_record()).bucket_order < r.bucket_order  # the whole clip first


# -- identity, versions, files -------------------------------------------------------------------
def _written(tmp_path, record):
    from leaderboard_records import write_records

    write_records(tmp_path, [record])
    return next(p for p in tmp_path.rglob("*.json"))


def test_the_method_spec_is_normalised_in_the_identity():
    """`topk` and `{name: topk}` and `{name: topk, keep_rate: 0.7}` (the default) are one pair."""
    from prunebench.run.config import parse_config

    base = {"models": [{"name": "ast-tiny"}], "tasks": [{"name": "synth-esc", "split": "fold5"}]}
    specs = [parse_config({**base, "methods": [spec]}).methods[0].describe()
             for spec in ("topk", {"name": "topk"}, {"name": "topk", "keep_rate": 0.7})]
    ok = make_record()
    keys = {Pair(ok["model"], spec, ok["task"], measure_part("float32", "cpu", "float32"), ("clip0",), 0).identity.key
            for spec in specs}
    assert len(keys) == 1
    other = parse_config({**base, "methods": [{"name": "topk", "keep_rate": 0.5}]}).methods[0].describe()
    assert Pair(ok["model"], other, ok["task"], measure_part("float32", "cpu", "float32"), ("clip0",), 0).identity.key not in keys


def test_a_record_of_an_older_schema_reads_with_the_identity_a_new_one_has(tmp_path):
    new = make_record("topk", 0.5, noise=("white", 20))
    old_path = _written(tmp_path / "old", {**as_old(new), "provenance": {**new["provenance"],
                                                                         "config": {"measure": {"dtype": "float32"}}}})
    old, fresh = Record.read(old_path), Record.from_dict(new)
    assert old.identity.key == fresh.identity.key and old.measure == fresh.measure
    assert old.clips.correct == fresh.clips.correct and old.score == fresh.score


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path):
    path = _written(tmp_path, {**make_record(), "schema": "prunebench-result-9"})
    with pytest.raises(DataError, match=r"field schema is 'prunebench-result-9', newer than this prunebench reads \(prunebench-result-4\)"):
        Record.read(path)


def test_a_record_whose_identity_does_not_match_its_content_is_refused(tmp_path):
    edited = make_record("topk", 0.5)
    edited["model"]["checkpoint_sha256"] = "b" * 64  # the content changed, the stored identity did not
    path = _written(tmp_path / "a", edited)
    with pytest.raises(DataError, match=r"identity does not match its content \(model.checkpoint_sha256: "):
        Record.read(path)
    forged = make_record("topk", 0.5)
    forged["identity"]["parts"]["method"]["params"]["keep_rate"] = 0.9  # parts edited, key left as it was
    with pytest.raises(DataError, match=r"field identity.key .* is not the hash of identity.parts"):
        Record.read(_written(tmp_path / "b", forged))
