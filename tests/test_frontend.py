import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.compliance.kaldi as kaldi

from prunebench.audio.decode import load_audio
from prunebench.core.errors import DataError
from prunebench.audio.kaldi import ESC50_STATS, FrontEnd


def tone(seconds=1.0, sr=16000, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_44k_wav_is_downmixed_and_resampled(tmp_path):
    left, right = tone(sr=44100), tone(sr=44100, freq=880)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 44100)
    wave = load_audio(path, 16000)
    assert wave.ndim == 1 and abs(wave.numel() - 16000) <= 1
    mono = load_audio(tmp_path / "stereo.wav", 44100)
    np.testing.assert_allclose(mono.numpy(), (left + right) / 2, atol=1e-4)


def test_flac_reads_like_wav(tmp_path):
    sf.write(str(tmp_path / "a.flac"), tone(), 16000)
    sf.write(str(tmp_path / "a.wav"), tone(), 16000, subtype="FLOAT")
    a, b = load_audio(tmp_path / "a.flac", 16000), load_audio(tmp_path / "a.wav", 16000)
    assert torch.allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "nan"])
def test_bad_audio_names_the_file(tmp_path, case):
    path = tmp_path / f"bad-{case}.wav"
    if case == "empty":
        sf.write(str(path), np.zeros(0, dtype=np.float32), 16000)
    elif case == "corrupt":
        path.write_bytes(b"RIFF\x00\x00junk that is not audio")
    elif case == "nan":
        data = tone()
        data[100] = np.nan
        sf.write(str(path), data, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=f"bad-{case}.wav"):
        load_audio(path, 16000)


def test_fbank_is_torchaudio_kaldi_with_ast_parameters():
    wave = torch.from_numpy(tone(2.0)) + 0.01
    fe = FrontEnd(target_frames=None, norm_mean=ESC50_STATS[0], norm_std=ESC50_STATS[1])
    fbank, valid = fe(wave)
    reference = kaldi.fbank((wave - wave.mean()).unsqueeze(0), htk_compat=True, sample_frequency=16000,
                            use_energy=False, window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)
    assert torch.equal(fbank, (reference - ESC50_STATS[0]) / (2 * ESC50_STATS[1]))
    assert valid == reference.shape[0] == 198


def test_padding_is_zero_before_normalisation_and_counted():
    fe = FrontEnd(target_frames=300, norm_mean=ESC50_STATS[0], norm_std=ESC50_STATS[1])
    fbank, valid = fe(torch.from_numpy(tone(1.0)))
    assert fbank.shape == (300, 128) and valid == 98
    # AST's padding trap: zero log-mel becomes a positive constant (+0.62 with ESC-50 statistics).
    assert torch.allclose(fbank[valid:], torch.full_like(fbank[valid:], fe.padding_value()))
    assert abs(fe.padding_value() - 0.6184) < 1e-3


def test_clip_shorter_than_a_window_is_an_error():
    with pytest.raises(DataError, match="shorter than one"):
        FrontEnd()(torch.zeros(100), source="tiny.wav")
