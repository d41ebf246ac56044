"""Published checkpoint formats load exactly: equal logits against reference implementations.

Each reference is built with random weights at a small shape (width 64, depth 2) and saved the way
its authors save it; our loader reads the file and must give the same logits (max abs diff < 1e-4):
- official AST: timm's DeiT distilled model changed as YuanGongND/ast's ASTModel changes it, run by
  AST's forward (below, line for line), saved as its DataParallel state dict (`module.v.*`);
- Transformers: ASTForAudioClassification, saved with save_pretrained (config.json + safetensors);
- AudioMAE: timm's VisionTransformer configured as AudioMAE's models_vit (global mean pool over
  patch tokens, fc_norm, no final norm), on (time, freq) input, saved as {"model": ...};
- an ImageNet DeiT made into AST as AST's constructor does (RGB filters summed, positions cut or
  interpolated), for fine-tuning.
Positional-embedding adaptation to other frame counts is checked for both strides against AST's
own crop / interpolation code.
"""
from __future__ import annotations

import argparse
from functools import partial

import pytest
import torch
import torch.nn as nn

from prunebench.core.errors import DataError, PrunebenchError
from prunebench.models import load_backbone, load_model
from prunebench.models.audio_vit import AudioViT, AudioViTConfig
from prunebench.core.registry import MODELS

WIDTH, DEPTH, HEADS, CLASSES = 64, 2, 4, 7
TOL = 1e-4
# Small registered models in the shapes of the references (removed after the module).
SMALL = {
    "test-ast-s10": dict(fstride=10, tstride=10, target_frames=100),  # 12 x 9 patches
    "test-ast-s16": dict(fstride=16, tstride=16, target_frames=128),  # 8 x 8
    "test-audiomae": dict(fstride=16, tstride=16, target_frames=160, distillation_token=False, pooling="mean",
                          final_norm=False, norm_eps=1e-6, head_norm_eps=1e-6),  # 8 x 10
}


@pytest.fixture(scope="module", autouse=True)
def small_models():
    for name, extra in SMALL.items():
        config = dict(name=name, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, **extra)
        MODELS.add(name, lambda _c=config, **o: AudioViT(AudioViTConfig(**{**_c, **o})), "test model")
    yield
    for name in SMALL:
        MODELS.remove(name)


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random (initialisers leave tokens and positions at zero: too easy)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            is_norm_scale = name.endswith("weight") and p.ndim == 1  # LayerNorm gains stay near 1
            p.copy_(torch.randn(p.shape, generator=g) * 0.3 + (1.0 if is_norm_scale else 0.0))
    return module.eval()


def fbank(frames: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, frames, 128, generator=torch.Generator().manual_seed(seed))


def grid(frames: int, stride: int):
    return (128 - 16) // stride + 1, (frames - 16) // stride + 1


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape
    diff = (a - b).abs().max().item()
    assert diff < TOL, f"max abs logit difference {diff:.2e}"
    assert a.abs().max() > 0.1  # not a trivially zero output


# -- official AST --------------------------------------------------------------------------------
def ast_reference(stride: int, frames: int, seed: int = 0):
    """(v, mlp_head) as ASTModel.__init__ leaves them: DeiT distilled, 1-channel strided conv,
    positions for the audio grid; random weights."""
    from timm.models.deit import VisionTransformerDistilled

    v = VisionTransformerDistilled(img_size=32, patch_size=16, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, num_classes=10)
    v.patch_embed.proj = nn.Conv2d(1, WIDTH, kernel_size=(16, 16), stride=(stride, stride))
    f, t = grid(frames, stride)
    v.pos_embed = nn.Parameter(torch.zeros(1, f * t + 2, WIDTH))
    mlp_head = nn.Sequential(nn.LayerNorm(WIDTH), nn.Linear(WIDTH, CLASSES))
    randomise(v, seed), randomise(mlp_head, seed + 1)
    return v, mlp_head


def ast_forward(v, mlp_head, x):
    """ASTModel.forward (YuanGongND/ast, src/models/ast_models.py), without its @autocast."""
    x = x.unsqueeze(1)
    x = x.transpose(2, 3)
    B = x.shape[0]
    x = v.patch_embed.proj(x).flatten(2).transpose(1, 2)  # AST's PatchEmbed.forward
    cls_tokens = v.cls_token.expand(B, -1, -1)
    dist_token = v.dist_token.expand(B, -1, -1)
    x = torch.cat((cls_tokens, dist_token, x), dim=1)
    x = x + v.pos_embed
    x = v.pos_drop(x)
    for blk in v.blocks:
        x = blk(x)
    x = v.norm(x)
    x = (x[:, 0] + x[:, 1]) / 2
    return mlp_head(x)


