"""The bad-input survey: every kind of bad audio, path and config value gets a clear error naming
the file or key, or a documented and counted handling (see benchmark/audio.py)."""
import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from prunebench.audio.decode import load_audio
from prunebench.cli import main
from prunebench.run.config import load_config, parse_config
from prunebench.core.errors import ConfigError, DataError
from prunebench.audio.kaldi import FrontEnd
from leaderboard_records import record_documents

from conftest import TINY, write_esc_layout


def tone(seconds=1.0, sr=16000, freq=440.0, channels=None):
    t = np.arange(int(round(seconds * sr))) / sr
    wave = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels is None else np.stack([wave * (c + 1) / channels for c in range(channels)], axis=1)


def write(path, data, sr=16000, **kw):
    sf.write(str(path), data, sr, **kw)
    return path


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# -- audio that is an error, naming the file ------------------------------------------------
@pytest.mark.parametrize("case, message", [
    ("corrupt", "cannot read audio file"),
    ("zero_bytes", "cannot read audio file"),
    ("truncated_wav", "is truncated: its header declares"),
    ("truncated_flac", "cannot read audio file"),
    ("zero_length", "is empty (0 samples)"),
    ("nan", "has 1 NaN or infinite samples"),
    ("inf", "has 2 NaN or infinite samples"),
])
def test_bad_audio_is_an_error_naming_the_file(tmp_path, case, message):
    path = tmp_path / f"clip {case} é.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    elif case == "zero_bytes":
        path.write_bytes(b"")
    elif case == "truncated_wav":
        truncate(write(path, tone()))
    elif case == "truncated_flac":
        path = truncate(write(tmp_path / "clip é.flac", tone()))
    elif case == "zero_length":
        write(path, np.zeros(0, dtype=np.float32))
    else:
        data = tone()
        data[100] = np.nan if case == "nan" else np.inf
        if case == "inf":
            data[200] = -np.inf
        write(path, data, subtype="FLOAT")
    with pytest.raises(DataError) as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value) and message in str(info.value)


def test_extreme_samples_make_non_finite_features_an_error(tmp_path):
    from prunebench.data.features import clip_features
    from prunebench.tasks.base import Clip
    from prunebench.data.variant import TaskVariant
    from prunebench.core.registry import TASKS

    path = write(tmp_path / "loud.wav", tone() * 1e30, subtype="FLOAT")
    task = TASKS.get("synth-esc")(root=str(tmp_path / "unused"))
    with pytest.raises(DataError, match="loud.wav: its features are not finite"):
        clip_features(TaskVariant(task), FrontEnd(target_frames=128), Clip("loud", path, (0,)), 0)


# -- audio with a documented handling -------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_any_sample_rate_is_resampled(tmp_path, rate):
    wave = load_audio(write(tmp_path / "a.wav", tone(sr=rate), sr=rate), 16000)
    assert wave.numel() == 16000
    reference = torch.from_numpy(tone())
    spectrum = lambda w: torch.fft.rfft(w[2000:14000]).abs()  # noqa: E731  (edges hold the resampler's ramp)
    assert int(spectrum(wave).argmax()) == int(spectrum(reference).argmax())  # the 440 Hz tone stays at 440 Hz


@pytest.mark.parametrize("channels", [2, 6])
def test_several_channels_are_downmixed_to_their_mean(tmp_path, channels):
    data = tone(channels=channels)
    wave = load_audio(write(tmp_path / "multi.wav", data, subtype="FLOAT"), 16000)
    np.testing.assert_allclose(wave.numpy(), data.mean(axis=1), atol=1e-6)


def test_short_clip_is_padded_and_long_clip_cropped_and_counted(tmp_path):
    from prunebench.data.features import clip_features
    from prunebench.tasks.base import Clip
    from prunebench.data.variant import TaskVariant
    from prunebench.core.registry import TASKS

    task = TASKS.get("synth-esc")(root=str(tmp_path / "unused"))
    frontend = FrontEnd(target_frames=128)
    short = write(tmp_path / "short.wav", tone(0.1))
    fbank, valid, cropped = clip_features(TaskVariant(task), frontend, Clip("short", short, (0,)), 0)
    assert fbank.shape == (128, 128) and valid == 8 and not cropped
    long = write(tmp_path / "long.wav", tone(60.0))
    fbank, valid, cropped = clip_features(TaskVariant(task), frontend, Clip("long", long, (0,)), 0)
    assert fbank.shape == (128, 128) and valid == 128 and cropped
    with pytest.raises(DataError, match="shorter than one 25 ms analysis window"):
        clip_features(TaskVariant(task), frontend, Clip("tiny", write(tmp_path / "tiny.wav", tone(0.01)), (0,)), 0)


