"""The method plugins pinned to slow, explicit references written here, plus property tests."""
import math
import random as pyrandom

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from prunebench.core.errors import ConfigError
from prunebench.method_api import default_reduction_layers, kept_count
from prunebench.models.attention import attention_forward
from prunebench.core.registry import METHODS
from prunebench.method_api.tokens import MergePlan, TokenState

from conftest import TINY

BUILTIN = ["none", "topk", "tome", "random", "intensity"]


def fbank(batch=3, frames=128, seed=0):
    return torch.randn(batch, frames, 128, generator=torch.Generator().manual_seed(seed))


def method(spec, **params):
    return METHODS.get(spec)(**params)


# -- ToMe ---------------------------------------------------------------------------------------
def reference_tome(keys, x, sizes, carried, r):
    """ToMe on one sample with lists and loops: returns the groups of old tokens each new token
    holds (in ToMe's order), their size-weighted values, sizes and carried values."""
    n = len(keys)
    a_tokens, b_tokens = list(range(0, n, 2)), list(range(1, n, 2))
    unit = [k / k.norm() for k in keys]
    best = {}
    for a in a_tokens:
        sims = [float(unit[a] @ unit[b]) for b in b_tokens]
        j = max(range(len(b_tokens)), key=lambda j: sims[j])
        best[a] = (sims[j], b_tokens[j])
    ranked = sorted(a_tokens, key=lambda a: -best[a][0])  # Python's sort is stable
    merging = ranked[:r]
    groups = {b: [b] for b in b_tokens}
    for a in merging:
        groups[best[a][1]].append(a)
    out = [[a] for a in a_tokens if a not in merging] + [groups[b] for b in b_tokens]
    total = [sum(float(sizes[t]) for t in g) for g in out]
    values = [sum(x[t] * sizes[t] for t in g) / s for g, s in zip(out, total)]
    carried_out = [sum(float(carried[t] * sizes[t]) for t in g) / s for g, s in zip(out, total)]
    return out, torch.stack(values), total, carried_out


@pytest.mark.parametrize("n,r", [(10, 3), (11, 5), (9, 1), (12, 6)])
def test_tome_matching_and_weighted_merge_match_a_loop(n, r):
    from prunebench.methods.tome import bipartite_soft_matching

    gen = torch.Generator().manual_seed(n * 10 + r)
    b, p, d, num_patches = 2, 2, 6, 40
    keys = torch.randn(b, n, 4, generator=gen)
    x = torch.randn(b, p + n, d, generator=gen)
    patch_sizes = torch.randint(1, 5, (b, n), generator=gen).float()
    patch_sizes[:, -1] += num_patches - patch_sizes.sum(1)  # the tokens hold all 40 patches
    assert (patch_sizes > 0).all()
    carried = torch.randn(b, n, generator=gen)
    # provenance consistent with the sizes: token t holds sizes[t] of the patches, shuffled
    owner = torch.stack([torch.repeat_interleave(torch.arange(n), s.long())[torch.randperm(num_patches, generator=gen)]
                         for s in patch_sizes])
    state = TokenState(num_prefix=p, num_patches=num_patches, grid=(5, 8), owner=owner.clone(),
                       sizes=torch.cat([torch.ones(b, p), patch_sizes], dim=1), carried={"v": carried.clone()})

    out = state.merge(x, bipartite_soft_matching(keys, r))

    assert torch.equal(out[:, :p], x[:, :p])
    for row in range(b):
        groups, values, total, carried_out = reference_tome(keys[row], x[row, p:], patch_sizes[row], carried[row], r)
        assert len(groups) == n - r == out.shape[1] - p
        assert torch.allclose(out[row, p:], values, atol=1e-6)
        assert state.sizes[row, p:].tolist() == total
        assert torch.allclose(state.carried["v"][row], torch.tensor(carried_out), atol=1e-6)
        for patch in range(num_patches):
            assert owner[row, patch].item() in groups[state.owner[row, patch].item()]


