"""Fine-tuning: from a published-format checkpoint, named by hashes, resumable, pruning-aware."""
from __future__ import annotations

import logging
import math

import pytest
import torch

from prunebench.core.errors import ConfigError
from prunebench.models import file_sha256, load_model
from prunebench.models.audio_vit import AudioViT, AudioViTConfig
from prunebench.train.recipes import RECIPES, resolve_train
from prunebench.core.registry import MODELS
from prunebench.tasks.esc50 import ESC50
from prunebench.train.loop import train_model
from prunebench.train.schedule import ast_step_factor, keep_rate_at

from conftest import write_esc_layout

SMALL = dict(name="test-ft", embed_dim=32, depth=4, num_heads=2, fstride=16, tstride=16, target_frames=128)
FAST = {"epochs": 2, "batch_size": 8}


@pytest.fixture(scope="module", autouse=True)
def small_model():
    MODELS.add("test-ft", lambda **o: AudioViT(AudioViTConfig(**{**SMALL, **o})), "test model")
    yield
    MODELS.remove("test-ft")


@pytest.fixture(scope="module")
def esc_root(tmp_path_factory):
    return write_esc_layout(tmp_path_factory.mktemp("esc"), clips_per_fold=2, classes=3)


@pytest.fixture(scope="module")
def ast_init(tmp_path_factory):
    """An official-AST-format checkpoint (module.v.*, module.mlp_head.*, 527 classes) of test-ft."""
    torch.manual_seed(3)
    model = AudioViT(AudioViTConfig(**{**SMALL, "num_classes": 527}))
    sd = {}
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            sd["module.mlp_head." + key[5:]] = value
        else:
            sd["module.v." + key[4:].replace("reg_token", "dist_token")] = value
    path = tmp_path_factory.mktemp("init") / "audioset_16_16_0.4422.pth"
    torch.save(sd, path)
    return path, model


def task(root, split="fold5", cls=ESC50):
    return cls(root=str(root), split=split)


