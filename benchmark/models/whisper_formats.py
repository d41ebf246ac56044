"""Whisper encoder weights in the formats people have, recognised from the contents; the decoder ignored.

Formats (`Weights.format`):
- "ctranslate2": a CTranslate2 / faster-whisper folder (`model.bin` + `config.json`). The binary
  layout is CTranslate2's `ModelSpec._serialize` (python/ctranslate2/specs/model_spec.py, binary
  version 6; also docs/design.md of OpenNMT/CTranslate2): uint32 version, string spec name,
  uint32 revision, uint32 variable count, then per variable a string name, uint8 rank, rank x
  uint32 dims, uint8 dtype id (float32, int8, int16, int32, float16, bfloat16), uint32 byte count
  and the raw little-endian bytes; then uint32 alias count and (alias, target) string pairs. A
  string is a uint16 length (NUL included), the UTF-8 bytes and a NUL. Quantised weights carry a
  `<name>_scale` (int8: per output row, int16: one number): value = stored / scale. Names:
  `encoder/conv1/weight`, `encoder/layer_N/self_attention/linear_0` (q, k, v fused),
  `.../linear_1` (out), `.../layer_norm/{gamma,beta}`, `encoder/layer_N/ffn/linear_{0,1}`,
  `encoder/layer_norm`, `encoder/position_encodings/encodings`, `encoder/num_heads`.
- "transformers-whisper": Transformers' `WhisperModel` (`encoder.layers.N.self_attn.q_proj`),
  `WhisperForConditionalGeneration` (the same under `model.`) or `WhisperForAudioClassification`
  (`encoder.*` + `projector` + `classifier`: both linear around a mean, so they fold exactly into
  one linear head); a folder with config.json and model.safetensors / pytorch_model.bin, or a file.
- "openai-whisper": openai-whisper's `.pt` (`dims` + `model_state_dict`, `encoder.blocks.N.attn.query`).
- "prunebench": our own checkpoint of a Whisper model (a probe or a fine-tuned encoder with its head).
"""
from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Tuple

import numpy as np
import torch

from prunebench.core.errors import DataError
from prunebench.models.weights import (CHECKPOINT_FORMAT, StateDict, Weights, load_file as _load_file,
                                       read_json as _read_json, register_family_reader, unwrap as _unwrap, weight_files)
from prunebench.models.split_file import SplitFile, find_split

CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
CT2_VERSIONS = (5, 6)
STRUCTURAL = ("embed_dim", "depth", "num_heads", "num_mel_bins", "mlp_ratio")


def is_ctranslate2(path: "Path | SplitFile") -> bool:
    """A CTranslate2 model.bin starts with its binary version and a spec name string, not a zip,
    pickle or safetensors header."""
    try:
        with _open(path) as f:
            head = f.read(8)
    except OSError:
        return False
    if len(head) < 8:
        return False
    version, length = struct.unpack("<IH", head[:6])
    return version in CT2_VERSIONS and 0 < length < 256


@register_family_reader("whisper")
def read_whisper_weights(path: Path, arch) -> Weights:
    """The Whisper encoder weights at `path` (file or folder) in WhisperEncoder names, checked
    against the registered config `arch` (width, depth, heads, mel bins)."""
    weight_file, config_file = whisper_files(Path(path))
    files = _listed(weight_file) + ([config_file] if config_file else [])
    if is_ctranslate2(weight_file):
        weights = _from_ctranslate2(weight_file, files)
    else:
        raw = _load_file(weight_file)
        if isinstance(raw, dict) and raw.get("format") == CHECKPOINT_FORMAT:
            weights = _from_prunebench(raw, files)
        elif isinstance(raw, dict) and "dims" in raw and "model_state_dict" in raw:
            weights = _from_openai(raw, files)
        else:
            hf = _read_json(config_file) if config_file else None
            weights = _from_transformers(_unwrap(raw, weight_file), files, hf)
    check_structure(weights.config, arch, _shown(weight_file))
    return weights


