"""Real-noise corruptions: noise-files (recordings from a folder) and mix-clips (other clips of the
dataset), on data the tests make."""
import numpy as np
import pytest
import soundfile as sf
import torch

from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import CORRUPTIONS, TASKS
from prunebench.tasks.corruption import ClipContext

from conftest import write_esc_layout


def snr_db(clean, noisy):
    noise = (noisy - clean).double()
    return float(10 * torch.log10(clean.double().pow(2).mean() / noise.pow(2).mean()))


def tone(n=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    return 0.3 * torch.sin(2 * torch.pi * 440 * t) * (torch.rand(n, generator=g) > 0.3)


@pytest.fixture
def noise_dir(tmp_path):
    """Two recordings: one longer than the clips (a random segment is cut), one shorter (looped)."""
    folder = tmp_path / "babble"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sf.write(str(folder / "long.wav"), (0.2 * rng.standard_normal(48000)).astype(np.float32), 16000)
    sf.write(str(folder / "short.flac"), (0.2 * rng.standard_normal(3000)).astype(np.float32), 8000)  # resampled
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.mark.parametrize("snr", [20.0, 0.0, -5.0])
def test_noise_files_hits_the_snr(noise_dir, snr):
    corruption = CORRUPTIONS.get("noise-files")(root=str(noise_dir), snr_db=snr)
    for clip in ("a", "b", "c", "d"):  # both recordings get drawn over these clips
        clean = tone(seed=len(clip))
        assert abs(snr_db(clean, corruption(clean, 16000, "t/fold5", clip, 0)) - snr) < 0.1


def test_noise_files_seeded_per_clip(noise_dir):
    corruption = CORRUPTIONS.get("noise-files")(root=str(noise_dir), snr_db=10)
    clean = tone()
    a = corruption(clean, 16000, "t/fold5", "clip-1", 0)
    assert torch.equal(a, corruption(clean, 16000, "t/fold5", "clip-1", 0))
    assert not torch.allclose(a, corruption(clean, 16000, "t/fold5", "clip-2", 0))
    assert not torch.allclose(a, corruption(clean, 16000, "t/fold5", "clip-1", 1))
    # a fresh instance (another process) draws the same noise
    again = CORRUPTIONS.get("noise-files")(root=str(noise_dir), snr_db=10)
    assert torch.equal(a, again(clean, 16000, "t/fold5", "clip-1", 0))


def test_noise_files_segments_come_from_the_recordings(noise_dir):
    corruption = CORRUPTIONS.get("noise-files")(root=str(noise_dir), snr_db=0)
    long = torch.from_numpy(sf.read(str(noise_dir / "long.wav"), dtype="float32")[0])
    found = False
    for seed in range(20):
        path, segment = corruption.draw(4000, torch.Generator().manual_seed(seed), 16000)
        assert segment.numel() == 4000
        if path.name == "long.wav":
            starts = [i for i in range(long.numel() - 4000 + 1) if torch.equal(long[i:i + 4000], segment)]
            assert len(starts) == 1
            found = True
    assert found
    assert corruption.id == "files-babble@0dB"
    assert CORRUPTIONS.get("noise-files")(root=str(noise_dir), label="cafe", snr_db=5).id == "files-cafe@5dB"


def test_noise_folder_without_audio_names_the_folder(tmp_path):
    empty = tmp_path / "street"
    empty.mkdir()
    (empty / "readme.txt").write_text("no audio here")
    with pytest.raises(DataError, match=f"noise folder {empty} holds no audio"):
        CORRUPTIONS.get("noise-files")(root=str(empty))
    with pytest.raises(DataError, match="noise folder not found"):
        CORRUPTIONS.get("noise-files")(root=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="set root"):
        CORRUPTIONS.get("noise-files")()


def test_silent_noise_recording_is_a_clear_error(tmp_path):
    folder = tmp_path / "quiet"
    folder.mkdir()
    sf.write(str(folder / "zeros.wav"), np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="digital silence.*zeros.wav"):
        CORRUPTIONS.get("noise-files")(root=str(folder), snr_db=10)(tone(), 16000, "t", "c", 0)


def test_silent_clip_under_real_noise_says_snr_undefined(noise_dir):
    with pytest.raises(DataError, match="quiet-clip is silent.*SNR is undefined"):
        CORRUPTIONS.get("noise-files")(root=str(noise_dir), snr_db=10)(torch.zeros(16000), 16000, "t", "quiet-clip", 0)


@pytest.fixture
def esc(tmp_path):
    return write_esc_layout(tmp_path / "esc", clips_per_fold=2, classes=3)


@pytest.mark.parametrize("snr", [10.0, 0.0])
def test_mix_clips_hits_the_snr(esc, snr):
    task = TASKS.get("esc50")(root=str(esc), split="fold5")
    mix = CORRUPTIONS.get("mix-clips")(snr_db=snr)
    for clip in task.test_clips():
        clean = task.load(clip)
        noisy = mix(clean, 16000, task.id, clip.id, 0, context=ClipContext(task, clip))
        assert abs(snr_db(clean, noisy) - snr) < 0.1


@pytest.mark.parametrize("fold", [1, 3, 5])
def test_mix_clips_draws_from_other_folds_and_classes_only(esc, fold):
    task = TASKS.get("esc50")(root=str(esc), split=f"fold{fold}")
    mix = CORRUPTIONS.get("mix-clips")(snr_db=0)
    test_ids = {c.id for c in task.test_clips()}
    for clip in task.test_clips():
        drawn = set()
        for seed in range(10):
            other = mix.choose(ClipContext(task, clip), torch.Generator().manual_seed(seed))
            assert other.fold != fold and other.id not in test_ids  # folds never leak
            assert not set(other.labels) & set(clip.labels)  # another class
            drawn.add(other.id)
        assert len(drawn) > 1  # a random draw, not a fixed partner


def test_mix_clips_seeded_per_clip(esc):
    task = TASKS.get("esc50")(root=str(esc), split="fold5")
    mix = CORRUPTIONS.get("mix-clips")(snr_db=5)
    a_clip = task.test_clips()[0]
    wave = task.load(a_clip)
    a = mix(wave, 16000, task.id, a_clip.id, 0, context=ClipContext(task, a_clip))
    assert torch.equal(a, mix(wave, 16000, task.id, a_clip.id, 0, context=ClipContext(task, a_clip)))
    # the same waveform under other clip ids, or other run seeds, gets other noise (16 candidate
    # clips: a single pair may draw the same one, five in a row do not)
    other_ids = [mix(wave, 16000, task.id, f"other-{i}", 0, context=ClipContext(task, a_clip)) for i in range(5)]
    other_seeds = [mix(wave, 16000, task.id, a_clip.id, s, context=ClipContext(task, a_clip)) for s in range(1, 6)]
    assert not all(torch.equal(a, x) for x in other_ids)
    assert not all(torch.equal(a, x) for x in other_seeds)


def test_mix_clips_without_a_task_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs the dataset"):
        CORRUPTIONS.get("mix-clips")(snr_db=5)(tone(), 16000, "t", "c", 0)


def test_silent_fraction_of_each_clip_is_recorded(tmp_path):
    """Noise changes digital silence wholesale: each clip's silent share travels to the records."""
    from prunebench.data.features import FeatureStore, silent_fraction
    from prunebench.audio.kaldi import FrontEnd
    from prunebench.data.variant import TaskVariant

    half = torch.cat([tone(8000), torch.zeros(8000)])
    assert silent_fraction(half, 16000) == pytest.approx(0.5)
    assert silent_fraction(tone(), 16000) < 0.05
    root = write_esc_layout(tmp_path / "esc", clips_per_fold=1, classes=2)
    sf.write(str(root / "audio" / "5-00-A-0.wav"), half.numpy(), 16000)
    task = TASKS.get("esc50")(root=str(root))
    white = CORRUPTIONS.get("white")(snr_db=10)
    features = FeatureStore(disk_cache=False).get(TaskVariant(task, corruption=white), FrontEnd(target_frames=128))
    assert features.ids[0] == "5-00-A-0"
    assert features.silent_fraction.tolist() == pytest.approx([0.5, 0.0], abs=0.05)  # of the clean clip