def ast_adapt(pos_embed, f_dim, old_t, t_dim, cut="middle"):
    """ASTModel.__init__'s AudioSet branch, generalised from its 12 x 101 grid: cut the middle
    columns when shorter, interpolate bilinearly otherwise. `cut="start"`: the first columns."""
    d = pos_embed.shape[-1]
    new_pos_embed = pos_embed[:, 2:, :].detach().reshape(1, f_dim * old_t, d).transpose(1, 2).reshape(1, d, f_dim, old_t)
    if t_dim < old_t:
        start = int(old_t / 2) - int(t_dim / 2) if cut == "middle" else 0
        new_pos_embed = new_pos_embed[:, :, :, start: start + t_dim]
    else:
        new_pos_embed = torch.nn.functional.interpolate(new_pos_embed, size=(f_dim, t_dim), mode='bilinear')
    new_pos_embed = new_pos_embed.reshape(1, d, f_dim * t_dim).transpose(1, 2)
    return nn.Parameter(torch.cat([pos_embed[:, :2, :].detach(), new_pos_embed], dim=1))


def save_ast(v, mlp_head, path):
    """As AST's traintest saves a DataParallel model: module.v.*, module.mlp_head.*."""
    sd = {"module.v." + k: t for k, t in v.state_dict().items()}
    sd.update({"module.mlp_head." + k: t for k, t in mlp_head.state_dict().items()})
    torch.save(sd, path)
    return path


@pytest.mark.parametrize("stride,frames", [(10, 100), (16, 128)])
def test_official_ast_checkpoint_gives_the_reference_logits(tmp_path, stride, frames):
    v, head = ast_reference(stride, frames)
    path = save_ast(v, head, tmp_path / f"audioset_{stride}_{stride}_0.4593.pth")
    model = load_model(f"test-ast-s{stride}", path, num_classes=CLASSES)
    x = fbank(frames)
    with torch.no_grad():
        close(model(x), ast_forward(v, head, x))
    assert model.config.target_frames == frames and model.config.num_classes == CLASSES


@pytest.mark.parametrize("stride,frames,new_frames", [(10, 100, 60), (10, 100, 170), (16, 128, 64), (16, 128, 208)])
def test_ast_length_adaptation_matches_ast_code(tmp_path, stride, frames, new_frames):
    """Fine-tuning at another length (AST's middle cut / interpolation, kept in the model) and
    feeding another length at run time (first columns / interpolation) both match AST's code."""
    v, head = ast_reference(stride, frames)
    path = save_ast(v, head, tmp_path / "ast.pth")
    f, old_t = grid(frames, stride)
    t = grid(new_frames, stride)[1]
    x = fbank(new_frames)

    adapted, _ = load_backbone(f"test-ast-s{stride}", path, num_classes=CLASSES, frames=new_frames)
    assert adapted.config.target_frames == new_frames and adapted.grid == (f, t)
    v.pos_embed = ast_adapt(v.pos_embed, f, old_t, t, cut="middle")
    with torch.no_grad():
        close(adapted(x), ast_forward(v, head, x))

    v, head = ast_reference(stride, frames)
    runtime = load_model(f"test-ast-s{stride}", path)
    v.pos_embed = ast_adapt(v.pos_embed, f, old_t, t, cut="start")
    with torch.no_grad():
        close(runtime(x), ast_forward(v, head, x))


def test_ast_stride_in_the_file_name_is_checked(tmp_path):
    v, head = ast_reference(10, 100)
    path = save_ast(v, head, tmp_path / "audioset_16_16_0.4422.pth")
    with pytest.raises(DataError, match="stride 16x16.*test-ast-s16"):
        load_model("test-ast-s10", path)


def test_wrong_stride_is_one_clear_line(tmp_path):
    v, head = ast_reference(10, 100)  # 12 x 9 = 108 positions: no 8-row grid
    path = save_ast(v, head, tmp_path / "ast.pth")
    with pytest.raises(DataError, match="do not fill a grid of 8 frequency rows"):
        load_model("test-ast-s16", path)