def test_bipartite_plan_sums_like_the_generic_scatter():
    from prunebench.methods.tome import bipartite_soft_matching

    keys = torch.randn(3, 15, 8)
    plan = bipartite_soft_matching(keys, 6)
    values = torch.randn(3, 15, 5)
    generic = MergePlan(plan.new_index, plan.num_out)
    assert torch.allclose(plan.sum(values), generic.sum(values), atol=1e-6)
    assert sorted(plan.new_index[0].tolist())[-1] == plan.num_out - 1


def test_generic_merge_plan_drops_tokens_marked_minus_one():
    plan = MergePlan(torch.tensor([[0, -1, 1, 0]]), 2)
    values = torch.tensor([[[1.0], [100.0], [2.0], [3.0]]])
    assert plan.sum(values).flatten().tolist() == [4.0, 2.0]


def test_merging_duplicates_with_proportional_attention_changes_nothing(tiny_model):
    """ToMe's exactness: two identical tokens merged into one of size 2, with log(size) added to
    the logits, give every other token the very same attention output."""
    attn = tiny_model.blocks[0].attn
    x = torch.randn(1, 7, 64)
    x[0, 5] = x[0, 4]
    merged = torch.cat([x[:, :5], x[:, 6:]], dim=1)
    sizes = torch.tensor([[1.0, 1, 1, 1, 2, 1]])
    with torch.inference_mode():
        full, _ = attention_forward(attn, x, 2)
        prop, _ = attention_forward(attn, merged, 2, bias=sizes.log()[:, None, None, :])
        plain, _ = attention_forward(attn, merged, 2)
    keep = [0, 1, 2, 3, 4, 6]
    assert torch.allclose(prop, full[:, keep], atol=1e-5)
    assert not torch.allclose(plain, full[:, keep], atol=1e-4)  # without it, the merge shows


def test_float_mask_runs_on_the_fused_cpu_kernel_and_matches_the_explicit_softmax(tiny_model):
    """Proportional attention must not push attention off the fused kernel `none` uses: with only
    the flash backend allowed, a float mask still runs (no silent math fallback)."""
    attn = tiny_model.blocks[1].attn
    x = torch.randn(2, 9, 64)
    sizes = torch.randint(1, 6, (2, 9)).float()
    bias = sizes.log()[:, None, None, :]
    with torch.inference_mode(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        out, _ = attention_forward(attn, x, 2, bias=bias)
    q, k, v = attn.qkv(x).reshape(2, 9, 3, 2, 32).permute(2, 0, 3, 1, 4)
    weights = ((q @ k.transpose(-2, -1)) * attn.scale + bias).softmax(-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 9, 64))
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize("num_prefix, with_bias", [(1, False), (2, True), (0, False)])
def test_received_attention_averages_patch_queries_over_patch_keys(tiny_model, num_prefix, with_bias):
    """Parity with the ECAI 2025 AudioMAE code, `attn[:, :, 1:, 1:].mean((1, 2))`: the full
    softmax rows, but only the patch queries' view of the patch keys; every index a patch token."""
    attn = tiny_model.blocks[1].attn
    x = torch.randn(3, 11, 64)
    bias = torch.rand(3, 11).log()[:, None, None, :] if with_bias else None
    with torch.inference_mode():
        _, info = attention_forward(attn, x, num_prefix, bias=bias, want_received=True, want_keys=True)
        q, k, _ = attn.qkv(x).reshape(3, 11, 3, 2, 32).permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * attn.scale + (0 if bias is None else bias)
        expected = logits.softmax(-1)[:, :, num_prefix:, num_prefix:].mean((1, 2))
    assert info.received.shape == (3, 11 - num_prefix) and info.keys.shape == (3, 11 - num_prefix, 32)
    assert torch.allclose(info.received, expected, atol=1e-6)
    assert torch.allclose(info.keys, k.mean(1)[:, num_prefix:])


