"""The shipped example configs parse and expand into the grids they promise."""
from pathlib import Path

import pytest
import yaml

from prunebench.run.config import parse_config
from prunebench.train.recipes import resolve_train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def load(name, tmp_path, **replace):
    raw = yaml.safe_load((CONFIGS / name).read_text())
    for task in raw["tasks"]:
        task.update(replace)
        for c in task.get("corruptions", []):
            if c["name"] == "noise-files":
                c["root"] = str(tmp_path)
    return raw


def test_esc50_grid(tmp_path):
    cfg = parse_config(load("esc50-grid.yaml", tmp_path))
    variants = [v.id for v in cfg.tasks[0].variants]
    assert len(variants) == 10 and variants[0] == "esc50/fold5"
    assert {v.corruption.name for v in cfg.tasks[0].variants[1:]} == {"white", "pink", "brown"}
    assert all(m.params.get("keep_rate", 0.9) in (0.9, 0.7, 0.5) for m in cfg.methods)
    # no checkpoint: the run trains one with the recipe measured on ESC-50 (README, "Real data")
    assert cfg.models[0].checkpoint_for(cfg.tasks[0].task) is None
    assert resolve_train(cfg.train)["recipe"] == "scratch-esc50" and resolve_train(cfg.train)["crop_frames"] == 0


def test_esc50_five_folds(tmp_path):
    cfg = parse_config(load("esc50-5fold.yaml", tmp_path))
    assert [t.task.split for t in cfg.tasks] == [f"fold{f}" for f in range(1, 6)]
    assert len(cfg.tasks[0].variants) == 1 + 5 + 2 + 6
    assert cfg.models[0].checkpoint_for(cfg.tasks[3].task).endswith("ast-tiny-esc50-fold4.pt")


def test_as20k(tmp_path):
    import soundfile as sf
    import numpy as np

    sf.write(str(tmp_path / "babble.wav"), np.random.default_rng(0).standard_normal(1600).astype(np.float32), 16000)
    cfg = parse_config(load("as20k.yaml", tmp_path))
    assert [v.id for v in cfg.tasks[0].variants][-3:] == [
        "as20k/eval+len2.5s-native", "as20k/eval+len5s-native", "as20k/eval+len10s-native"]
    assert cfg.tasks[0].task.on_bad_clip == "skip"


def test_whisper_configs(tmp_path):
    """The Whisper answer: the whole fold-5 grid in both input modes, the pruning-aware probe,
    and the 5-fold protocol; every method is a registered one (nothing filtered out here)."""
    grid = parse_config(yaml.safe_load((CONFIGS / "whisper-esc50.yaml").read_text()))
    assert [m.name for m in grid.models] == ["whisper-tiny", "whisper-tiny-pad30"]
    assert len(grid.methods) == 13 and len(grid.tasks[0].variants) == 9
    assert resolve_train(grid.train, family="whisper")["recipe"] == "probe"
    aware = parse_config(yaml.safe_load((CONFIGS / "whisper-esc50-aware.yaml").read_text()))
    assert resolve_train(aware.train)["prune"] == "topk:keep_rate=0.5"
    folds = parse_config(yaml.safe_load((CONFIGS / "whisper-esc50-5fold.yaml").read_text()))
    assert [t.task.split for t in folds.tasks] == [f"fold{f}" for f in range(1, 6)]


def test_whisper_base_configs():
    """Whisper base: its fold-5 grid (5 methods, 4 of them at keep 0.7 and 0.5; clean, white and
    pink at 20, 10 and 0 dB, mix-clips at 20 and 10 dB) and the 5-fold probe, both from the zoo
    entry whisper-base."""
    grid = parse_config(yaml.safe_load((CONFIGS / "whisper-base-esc50.yaml").read_text()))
    assert [m.name for m in grid.models] == ["whisper-base"] and grid.models[0].checkpoint is None
    assert sorted((m.name, m.params.get("keep_rate")) for m in grid.methods) == sorted(
        [("none", None)] + [(n, k) for n in ("topk", "tome", "random", "intensity") for k in (0.7, 0.5)])
    assert [v.id for v in grid.tasks[0].variants] == ["esc50/fold5"] + [
        f"esc50/fold5+{n}@{db}dB" for n in ("white", "pink") for db in (20, 10, 0)] + [
        f"esc50/fold5+mix-clips@{db}dB" for db in (20, 10)]
    assert resolve_train(grid.train, family="whisper")["recipe"] == "probe" and grid.train["init"] == "whisper-base"
    folds = parse_config(yaml.safe_load((CONFIGS / "whisper-base-esc50-5fold.yaml").read_text()))
    assert [t.task.split for t in folds.tasks] == [f"fold{f}" for f in range(1, 6)]
    assert folds.train == {"recipe": "probe", "init": "whisper-base"}


def test_one_second_config_runs_and_trains_at_its_length():
    from prunebench.data.length import input_frames_for
    from prunebench.models import registered_config
    from prunebench.train.recipes import settings_for

    cfg = parse_config(yaml.safe_load((CONFIGS / "synth-esc-1s.yaml").read_text()))
    task = cfg.tasks[0].task
    assert task.clip_seconds == 1.0 and [v.id for v in cfg.tasks[0].variants] == ["synth-esc/fold5", "synth-esc/fold5+white@10dB"]
    assert input_frames_for(task, registered_config("ast-tiny")) == 112
    train = settings_for(cfg.train, "ast-tiny", task)
    assert (train["frames"], train["epochs"], train["crop_frames"]) == (112, 48, 0)


@pytest.mark.parametrize("name", ["lengths-ast.yaml", "lengths-whisper.yaml", "lengths-whisper-pad30.yaml"])
def test_length_configs_parse(name):
    cfg = parse_config(yaml.safe_load((CONFIGS / name).read_text()))
    assert any("+len" in v.id for t in cfg.tasks for v in t.variants)


@pytest.mark.parametrize("name", sorted(p.name for p in (CONFIGS / "aware").glob("*.yaml")))
def test_pruning_aware_configs_parse(name):
    """Each pruning-aware config: one model; the off-the-shelf ones hold none, every other one
    trains with its single method in place at that method's keep rate."""
    cfg = parse_config(yaml.safe_load((CONFIGS / "aware" / name).read_text()))
    assert len(cfg.models) == 1 and cfg.tasks[0].task.name == "esc50"
    methods = {m.name: m.params.get("keep_rate") for m in cfg.methods}
    if name.endswith("off-the-shelf.yaml"):
        assert "none" in methods and "prune" not in cfg.train
    elif "prune" in cfg.train:
        (method, keep), = methods.items()
        assert cfg.train["prune"] == f"{method}:keep_rate={keep}"
