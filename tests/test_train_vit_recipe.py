"""The fine-tuning settings of recipe vit-esc50 (layer-wise lr decay, head lr, drop path, time
shift, per-epoch checkpoints with held-out scores), bfloat16 training on CPUs that have it, and the
hashes of trainings that use none of it left as they were."""
from __future__ import annotations

import json

import pytest
import torch

from prunebench.core import device as device_mod
from prunebench.core.errors import ConfigError
from prunebench.core.registry import MODELS
from prunebench.models import load_model
from prunebench.models.audio_vit import AudioViT, AudioViTConfig
from prunebench.tasks.esc50 import ESC50
from prunebench.train.augment import time_shift
from prunebench.train.checkpoints import epochs_folder, hashed_settings, training_spec
from prunebench.train.loop import train_model
from prunebench.train.recipes import resolve_train
from prunebench.train.schedule import fine_tuning_groups, parameter_depth

from conftest import write_esc_layout

SMALL = dict(name="test-vitft", embed_dim=32, depth=4, num_heads=2, fstride=16, tstride=16, target_frames=96,
             distillation_token=False, pooling="cls+mean", layer_scale=1e-5)
FINE_TUNE = {"epochs": 3, "batch_size": 8, "lr": 2e-4, "layer_decay": 0.75, "head_lr": 1e-3, "drop_path": 0.1,
             "time_shift": 20, "mixup": 0.5, "clip_grad": 5.0, "epoch_checkpoints": True, "crop_frames": 0,
             "full_length_epochs": 0, "amp": False}


@pytest.fixture(scope="module", autouse=True)
def small_model():
    MODELS.add("test-vitft", lambda **o: AudioViT(AudioViTConfig(**{**SMALL, **o})), "test model")
    yield
    MODELS.remove("test-vitft")


@pytest.fixture(scope="module")
def esc_root(tmp_path_factory):
    return write_esc_layout(tmp_path_factory.mktemp("esc"), clips_per_fold=2, classes=3)


def test_layer_wise_learning_rates():
    model = AudioViT(AudioViTConfig(**SMALL))
    groups = fine_tuning_groups(model, {"lr": 2e-4, "layer_decay": 0.75, "head_lr": 1e-3, "weight_decay": 0.05})
    lr_of = {id(p): (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["vit.blocks.3.attn.qkv.weight"])] == (2e-4, 0.05)  # the top block
    assert lr_of[id(named["vit.blocks.0.mlp.fc1.weight"])] == (pytest.approx(2e-4 * 0.75 ** 3), 0.05)
    assert lr_of[id(named["vit.patch_embed.proj.weight"])][0] == pytest.approx(2e-4 * 0.75 ** 4)
    assert lr_of[id(named["vit.pos_embed"])] == (pytest.approx(2e-4 * 0.75 ** 4), 0.0)  # no decay on positions
    assert lr_of[id(named["vit.blocks.2.ls1.gamma"])][1] == 0.0 and lr_of[id(named["vit.norm.weight"])] == (2e-4, 0.0)
    assert lr_of[id(named["head.1.weight"])] == (1e-3, 0.05)
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_time_shift_rolls_each_clip_whole():
    x = torch.arange(2 * 10 * 3, dtype=torch.float32).reshape(2, 10, 3)
    out = time_shift(x, 4, torch.Generator().manual_seed(0))
    for b in range(2):
        shifts = [s for s in range(-4, 5) if torch.equal(out[b], x[b].roll(s, dims=0))]
        assert len(shifts) == 1
    assert torch.equal(time_shift(x, 0, torch.Generator()), x)


def test_default_training_keeps_its_hash_settings():
    """amp's default ("gpu") hashes as the old `amp: true`, keys added later are absent at their
    default and epoch_checkpoints is never hashed: every cached training keeps its checkpoint."""
    settings = hashed_settings(resolve_train(None))
    assert settings["amp"] is True
    assert not {"layer_decay", "head_lr", "drop_path", "time_shift", "epoch_checkpoints", "device", "init"} & set(settings)
    assert hashed_settings(resolve_train({"amp": True}))["amp"] != True  # noqa: E712  (a new meaning, a new hash)
    assert hashed_settings(resolve_train({"time_shift": 10}))["time_shift"] == 10


