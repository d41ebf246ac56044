import pytest
import torch

from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import CORRUPTIONS


def signal(seed=0, n=16000):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return 0.3 * torch.sin(2 * 3.14159 * 440 * t) * (torch.rand(n, generator=g) > 0.3)


@pytest.mark.parametrize("name", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [20.0, 0.0, -5.0])
def test_snr_of_mixture_hits_target(name, snr):
    clean = signal()
    noisy = CORRUPTIONS.get(name)(snr_db=snr)(clean, 16000, "t/fold5", "clip-1", run_seed=0)
    noise = noisy - clean
    measured = 10 * torch.log10(clean.double().pow(2).mean() / noise.double().pow(2).mean())
    assert abs(float(measured) - snr) < 0.1


def test_same_seed_same_noise_other_clip_other_noise():
    white = CORRUPTIONS.get("white")(snr_db=10)
    clean = signal()
    a = white(clean, 16000, "t/fold5", "clip-1", 0)
    b = white(clean, 16000, "t/fold5", "clip-1", 0)
    c = white(clean, 16000, "t/fold5", "clip-2", 0)
    d = white(clean, 16000, "t/fold5", "clip-1", 1)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c) and not torch.allclose(a, d)


def test_pink_noise_has_falling_spectrum():
    noisy = CORRUPTIONS.get("pink")(snr_db=0)(torch.zeros(64000) + signal(n=64000), 16000, "t", "c", 0)
    spectrum = torch.fft.rfft(noisy - signal(n=64000)).abs().pow(2)
    low, high = spectrum[100:1000].mean(), spectrum[10000:20000].mean()
    assert low > 10 * high


def test_silent_clip_is_a_clear_error():
    with pytest.raises(DataError, match="silent.*SNR is undefined"):
        CORRUPTIONS.get("white")(snr_db=10)(torch.zeros(16000), 16000, "t", "quiet-clip", 0)


def test_active_snr_mode_measures_over_active_frames():
    clean = torch.cat([signal(n=8000), torch.zeros(8000)])
    noisy = CORRUPTIONS.get("white")(snr_db=10, snr_mode="active")(clean, 16000, "t", "c", 0)
    noise_power = (noisy - clean).double().pow(2).mean()
    active_power = clean[:8000].double().pow(2).mean()
    assert abs(float(10 * torch.log10(active_power / noise_power)) - 10) < 0.3


def test_out_of_range_snr_is_rejected():
    with pytest.raises(ConfigError, match="snr_db"):
        CORRUPTIONS.get("white")(snr_db=500)