def test_unicode_and_spaces_in_every_path_and_odd_clips_counted(tmp_path):
    """Dataset root, file names, checkpoint, config and results folder with spaces and non-ASCII;
    in the data: 8, 44.1 and 48 kHz files, stereo and 6-channel, a 0.2 s and a 60 s clip."""
    from prunebench.models import build_model, save_checkpoint

    root = write_esc_layout(tmp_path / "données d'été 🎧" / "ESC 50", clips_per_fold=1)
    meta = root / "meta" / "esc50.csv"
    rows = meta.read_text().splitlines()
    odd = [(8000, None, 1.0), (44100, 2, 1.0), (48000, 6, 1.0), (16000, None, 0.2), (16000, None, 60.0)]
    for k, (rate, channels, seconds) in enumerate(odd):
        name = f"5-ünï cødé {k} ({rate} Hz).flac"
        write(root / "audio" / name, tone(seconds, sr=rate, channels=channels), sr=rate)
        rows.append(f"{name},5,{k % 3},class{k % 3},False,x{k},A")
    meta.write_text("\n".join(rows) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    checkpoint = tmp_path / "chéckpoint dir" / "tiny 3 classes.pt"
    save_checkpoint(build_model("ast-tiny", num_classes=3, **TINY), checkpoint, {})
    config = tmp_path / "my config ü.yaml"
    config.write_text(yaml.safe_dump({
        "models": [{"name": "ast-tiny", "checkpoint": str(checkpoint)}],
        "tasks": [{"name": "esc50", "root": str(root)}], "methods": ["none"],
        "measure": {"throughput": False, "batch_size": 4}}, allow_unicode=True), encoding="utf-8")
    out = tmp_path / "résultats 1"
    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    (record,) = record_documents(out)
    assert record["status"] == "ok" and record["data"]["clips"] == 3 + 5
    assert record["data"]["cropped"] == 1  # the 60 s clip (the tiny model's input is 1.28 s; the others are 1 s)
    assert (out / "leaderboard.html").is_file()


# -- configs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("seed: 0\nmodels: [ast-tiny\n", r"bad.yaml line 3 column 1: malformed YAML"),
    ("seed: 0\nmodels:\n\t- ast-tiny\n", r"bad.yaml line 3 column 1: malformed YAML: found character '\\t'"),
    ("methods: [none]\nmodels: [ast-tiny]\nmethods: [topk]\n", r"bad.yaml line 3 column 1: malformed YAML: duplicate key 'methods'"),
    ("- seed: 0\n", r"bad.yaml: expected a mapping of keys"),
    ("", r"bad.yaml: expected a mapping of keys"),
    ("seed: 0\nmodels: [ast-tiny]\ntasks: [synth-esc]\nmethods: {name: none}\n", r"methods must be a non-empty list"),
])
def test_malformed_yaml_names_the_file_and_line(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(bad)


def test_an_exponent_without_a_dot_is_a_number_everywhere_yaml_is_read(tmp_path):
    # PyYAML reads YAML 1.1, where `5e-4` is the string '5e-4': `train: {lr: 5e-4}` used to be
    # refused as "must be a number" (and `--set head_lr=5e-4` too).
    from prunebench.core.yaml_values import load_yaml_value
    from prunebench.method_api import parse_method_spec

    config = tmp_path / "c.yaml"
    config.write_text("models: [ast-tiny]\ntasks: [synth-esc]\nmethods: [none]\ntrain: {lr: 5e-4, head_lr: 1E-3}\n")
    train = load_config(config).train
    assert train["lr"] == pytest.approx(5e-4) and train["head_lr"] == pytest.approx(1e-3)
    assert parse_method_spec("topk:keep_rate=5e-1") == ("topk", {"keep_rate": 0.5})
    assert [load_yaml_value(t) for t in ("2e3", "-1e-2", "0.5", "7", "1e", "fold5")] == [2000.0, -0.01, 0.5, 7, "1e", "fold5"]


BASE = {"models": ["ast-tiny"], "tasks": [{"name": "synth-esc"}], "methods": ["none"]}
TASK = {"name": "synth-esc"}


@pytest.mark.parametrize("patch, message", [
    ({"sed": 1}, "unknown key 'sed' .*did you mean 'seed'"),
    ({"measure": {"repeat": 3}}, "measure: unknown key 'repeat' .*did you mean 'repeats'"),
    ({"train": {"epoch": 3}}, "train: unknown key 'epoch' .*did you mean 'epochs'"),
    ({"models": [{"name": "ast-tiny", "chekpoint": "x"}]}, "models\\[0\\]: unknown key 'chekpoint' .*did you mean 'checkpoint'"),
    ({"models": [{"name": "ast-tiny", "overrides": {"embed_dimm": 8}}]}, "overrides has no key 'embed_dimm'.*did you mean 'embed_dim'"),
    ({"models": ["ast-tinyy"]}, "unknown model 'ast-tinyy'.*did you mean 'ast-tiny'"),
    ({"tasks": [{**TASK, "splt": "fold1"}]}, "tasks\\[0\\]: task 'synth-esc' has no key 'splt'.*did you mean 'split'"),
    ({"tasks": [{**TASK, "corruptions": [{"name": "white", "snr": 10}]}]}, "no parameter 'snr'.*did you mean 'snr_db'"),
    ({"tasks": [{**TASK, "corruptions": [{"name": "whit", "snr_db": 10}]}]}, "unknown corruption 'whit'.*did you mean 'white'"),
    ({"tasks": [{**TASK, "buckets": [{"second": 2}]}]}, "no parameter 'second'.*did you mean 'seconds'"),
    ({"methods": [{"name": "topk", "keeprate": 0.5}]}, "no parameter 'keeprate'.*did you mean 'keep_rate'"),
])
def test_unknown_keys_name_the_key_with_did_you_mean(patch, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, **patch})