def test_amp_on_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(device_mod, "cpu_dtypes", lambda: ("float32", "bfloat16"))
    assert device_mod.training_dtype(cpu, True) == "bfloat16"
    assert device_mod.training_dtype(cpu, "gpu") == "float32" and device_mod.training_dtype(cpu, False) == "float32"
    monkeypatch.setattr(device_mod, "cpu_dtypes", lambda: ("float32",))
    assert device_mod.training_dtype(cpu, True) == "float32"  # said in the log
    with pytest.raises(ConfigError, match=r"^train: amp: bfloat16 asked, this CPU runs float32 \(it lacks avx512_bf16 / amx_bf16\)$"):
        device_mod.training_dtype(cpu, "bfloat16")
    with pytest.raises(ConfigError, match="amp must be one of"):
        resolve_train({"amp": "fp8"})


def test_cpu_flags_decide_bfloat16(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert device_mod.cpu_dtypes() == ("float32",)
    monkeypatch.setattr(device_mod, "cpu_flags", lambda: frozenset({"avx512f", "amx_bf16"}))
    assert "bfloat16" in device_mod.cpu_dtypes()


def test_fine_tuning_keeps_every_epoch_and_resumes(tmp_path, esc_root):
    task = ESC50(root=str(esc_root), split="fold5")
    straight, meta = train_model("test-vitft", task, FINE_TUNE, out=tmp_path / "a", progress=False)
    spec = training_spec("test-vitft", task, FINE_TUNE, None, tmp_path / "a")
    kept = epochs_folder(spec)
    assert sorted(p.name for p in kept.glob("*.pt")) == [f"epoch-0{i}-of-03.pt" for i in (1, 2, 3)]
    scores = json.loads((kept / "scores.json").read_text())
    assert list(scores["epochs"].values()) == meta["epoch_test_scores"] and len(meta["epoch_test_scores"]) == 3
    last = torch.load(kept / "epoch-03-of-03.pt", weights_only=True)
    assert last["meta"]["epoch"] == 3 and last["meta"]["test_score"] == meta["epoch_test_scores"][-1]
    assert last["meta"]["weights_sha256"] == meta["weights_sha256"]  # the last epoch is the final checkpoint
    assert load_model("test-vitft", kept / "epoch-01-of-03.pt").config.drop_path_rate == 0.1
    assert meta["train_dtype"] == "float32"

    def stop_after_first(epoch, loss):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model("test-vitft", task, FINE_TUNE, out=tmp_path / "b", progress=False, on_epoch=stop_after_first)
    resumed, meta_b = train_model("test-vitft", task, FINE_TUNE, out=tmp_path / "b", progress=False)
    a = torch.load(straight, weights_only=True)["state_dict"]
    b = torch.load(resumed, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a) and meta_b["epoch_test_scores"] == meta["epoch_test_scores"]


def test_partial_fine_tuning_trains_only_the_top(tmp_path, esc_root):
    """freeze_blocks: 2 keeps the embeddings and blocks 0-1 exactly as the init had them; blocks 2-3,
    the final norm and the head train. The key is hashed only when set."""
    task = ESC50(root=str(esc_root), split="fold5")
    init, _ = train_model("test-vitft", task, {**FINE_TUNE, "epochs": 1, "epoch_checkpoints": False},
                          out=tmp_path / "init", progress=False)
    cfg = {**FINE_TUNE, "epochs": 1, "epoch_checkpoints": False, "init": str(init), "freeze_blocks": 2}
    path, _ = train_model("test-vitft", task, cfg, out=tmp_path / "p", progress=False)
    before = torch.load(init, weights_only=True)["state_dict"]
    after = torch.load(path, weights_only=True)["state_dict"]
    frozen = {k for k in before if parameter_depth(k, 4) <= 2}
    assert {"vit.patch_embed.proj.weight", "vit.pos_embed", "vit.blocks.1.mlp.fc2.weight"} <= frozen
    assert [k for k in sorted(frozen) if not torch.equal(before[k], after[k])] == []
    assert not any(torch.equal(before[k], after[k]) for k in ("vit.blocks.2.attn.qkv.weight", "vit.norm.weight", "head.1.weight"))
    assert parameter_depth("norm.weight", 4) == 5  # Whisper's final norm trains with the top
    with pytest.raises(ConfigError, match=r"freeze_blocks must be a whole number from 0 to 3 \(test-vitft has 4 blocks\), got 4"):
        train_model("test-vitft", task, {**cfg, "freeze_blocks": 4}, out=tmp_path / "q", progress=False)
    assert "freeze_blocks" not in hashed_settings(resolve_train({"freeze_blocks": 0}))
    assert hashed_settings(resolve_train({"freeze_blocks": 2}))["freeze_blocks"] == 2


def test_init_patch_scale_rescales_the_inits_filters_only(tmp_path, esc_root):
    """init_patch_scale: 2 starts from the init with its patch filters doubled and nothing else
    changed: with no learning (lr 0) the trained model on x equals the init on 2x. Hashed only when
    set; a bad value or no init is refused."""
    task = ESC50(root=str(esc_root), split="fold5")
    init, _ = train_model("test-vitft", task, {**FINE_TUNE, "epochs": 1, "epoch_checkpoints": False},
                          out=tmp_path / "init", progress=False)
    cfg = {**FINE_TUNE, "epochs": 1, "epoch_checkpoints": False, "init": str(init), "lr": 0.0, "head_lr": 0.0,
           "init_patch_scale": 2.0}
    path, _ = train_model("test-vitft", task, cfg, out=tmp_path / "s", progress=False)
    before = torch.load(init, weights_only=True)["state_dict"]
    after = torch.load(path, weights_only=True)["state_dict"]
    assert torch.equal(after["vit.patch_embed.proj.weight"], 2 * before["vit.patch_embed.proj.weight"])
    assert [k for k in before if k != "vit.patch_embed.proj.weight" and not torch.equal(before[k], after[k])] == []
    a, b = load_model("test-vitft", str(init), num_classes=3).eval(), load_model("test-vitft", str(path), num_classes=3).eval()
    x = torch.randn(2, 96, 128)
    assert torch.allclose(b(x), a(2 * x), atol=1e-5) and not torch.allclose(b(x), a(x), atol=1e-3)
    assert "init_patch_scale" not in hashed_settings(resolve_train({"recipe": "vit-esc50", "init": "x"}))
    assert hashed_settings(resolve_train({"recipe": "vit-esc50-v2", "init": "x"}))["init_patch_scale"] == 2.0
    v3 = hashed_settings(resolve_train({"recipe": "vit-esc50-v3", "init": "x"}))
    assert (v3["init_patch_scale"], v3["epochs"]) == (2.0, 12)
    with pytest.raises(ConfigError, match="init"):
        resolve_train({"recipe": "vit-esc50-v3"})
    for bad in (0, -1.0, True, "2"):
        with pytest.raises(ConfigError, match="init_patch_scale must be a number > 0"):
            resolve_train({"init": "x", "init_patch_scale": bad})
    with pytest.raises(ConfigError, match="init_patch_scale rescales the filters of an init: set init"):
        resolve_train({"init_patch_scale": 2.0})
    base = {"recipe": "vit-esc50-v3", "init": "x"}
    with pytest.raises(ConfigError, match="already carry their scale: set init_patch_scale: 1"):
        resolve_train({"recipe": "vit-esc50-v3", "init": base, "epochs": 2})
    assert resolve_train({"recipe": "vit-esc50-v3", "init": base, "init_patch_scale": 1.0})["init"] == base


def test_train_help_names_every_recipe():
    from prunebench.cli import build_parser
    from prunebench.train.recipes import RECIPES

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    help_text = next(a.help for a in train._actions if "--recipe" in a.option_strings)
    assert [name for name in RECIPES if name not in help_text] == []
