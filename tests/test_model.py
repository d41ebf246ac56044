import math

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from prunebench.measure.macs import model_macs
from prunebench.method_api import default_reduction_layers, kept_count
from prunebench.core.registry import METHODS

from conftest import TINY


def fbank(batch=3, frames=128, seed=0):
    return torch.randn(batch, frames, 128, generator=torch.Generator().manual_seed(seed))


def test_model_shapes_and_prefix_tokens(tiny_model):
    assert tiny_model.num_prefix_tokens == 2
    assert tiny_model.grid == (8, 8)
    logits, state = tiny_model.forward_with_state(fbank(), METHODS.get("none")())
    assert logits.shape == (3, 5)
    assert [t.attention_tokens for t in state.trace] == [66] * 4


def test_topk_keep_rate_one_reproduces_none(tiny_model):
    with torch.inference_mode():
        a = tiny_model(fbank(), METHODS.get("none")())
        b = tiny_model(fbank(), METHODS.get("topk")(keep_rate=1.0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("keep_rate", [0.9, 0.7, 0.5, 0.25])
def test_topk_schedule_is_ceil_k_n_per_stage(tiny_model, keep_rate):
    method = METHODS.get("topk")(keep_rate=keep_rate)
    _, state = tiny_model.forward_with_state(fbank(), method, track_provenance=True)
    layers = default_reduction_layers(4)
    n = 64
    for i, block in enumerate(state.trace):
        assert block.attention_tokens == n + 2
        if i in layers:
            n = math.ceil(keep_rate * n - 1e-9)
        assert block.mlp_tokens == n + 2
    # provenance: each survivor holds exactly one original patch, all in range, prefix untouched
    assert (state.kept_patch_mask().sum(dim=1) == n).all()
    assert state.owner.max() < n and state.owner.min() >= -1


def test_topk_keeps_the_patches_cls_attends_to(tiny_model):
    """Direct reference: the kept set after the first stage equals the top ceil(kN) of the CLS row."""
    from prunebench.models.attention import attention_forward

    method = METHODS.get("topk")(keep_rate=0.5, layers=[0])
    x_in = fbank(batch=2)
    _, state = tiny_model.forward_with_state(x_in, method, track_provenance=True)
    vit = tiny_model.vit
    x = tiny_model._add_prefix_and_positions(vit.patch_embed(x_in.transpose(1, 2).unsqueeze(1)), tiny_model.grid)
    block = vit.blocks[0]
    h = block.norm1(x)
    qkv = block.attn.qkv(h).reshape(2, 66, 3, 2, 32).permute(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]
    attn = ((q @ k.transpose(-2, -1)) * block.attn.scale).softmax(-1)  # full N x N, the slow way
    cls_row = attn[:, :, 0, 2:].mean(dim=1)
    expected = torch.zeros(2, 64, dtype=torch.bool)
    expected.scatter_(1, cls_row.topk(32, dim=1).indices, True)
    assert torch.equal(state.kept_patch_mask(), expected)


def test_evit_fusion_keeps_sizes_and_provenance(tiny_model):
    method = METHODS.get("topk")(keep_rate=0.5, fuse=True)
    _, state = tiny_model.forward_with_state(fbank(), method, track_provenance=True)
    assert torch.equal(state.sizes.sum(dim=1), torch.full((3,), 66.0))
    assert (state.owner >= 0).all()  # every patch lives on, in a kept or the fused token


def test_kept_count_rounds_float_noise():
    assert kept_count(0.7, 10) == 7
    assert kept_count(0.5, 56) == 28
    assert kept_count(0.01, 10) == 1


def test_reduction_layers_scale_with_depth():
    assert default_reduction_layers(12) == (3, 6, 9)
    assert default_reduction_layers(6) == (1, 3, 4)


@pytest.mark.parametrize("spec", [
    ("none", {}), ("topk", {"keep_rate": 0.5}), ("topk", {"keep_rate": 0.7, "fuse": True}),
    ("tome", {"keep_rate": 0.5}), ("tome", {"keep_rate": 0.2}), ("tome", {"schedule": "constant", "r": 12}),
    ("random", {"keep_rate": 0.5}), ("intensity", {"keep_rate": 0.5, "statistic": "std"}),
])
def test_analytic_macs_match_a_flop_counter(tiny_model, spec):
    """FlopCounterMode sees every matmul when attention runs on the math backend (the fused CPU
    kernel counts as 0 FLOPs); MACs = FLOPs / 2. Both count matrix products only, the method's
    own (CLS row, EViT fusion, ToMe's similarity matrix) included, so they agree exactly."""
    method = METHODS.get(spec[0])(**spec[1])
    x = fbank(batch=1)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), counter:
        _, state = tiny_model.forward_with_state(x, method)
    analytic = sum(model_macs(tiny_model, state.grid, state.trace).values())
    counted = counter.get_total_flops() / 2
    assert analytic == counted, (analytic, counted)


def test_topk_half_mac_ratio_includes_attention_terms(tiny_model):
    none_state = tiny_model.forward_with_state(fbank(1), METHODS.get("none")())[1]
    topk_state = tiny_model.forward_with_state(fbank(1), METHODS.get("topk")(keep_rate=0.5))[1]
    none = model_macs(tiny_model, none_state.grid, none_state.trace)
    topk = model_macs(tiny_model, topk_state.grid, topk_state.trace)
    # Attention sees a stage's pruning one block after the MLP does, so both shrink, differently.
    assert topk["attn_qk"] < none["attn_qk"] and topk["attn_av"] < none["attn_av"] and topk["mlp"] < none["mlp"]
    d, h = 64, 256
    n_attn = [66, 66, 34, 18]
    n_mlp = [66, 34, 18, 10]
    expected = 64 * 256 * d + sum(n * 3 * d * d + 2 * n * n * d + n * d * d for n in n_attn) \
        + sum(2 * n * d * h for n in n_mlp) + d * 5 + sum(n * d for n in n_attn[1:])
    assert sum(topk.values()) == expected
