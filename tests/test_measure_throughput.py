"""Throughput measurement: what it records and how it behaves (no timing figures asserted)."""
import pytest
import torch

from prunebench.core.errors import ConfigError
from prunebench.measure.kernels import choose_backend, is_out_of_memory
from prunebench.method_api import Method
from prunebench.core.registry import METHODS
from prunebench.measure.throughput import measure_interleaved, steps_to_fill
from prunebench.measure.timing import StepTimer

FAST = dict(batch_size=2, device="cpu", warmup=1, repeats=3, min_repeat_s=0.0)


class Spy(Method):
    """No pruning, but logs the batch size and valid frames of every forward it takes part in."""

    name = "spy"
    log: list = []

    def begin(self, fbank, state, dims, valid_frames):
        Spy.log.append((self.id, fbank.shape[0], None if valid_frames is None else valid_frames.tolist()))


class OutOfMemoryAbove(Method):
    """Raises CUDA's out-of-memory error for batches above 4, as a GPU would for a large batch."""

    name = "oom-above-4"

    def begin(self, fbank, state, dims, valid_frames):
        if fbank.shape[0] > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


class Broken(Method):
    name = "broken"

    def begin(self, fbank, state, dims, valid_frames):
        raise RuntimeError("a bug in the method, not memory")


def test_records_keep_the_original_fields_and_add_provenance(tiny_model):
    methods = [METHODS.get("none")(), METHODS.get("topk")(keep_rate=0.5)]
    results = measure_interleaved(tiny_model, methods, 128, **FAST)
    original = {"samples_per_s", "spread", "batch_size", "repeats", "device", "dtype", "threads", "speedup_vs_none"}
    for method_id, result in results.items():
        record = result.to_dict()
        assert original <= set(record)
        assert record["attention_backend"] == "flash"  # what auto picks on CPU, for every method
        assert record["timer"] == "perf_counter" and record["dtype"] == "float32"
        assert record["threads"] == torch.get_num_threads()
        assert len(record["samples_per_s_repeats"]) == 3 and record["frames"] == 128
        assert record["memory_kind"] == "not measured" and record["peak_memory_bytes"] is None
    assert results["none"].speedup_vs_none == 1.0
    assert results["topk-keep_rate=0.5"].speedup_vs_none > 0


def test_methods_are_interleaved_in_rotated_rounds(tiny_model):
    Spy.log = []
    spies = [Spy(), Spy(), Spy()]
    for i, spy in enumerate(spies):  # three distinct ids
        spy.name = f"spy{i}"
    measure_interleaved(tiny_model, spies, 128, steps_per_repeat=1, **{**FAST, "warmup": 0})
    timed = [method_id for method_id, batch, _ in Spy.log if batch == 2]  # the kernel probe runs batch 1
    # three rounds, each times every method once, the order rotated by one per round
    assert timed == ["spy0", "spy1", "spy2", "spy1", "spy2", "spy0", "spy2", "spy0", "spy1"]


def test_short_steps_are_repeated_to_fill_the_minimum_repeat_time(tiny_model):
    assert [steps_to_fill(0.2, t) for t in (0.5, 0.2, 0.05, 0.03, 0.0)] == [1, 1, 4, 7, 10_000]
    results = measure_interleaved(tiny_model, [METHODS.get("none")()], 128, **{**FAST, "warmup": 2, "min_repeat_s": 1.0})
    r = results["none"]
    assert r.steps_per_repeat > 1  # a tiny forward takes far less than a second, even on a loaded machine
    assert r.samples_per_s == pytest.approx(sorted(r.samples_per_s_repeats)[1])  # the median of 3


def test_pad_bucket_hands_valid_frames_to_the_method(tiny_model):
    Spy.log = []
    measure_interleaved(tiny_model, [METHODS.get("none")(), Spy()], 128, valid_frames=48, steps_per_repeat=1, **FAST)
    assert Spy.log and all(valid == [48] * batch for _, batch, valid in Spy.log)


def test_out_of_memory_halves_the_batch_for_all_methods(tiny_model):
    methods = [METHODS.get("none")(), OutOfMemoryAbove()]
    results = measure_interleaved(tiny_model, methods, 128, **{**FAST, "batch_size": 16})
    for r in results.values():
        assert (r.requested_batch_size, r.batch_size) == (16, 4)


def test_other_errors_are_not_mistaken_for_out_of_memory(tiny_model):
    with pytest.raises(RuntimeError, match="a bug in the method"):
        measure_interleaved(tiny_model, [METHODS.get("none")(), Broken()], 128, **{**FAST, "attention": "flash"})
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 10 GB"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_auto_attention_picks_the_first_backend_every_method_runs_on():
    tried = []

    def runs_on(name):
        tried.append(name)
        if name == "flash":
            raise RuntimeError("No available kernel. Aborting execution.")

    assert choose_backend("auto", runs_on) == "efficient" and tried == ["flash", "efficient"]
    assert choose_backend("math", runs_on) == "math"
    with pytest.raises(ConfigError, match="attention backend 'fast'"):
        choose_backend("fast", runs_on)


def test_bf16_autocast_math_attention_and_compile_paths_run(tiny_model):
    methods = [METHODS.get("none")(), METHODS.get("topk")(keep_rate=0.5)]
    bf16 = measure_interleaved(tiny_model, methods, 128, dtype="bfloat16", attention="math", **FAST)
    assert {(r.dtype, r.attention_backend) for r in bf16.values()} == {("bfloat16", "math")}
    compiled = measure_interleaved(tiny_model, methods, 128, compile_backend="eager", **FAST)
    assert {r.compiled for r in compiled.values()} == {"eager"}
    with pytest.raises(ConfigError, match="dtype 'float64'"):
        measure_interleaved(tiny_model, methods, 128, dtype="float64", **FAST)


def test_cuda_event_path_times_with_events_and_reports_seconds():
    """The GPU path without a GPU: events are recorded around the steps, the end event is waited
    for, and elapsed_time (milliseconds) becomes seconds."""
    calls = []

    class Event:
        def __init__(self, enable_timing):
            assert enable_timing
            self.t = None

        def record(self):
            calls.append("record")
            self.t = len(calls)

        def synchronize(self):
            calls.append("wait")

        def elapsed_time(self, end):
            return 250.0 * (end.t - self.t)  # ms

    timer = StepTimer(torch.device("cuda"), event_factory=Event, sync=lambda d: calls.append("sync"))
    seconds = timer.seconds(lambda: calls.append("step"), steps=3)
    assert calls == ["sync", "record", "step", "step", "step", "record", "wait"]
    assert seconds == pytest.approx(1.0) and timer.kind == "cuda_events"