def test_finetune_from_an_ast_checkpoint(tmp_path, esc_root, ast_init):
    init_path, init_model = ast_init
    cfg = {"init": str(init_path), **FAST, "frames": 96}
    path, meta = train_model("test-ft", task(esc_root), cfg, out=tmp_path, progress=False)
    # named <model>-<task>-<split>-<config hash>-<content hash>
    assert path.parent == tmp_path and path.name == f"test-ft-esc50-fold5-{meta['config_hash']}-{meta['weights_sha256'][:12]}.pt"
    assert meta["sha256"] == file_sha256(path)
    assert meta["train"]["recipe"] == "ast-esc50" and meta["train"]["lr"] == 1e-5 and meta["train"]["optimizer"] == "adam"
    assert meta["init"]["format"] == "ast" and meta["init"]["sha256"] == file_sha256(init_path)
    model = load_model("test-ft", path, num_classes=3)
    assert model.config.target_frames == 96 and model.grid == (8, 6)
    # the backbone started from the init (positions: AST's middle cut of 8 columns to 6) and moved
    init_cols = init_model.vit.pos_embed[:, 2:].reshape(8, 8, -1)[:, 1:7]
    assert (model.vit.pos_embed[:, 2:].reshape(8, 6, -1) - init_cols).abs().max() < 1e-2
    assert not torch.equal(model.vit.blocks[0].attn.qkv.weight, init_model.vit.blocks[0].attn.qkv.weight)
    assert 0.0 <= meta["test_accuracy"] <= 1.0 and len(meta["loss_history"]) == 2

    again, meta2 = train_model("test-ft", task(esc_root), cfg, out=tmp_path, progress=False)
    assert again == path and meta2["reused"]  # the very same training is not run twice
    other, meta3 = train_model("test-ft", task(esc_root), {**cfg, "lr": 2e-5}, out=tmp_path, progress=False)
    assert other != path and meta3["config_hash"] != meta["config_hash"]


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, esc_root, ast_init):
    cfg = {"init": str(ast_init[0]), "epochs": 3, "batch_size": 8, "frames": 128, "mixup": 0.5,
           "prune": "topk:keep_rate=0.5", "prune_anneal_epochs": 2}
    straight, _ = train_model("test-ft", task(esc_root), cfg, out=tmp_path / "a", progress=False)

    def stop_after_first(epoch, loss):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model("test-ft", task(esc_root), cfg, out=tmp_path / "b", progress=False, on_epoch=stop_after_first)
    partial = list((tmp_path / "b").glob("*.partial.pt"))
    assert len(partial) == 1 and torch.load(partial[0], weights_only=True)["epoch"] == 1
    epochs_run = []
    resumed, meta = train_model("test-ft", task(esc_root), cfg, out=tmp_path / "b", progress=False,
                                on_epoch=lambda e, l: epochs_run.append(e))
    assert epochs_run == [1, 2] and not list((tmp_path / "b").glob("*.partial.pt"))
    a = torch.load(straight, weights_only=True)["state_dict"]
    b = torch.load(resumed, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.name == straight.name  # same config hash, same content hash


def test_pruning_aware_training_anneals_the_keep_rate(tmp_path, esc_root, monkeypatch):
    import prunebench.train.loop as train_module

    used = []
    real = train_module.prune_method

    def spy(spec, keep_rate, where="train"):
        used.append(keep_rate)
        return real(spec, keep_rate, where)

    monkeypatch.setattr(train_module, "prune_method", spy)
    cfg = {**FAST, "prune": "topk:keep_rate=0.5", "prune_anneal_epochs": 1, "crop_frames": 0, "full_length_epochs": 0}
    _, meta = train_model("test-ft", task(esc_root), cfg, out=tmp_path, progress=False)
    steps = math.ceil(24 / 8)  # 24 training clips
    training = used[: 2 * steps]
    assert training[0] == 1.0 and all(a > b for a, b in zip(training[:steps], training[1:steps]))
    assert training[steps:] == [0.5] * steps
    assert meta["prune"]["target_keep_rate"] == 0.5 and 0 <= meta["prune"]["test_score"] <= 1


def test_keep_rate_schedule_is_evits_cosine():
    cfg = {"epochs": 10, "prune_start_epoch": 2, "prune_anneal_epochs": 4}
    spe = 5
    assert keep_rate_at(0, spe, cfg, 0.5) == 1.0 and keep_rate_at(2 * spe - 1, spe, cfg, 0.5) == 1.0
    # EViT's adjust_keep_rate: base + (1 - base) * (cos(iters / total * pi) + 1) / 2
    for step in range(2 * spe, 6 * spe):
        evit = 0.5 + 0.5 * (math.cos((step - 2 * spe) / (4 * spe) * math.pi) + 1) * 0.5
        assert keep_rate_at(step, spe, cfg, 0.5) == pytest.approx(evit)
    assert keep_rate_at(6 * spe, spe, cfg, 0.5) == 0.5 and keep_rate_at(99, spe, cfg, 0.5) == 0.5


def test_step_schedule_is_asts_multisteplr():
    """AST: MultiStepLR(range(start, 1000, every), gamma) stepped once per epoch, plus its
    warm-up (lr * step / 1000, updated every 50 steps)."""
    for recipe in ("ast-esc50", "ast-as20k"):
        cfg = resolve_train({"recipe": recipe})
        spe = 80
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.Adam([p], lr=1.0)
        ref = torch.optim.lr_scheduler.MultiStepLR(
            opt, list(range(cfg["lr_decay_start"], 1000, cfg["lr_decay_every"])), gamma=cfg["lr_decay"])
        for epoch in range(cfg["epochs"]):
            step = epoch * spe + spe - 1  # past AST's 1000-step warm-up except in epoch 0..12
            expected = opt.param_groups[0]["lr"]
            if cfg["warmup_steps"] and step < cfg["warmup_steps"]:
                expected *= (step - step % 50) / cfg["warmup_steps"]
            assert ast_step_factor(step, spe, cfg) == pytest.approx(expected)
            opt.step()
            ref.step()
    assert ast_step_factor(0, 80, resolve_train({"recipe": "ast-as20k"})) == 0.0  # AST starts at lr 0


def test_recipes_and_settings():
    assert resolve_train({})["recipe"] == "scratch"
    assert resolve_train({"init": "x.pth"})["recipe"] == "ast-esc50"
    assert resolve_train({"init": "x.pth"}, multi_label=True)["recipe"] == "ast-as20k"
    esc = resolve_train({"recipe": "ast-esc50", "epochs": 3})
    assert esc["epochs"] == 3 and esc["batch_size"] == 48 and esc["freq_mask"] == 24 and esc["time_mask"] == 96
    assert RECIPES["ast-esc50"]["mixup"] == 0.0 and RECIPES["ast-as20k"]["mixup"] == 0.5
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*did you mean 'epochs'"):
        resolve_train({"epoch": 3})
    with pytest.raises(ConfigError, match="unknown recipe"):
        resolve_train({"recipe": "ast-esc5O"})
    with pytest.raises(ConfigError, match="prune.*unknown method"):
        resolve_train({"prune": "topkk:keep_rate=0.5"})


def test_multi_label_training_reports_map(tmp_path, esc_root, ast_init):
    """AS-20K's path: multi-hot labels, BCE, mixup, mAP; the as20k recipe picked with an init."""

    class MultiLabelESC(ESC50):
        name = "multi-esc"
        metric = "map"

        def clips(self, folds):
            return [type(c)(c.id, c.path, (c.labels[0], (c.labels[0] + 1) % 3), c.fold) for c in super().clips(folds)]

    cfg = {"init": str(ast_init[0]), "epochs": 1, "batch_size": 8, "frames": 128, "warmup_steps": 0}
    path, meta = train_model("test-ft", task(esc_root, cls=MultiLabelESC), cfg, out=tmp_path, progress=False)
    assert meta["train"]["recipe"] == "ast-as20k" and meta["train"]["mixup"] == 0.5
    assert meta["test_metric"] == "map" and meta["test_accuracy"] is None and 0 < meta["test_score"] <= 1


def test_cli_fine_tunes_each_fold(tmp_path, esc_root, ast_init, capsys, caplog, monkeypatch):
    from prunebench.cli import main

    progress = logging.getLogger("prunebench.progress")
    monkeypatch.setattr(progress, "level", logging.NOTSET)  # restored after: show_lines sets it

    args = ["train", "--model", "test-ft", "--task", "esc50", "--root", str(esc_root), "--folds", "1,2",
            "--init", str(ast_init[0]), "--epochs", "1", "--batch-size", "8", "--frames", "128",
            "--out", str(tmp_path / "ckpt"), "--no-progress"]
    assert main(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("fold1: checkpoint ") and lines[1].startswith("fold2: checkpoint ")
    assert "samples/s on cpu" in lines[0] and lines[2].startswith("mean over 2 folds")
    assert len(list((tmp_path / "ckpt").glob("test-ft-esc50-fold*-*.pt"))) == 2
    # --no-progress without -v: the bar's place is taken by the epoch lines, not by silence
    epochs = [r.getMessage() for r in caplog.records if r.name == "prunebench.progress" and "epoch 1/1" in r.getMessage()]
    assert len(epochs) == 2 and all("about 0 s left" in line for line in epochs), epochs
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out
    assert main(args[:-3] + ["--set", "epochz=2"]) == 2
    assert "epochz" in capsys.readouterr().err
    pattern = str(tmp_path / "named" / "ft-{split}.pt")
    assert main(args[:-3] + ["--out", pattern, "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "named").glob("*.pt")) == ["ft-fold1.pt", "ft-fold2.pt"]


def test_an_init_that_is_a_training_is_trained_first_then_reused(tmp_path, esc_root, ast_init, monkeypatch):
    """A second stage names its first by settings (`init: {...}`): the first is trained (and cached)
    before it, the second starts from its weights (lr 0: no step moves them), its identity holds the
    first's sha256, and both are reused the next time; a bad nested setting names its place."""
    from prunebench.train.checkpoints import default_checkpoint_path, weights_sha256
    from prunebench.models.checkpoint import load_classifier

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    init_path, _ = ast_init
    first = {"init": str(init_path), **FAST, "frames": 96}
    second = {"init": first, "epochs": 1, "batch_size": 8, "frames": 96, "lr": 0.0, "seed": 1}
    t = task(esc_root)
    path, meta = train_model("test-ft", t, second, progress=False)
    first_path = default_checkpoint_path("test-ft", {}, t, first)
    assert first_path.parent == path.parent and meta["init"]["source"] == "training"
    assert meta["init"]["path"] == str(first_path) and meta["init"]["sha256"] == file_sha256(first_path)
    stage_one = load_classifier("test-ft", meta["init"]["path"])
    assert weights_sha256(load_classifier("test-ft", path)) == weights_sha256(stage_one)  # lr 0: its weights
    again, meta2 = train_model("test-ft", t, second, progress=False)
    assert again == path and meta2["reused"]
    assert default_checkpoint_path("test-ft", {}, t, second) == path  # a run reuses what `train` made
    # the run's cached name, the same before the first stage is trained and after
    fresh = tmp_path / "cache2"
    monkeypatch.setenv("PRUNEBENCH_CACHE", str(fresh))
    before = default_checkpoint_path("test-ft", {}, t, second)
    path3, _ = train_model("test-ft", t, second, out=before, progress=False)
    assert path3 == before == default_checkpoint_path("test-ft", {}, t, second)
    with pytest.raises(ConfigError, match="train: init: unknown key 'epoch'"):
        resolve_train({"init": {"epoch": 1}})


def test_a_training_a_run_made_is_found_as_another_trainings_init(tmp_path, esc_root, ast_init, monkeypatch):
    """`prunebench run` keeps a model it trains at `<stem>.pt` (not `prunebench train`'s
    `<stem>-<hash>.pt`); a second stage naming that training as its init starts from that very file
    instead of training the first stage again."""
    from prunebench.train.checkpoints import default_checkpoint_path

    monkeypatch.setenv("PRUNEBENCH_CACHE", str(tmp_path / "cache"))
    init_path, _ = ast_init
    first = {"init": str(init_path), **FAST, "frames": 96}
    t = task(esc_root)
    run_path = default_checkpoint_path("test-ft", {}, t, first)
    assert run_path.name.endswith(".pt") and "-" in run_path.stem
    made, _ = train_model("test-ft", t, first, out=run_path, progress=False)  # as a run trains it
    assert made == run_path
    second = {"init": first, "epochs": 1, "batch_size": 8, "frames": 96, "lr": 0.0, "seed": 1}
    trained = []
    original = train_model.__globals__["run_epochs"]
    monkeypatch.setitem(train_model.__globals__, "run_epochs",
                        lambda training, *a, **k: trained.append(training.spec.config_hash) or original(training, *a, **k))
    _, meta = train_model("test-ft", t, second, progress=False)
    assert meta["init"]["path"] == str(run_path) and meta["init"]["sha256"] == file_sha256(run_path)
    assert len(trained) == 1  # only the second stage ran epochs: the first was found, not trained again
    assert default_checkpoint_path("test-ft", {}, t, first) == run_path
