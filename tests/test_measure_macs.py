"""MACs: what records and `profile` report equals the analytic count, and counters agree.

Every registered method is covered, built-in or added later: its keep rates (0.9, 0.7, 0.5 when it
has a `keep_rate`) and each boolean option switched from its default.
"""
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from prunebench.measure.counters import COUNTERS, check_macs, count_macs
from prunebench.measure.evaluate import evaluate
from prunebench.data.features import FeatureSet
from prunebench.measure.macs import FLOPS_PER_MAC, forward_macs, model_macs
from prunebench.models import build_model
from prunebench.measure.profile import macs_per_sample
from prunebench.core.registry import METHODS
from prunebench.measure.shapes import bucket_shape, make_batch, nominal_shape

from conftest import TINY

KEEP_RATES = (0.9, 0.7, 0.5)


def method_variants():
    """(name, params) for every registered method: keep rates, and each bool option flipped."""
    variants = []
    for entry in METHODS.entries():
        defaults = dict(getattr(entry.obj, "defaults", {}))
        bases = [{"keep_rate": k} for k in KEEP_RATES] if "keep_rate" in defaults else [{}]
        variants += [(entry.name, p) for p in bases]
        for key, value in defaults.items():
            if isinstance(value, bool):
                variants.append((entry.name, {**bases[-1], key: not value}))
    return variants


VARIANTS = method_variants()
IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in VARIANTS]


def tiny(pooling="prefix"):
    """AST-style (CLS + distillation, prefix pooling) or AudioMAE-style (CLS, mean pooling)."""
    torch.manual_seed(0)
    return build_model("ast-tiny" if pooling == "prefix" else "audiomae-tiny", num_classes=5, **TINY).eval()


def test_the_registry_variants_cover_the_builtin_methods():
    names = {name for name, _ in VARIANTS}
    assert {"none", "topk"} <= names
    assert ("topk", {"keep_rate": 0.5, "fuse": True}) in VARIANTS


@pytest.mark.parametrize("pooling", ["prefix", "mean"])
@pytest.mark.parametrize("name,params", VARIANTS, ids=IDS)
def test_counters_agree_with_the_analytic_count(name, params, pooling):
    """Both counters, attention on the math backend, within 1% of the analytic count; on a
    native-length bucket (positions cropped) or a padded one (valid frames passed)."""
    model = tiny(pooling)
    method = METHODS.get(name)(**params)
    shape = bucket_shape(128, 0.9, "native") if pooling == "prefix" else bucket_shape(128, 0.5, "pad")
    (check,) = check_macs(model, [method], shape)
    assert set(check.counted) == set(COUNTERS)
    assert check.ok, (shape.label, check.to_dict())


@pytest.mark.parametrize("name,params", VARIANTS, ids=IDS)
def test_reported_macs_equal_the_analytic_count(name, params):
    """What a record stores (evaluate, averaged over clips of two lengths) and what `profile`
    reports equal the analytic count of a single forward, within 0.5%."""
    model = tiny()
    method = METHODS.get(name)(**params)
    shapes = [bucket_shape(128, 1.28, "pad"), bucket_shape(128, 0.5, "native")]
    analytic = {}
    for shape in shapes:
        fbank, valid = make_batch(shape, 1, 128)
        analytic[shape.label] = forward_macs(model, method, fbank, valid)
        reported = macs_per_sample(model, method, shape)
        assert abs(sum(reported.values()) - sum(analytic[shape.label].values())) <= 0.005 * sum(analytic[shape.label].values())

    # A feature set of 3 clips at the nominal length and 1 at the native length: the record's
    # per-sample MACs are the clip-weighted mean of the two shapes' counts.
    long, short = (make_batch(s, n, 128, seed=1)[0] for s, n in zip(shapes, (3, 1)))
    features = FeatureSet([f"c{i}" for i in range(4)], list(long) + list(short),
                          torch.tensor([shapes[0].valid_frames] * 3 + [shapes[1].valid_frames]), torch.tensor([0, 1, 2, 3]))
    ev = evaluate(model, method, features, "accuracy", batch_size=2, device="cpu")
    for part, value in ev.macs_by_part.items():
        expected = (3 * analytic[shapes[0].label][part] + analytic[shapes[1].label][part]) / 4
        assert abs(value - expected) <= 0.005 * max(expected, 1), part


def test_flops_are_labelled_twice_the_macs():
    from prunebench.measure.profile import _rows
    from prunebench.measure.throughput import Throughput

    model = tiny()
    methods = [METHODS.get("none")(), METHODS.get("topk")(keep_rate=0.5)]
    shape = nominal_shape(128)
    macs = {m.id: macs_per_sample(model, m, shape) for m in methods}
    timing = {m.id: Throughput(10.0, 0.0, 2, 1, "cpu", "float32", 1, 1.0) for m in methods}
    for row in _rows("tiny", shape, methods, macs, [timing], [100.0], "float32"):
        assert row["units"] == "MAC" and row["flops_per_mac"] == 2
        assert row["flops_per_sample"] == FLOPS_PER_MAC * row["macs_per_sample"] == 2 * sum(row["macs_by_part"].values())


def test_fused_attention_is_invisible_to_the_flop_counter():
    """Why the check pins the math backend: on the fused CPU kernel, QK^T and AV count as 0."""
    model = tiny()
    method = METHODS.get("none")()
    fbank = make_batch(nominal_shape(128), 1, 128)[0]
    parts = forward_macs(model, method, fbank)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel([SDPBackend.FLASH_ATTENTION]), counter:
        model.forward_with_state(fbank, method)
    fused = counter.get_total_flops() / 2
    assert fused == pytest.approx(sum(parts.values()) - parts["attn_qk"] - parts["attn_av"], rel=1e-6)
    assert count_macs(model, method, fbank, None, "flop_counter") == pytest.approx(sum(parts.values()), rel=1e-6)


def test_ptflops_counts_products_not_bias_adds():
    """ptflops' aten backend as shipped adds one MAC per bias element; the check leaves those out,
    as the analytic count does (qkv, proj, fc1, fc2 per token, the patch embedding, the head)."""
    from ptflops.aten_engine import FlopCounterMode as PtflopsAtenMode

    model = tiny()
    method = METHODS.get("none")()
    fbank = make_batch(nominal_shape(128), 1, 128)[0]
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]):
        raw = PtflopsAtenMode()
        with raw:
            _, state = model.forward_with_state(fbank, method)
    d, hidden, tokens = 64, 256, 66
    bias_adds = 64 * d + 4 * tokens * (3 * d + d + hidden + d) + 5
    analytic = sum(model_macs(model, state.grid, state.trace).values())
    assert raw.complexity == analytic + bias_adds
    assert count_macs(model, method, fbank, None, "ptflops_aten") == analytic