def test_class_count_mismatch_and_fresh_head(tmp_path):
    v, head = ast_reference(10, 100)
    path = save_ast(v, head, tmp_path / "ast.pth")
    with pytest.raises(PrunebenchError, match="7 classes, the task has 3"):
        load_model("test-ast-s10", path, num_classes=3)
    model, weights = load_backbone("test-ast-s10", path, num_classes=3)
    assert weights.format == "ast" and model.head[1].out_features == 3
    assert torch.equal(model.vit.blocks[1].mlp.fc2.weight, v.blocks[1].mlp.fc2.weight)


# -- Transformers --------------------------------------------------------------------------------
def transformers_reference(stride: int, frames: int):
    transformers = pytest.importorskip("transformers")
    config = transformers.ASTConfig(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                                    intermediate_size=4 * WIDTH, max_length=frames, frequency_stride=stride,
                                    time_stride=stride, num_labels=CLASSES)
    config._attn_implementation = "eager"
    return randomise(transformers.ASTForAudioClassification(config))


@pytest.mark.parametrize("stride,frames", [(10, 100), (16, 128)])
def test_transformers_folder_gives_the_reference_logits(tmp_path, stride, frames):
    ref = transformers_reference(stride, frames)
    ref.save_pretrained(tmp_path / "hf")
    model = load_model(f"test-ast-s{stride}", tmp_path / "hf")
    assert model.config.norm_eps == 1e-12 and model.config.head_norm_eps == 1e-12
    x = fbank(frames)
    with torch.no_grad():
        close(model(x), ref(input_values=x).logits)
        # the safetensors file alone reads the same (its config.json beside it)
        close(load_model(f"test-ast-s{stride}", tmp_path / "hf" / "model.safetensors")(x), ref(input_values=x).logits)


def test_transformers_in_memory_names_load(tmp_path):
    """A torch.save(model.state_dict()) of Transformers 5 (q_proj, o_proj, mlp.fc1 names), no config."""
    ref = transformers_reference(10, 100)
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")
    model = load_model("test-ast-s10", tmp_path)
    x = fbank(100)
    with torch.no_grad():
        close(model(x), ref(input_values=x).logits)


def test_transformers_config_must_fit_the_model(tmp_path):
    ref = transformers_reference(16, 128)
    ref.save_pretrained(tmp_path / "hf")
    with pytest.raises(DataError, match="fstride=16.*'test-ast-s10' has 10.*test-ast-s16"):
        load_model("test-ast-s10", tmp_path / "hf")


# -- AudioMAE ------------------------------------------------------------------------------------
def audiomae_reference(frames: int = 160):
    """AudioMAE's fine-tuned ViT: timm VisionTransformer on (time, freq) images, global mean pool
    over the patch tokens, fc_norm then head, no final norm (models_vit.py with global_pool)."""
    from timm.models.vision_transformer import VisionTransformer

    return randomise(VisionTransformer(
        img_size=(frames, 128), patch_size=16, in_chans=1, num_classes=CLASSES, global_pool="avg", fc_norm=True,
        embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
    ))


def test_audiomae_finetuned_gives_the_reference_logits(tmp_path):
    ref = audiomae_reference()
    assert isinstance(ref.norm, nn.Identity)  # configured as AudioMAE: no final norm
    path = tmp_path / "finetuned.pth"
    torch.save({"model": ref.state_dict(), "epoch": 99, "args": argparse.Namespace(blr=2e-3)}, path)
    model = load_model("test-audiomae", path)
    x = fbank(160)
    with torch.no_grad():
        close(model(x), ref(x.unsqueeze(1)))
        # a shorter input at run time: the first time rows of AudioMAE's (time, freq) positions
        short = fbank(96)
        ref.pos_embed = nn.Parameter(torch.cat([ref.pos_embed[:, :1], ref.pos_embed[:, 1: 1 + 6 * 8]], dim=1))
        ref.patch_embed.img_size, ref.patch_embed.grid_size = (96, 128), (6, 8)
        close(model(short), ref(short.unsqueeze(1)))