def whisper_files(path: Path) -> Tuple["Path | SplitFile", Optional[Path]]:
    """(weights, config.json or None); a CTranslate2 folder's model.bin is its weights, whole or
    split into parts (model.bin.part1, ...: read in place, see split_file.py)."""
    if path.is_dir():
        config = path / "config.json"
        config = config if config.is_file() else None
        if (path / "model.bin").is_file() and is_ctranslate2(path / "model.bin"):
            return path / "model.bin", config
        split = ctranslate2_split(path)
        if split is not None:
            return split, config
    return weight_files(path)


def ctranslate2_split(folder: Path) -> Optional[SplitFile]:
    """The split model.bin of a CTranslate2 folder (its later parts beside it, or in the further
    packages of its zoo entry), or None."""
    from prunebench.models.zoo import split_part_folders

    if not (folder / "model.bin.part1").is_file():
        return None
    more, hint = split_part_folders(folder)
    return find_split(folder, "model.bin", more, hint)


def check_structure(config: Dict[str, Any], arch, source: Path) -> None:
    for key in STRUCTURAL:
        if key in config and config[key] != getattr(arch, key):
            raise DataError(f"{source}: the weights have {key}={config[key]!r}, model {arch.name!r} has "
                            f"{getattr(arch, key)!r}{_suggest(config)}")


def _suggest(config: Dict[str, Any]) -> str:
    from prunebench.core.registry import MODELS
    from prunebench.models.registered import registered_config

    fits = [name for name in MODELS.names() if name.startswith("whisper-")
            and all(getattr(registered_config(name), k) == config[k] for k in STRUCTURAL if k in config)]
    return f" (registered models that fit: {', '.join(fits)})" if fits else ""


# -- CTranslate2 --------------------------------------------------------------------------------
def read_ctranslate2(path: "Path | SplitFile", prefix: str = "") -> Dict[str, torch.Tensor]:
    """Every variable of a CTranslate2 model.bin (a file, or a split file read across its parts)
    whose name starts with `prefix`, as a tensor (quantised ones dequantised); aliases resolved.
    The other variables' headers are checked and their data skipped, not read."""
    source = path if isinstance(path, SplitFile) else SplitFile(Path(path).name, (Path(path),), ())
    reader = _Reader(source)
    with source.open() as f:
        reader.f = f
        version = reader.unpack("<I")[0]
        if version not in CT2_VERSIONS:
            raise DataError(f"{reader.where(0)}: CTranslate2 binary version {version}; prunebench reads versions "
                            f"{CT2_VERSIONS}")
        reader.string()  # spec name
        reader.unpack("<I")  # revision
        count = reader.unpack("<I")[0]
        raw: Dict[str, np.ndarray] = {}
        for _ in range(count):
            name, array = reader.variable(prefix)
            if array is not None:
                raw[name] = array
        for _ in range(reader.unpack("<I")[0]):
            alias, target = reader.string(), reader.string()
            if target in raw:
                raw[alias] = raw[target]
    return _dequantise(raw)


