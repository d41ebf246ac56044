"""Heads on a frozen Whisper encoder (recipe probe), pruning-aware probes, fine-tuning on the CPU,
and the runner on the Whisper family: a small random encoder saved as Transformers saves it,
on one-second tone clips in ESC-50's layout."""
from __future__ import annotations

import pytest
import torch
import yaml

from prunebench.cli import main
from prunebench.models import load_model
from prunebench.models.whisper import WhisperConfig, WhisperEncoder
from prunebench.core.registry import MODELS, TASKS
from prunebench.records.record import as_record
from leaderboard_records import record_documents
from prunebench.train.loop import train_model

from conftest import write_esc_layout

SMALL = dict(embed_dim=64, depth=4, num_heads=2)


@pytest.fixture(scope="module", autouse=True)
def small_whisper():
    MODELS.add("test-whisper", lambda **o: WhisperEncoder(WhisperConfig(**{"name": "test-whisper", **SMALL, **o})),
               "test model")
    pad30 = dict(name="test-whisper-pad30", input="pad30", target_frames=3000, **SMALL)
    MODELS.add("test-whisper-pad30", lambda **o: WhisperEncoder(WhisperConfig(**{**pad30, **o})), "test model")
    yield
    MODELS.remove("test-whisper")
    MODELS.remove("test-whisper-pad30")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(dataset root, Transformers folder of a random small Whisper)."""
    from transformers import WhisperConfig as HFConfig, WhisperModel

    tmp = tmp_path_factory.mktemp("whisper")
    root = write_esc_layout(tmp / "esc", clips_per_fold=2, classes=3, seconds=1.0)
    torch.manual_seed(0)
    hf = HFConfig(d_model=64, encoder_layers=4, encoder_attention_heads=2, encoder_ffn_dim=256, decoder_layers=1,
                  decoder_attention_heads=2, decoder_ffn_dim=256, num_mel_bins=80, vocab_size=10, pad_token_id=0,
                  bos_token_id=0, eos_token_id=0, decoder_start_token_id=0)
    WhisperModel(hf).save_pretrained(tmp / "encoder")
    return root, tmp / "encoder"


def task(root, split="fold5"):
    return TASKS.get("esc50")(root=str(root), split=split)


def test_probe_fits_a_head_on_the_frozen_encoder(setup, tmp_path):
    root, encoder = setup
    path, meta = train_model("test-whisper", task(root), {"recipe": "probe", "init": str(encoder)}, out=tmp_path,
                             progress=False)
    assert meta["probe"]["method"] is None and meta["train_clips"] == 24 and meta["test_clips"] == 6
    assert meta["test_score"] > 0.5  # three tones of different pitch (chance 1/3); measured 1.0
    model = load_model("test-whisper", path, num_classes=3)
    reference = load_model("test-whisper", path, num_classes=3)
    encoder_keys = [k for k in model.state_dict() if not k.startswith("head.")]
    from prunebench.models import load_backbone

    pretrained, _ = load_backbone("test-whisper", encoder, num_classes=3)
    for key in encoder_keys:  # frozen: the encoder is the pretrained one, bit for bit
        assert torch.equal(model.state_dict()[key], pretrained.state_dict()[key])
    assert torch.equal(model.head.weight, reference.head.weight)
    # the second fold encodes nothing again: pooled outputs are cached per clip
    _, again = train_model("test-whisper", task(root, "fold4"), {"recipe": "probe", "init": str(encoder)},
                           out=tmp_path, progress=False)
    assert again["pooled_computed"] == 0 and again["pooled_reused"] == 30


def test_pruning_aware_probe_fits_another_head(setup, tmp_path):
    root, encoder = setup
    plain, _ = train_model("test-whisper", task(root), {"recipe": "probe", "init": str(encoder)}, out=tmp_path / "a",
                           progress=False)
    aware, meta = train_model("test-whisper", task(root), {"recipe": "probe", "init": str(encoder),
                                                           "prune": "topk:keep_rate=0.5"}, out=tmp_path / "b",
                              progress=False)
    assert meta["probe"]["method"] == "topk-keep_rate=0.5" and meta["prune"]["target_keep_rate"] == 0.5
    a, b = (load_model("test-whisper", p, num_classes=3) for p in (plain, aware))
    assert not torch.allclose(a.head.weight, b.head.weight)


def test_finetune_trains_the_encoder_on_cpu(setup, tmp_path):
    root, encoder = setup
    path, meta = train_model("test-whisper", task(root), {"recipe": "finetune", "init": str(encoder), "epochs": 1,
                                                          "batch_size": 8, "device": "cpu"}, out=tmp_path, progress=False)
    from prunebench.models import load_backbone

    pretrained, _ = load_backbone("test-whisper", encoder, num_classes=3)
    tuned = load_model("test-whisper", path, num_classes=3)
    assert meta["device"] == "cpu" and len(meta["epoch_seconds"]) == 1
    assert not torch.equal(tuned.state_dict()["blocks.0.mlp.fc1.weight"], pretrained.state_dict()["blocks.0.mlp.fc1.weight"])


def test_runner_on_whisper_gives_the_probes_own_predictions(setup, tmp_path):
    """`none` through the runner predicts what the probe's own evaluation predicted; topk at keep
    1.0 the same as none; kept frames are recorded on the (1, T) token grid."""
    root, encoder = setup
    config = {
        "seed": 0,
        "models": [{"name": "test-whisper", "checkpoint": None}],
        "tasks": [{"name": "esc50", "root": str(root), "split": "fold5", "corruptions": [{"name": "white", "snr_db": [10]}]}],
        "methods": [{"name": "none"}, {"name": "topk", "keep_rate": [1.0, 0.5]}, {"name": "intensity", "keep_rate": 0.5}],
        "measure": {"throughput": False},
        "train": {"recipe": "probe", "init": str(encoder)},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    _, meta = train_model("test-whisper", task(root), {"recipe": "probe", "init": str(encoder)}, progress=False)
    records = {(r["method"]["id"], r["task"]["variant"].split("/")[-1]): r for r in record_documents(tmp_path / "out")}
    none = records[("none", "fold5")]["per_clip"]
    assert dict(zip(none["ids"], none["pred"])) == meta["test_predictions"]
    assert records[("topk-keep_rate=1.0", "fold5")]["per_clip"]["pred"] == none["pred"]
    pruned = records[("topk-keep_rate=0.5", "fold5")]
    assert pruned["macs"]["grid"] == [1, 50] and pruned["tokens"]["reduction_layers"] == [1, 2, 3]
    assert as_record(pruned).clips.kept_patches[0] is not None
    assert (tmp_path / "out" / "leaderboard.html").is_file()


def test_pad30_pads_to_the_30_s_window_and_intensity_keeps_audio_first(setup, tmp_path):
    """pad30: one-second clips become 3000 frames (1500 tokens), 100 of them real; intensity
    ranks padding last, so at keep 0.5 (750, 375, 188 tokens) the 50 real tokens survive."""
    root, encoder = setup
    config = {
        "seed": 0,
        "models": [{"name": "test-whisper-pad30", "checkpoint": None}],
        "tasks": [{"name": "esc50", "root": str(root), "split": "fold5"}],
        "methods": [{"name": "none"}, {"name": "intensity", "keep_rate": 0.5}],
        "measure": {"throughput": False},
        "train": {"recipe": "probe", "init": str(encoder)},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    records = {r["method"]["id"]: r for r in record_documents(tmp_path / "out")}
    assert records["none"]["macs"]["grid"] == [1, 1500]
    assert records["none"]["examples"]["clips"][0]["valid_frames"] == 100
    selection = records["intensity-keep_rate=0.5"]["selection"]
    assert selection["kept_padding_share"] == pytest.approx(138 / 188)  # all 50 real tokens among the 188 kept