@pytest.mark.parametrize("normalised", [False, True])
def test_topk_fuse_is_evits_unnormalised_weighted_sum(normalised):
    """EViT: `extra = sum(non_topk * non_topk_attn)` with the CLS attention as it is; the
    normalised average only when asked."""
    x = torch.randn(2, 1 + 6, 4)
    scores = torch.rand(2, 6)
    state = TokenState.start(2, 1, (1, 6), x.device, False)
    method = METHODS.get("topk")(keep_rate=0.5, fuse=True, fuse_normalised=normalised)
    out = method.select(x, state, scores, 3)
    order = scores.argsort(dim=1, descending=True)
    dropped = order[:, 3:]
    w = scores.gather(1, dropped)
    w = w / w.sum(1, keepdim=True) if normalised else w
    expected = (x[:, 1:].gather(1, dropped[..., None].expand(-1, -1, 4)) * w[..., None]).sum(1)
    assert out.shape == (2, 1 + 3 + 1, 4)
    assert torch.allclose(out[:, -1], expected, atol=1e-6)


@pytest.mark.parametrize("keep_rate", [0.9, 0.7, 0.5, 0.3, 0.1])
def test_tome_iso_schedule_matches_topk_token_counts(tiny_model, keep_rate):
    x = fbank(2)
    _, tome = tiny_model.forward_with_state(x, method("tome", keep_rate=keep_rate), track_provenance=True)
    _, topk = tiny_model.forward_with_state(x, method("topk", keep_rate=keep_rate))
    assert [(t.attention_tokens, t.mlp_tokens) for t in tome.trace] == [(t.attention_tokens, t.mlp_tokens) for t in topk.trace]
    assert torch.equal(tome.sizes.sum(dim=1), torch.full((2,), 66.0))
    assert tome.proportional_attention and (tome.owner >= 0).all()
    assert tome.kept_patch_mask() is None  # merging keeps every patch: no kept set to compare


def test_tome_constant_schedule_merges_r_in_every_block(tiny_model):
    _, state = tiny_model.forward_with_state(fbank(1), method("tome", schedule="constant", r=20))
    # at most half the patch tokens per round: 64 -> 44 -> 24 -> 12 -> 6
    assert [t.mlp_tokens - 2 for t in state.trace] == [44, 24, 12, 6]
    assert method("tome", schedule="constant", r=3).reduction_layers(12) == tuple(range(12))


def test_tome_config_errors_and_ids():
    assert method("tome").id == "tome-keep_rate=0.7"
    assert method("tome", schedule="constant", r=8).id == "tome-r=8-schedule=constant"
    with pytest.raises(ConfigError, match="needs r"):
        method("tome", schedule="constant")
    with pytest.raises(ConfigError, match="r belongs to schedule 'constant'"):
        method("tome", r=4)
    with pytest.raises(ConfigError, match="keep_rate belongs"):
        method("tome", schedule="constant", r=4, keep_rate=0.5)
    with pytest.raises(ConfigError, match="schedule must be one of"):
        method("tome", schedule="linear")


# -- random -------------------------------------------------------------------------------------
def kept(model, m, x, valid=None):
    with torch.inference_mode():
        return model.forward_with_state(x, m, valid, track_provenance=True)[1].kept_patch_mask()


def test_random_is_reproducible_and_ignores_global_rng_batch_and_content(tiny_model):
    x = fbank(4)
    torch.manual_seed(1)
    a = kept(tiny_model, method("random", keep_rate=0.5, seed=3), x)
    torch.manual_seed(2)
    b = kept(tiny_model, method("random", keep_rate=0.5, seed=3), x)
    assert torch.equal(a, b)
    assert torch.equal(kept(tiny_model, method("random", keep_rate=0.5, seed=3), x[:2]), a[:2])
    noisy = x + 0.5 * torch.randn_like(x)
    assert torch.equal(kept(tiny_model, method("random", keep_rate=0.5, seed=3), noisy), a)
    other = kept(tiny_model, method("random", keep_rate=0.5, seed=4), x)
    assert not torch.equal(other, a)
    assert not torch.equal(a[0], a[1])  # clips of a batch get draws of their own
    assert (a.sum(dim=1) == 8).all()  # 64 -> 32 -> 16 -> 8 at blocks 1, 2, 3 of 4


