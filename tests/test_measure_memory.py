"""Peak memory: CPU readings come from a fresh process per method and scale with the batch."""
import pytest
import torch

from prunebench.measure.memory import CPU_KIND, ForwardSpec, cpu_peak_in_fresh_process, cuda_peak, process_spec
from prunebench.models import build_model
from prunebench.core.registry import METHODS

needs_linux_proc = pytest.mark.skipif(not __import__("os").path.exists("/proc/self/clear_refs"),
                                      reason="peak RSS needs Linux /proc")


@needs_linux_proc
def test_cpu_peak_rss_of_a_fresh_process_grows_with_the_batch():
    """ast-tiny (256 patches): a batch-16 forward needs tens of MiB of activations, a batch-2 one
    an eighth of that; a reading that did not come from the forward would not scale."""
    model = build_model("ast-tiny")
    method = METHODS.get("none")()
    small, large = (cpu_peak_in_fresh_process(process_spec(model, method, ForwardSpec(512, None, b, "float32", "flash", 1)))
                    for b in (2, 16))
    assert small.kind == large.kind == CPU_KIND, (small.note, large.note)
    assert large.peak_bytes > 20 * 2 ** 20
    assert large.peak_bytes > 3 * small.peak_bytes
    assert large.resting_bytes > 0


@needs_linux_proc
def test_a_failing_memory_process_is_reported_not_raised():
    model = build_model("ast-tiny")
    method = METHODS.get("none")()
    spec = process_spec(model, method, ForwardSpec(512, None, 2, "float32", "flash", 1))
    spec["method"]["name"] = "no-such-method"
    reading = cpu_peak_in_fresh_process(spec)
    assert reading.peak_bytes is None and reading.kind == "unavailable"
    assert "no-such-method" in reading.note


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_counts_the_forward_above_resting():
    dev = torch.device("cuda")
    keep = torch.zeros(2 ** 20, device=dev)  # resting: held before and after
    reading = cuda_peak(lambda: torch.ones(2 ** 22, device=dev).sum(), dev)
    assert reading.peak_bytes >= 4 * 2 ** 22 and reading.resting_bytes >= keep.numel() * 4