def test_audiomae_pretrained_encoder_loads_for_finetuning(tmp_path):
    ref = audiomae_reference()
    encoder = {k: v for k, v in ref.state_dict().items() if not k.startswith(("fc_norm", "head"))}
    mae = {**encoder, "norm.weight": torch.ones(WIDTH), "norm.bias": torch.zeros(WIDTH),
           "mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.zeros(32, WIDTH),
           "decoder_pos_embed": torch.zeros(1, 81, 32), "decoder_blocks.0.norm1.weight": torch.ones(32)}
    path = tmp_path / "pretrained.pth"
    torch.save({"model": mae}, path)
    with pytest.raises(DataError, match="backbone without a classifier head"):
        load_model("test-audiomae", path)
    model, weights = load_backbone("test-audiomae", path, num_classes=CLASSES)
    assert weights.format == "audiomae" and weights.meta["pretrained"]
    ref.fc_norm.load_state_dict(model.head[0].state_dict())  # the fresh head, the same on both sides
    ref.head.load_state_dict(model.head[1].state_dict())
    x = fbank(160)
    with torch.no_grad():
        close(model.eval()(x), ref(x.unsqueeze(1)))


def test_load_model_gives_a_backbone_a_fresh_head_with_num_classes(tmp_path, caplog):
    """Any backbone-only checkpoint (here AudioMAE's MAE encoder), as timm's create_model(...,
    num_classes=N): the encoder's weights as in the file, a fresh head of N classes, one warning;
    without num_classes the refusal names it; a run's loader (load_classifier) refuses either way."""
    import logging

    from prunebench.models import load_classifier

    ref = audiomae_reference()
    encoder = {k: v for k, v in ref.state_dict().items() if not k.startswith(("fc_norm", "head"))}
    path = tmp_path / "pretrained.pth"
    torch.save({"model": {**encoder, "mask_token": torch.zeros(1, 1, 32)}}, path)
    with pytest.raises(DataError, match="audiomae backbone without a classifier head: pass num_classes=N"):
        load_model("test-audiomae", path)
    with caplog.at_level(logging.WARNING, logger="prunebench.models.checkpoint"):
        model = load_model("test-audiomae", path, num_classes=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "prunebench.models.checkpoint"]
    assert len(lines) == 1 and "fresh 5-class head" in lines[0] and str(path) in lines[0]
    assert not model.training and model.head[1].out_features == 5
    assert torch.equal(model.vit.blocks[1].mlp.fc2.weight, encoder["blocks.1.mlp.fc2.weight"])
    ref.fc_norm.load_state_dict(model.head[0].state_dict())  # the fresh head, the same on both sides
    ref.head = nn.Linear(WIDTH, 5)
    ref.head.load_state_dict(model.head[1].state_dict())
    x = fbank(160)
    with torch.no_grad():
        close(model(x), ref.eval()(x.unsqueeze(1)))
    with pytest.raises(DataError, match="fine-tune it first"):
        load_classifier("test-audiomae", path, num_classes=5)


def test_audiomae_weights_do_not_fit_an_ast_model(tmp_path):
    torch.save({"model": audiomae_reference().state_dict()}, tmp_path / "finetuned.pth")
    with pytest.raises(DataError, match="distillation_token=False.*test-audiomae"):
        load_model("test-ast-s16", tmp_path / "finetuned.pth")


# -- ImageNet DeiT as AST's starting point ------------------------------------------------------
def test_imagenet_deit_is_adapted_as_ast_does(tmp_path):
    from timm.models.deit import VisionTransformerDistilled

    deit = randomise(VisionTransformerDistilled(img_size=224, patch_size=16, embed_dim=WIDTH, depth=DEPTH,
                                                num_heads=HEADS, num_classes=10))
    torch.save(deit.state_dict(), tmp_path / "deit.pth")
    model, weights = load_backbone("test-ast-s10", tmp_path / "deit.pth", num_classes=CLASSES, frames=100)
    assert weights.format == "timm-vit" and not weights.has_head

    # ASTModel.__init__'s ImageNet branch (hw = 14 here; 24 for DeiT-384)
    v, hw, d = deit, 14, WIDTH
    f_dim, t_dim = grid(100, 10)
    new_proj = nn.Conv2d(1, d, kernel_size=(16, 16), stride=(10, 10))
    new_proj.weight = nn.Parameter(torch.sum(v.patch_embed.proj.weight, dim=1).unsqueeze(1))
    new_proj.bias = v.patch_embed.proj.bias
    v.patch_embed.proj = new_proj
    new_pos_embed = v.pos_embed[:, 2:, :].detach().reshape(1, hw * hw, d).transpose(1, 2).reshape(1, d, hw, hw)
    new_pos_embed = new_pos_embed[:, :, :, int(hw / 2) - int(t_dim / 2): int(hw / 2) - int(t_dim / 2) + t_dim]
    new_pos_embed = new_pos_embed[:, :, int(hw / 2) - int(f_dim / 2): int(hw / 2) - int(f_dim / 2) + f_dim, :]
    new_pos_embed = new_pos_embed.reshape(1, d, f_dim * t_dim).transpose(1, 2)
    v.pos_embed = nn.Parameter(torch.cat([v.pos_embed[:, :2, :].detach(), new_pos_embed], dim=1))
    mlp_head = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, CLASSES))
    mlp_head.load_state_dict(model.head.state_dict())
    x = fbank(100)
    with torch.no_grad():
        close(model.eval()(x), ast_forward(v, mlp_head, x))