def test_random_selection_is_roughly_uniform(tiny_model):
    m = method("random", keep_rate=0.5, layers=[0])
    counts = kept(tiny_model, m, fbank(200, seed=1)).float().mean(dim=0)
    assert counts.min() > 0.3 and counts.max() < 0.7  # each patch kept about half the time


# -- intensity ----------------------------------------------------------------------------------
def reference_patch_means(x, valid, patch=16, stride=10):
    """Mean of each patch's real pixels, freq-major, by loops; -inf for all-padding patches."""
    b, frames, mel = x.shape
    nf, nt = (mel - patch) // stride + 1, (frames - patch) // stride + 1
    out = torch.empty(b, nf * nt)
    for row in range(b):
        for f in range(nf):
            for t in range(nt):
                cols = [c for c in range(t * stride, t * stride + patch) if c < valid[row]]
                block = x[row, cols, f * stride:f * stride + patch]
                out[row, f * nt + t] = block.mean() if cols else float("-inf")
    return out


def test_intensity_keeps_the_loudest_patches_by_a_direct_reference():
    from prunebench.models import build_model

    torch.manual_seed(0)
    model = build_model("ast-tiny", num_classes=5, **{**TINY, "depth": 2}, fstride=10, tstride=10).eval()
    assert model.grid == (12, 12)
    x, valid = fbank(3), torch.tensor([128, 70, 30])
    for row, v in enumerate(valid.tolist()):
        x[row, v:] = 0.62  # zero padding after normalisation: brighter than much of the audio
    scores = reference_patch_means(x, valid)
    m = method("intensity", keep_rate=0.4, layers=[0])
    k = kept_count(0.4, 144)
    expected = torch.zeros(3, 144, dtype=torch.bool).scatter_(1, scores.topk(k, dim=1).indices, True)
    got = kept(model, m, x, valid)
    assert torch.equal(got[:2], expected[:2])  # row 2 has fewer real patches than it keeps: ties
    real = scores > float("-inf")
    assert (got.sum(dim=1) == k).all()
    assert not (got & ~real)[:2].any()  # padding kept only when too few real patches remain (row 2)
    assert got[2, real[2]].all()


def test_intensity_selects_by_patch_id_not_sequence_index(tiny_model):
    """A single loud patch at (freq 3, time 5) is the one kept, not a neighbour two positions off
    (the shift a published implementation made by mixing in the prefix tokens)."""
    x = torch.zeros(1, 128, 128)
    x[0, 5 * 16:6 * 16, 3 * 16:4 * 16] = 5.0  # frames of time patch 5, mel bins of freq patch 3
    mask = kept(tiny_model, method("intensity", keep_rate=0.01, layers=[0]), x)
    assert mask.nonzero()[:, 1].tolist() == [3 * 8 + 5]


def test_intensity_std_prefers_busy_patches(tiny_model):
    x = torch.zeros(1, 128, 128)
    x[0, 16:32, 0:16] = torch.randn(16, 16)  # time patch 1, freq patch 0: varied
    x[0, 48:64, 32:48] = 3.0  # time patch 3, freq patch 2: loud but flat
    assert kept(tiny_model, method("intensity", keep_rate=0.01, layers=[0], statistic="std"), x).nonzero()[:, 1].tolist() == [1]
    assert kept(tiny_model, method("intensity", keep_rate=0.01, layers=[0]), x).nonzero()[:, 1].tolist() == [2 * 8 + 3]


# -- every method ---------------------------------------------------------------------------------
def random_config(name, rng):
    keep = round(rng.uniform(0.05, 1.0), 2)
    layers = sorted(rng.sample(range(4), rng.randint(1, 3)))
    if name == "none":
        return {}
    if name == "tome" and rng.random() < 0.4:
        return {"schedule": "constant", "r": rng.randint(0, 40)}
    params = {"keep_rate": keep, "layers": layers}
    if name == "topk":
        params["fuse"] = rng.random() < 0.5
    return params


