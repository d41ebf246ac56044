"""`prunebench profile`: buckets, the efficiency table, the repeatability check, --check-macs."""
import json

import pytest

from prunebench.cli import main
from prunebench.measure.profile import REPEATABILITY_TOLERANCE, format_repeatability, repeatable
from prunebench.measure.shapes import bucket_shape, frames_for_seconds, parse_bucket

FAST = ["--batch-size", "2", "--repeats", "2", "--warmup", "0", "--min-time", "0", "--no-memory"]


def test_buckets_in_pad_and_native_mode():
    assert frames_for_seconds(1.0) == 98  # Kaldi: 1 + (16000 - 400) // 160
    native = parse_bucket("1:native", 512)
    assert (native.frames, native.valid_frames, native.label) == (98, 98, "len1s-native")
    pad = parse_bucket("1", 512)
    assert (pad.frames, pad.valid_frames, pad.label, pad.mode) == (512, 98, "len1s", "pad")
    assert bucket_shape(512, 10.0, "pad").valid_frames == 512  # longer than nominal: cropped
    with pytest.raises(Exception, match="SECONDS"):
        parse_bucket("one:pad", 512)
    with pytest.raises(Exception, match="mode"):
        parse_bucket("1:stretch", 512)


def test_profile_writes_one_row_per_bucket_and_method(tmp_path, capsys):
    out = tmp_path / "rows.json"
    code = main(["profile", "--model", "ast-tiny", "--method", "topk:keep_rate=0.5", "--bucket", "1:native",
                 "--bucket", "1:pad", "--runs", "2", "--json", str(out), *FAST])
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert code in (0, 1)  # 1 only if the two runs disagree by more than 5% (a loaded machine)
    assert [(r["bucket"], r["method_id"]) for r in rows] == [
        ("len1s-native", "none"), ("len1s-native", "topk-keep_rate=0.5"), ("len1s", "none"), ("len1s", "topk-keep_rate=0.5")]
    for r in rows:
        assert {"method_id", "macs_per_sample", "mac_ratio", "samples_per_s", "speedup", "efficiency",
                "peak_memory_bytes"} <= set(r)
        assert r["efficiency"] == pytest.approx(r["speedup"] / r["mac_ratio"])
        assert len(r["samples_per_s_runs"]) == 2 and r["run_agreement"] is not None
        assert len(r["reference_gflops_runs"]) == 2 and all(v > 0 for v in r["reference_gflops_runs"])
        assert r["reference_agreement"] is not None and "matrix product" in r["reference"]
    native, pad = rows[0], rows[2]
    assert native["frames"] == 98 and pad["frames"] == 512 and pad["valid_frames"] == 98
    assert native["macs_per_sample"] < pad["macs_per_sample"]  # 48 patches against 256
    assert rows[1]["mac_ratio"] > 1.5 and rows[0]["mac_ratio"] == 1.0
    assert "machine:" in printed and "efficiency" in printed and "repeatability" in printed
    assert "machine reference, len1s-native" in printed and "machine reference, len1s:" in printed


def test_check_macs_option_prints_both_counters(capsys):
    code = main(["profile", "--model", "ast-tiny", "--method", "topk:keep_rate=0.7", "--bucket", "0.5:native", "--check-macs"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "flop_counter" in printed and "ptflops_aten" in printed and "MISMATCH" not in printed


def test_bad_input_is_one_line_error(capsys):
    code = main(["profile", "--bucket", "0.1:native", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "0.1" in err
    if not __import__("torch").cuda.is_available():
        code = main(["profile", "--device", "cuda", *FAST])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "no CUDA device" in err


def test_repeatability_flags_runs_that_disagree():
    rows = [{"bucket": "nominal", "method_id": "none", "samples_per_s_runs": [100.0, 103.0], "speedup_runs": [1.0, 1.0],
             "run_agreement": 0.03},
            {"bucket": "nominal", "method_id": "topk", "samples_per_s_runs": [150.0, 165.0], "speedup_runs": [1.5, 1.6],
             "run_agreement": 0.097}]
    text = format_repeatability(rows)
    assert "ok" in text and f"OVER {REPEATABILITY_TOLERANCE:.0%}" in text
    assert not repeatable(rows) and repeatable(rows[:1])


def test_repeatability_blames_the_machine_only_when_the_reference_drifts():
    base = {"bucket": "nominal", "reference": "a fixed matrix product"}
    steady = [{**base, "method_id": "topk", "samples_per_s_runs": [150.0, 165.0], "speedup_runs": [1.5, 1.6],
               "run_agreement": 0.097, "reference_gflops_runs": [100.0, 102.0], "reference_agreement": 0.02}]
    text = format_repeatability(steady)
    assert "OVER 5%" in text and "machine drifted" not in text and "agreement 2.0%" in text
    drifting = [{**steady[0], "reference_gflops_runs": [100.0, 112.0], "reference_agreement": 0.113}]
    text = format_repeatability(drifting)
    assert "OVER 5% (machine drifted 11.3%)" in text and "the machine itself drifts" in text
    assert not repeatable(drifting)  # the check still fails: the figure was not reached


def test_reference_rate_times_the_fixed_product():
    import time

    import torch

    from prunebench.measure.machine_reference import REFERENCE_SHAPE, reference_rate

    m, k, n = REFERENCE_SHAPE
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    measured, best = 0.0, 0.0
    for _ in range(3):  # interleaved, so both sides see the same load; the best of each: noise only slows
        rate = reference_rate("cpu", "float32", repeats=5, min_repeat_s=0.05)
        assert len(rate.gflops_per_s) == 5 and rate.steps_per_repeat >= 1
        measured = max(measured, *rate.gflops_per_s)
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(3):
                torch.mm(a, b)
            best = max(best, 3 * 2.0 * m * k * n / (time.perf_counter() - started) / 1e9)
    # Within 35%: a FLOP count off by a factor of 2 (MACs for FLOPs) fails this.
    assert measured == pytest.approx(best, rel=0.35)