# -- the real ast-base shape, keys only -------------------------------------------------------------
def test_key_mapping_at_the_real_ast_base_shape():
    """Transformers' and the official AST's full-size state dicts map onto ast-base exactly (same
    keys, same shapes), on the meta device: nothing is allocated or run."""
    transformers = pytest.importorskip("transformers")
    from timm.models.deit import VisionTransformerDistilled

    from prunebench.models import build_model
    from prunebench.models.formats import ast_to_audiovit, transformers_to_audiovit

    with torch.device("meta"):
        ours = {k: v.shape for k, v in build_model("ast-base", num_classes=527).state_dict().items()}
        hf = transformers.ASTForAudioClassification(transformers.ASTConfig(num_labels=527))
        hf_legacy = {_legacy(k): v for k, v in hf.state_dict().items()}
        v = VisionTransformerDistilled(img_size=384, patch_size=16, embed_dim=768, depth=12, num_heads=12)
        v.patch_embed.proj = nn.Conv2d(1, 768, kernel_size=(16, 16), stride=(10, 10))
        v.pos_embed = nn.Parameter(torch.zeros(1, 1214, 768))
        mlp_head = nn.Sequential(nn.LayerNorm(768), nn.Linear(768, 527))
    official = {"v." + k: t for k, t in v.state_dict().items()}
    official.update({"mlp_head." + k: t for k, t in mlp_head.state_dict().items()})
    for mapped in (transformers_to_audiovit(hf.state_dict(), "hf"), transformers_to_audiovit(hf_legacy, "hf"),
                   ast_to_audiovit(official, "ast")):
        assert {k: t.shape for k, t in mapped.items()} == ours


def _legacy(key: str) -> str:
    """Transformers 5 in-memory names -> the names its files (and the Hub's) carry."""
    for new, old in (("layers.", "encoder.layer."), ("attention.q_proj", "attention.attention.query"),
                     ("attention.k_proj", "attention.attention.key"), ("attention.v_proj", "attention.attention.value"),
                     ("attention.o_proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
                     ("mlp.fc2", "output.dense")):
        key = key.replace(new, old)
    return key


# -- files and the Hub ---------------------------------------------------------------------------
def test_unrecognised_file_is_one_line(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="unrecognised checkpoint"):
        load_model("test-ast-s10", tmp_path / "other.pt")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read checkpoint"):
        load_model("test-ast-s10", tmp_path / "garbage.pth")


def test_hub_id_loads_from_the_cache_offline(tmp_path, monkeypatch):
    """A Hub id resolves through huggingface_hub's cache; offline, a cached repository loads."""
    from huggingface_hub import constants

    ref = transformers_reference(10, 100)
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-ast"
    ref.save_pretrained(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = load_model("test-ast-s10", "someone/tiny-ast")
    x = fbank(100)
    with torch.no_grad():
        close(model(x), ref(input_values=x).logits)
    with pytest.raises(DataError, match="'someone/absent-model'.*HF_HUB_OFFLINE"):
        load_model("test-ast-s10", "someone/absent-model")


def test_cli_reports_a_missing_hub_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from prunebench.cli import main

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    code = main(["train", "--model", "ast-tiny", "--task", "synth-esc", "--init", "MIT/not-cached", "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "MIT/not-cached" in err