@pytest.mark.parametrize("value", [0, -0.5, 1.5, "half", True, float("nan"), float("inf"), None])
def test_out_of_range_keep_rate_names_the_key(value):
    with pytest.raises(ConfigError, match="method 'topk': keep_rate must be a number in \\(0, 1\\], got"):
        parse_config({**BASE, "methods": [{"name": "topk", "keep_rate": value}]})


@pytest.mark.parametrize("value", [1000, -31, "loud", float("nan"), float("-inf"), None])
def test_out_of_range_snr_names_the_key(value):
    with pytest.raises(ConfigError, match="corruption 'white': snr_db must be a number in \\[-30, 100\\], got"):
        parse_config({**BASE, "tasks": [{**TASK, "corruptions": [{"name": "white", "snr_db": value}]}]})


@pytest.mark.parametrize("patch, message", [
    ({"tasks": [{**TASK, "buckets": [{"seconds": 0}]}]}, "bucket: seconds must be a number in \\(0.0, 3600.0\\]"),
    ({"tasks": [{**TASK, "corruptions": [{"name": "white", "snr_db": 10, "snr_mode": "peak"}]}]}, "snr_mode must be one of"),
    ({"measure": {"batch_size": 0}}, "measure: batch_size must be an integer >= 1, got 0"),
    ({"measure": {"repeats": 1.5}}, "measure: repeats must be an integer >= 1, got 1.5"),
    ({"measure": {"dtype": "float8"}}, "measure: dtype must be float32, float16 or bfloat16"),
    ({"measure": {"min_repeat_s": -1}}, "measure: min_repeat_s must be a number of seconds in \\[0, 600\\], got -1"),
    ({"measure": {"min_repeat_s": float("nan")}}, "measure: min_repeat_s must be a number of seconds"),
    ({"measure": {"min_repeat_s": "2s"}}, "measure: min_repeat_s must be a number of seconds in \\[0, 600\\], got '2s'"),
    ({"measure": {"device": "gpu0"}}, "measure: device must be auto, cpu, cuda or cuda:N, got 'gpu0'"),
    ({"measure": {"throughput": "yes"}}, "measure: throughput must be true or false"),
    ({"on_bad_clip": "ignore"}, "on_bad_clip must be 'error' or 'skip'"),
    ({"methods": [{"name": "topk", "layers": [[3, 99]]}]}, None),  # valid config; caught when the depth is known
])
def test_other_bad_values_name_the_key(patch, message):
    if message is None:
        config = parse_config({**BASE, **patch})
        with pytest.raises(ConfigError, match="layers \\[99\\] outside 0..5"):
            config.methods[0].reduction_layers(6)
        return
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, **patch})
