"""The typed record: one reading of status, failure, method and corruption order for every reader,
and records of earlier writers still read."""
import json

import pytest

from prunebench.core.errors import DataError
from prunebench.core.registry import BASELINE
from prunebench.records.record import Failure, Record, as_record, is_ok, method_sort_key
from prunebench.records.store import failed_record, failure_info

from leaderboard_records import make_record


def test_an_old_record_without_status_reads_as_ok_unless_it_carries_an_error():
    old = make_record("topk", 0.5)
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
        error = failure_info(exc, "evaluate")
    record = Record.from_dict(failed_record(ok["model"], ok["method"], ok["task"], error, ok["provenance"]))
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
    old = make_record("topk", 0.5, noise=("white", 10))
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
    assert as_record(r) is r and r.raw is raw
    assert (r.model, r.task_id, r.bucket, r.bucket_label) == ("ast-tiny", "synth-esc/fold5", "len2s-native", "len2s-native")
    assert r.key == ("ast-tiny", "topk-keep_rate=0.5", "synth-esc/fold5+white@20dB+len2s-native")
    assert r.group == ("ast-tiny", "synth-esc/fold5", "len2s-native")
    assert (r.method.name, r.method.keep_rate, r.method.params_text, r.method.is_baseline) == ("topk", 0.5, "keep_rate=0.5", False)
    assert (r.metric, r.score, r.score_ci) == ("accuracy", 0.75, (pytest.approx(0.65), pytest.approx(0.85)))
    assert r.clips.ids == ["clip0", "clip1", "clip2", "clip3"] and r.clips.correct == [1, 0, 1, 1]
    assert r.macs == 2e9 and r.throughput["speedup_vs_none"] == 1.0 and r.num_classes == 4
    assert r.bucket_order == (True, "native", 2.0, "len2s-native")
    assert Record.from_dict(make_record()).bucket_order < r.bucket_order  # the whole clip first