class _Reader:
    """CTranslate2's binary layout read from one stream; each error names the file (the part of a
    split file) and the offset where the bytes stop making sense."""

    def __init__(self, source: SplitFile):
        self.source, self.size, self.f = source, source.size, None

    def where(self, offset: int) -> str:
        part, inside = self.source.locate(offset)
        if len(self.source.parts) == 1:
            return f"{part}"
        return f"{part} (byte {inside} of this part, {offset} of the joined {self.source.name})"

    def ended(self, what: str, needed: int) -> DataError:
        """The stream ended inside `what`: a missing next part, or a truncated last one."""
        at = self.f.tell()
        left = self.size - at
        s = self.source
        if len(s.parts) > 1 or s.parts[0].name != s.name:  # a split file
            if s.last_part_is_full():
                folders = ", ".join(str(f) for f in s.searched)
                return DataError(f"{s.parts[-1]}: the model continues past this part ({what} needs {needed} bytes at "
                                 f"byte {at} of the joined {s.name}, {left} left) and {s.next_part} is not in "
                                 f"{folders}: a missing part" + (f" ({s.hint})" if s.hint else ""))
            part, inside = s.locate(at)
            return DataError(f"{s.parts[-1]}: truncated: {what} needs {needed} bytes at byte {inside} of this part "
                             f"({at} of the joined {s.name}), the part has {left} left")
        return DataError(f"{s.parts[0]}: truncated: {what} needs {needed} bytes at offset {at}, the file has {left} left")

    def read(self, n: int, what: str) -> bytes:
        if self.f.tell() + n > self.size:
            raise self.ended(what, n)
        return self.f.read(n)

    def skip(self, n: int, what: str) -> None:
        if self.f.tell() + n > self.size:
            raise self.ended(what, n)
        self.f.seek(n, 1)

    def unpack(self, fmt: str, what: str = "the header") -> tuple:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt), what))

    def string(self) -> str:
        length = self.unpack("<H", "a name")[0]
        return self.read(length, "a name")[:-1].decode("utf-8", errors="replace")

    def variable(self, prefix: str = "") -> Tuple[str, Optional[np.ndarray]]:
        """(name, values), or (name, None) for a name outside `prefix` (its data skipped)."""
        start = self.f.tell()
        name = self.string()
        what = f"variable {name!r}"
        rank = self.unpack("<B", what)[0]
        shape = self.unpack("<" + "I" * rank, what) if rank else ()
        dtype_id, nbytes = self.unpack("<B", what)[0], self.unpack("<I", what)[0]
        if dtype_id >= len(CT2_DTYPES):
            raise DataError(f"{self.where(start)}: {what} has unknown dtype id {dtype_id}" + MISALIGNED)
        dtype = CT2_DTYPES[dtype_id]
        itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
        expected = int(np.prod(shape)) if shape else 1
        if nbytes != expected * itemsize:
            raise DataError(f"{self.where(start)}: {what}: {nbytes} bytes for shape {tuple(shape)} of {dtype}"
                            + MISALIGNED)
        if not name.startswith(prefix):
            self.skip(nbytes, what)
            return name, None
        data = self.read(nbytes, what)
        if dtype == "bfloat16":
            array = (np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
        return name, array.reshape(shape)


MISALIGNED = " (not a CTranslate2 variable header: a damaged file, or a part before it truncated or out of order)"


def _open(path: "Path | SplitFile") -> BinaryIO:
    return path.open() if isinstance(path, SplitFile) else open(path, "rb")


def _listed(weights: "Path | SplitFile") -> List[Path]:
    return list(weights.parts) if isinstance(weights, SplitFile) else [weights]


def _shown(weights: "Path | SplitFile") -> Path:
    """The file an error names: a split file's first part."""
    return weights.parts[0] if isinstance(weights, SplitFile) else weights


def _dequantise(raw: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    out = {}
    for name, array in raw.items():
        if name.endswith("_scale"):
            continue
        scale = raw.get(name + "_scale")
        value = array.astype(np.float32)
        if scale is not None:
            scale = scale.astype(np.float32)
            value = value / (scale.reshape(-1, *([1] * (value.ndim - 1))) if scale.ndim else scale)
        out[name] = torch.from_numpy(np.ascontiguousarray(value))
    return out


def _from_ctranslate2(weights: "Path | SplitFile", files: List[Path]) -> Weights:
    v = read_ctranslate2(weights, prefix="encoder/")  # the decoder (two thirds of the bytes) is skipped
    path = _shown(weights)
    if "encoder/conv1/weight" not in v or "encoder/num_heads" not in v:
        raise DataError(f"{path}: a CTranslate2 model without a Whisper encoder (no encoder/conv1/weight); "
                        f"first variables: {', '.join(sorted(v)[:4])}")
    sd: StateDict = {}
    for i in (1, 2):
        sd[f"conv{i}.weight"], sd[f"conv{i}.bias"] = v[f"encoder/conv{i}/weight"], v[f"encoder/conv{i}/bias"]
    sd["positions"] = v["encoder/position_encodings/encodings"]
    sd["norm.weight"], sd["norm.bias"] = v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"]
    depth = _count(v, r"^encoder/layer_(\d+)/")
    for i in range(depth):
        at, ffn = f"encoder/layer_{i}/self_attention", f"encoder/layer_{i}/ffn"
        block = {
            "norm1": f"{at}/layer_norm", "attn.qkv": f"{at}/linear_0", "attn.proj": f"{at}/linear_1",
            "norm2": f"{ffn}/layer_norm", "mlp.fc1": f"{ffn}/linear_0", "mlp.fc2": f"{ffn}/linear_1",
        }
        for ours, theirs in block.items():
            norm = ours.startswith("norm")
            sd[f"blocks.{i}.{ours}.weight"] = _need(v, theirs + ("/gamma" if norm else "/weight"), path)
            sd[f"blocks.{i}.{ours}.bias"] = _need(v, theirs + ("/beta" if norm else "/bias"), path)
    heads = int(v["encoder/num_heads"].reshape(-1)[0])
    return _weights("ctranslate2", sd, files, heads)


# -- Transformers and openai-whisper --------------------------------------------------------------
_HF_BLOCK = {"self_attn_layer_norm": "norm1", "self_attn.out_proj": "attn.proj", "final_layer_norm": "norm2",
             "fc1": "mlp.fc1", "fc2": "mlp.fc2"}
_OPENAI_BLOCK = {"attn_ln": "norm1", "attn.out": "attn.proj", "mlp_ln": "norm2", "mlp.0": "mlp.fc1", "mlp.2": "mlp.fc2"}


def _from_transformers(sd_in: StateDict, files: List[Path], hf: Optional[Dict[str, Any]]) -> Weights:
    source = files[0]
    if hf is not None and hf.get("model_type") not in (None, "whisper"):
        raise DataError(f"{files[-1]}: model_type {hf.get('model_type')!r} is not a Whisper model")
    if hf is not None and hf.get("use_weighted_layer_sum"):
        raise DataError(f"{files[-1]}: use_weighted_layer_sum: a classifier over all layers; prunebench's head "
                        f"reads the last layer only")
    prefix = "model.encoder." if any(k.startswith("model.encoder.") for k in sd_in) else "encoder."
    enc = {k[len(prefix):]: t for k, t in sd_in.items() if k.startswith(prefix)}
    if "conv1.weight" not in enc:
        raise DataError(f"{source}: not a Whisper checkpoint (no {prefix}conv1.weight; first keys: "
                        f"{', '.join(sorted(sd_in)[:4])})")
    sd = _stem(enc, "embed_positions.weight", "layer_norm", source)
    for i in range(_count(enc, r"^layers\.(\d+)\.")):
        layer = f"layers.{i}."
        _qkv(sd, i, enc, layer + "self_attn.{}_proj", source)
        _block(sd, i, enc, layer, _HF_BLOCK, source)
    heads = hf.get("encoder_attention_heads") if hf else None
    weights = _weights("transformers-whisper", sd, files, heads)
    if "classifier.weight" in sd_in:
        _fold_classifier(weights, sd_in, source)
    return weights


def _from_openai(raw: Dict[str, Any], files: List[Path]) -> Weights:
    source = files[0]
    dims, sd_in = raw["dims"], raw["model_state_dict"]
    enc = {k[len("encoder."):]: t for k, t in sd_in.items() if k.startswith("encoder.")}
    if "conv1.weight" not in enc:
        raise DataError(f"{source}: an openai-whisper file without encoder.conv1.weight")
    sd = _stem(enc, "positional_embedding", "ln_post", source)
    for i in range(_count(enc, r"^blocks\.(\d+)\.")):
        _qkv(sd, i, enc, f"blocks.{i}.attn." + "{}", source, names=("query", "key", "value"))
        _block(sd, i, enc, f"blocks.{i}.", _OPENAI_BLOCK, source)
    return _weights("openai-whisper", sd, files, dims.get("n_audio_head"))


def _stem(enc: StateDict, positions: str, final_norm: str, source: Path) -> StateDict:
    sd: StateDict = {}
    for key in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"):
        sd[key] = _need(enc, key, source)
    sd["positions"] = _need(enc, positions, source)
    sd["norm.weight"], sd["norm.bias"] = _need(enc, final_norm + ".weight", source), _need(enc, final_norm + ".bias", source)
    return sd


def _qkv(sd: StateDict, i: int, enc: StateDict, pattern: str, source: Path, names=("q", "k", "v")) -> None:
    """Separate q, k, v projections stacked into timm's qkv; Whisper's key has no bias (zeros)."""
    q, k, v = (_need(enc, pattern.format(n) + ".weight", source) for n in names)
    sd[f"blocks.{i}.attn.qkv.weight"] = torch.cat([q, k, v])
    q_bias, v_bias = _need(enc, pattern.format(names[0]) + ".bias", source), _need(enc, pattern.format(names[2]) + ".bias", source)
    k_bias = enc.get(pattern.format(names[1]) + ".bias", torch.zeros_like(q_bias))
    sd[f"blocks.{i}.attn.qkv.bias"] = torch.cat([q_bias, k_bias, v_bias])


def _block(sd: StateDict, i: int, enc: StateDict, layer: str, names: Dict[str, str], source: Path) -> None:
    for theirs, ours in names.items():
        for kind in ("weight", "bias"):
            sd[f"blocks.{i}.{ours}.{kind}"] = _need(enc, f"{layer}{theirs}.{kind}", source)


def _fold_classifier(weights: Weights, sd_in: StateDict, source: Path) -> None:
    """WhisperForAudioClassification: classifier(mean(projector(h))) = (Wc Wp) mean(h) + (Wc bp + bc)."""
    wp, bp = _need(sd_in, "projector.weight", source), _need(sd_in, "projector.bias", source)
    wc, bc = sd_in["classifier.weight"], _need(sd_in, "classifier.bias", source)
    weights.state_dict["head.weight"] = (wc.double() @ wp.double()).float()
    weights.state_dict["head.bias"] = (wc.double() @ bp.double() + bc.double()).float()
    weights.config["num_classes"] = wc.shape[0]
    weights.has_head = True


# -- ours -----------------------------------------------------------------------------------------
def _from_prunebench(payload: Dict[str, Any], files: List[Path]) -> Weights:
    config = dict(payload["config"])
    if "positions" not in config:
        raise DataError(f"{files[0]}: a prunebench checkpoint of {config.get('name')!r}, not of a Whisper model")
    config.pop("name", None)
    sd = payload["state_dict"]
    return Weights("prunebench", sd, config, "head.weight" in sd, (1, config.get("positions", 1500)), files,
                   meta=dict(payload.get("meta") or {}))


# -- shared ---------------------------------------------------------------------------------------
def _weights(fmt: str, sd: StateDict, files: List[Path], heads: Optional[int]) -> Weights:
    sd = {k: v.float().contiguous() for k, v in sd.items()}
    width, mels = sd["conv1.weight"].shape[0], sd["conv1.weight"].shape[1]
    depth = _count(sd, r"^blocks\.(\d+)\.")
    config: Dict[str, Any] = {"embed_dim": width, "depth": depth, "num_mel_bins": mels,
                              "positions": sd["positions"].shape[0],
                              "mlp_ratio": sd["blocks.0.mlp.fc1.weight"].shape[0] / width if depth else 4.0}
    if heads:
        config["num_heads"] = int(heads)
    return Weights(fmt, sd, config, False, (1, config["positions"]), files)


def _count(sd: Dict[str, Any], pattern: str) -> int:
    found = {int(m.group(1)) for k in sd for m in [re.match(pattern, k)] if m}
    return max(found) + 1 if found else 0


def _need(sd: Dict[str, Any], key: str, source: Path) -> torch.Tensor:
    if key not in sd:
        raise DataError(f"{source}: missing {key}")
    return sd[key]
