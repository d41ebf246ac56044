"""Published checkpoints as AudioViT weights: the format is read from the contents, keys mapped.

Formats (`Weights.format`):
- "prunebench": our own checkpoint (format marker, config, state dict), or a bare AudioViT state dict.
- "ast": the official AST release (YuanGongND/ast, e.g. audioset_10_10_0.4593.pth): a DataParallel
  state dict, `module.v.*` from timm's DeiT distilled model (its unused ImageNet heads `v.head`,
  `v.head_dist` included) and `module.mlp_head.{0,1}.*` (LayerNorm + Linear). Strides are not in
  the weights: the file name's `_F_T_` (audioset_16_16_...) is checked against the model's.
- "transformers-ast": Transformers' ASTForAudioClassification (a folder with config.json and
  model.safetensors or pytorch_model.bin, or a bare weights file). Separate query/key/value
  projections are concatenated into timm's qkv. Both the saved (`encoder.layer.N.attention.
  attention.query`) and the in-memory names of Transformers 5 (`layers.N.attention.q_proj`) load.
- "audiomae": facebookresearch/AudioMAE ViT-B, `{"model": state_dict}`, fine-tuned (`fc_norm`,
  `head`, mean pooling) or pretrained (MAE encoder; `norm`, decoder and mask token unused). AudioMAE
  feeds (time, freq) images: its patches are time-major and its conv kernel is (time, freq); both
  are transposed here into our freq-major layout, which changes no logit.
- "timm-vit": an ImageNet ViT/DeiT (3-channel patches, square grid), for fine-tuning only, made
  into an audio model as AST does: RGB filters summed, positions cut or interpolated.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from prunebench.core.errors import DataError
from prunebench.models.audio_vit import AudioViTConfig, grid_for
from prunebench.models.weights import (CHECKPOINT_FORMAT, StateDict, Weights, load_file as _load_file, read_json as _read_json,
                                       register_family_reader, registered_readers, unwrap as _unwrap, weight_files)

# Fields of AudioViTConfig that define the architecture: weights that disagree do not fit the model.
STRUCTURAL = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "fstride", "tstride",
              "num_mel_bins", "distillation_token", "pooling", "final_norm")


@register_family_reader("vit")
def read_weights(path: Path, arch: AudioViTConfig) -> Weights:
    """The weights stored at `path` (a file or a folder), mapped onto AudioViT names.

    `arch` is the registered model's config: it supplies what the weights cannot say (strides,
    heads) and is checked against what they can (width, depth, prefix tokens, pooling)."""
    readers = registered_readers()
    weight_file, config_file = weight_files(Path(path))
    for reader in readers:
        if reader.recognises(weight_file):
            return reader.read(weight_file, arch)
    from prunebench.models.whisper_formats import is_ctranslate2

    if is_ctranslate2(weight_file):
        raise DataError(f"{weight_file}: a CTranslate2 (faster-whisper) model: Whisper encoder weights, and model "
                        f"{arch.name!r} is an audio ViT; load it into a whisper-* model (prunebench list)")
    raw = _load_file(weight_file)
    files = [weight_file] + ([config_file] if config_file else [])
    if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
        return _from_prunebench(raw, files)
    sd = _unwrap(raw, weight_file)
    fmt = detect_format(sd, weight_file)
    if fmt == "prunebench":
        return _from_bare_audiovit(sd, arch, files)
    if fmt == "ast":
        return _from_ast(sd, arch, files)
    if fmt == "transformers-ast":
        hf_config = _read_json(config_file) if config_file else None
        return _from_transformers(sd, arch, files, hf_config)
    if fmt == "audiomae":
        return _from_audiomae(sd, arch, files)
    return _from_timm_vit(sd, arch, files)


def detect_format(sd: StateDict, source: Path) -> str:
    keys = set(sd)
    if any(k.startswith(("encoder.conv1.", "model.encoder.conv1.")) for k in keys):
        raise DataError(f"{source}: Whisper encoder weights (encoder.conv1.*), and this model is an audio ViT; "
                        f"load them into a whisper-* model (prunebench list)")
    if any(k.startswith("audio_spectrogram_transformer.") for k in keys):
        return "transformers-ast"
    if "v.pos_embed" in keys:
        return "ast"
    if "vit.pos_embed" in keys:
        return "prunebench"
    if "pos_embed" in keys and "patch_embed.proj.weight" in keys:
        return "audiomae" if sd["patch_embed.proj.weight"].shape[1] == 1 else "timm-vit"
    raise DataError(
        f"{source}: unrecognised checkpoint (first keys: {', '.join(sorted(keys)[:4])}); expected official AST "
        f"(module.v.*), Transformers AST (audio_spectrogram_transformer.*), AudioMAE or timm ViT (pos_embed, "
        f"patch_embed.*, blocks.*) or a prunebench checkpoint"
    )


# -- files ------------------------------------------------------------------------------------
# -- one reader per format ----------------------------------------------------------------------
def _from_prunebench(payload: Dict[str, Any], files: List[Path]) -> Weights:
    config = dict(payload["config"])
    if "positions" in config:
        raise DataError(f"{files[0]}: a prunebench checkpoint of the Whisper model {config.get('name')!r}, "
                        f"and this model is an audio ViT")
    config.pop("name", None)
    sd = payload["state_dict"]
    grid = grid_for((config.get("num_mel_bins", 128), config["target_frames"]),
                    _pair(config.get("patch_size", 16)), (config.get("fstride", 16), config.get("tstride", 16)))
    return Weights("prunebench", sd, config, True, grid, files, meta=dict(payload.get("meta") or {}))


def _from_bare_audiovit(sd: StateDict, arch: AudioViTConfig, files: List[Path]) -> Weights:
    """A state dict saved with torch.save(model.state_dict()): geometry from the weights."""
    prefix = 1 + ("vit.reg_token" in sd)
    config = _vit_shape(sd, "vit.", arch, files[0])
    grid = _grid_of(sd["vit.pos_embed"].shape[1] - prefix, arch, files[0])
    config.update(distillation_token=prefix == 2, final_norm="vit.norm.weight" in sd)
    check_structure(config, arch, files[0])
    config.update(target_frames=_frames_for(grid[1], arch),
                  num_classes=sd["head.1.weight"].shape[0] if "head.1.weight" in sd else arch.num_classes)
    return Weights("prunebench", sd, config, "head.1.weight" in sd, grid, files)


def ast_to_audiovit(sd: StateDict, source: Path) -> StateDict:
    """Official AST keys (without `module.`) -> AudioViT keys."""
    unknown = [k for k in sd if not k.startswith(("v.", "mlp_head."))]
    if unknown:
        raise DataError(f"{source}: unexpected keys for an AST checkpoint: {', '.join(sorted(unknown)[:5])}")
    out: StateDict = {}
    for key, value in sd.items():
        if key.startswith("mlp_head."):
            out["head." + key[len("mlp_head."):]] = value
        elif key in ("v.head.weight", "v.head.bias", "v.head_dist.weight", "v.head_dist.bias"):
            continue  # DeiT's ImageNet heads: AST never uses them
        elif key == "v.dist_token":
            out["vit.reg_token"] = value
        else:
            out["vit." + key[2:]] = value
    return out


def _from_ast(sd: StateDict, arch: AudioViTConfig, files: List[Path]) -> Weights:
    source = files[0]
    strides = _strides_in_name(source)
    if strides and strides != (arch.fstride, arch.tstride):
        raise DataError(
            f"{source}: its name says stride {strides[0]}x{strides[1]}, model {arch.name!r} has "
            f"{arch.fstride}x{arch.tstride}{_suggest(dict(fstride=strides[0], tstride=strides[1], distillation_token=True))}"
        )
    out = ast_to_audiovit(sd, source)
    _require(out, ("vit.cls_token", "vit.reg_token", "vit.pos_embed", "vit.patch_embed.proj.weight", "head.1.weight"), source)
    config = _vit_shape(out, "vit.", arch, source)
    config.update(distillation_token=True, pooling="prefix", final_norm=True, norm_eps=1e-6, head_norm_eps=1e-5)
    check_structure(config, arch, source)
    grid = _grid_of(out["vit.pos_embed"].shape[1] - 2, arch, source)
    config.update(target_frames=_frames_for(grid[1], arch), num_classes=out["head.1.weight"].shape[0])
    return Weights("ast", out, config, True, grid, files)


_HF_LAYER = re.compile(r"^audio_spectrogram_transformer\.(?:encoder\.layer|layers)\.(\d+)\.(.+)\.(weight|bias)$")
_HF_LAYER_PARTS = {
    # Transformers <= 4 and the files on the Hub
    "attention.attention.query": "q", "attention.attention.key": "k", "attention.attention.value": "v",
    "attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    # Transformers 5, in memory
    "attention.q_proj": "q", "attention.k_proj": "k", "attention.v_proj": "v",
    "attention.o_proj": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
    "layernorm_before": "norm1", "layernorm_after": "norm2",
}
_HF_TOP = {
    "audio_spectrogram_transformer.embeddings.cls_token": "vit.cls_token",
    "audio_spectrogram_transformer.embeddings.distillation_token": "vit.reg_token",
    "audio_spectrogram_transformer.embeddings.position_embeddings": "vit.pos_embed",
    "audio_spectrogram_transformer.embeddings.patch_embeddings.projection.weight": "vit.patch_embed.proj.weight",
    "audio_spectrogram_transformer.embeddings.patch_embeddings.projection.bias": "vit.patch_embed.proj.bias",
    "audio_spectrogram_transformer.layernorm.weight": "vit.norm.weight",
    "audio_spectrogram_transformer.layernorm.bias": "vit.norm.bias",
    "classifier.layernorm.weight": "head.0.weight",
    "classifier.layernorm.bias": "head.0.bias",
    "classifier.dense.weight": "head.1.weight",
    "classifier.dense.bias": "head.1.bias",
}


def transformers_to_audiovit(sd: StateDict, source: Path) -> StateDict:
    """Transformers AST keys -> AudioViT keys (query, key, value stacked into timm's qkv)."""
    out: StateDict = {}
    qkv: Dict[Tuple[int, str], Dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key in _HF_TOP:
            out[_HF_TOP[key]] = value
            continue
        match = _HF_LAYER.match(key)
        part = _HF_LAYER_PARTS.get(match.group(2)) if match else None
        if part is None:
            raise DataError(f"{source}: unexpected key for a Transformers AST checkpoint: {key}")
        layer, kind = int(match.group(1)), match.group(3)
        if part in ("q", "k", "v"):
            qkv.setdefault((layer, kind), {})[part] = value
        else:
            out[f"vit.blocks.{layer}.{part}.{kind}"] = value
    for (layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise DataError(f"{source}: layer {layer} lacks {', '.join(sorted({'q', 'k', 'v'} - set(parts)))} {kind}")
        out[f"vit.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _from_transformers(sd: StateDict, arch: AudioViTConfig, files: List[Path], hf: Optional[Dict[str, Any]]) -> Weights:
    source = files[0]
    out = transformers_to_audiovit(sd, source)
    _require(out, ("vit.cls_token", "vit.reg_token", "vit.pos_embed", "vit.patch_embed.proj.weight"), source)
    config = _vit_shape(out, "vit.", arch, source)
    eps = 1e-12  # ASTConfig's default
    if hf is not None:
        where = files[-1]
        if hf.get("model_type") not in (None, "audio-spectrogram-transformer"):
            raise DataError(f"{where}: model_type {hf.get('model_type')!r} is not an AST")
        if hf.get("hidden_act", "gelu") != "gelu":
            raise DataError(f"{where}: hidden_act {hf['hidden_act']!r}; prunebench's blocks use exact gelu")
        config.update(num_heads=hf.get("num_attention_heads", arch.num_heads), fstride=hf.get("frequency_stride", 10),
                      tstride=hf.get("time_stride", 10), num_mel_bins=hf.get("num_mel_bins", 128))
        eps = hf.get("layer_norm_eps", eps)
    config.update(distillation_token=True, pooling="prefix", final_norm=True, norm_eps=eps, head_norm_eps=eps)
    check_structure(config, arch, source)
    probe = AudioViTConfig(**{**arch.to_dict(), **config})
    grid = _grid_of(out["vit.pos_embed"].shape[1] - 2, probe, source)
    frames = hf.get("max_length") if hf is not None else None
    if frames is None or grid_for((probe.num_mel_bins, frames), _pair(probe.patch_size), (probe.fstride, probe.tstride)) != grid:
        frames = _frames_for(grid[1], probe)
    has_head = "head.1.weight" in out
    config.update(target_frames=frames, num_classes=out["head.1.weight"].shape[0] if has_head else arch.num_classes)
    meta = {"class_names": [hf["id2label"][k] for k in sorted(hf["id2label"], key=int)]} if hf and hf.get("id2label") else {}
    return Weights("transformers-ast", out, config, has_head, grid, files, meta)


def audiomae_to_audiovit(sd: StateDict, freq_rows: int, source: Path) -> Tuple[StateDict, Tuple[int, int]]:
    """AudioMAE keys -> AudioViT keys, its (time, freq) layout transposed to ours; and the grid."""
    out: StateDict = {}
    for key, value in sd.items():
        if key.startswith(("decoder", "mask_token")) or key in ("norm.weight", "norm.bias"):
            continue  # MAE pretraining: decoder, mask token; the encoder norm that fine-tuning drops
        if key.startswith("fc_norm."):
            out["head.0." + key[len("fc_norm."):]] = value
        elif key.startswith("head."):
            out["head.1." + key[len("head."):]] = value
        else:
            out["vit." + key] = value
    _require(out, ("vit.cls_token", "vit.pos_embed", "vit.patch_embed.proj.weight"), source)
    n = out["vit.pos_embed"].shape[1] - 1
    if n % freq_rows:
        raise DataError(f"{source}: {n} positional embeddings do not fill a grid of {freq_rows} frequency rows")
    grid = (freq_rows, n // freq_rows)
    # AudioMAE's input is (time, freq): conv kernel (d, 1, t, f) and patches time-major.
    out["vit.patch_embed.proj.weight"] = out["vit.patch_embed.proj.weight"].transpose(-1, -2).contiguous()
    pos = out["vit.pos_embed"]
    patches = pos[:, 1:].reshape(1, grid[1], grid[0], -1).transpose(1, 2).reshape(1, n, -1)
    out["vit.pos_embed"] = torch.cat([pos[:, :1], patches], dim=1).contiguous()
    return out, grid


def _from_audiomae(sd: StateDict, arch: AudioViTConfig, files: List[Path]) -> Weights:
    source = files[0]
    if "norm.weight" in sd and "fc_norm.weight" not in sd and "head.weight" in sd:
        raise DataError(f"{source}: an AudioMAE model fine-tuned with CLS pooling (norm + head, no fc_norm); "
                        f"prunebench supports AudioMAE's mean-pooled (global_pool) models")
    if ("head.weight" in sd) != ("fc_norm.weight" in sd):
        raise DataError(f"{source}: AudioMAE checkpoint has {'head but no fc_norm' if 'head.weight' in sd else 'fc_norm but no head'}")
    patch = sd["patch_embed.proj.weight"].shape[-1]
    config: Dict[str, Any] = {"embed_dim": sd["pos_embed"].shape[-1], "patch_size": patch, "fstride": patch, "tstride": patch,
                              "distillation_token": False, "pooling": "mean", "final_norm": False}
    check_structure(config, arch, source)
    freq_rows = grid_for((arch.num_mel_bins, patch), (patch, patch), (patch, patch))[0]
    out, grid = audiomae_to_audiovit(sd, freq_rows, source)
    config.update(_vit_shape(out, "vit.", arch, source), norm_eps=1e-6, head_norm_eps=1e-6)
    has_head = "head.1.weight" in out
    config.update(target_frames=_frames_for(grid[1], arch), num_classes=out["head.1.weight"].shape[0] if has_head else arch.num_classes)
    return Weights("audiomae", out, config, has_head, grid, files, {"pretrained": not has_head})


def _from_timm_vit(sd: StateDict, arch: AudioViTConfig, files: List[Path]) -> Weights:
    """An ImageNet ViT/DeiT as AST's starting point: the patch conv's RGB filters summed into one
    channel; the (square) position grid is adapted to the audio grid when the model is built."""
    source = files[0]
    out: StateDict = {}
    for key, value in sd.items():
        if key.startswith(("head.", "head_dist.")):
            continue  # ImageNet classifiers
        out["vit." + (key if key != "dist_token" else "reg_token")] = value
    _require(out, ("vit.cls_token", "vit.pos_embed", "vit.patch_embed.proj.weight"), source)
    out["vit.patch_embed.proj.weight"] = out["vit.patch_embed.proj.weight"].sum(dim=1, keepdim=True)
    config = _vit_shape(out, "vit.", arch, source)
    prefix = 1 + ("vit.reg_token" in out)
    config.update(distillation_token=prefix == 2)
    check_structure(config, arch, source)
    n = out["vit.pos_embed"].shape[1] - prefix
    side = int(round(n ** 0.5))
    if side * side != n:
        raise DataError(f"{source}: {n} positional embeddings are not a square ImageNet grid")
    return Weights("timm-vit", out, config, False, (side, side), files)


# -- shapes ----------------------------------------------------------------------------------
def _vit_shape(sd: StateDict, prefix: str, arch: AudioViTConfig, source: Path) -> Dict[str, Any]:
    """Structure read off the tensors: width, depth, MLP ratio, patch size."""
    depth = len({int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"blocks\.(\d+)\.", k)] if m})
    width = sd[prefix + "pos_embed"].shape[-1]
    config: Dict[str, Any] = {"embed_dim": width, "depth": depth, "patch_size": sd[prefix + "patch_embed.proj.weight"].shape[-1]}
    fc1 = sd.get(prefix + "blocks.0.mlp.fc1.weight")
    if fc1 is not None:
        config["mlp_ratio"] = fc1.shape[0] / width
    check_structure(config, arch, source)
    return config


def check_structure(config: Dict[str, Any], arch: AudioViTConfig, source: Path) -> None:
    """One line naming the first architectural field where the weights and the model differ."""
    for key in STRUCTURAL:
        if key in config and config[key] != getattr(arch, key):
            raise DataError(
                f"{source}: the weights have {key}={config[key]!r}, model {arch.name!r} has {getattr(arch, key)!r}"
                f"{_suggest({k: v for k, v in config.items() if k in STRUCTURAL})}"
            )


def _grid_of(n_patches: int, arch: AudioViTConfig, source: Path) -> Tuple[int, int]:
    f = grid_for((arch.num_mel_bins, arch.patch_size), _pair(arch.patch_size), (arch.fstride, arch.tstride))[0]
    if n_patches % f:
        raise DataError(
            f"{source}: {n_patches} positional embeddings do not fill a grid of {f} frequency rows "
            f"(stride {arch.fstride} of model {arch.name!r}): wrong stride?"
        )
    return f, n_patches // f


def _frames_for(columns: int, arch: AudioViTConfig) -> int:
    """A frame count giving `columns` patch columns: the model's own if it does, else the multiple
    of 16 in range (1024, 512, 128 for AST's and AudioMAE's lengths), else the smallest."""
    patch, stride = arch.patch_size, arch.tstride
    if grid_for((arch.num_mel_bins, arch.target_frames), _pair(patch), (arch.fstride, stride))[1] == columns:
        return arch.target_frames
    lo = (columns - 1) * stride + patch
    for frames in range(lo, lo + stride):
        if frames % 16 == 0:
            return frames
    return lo


def _strides_in_name(path: Path) -> Optional[Tuple[int, int]]:
    """AST names its checkpoints <data>_<fstride>_<tstride>_<score>.pth."""
    match = re.search(r"_(\d{1,2})_(\d{1,2})_[\d.]+$", path.stem)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _suggest(fields: Dict[str, Any]) -> str:
    """' (model X fits these weights)' for registered models whose structure matches."""
    from prunebench.models.registered import registered_config
    from prunebench.core.registry import MODELS

    fits = []
    for name in MODELS.names():
        try:
            config = registered_config(name)
        except Exception:  # a plugin factory that cannot build on the meta device
            continue
        if config.family == "vit" and all(getattr(config, k) == v for k, v in fields.items()):
            fits.append(name)
    return f" (registered models that fit: {', '.join(fits)})" if fits else ""


def _require(sd: StateDict, keys: Tuple[str, ...], source: Path) -> None:
    missing = [k for k in keys if k not in sd]
    if missing:
        raise DataError(f"{source}: missing {', '.join(missing)}")


def _pair(value: Any) -> Tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