@pytest.mark.parametrize("name", BUILTIN)
def test_properties_on_random_shapes(tiny_model, name):
    """Prefix never dropped, sizes sum to the patch count, indices in range, schedule held."""
    rng = pyrandom.Random(name)
    for case in range(4):
        params = random_config(name, rng)
        m = method(name, **params)
        frames, batch = rng.choice([40, 64, 97, 128, 150]), rng.randint(1, 3)
        valid = torch.tensor([rng.randint(16, frames) for _ in range(batch)])
        with torch.inference_mode():
            logits, state = tiny_model.forward_with_state(fbank(batch, frames, case), m, valid, track_provenance=True)
        assert torch.isfinite(logits).all(), params
        p, n = 2, state.num_patches
        assert n == 8 * ((frames - 16) // 16 + 1)
        layers = set(m.reduction_layers(4))
        for index, block in enumerate(state.trace):
            assert block.attention_tokens == n + p
            if index in layers:
                n = m.patch_tokens_after(n, index, tiny_model.dims(state.grid))
            assert block.mlp_tokens == n + p >= p + 1, params
        owner = state.owner
        assert owner.min() >= -1 and owner.max() < n
        if state.sizes is not None:
            assert torch.equal(state.sizes[:, :p], torch.ones(batch, p))
            assert torch.equal(state.sizes.sum(dim=1), torch.full((batch,), float(state.num_patches + p)))
            assert (owner >= 0).all()
        else:
            assert ((owner >= 0).sum(dim=1) == n).all()


@pytest.mark.parametrize("name", BUILTIN)
def test_validate_method_passes_every_builtin(name):
    from prunebench.run.validate import validate_method

    checks = validate_method(name)
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    assert {c.check for c in checks} == {"schedule", "macs", "deterministic", "batch", "padding", "identity"}


# -- the validator catches broken methods -------------------------------------------------------
def _broken_methods():
    from prunebench.method_api import ScorePruning

    class WrongOverhead(ScorePruning):
        name = "broken-macs"

        def score(self, x, state, info):
            return x[:, state.num_prefix:].norm(dim=-1)

        def overhead_macs(self, tokens, dims):
            return tokens * dims.embed_dim  # claims a CLS-row product it never computes

    class DropsCls(WrongOverhead):
        name = "broken-prefix"

        def overhead_macs(self, tokens, dims):
            return 0

        def reduce(self, x, state, info, layer, dims):
            x = super().reduce(x, state, info, layer, dims)
            return torch.cat([x[:, 1:2], x[:, 1:]], dim=1)  # CLS replaced by the dist token

    class Unseeded(DropsCls):
        name = "broken-rng"

        def reduce(self, x, state, info, layer, dims):
            return ScorePruning.reduce(self, x, state, info, layer, dims)

        def score(self, x, state, info):
            return torch.rand(x.shape[0], x.shape[1] - state.num_prefix)

    class NotIdentity(DropsCls):
        name = "broken-identity"

        def reduce(self, x, state, info, layer, dims):
            return ScorePruning.reduce(self, x, state, info, layer, dims) * 1.01

    return {"broken-macs": (WrongOverhead, "macs"), "broken-prefix": (DropsCls, "schedule"),
            "broken-rng": (Unseeded, "deterministic"), "broken-identity": (NotIdentity, "identity")}


@pytest.mark.parametrize("name", ["broken-macs", "broken-prefix", "broken-rng", "broken-identity"])
def test_validate_method_catches_a_broken_method(name):
    from prunebench.run.validate import validate_method

    cls, failing_check = _broken_methods()[name]
    METHODS.add(name, cls)
    try:
        checks = validate_method(name, {"keep_rate": 0.5})
    finally:
        METHODS.remove(name)
    assert failing_check in {c.check for c in checks if not c.passed}, checks


def test_validate_method_cli(capsys):
    from prunebench.cli import main

    assert main(["validate-method", "topk:keep_rate=0.5"]) == 0
    out = capsys.readouterr().out
    assert "topk-keep_rate=0.5" in out and "7 of 7 checks passed" in out
    assert main(["validate-method", "tomee"]) == 2
    assert "did you mean 'tome'" in capsys.readouterr().err
