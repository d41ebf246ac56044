"""The model's input length follows the task (prunebench.data.length): synth-esc's 1 s clips run at
112 frames for a quarter of the 5 s default's MACs; an explicit `frames:` wins; a checkpoint whose
positions cannot be adapted is refused, naming it and both lengths; crops scale with the input."""
import pytest
import soundfile as sf

import prunebench.tasks  # noqa: F401  registers the tasks
from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import METHODS, TASKS
from prunebench.data.length import input_frames_for, task_frames
from prunebench.measure.profile import macs_per_sample
from prunebench.measure.shapes import nominal_shape
from prunebench.models import build_model, registered_config
from prunebench.run.config import parse_config
from prunebench.run.work import fit_to_task
from prunebench.train.augment import crop_length
from prunebench.train.checkpoints import default_checkpoint_path
from prunebench.train.recipes import settings_for


def synth(seconds=None, **params):
    return TASKS.get("synth-esc")(**({"clip_seconds": seconds} if seconds is not None else {}), **params)


def test_frames_follow_the_clip_length_in_whole_patches():
    arch = registered_config("ast-tiny")
    assert input_frames_for(synth(), arch) == 512 == arch.target_frames  # 498 -> 512, as registered
    assert input_frames_for(synth(1.0), arch) == 112  # 98 -> 112
    assert task_frames(synth(10.0), arch) == 1008
    assert input_frames_for(synth(1.0), arch, frames=256) == 256  # explicit wins
    assert input_frames_for(synth(1.0), registered_config("whisper-tiny-pad30")) == 3000  # fixed window
    assert input_frames_for(synth(1.0), registered_config("whisper-tiny")) == 100  # native follows the task


def test_one_second_clips_cost_a_quarter_of_the_five_second_default():
    none = METHODS.get("none")()
    macs = {}
    for seconds in (5.0, 1.0):
        frames = input_frames_for(synth(seconds), registered_config("ast-tiny"))
        macs[seconds] = sum(macs_per_sample(build_model("ast-tiny", target_frames=frames), none, nominal_shape(frames)).values())
    assert macs[5.0] == pytest.approx(0.851e9, rel=0.01)
    assert macs[1.0] <= 0.25 * macs[5.0]


def test_the_default_training_keeps_its_hash_and_a_short_task_trains_at_its_length():
    assert settings_for(None, "ast-tiny", synth())["frames"] is None  # hashed as before: same cached checkpoint
    assert settings_for(None, "ast-tiny", synth(1.0))["frames"] == 112
    assert settings_for({"frames": 256}, "ast-tiny", synth(1.0))["frames"] == 256
    assert settings_for(None, "ast-tiny", synth(1.0), {"target_frames": 128})["frames"] is None  # the override decides
    paths = {default_checkpoint_path("ast-tiny", {}, synth(s), {}) for s in (5.0, 1.0)}
    assert len(paths) == 2


def test_a_short_input_trains_whole_clips_for_more_epochs_unless_told():
    default = settings_for(None, "ast-tiny", synth())
    assert (default["epochs"], default["crop_frames"], default["full_length_epochs"]) == (12, 256, 2)
    short = settings_for(None, "ast-tiny", synth(1.0))  # 112 frames: 12 x 512 / 112 = 55, capped at 4 x 12
    assert (short["epochs"], short["crop_frames"], short["full_length_epochs"]) == (48, 0, 0)
    told = settings_for({"epochs": 5, "crop_frames": 64}, "ast-tiny", synth(1.0))
    assert (told["epochs"], told["crop_frames"]) == (5, 64)
    half = settings_for(None, "ast-tiny", synth(3.0))  # 304 frames, longer than the crop: cropped by share
    assert (half["epochs"], half["crop_frames"]) == (20, 256) and crop_length(256, 304, 16) == 160
    tuned = settings_for({"init": "some.pt"}, "ast-tiny", synth(1.0))  # fine-tuning keeps its recipe
    assert tuned["epochs"] == 25 and tuned["recipe"] == "ast-esc50"


def test_synth_esc_generates_clips_of_its_length(tmp_path):
    short, default = synth(1.0, clips_per_fold=1, root=str(tmp_path / "a")), synth(clips_per_fold=1, root=str(tmp_path / "b"))
    clip = short.test_clips()[0]
    assert sf.info(str(clip.path)).duration == pytest.approx(1.0)
    assert "clip_seconds" not in default.fingerprint_params()  # 5 s data hashes as before the parameter
    assert short.fingerprint(short.test_clips()) != default.fingerprint(default.test_clips())
    assert short.default_bucket_seconds == (0.2, 0.4, 1.0)
    assert "-s1-" in str(synth(1.0).root) and "-s" not in str(synth().root).split("sr16000")[1]


def model_entry(**entry):
    raw = {"models": [{"name": "ast-tiny", **entry}], "tasks": [{"name": "synth-esc", "clip_seconds": 1.0}],
           "methods": [{"name": "none"}]}
    return parse_config(raw).models[0]


def test_an_explicit_frames_on_a_model_entry_overrides_the_task():
    entry = model_entry(frames=256)
    assert entry.frames == 256
    model = fit_to_task(build_model("ast-tiny", num_classes=10), synth(1.0), entry.frames, "ckpt.pt")
    assert model.config.target_frames == 256
    assert model_entry().frames is None


@pytest.mark.parametrize("frames", [8, 0, 12.5, "many"])
def test_frames_smaller_than_a_patch_is_a_config_error_naming_the_key(frames):
    with pytest.raises(ConfigError, match=r"models\[0\]: frames must be .*16 frames"):
        model_entry(frames=frames)


def test_a_checkpoint_adapts_to_the_task_length():
    model = fit_to_task(build_model("ast-tiny", num_classes=10), synth(1.0), None, "ckpt.pt")
    assert model.config.target_frames == 112 and model.grid == (8, 7)
    assert model.vit.pos_embed.shape[1] == model.num_prefix_tokens + 8 * 7


def test_a_checkpoint_whose_fixed_positions_are_too_short_is_refused_naming_both():
    # Whisper's positions are a fixed sinusoid table of 30 s (3000 frames): nothing to interpolate.
    model = build_model("whisper-tiny", num_classes=10)
    with pytest.raises(DataError) as info:
        fit_to_task(model, synth(40.0), None, "whisper.pt")
    message = str(info.value)
    assert "\n" not in message and "checkpoint whisper.pt" in message
    assert "500 frames" in message and "3000 frames" in message and "4000 frames" in message


def test_crops_scale_with_the_input():
    assert crop_length(256, 512, 16) == 256  # the default recipe: unchanged
    assert crop_length(0, 112, 16) == 0
    short = crop_length(256, 112, 16)
    assert 16 <= short <= 112 and short % 16 == 0 and short >= 112 // 2
    assert crop_length(256, 1008, 16) == 512
