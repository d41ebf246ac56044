"""The CPU execution paths (prunebench.models.execution): the fast path (oneDNN linears with packed
weights, GELU fused) gives the eager path's logits for every family, built-in method and keep rate;
it keeps the weights, their names and the methods' view; the path, dtype and CPU capability go into
records and their identity (records from before still resume on the eager path); a path or dtype
this machine cannot run is one line naming the setting, exit 2."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml

import prunebench.core.device as device_mod
import prunebench.models.execution as execution_mod
from prunebench.cli import main
from prunebench.core.errors import ConfigError
from prunebench.core.registry import METHODS
from prunebench.models import build_model, load_model
from prunebench.models.execution import FastLinear, FastMlp, execution_of, resolve_execution, set_execution
from prunebench.records.identity import Identity, identity_of, measure_part, same_measure
from prunebench.run.measure_settings import resolve_measure
from prunebench.run.validate import TINY_MODEL, validation_batch

from conftest import TINY

FAMILIES = ("ast-tiny", "vit-s14-dinov2", "whisper-tiny")
KEEP_RATES = (1.0, 0.7, 0.5)
MEASURE = {"device": "cpu", "dtype": "float32", "execution": "auto", "feature_dtype": "auto"}


def tiny(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, **TINY_MODEL).eval()
    with torch.no_grad():  # trained-looking scales: random heads and layer scales would hide differences
        for module in model.modules():
            if hasattr(module, "gamma"):
                module.gamma.fill_(0.5)
    return model


def methods():
    """Every built-in method at every keep rate (none once)."""
    out = []
    for name in METHODS.names():
        if name == "none":
            out.append(METHODS.get(name)())
        else:
            out += [METHODS.get(name)(keep_rate=rate) for rate in KEEP_RATES]
    return out


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request):
    """A tiny random model of one family, eager, and a deep copy of it on the fast path."""
    eager = tiny(request.param)
    return eager, set_execution(copy.deepcopy(eager), "fast")


def test_the_fast_path_substitutes_every_linear_and_gelu_mlp(pair):
    eager, fast = pair
    assert execution_of(eager) == "eager" and execution_of(fast) == "fast"
    assert not any(type(m) is torch.nn.Linear for m in fast.modules())
    mlps = [m for m in fast.modules() if isinstance(m, FastMlp)]
    assert len(mlps) == eager.config.depth and all(m.fc1.gelu == "none" for m in mlps)
    assert sum(isinstance(m, FastLinear) for m in fast.modules()) == 4 * eager.config.depth + 1  # qkv, proj, fc1, fc2; head
    # the same weights under the same names: the state dict, checkpoints and the weights guard see no change
    a, b = eager.state_dict(), fast.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dtype", ["float32"])
def test_fast_logits_equal_eager_for_every_method_and_keep_rate(pair, dtype):
    eager, fast = pair
    x, valid = validation_batch(eager)
    checked = 0
    with torch.inference_mode():
        for method in methods():
            want, state_e = eager.forward_with_state(x, method, valid)
            got, state_f = fast.forward_with_state(x, method, valid)
            diff = (got - want).abs().max().item()
            assert diff < 1e-4, f"{eager.config.name} {method.id}: max abs difference {diff:.2e}"
            assert [t.mlp_tokens for t in state_e.trace] == [t.mlp_tokens for t in state_f.trace]
            assert want.abs().max() > 1e-2  # real logits, not zeros on both sides
            checked += 1
    assert checked == 1 + 3 * (len(METHODS.names()) - 1)


def test_methods_see_the_same_tensors_on_both_paths(pair):
    """What a method is handed between attention and MLP (tokens, its scores) is the same to 1e-5."""
    eager, fast = pair
    x, valid = validation_batch(eager)
    seen = {"eager": [], "fast": []}
    for path, model in (("eager", eager), ("fast", fast)):
        method = METHODS.get("topk")(keep_rate=0.5)
        reduce = method.reduce

        def spy(tokens, state, info, *rest, _reduce=reduce, _seen=seen[path]):
            scores = next(t for t in (info.cls_scores, info.received, info.keys) if t is not None)
            _seen.append((tokens.clone(), scores.clone()))
            return _reduce(tokens, state, info, *rest)

        method.reduce = spy  # this instance only
        with torch.inference_mode():
            model(x, method)
    assert len(seen["eager"]) == len(seen["fast"]) > 0
    for (te, se), (tf, sf) in zip(seen["eager"], seen["fast"]):
        assert te.shape == tf.shape and (te - tf).abs().max() < 1e-5 and (se - sf).abs().max() < 1e-5


@pytest.mark.skipif("bfloat16" not in device_mod.cpu_dtypes(),
                    reason="this CPU has no native bfloat16 (oneDNN refuses the packed bfloat16 linear)")
def test_bfloat16_autocast_runs_the_fast_path_in_bfloat16():
    model = tiny("whisper-tiny")
    fast = set_execution(copy.deepcopy(model), "fast")
    x, _ = validation_batch(model)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want, got = model(x).float(), fast(x).float()
        assert fast.blocks[0].mlp.fc1(torch.randn(2, 3, model.config.embed_dim)).dtype == torch.bfloat16
    with torch.inference_mode():
        full = model(x)
    assert (got - want).abs().max() < 0.05 * full.abs().max()  # bfloat16 rounding, both paths
    assert (got - full).abs().max() > 0  # really computed in bfloat16


def test_a_changed_weight_is_repacked_and_gradients_take_the_eager_kernel():
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 4)
    fast = FastLinear(linear)
    x = torch.randn(3, 8)
    with torch.inference_mode():
        before = fast(x)
    with torch.no_grad():
        linear.weight.mul_(2)  # in place: the packed copy is stale
    with torch.inference_mode():
        assert torch.allclose(fast(x), torch.nn.functional.linear(x, linear.weight, linear.bias), atol=1e-6)
        assert not torch.allclose(fast(x), before)
    y = fast(x.requires_grad_())  # training: autograd through F.linear
    y.sum().backward()
    assert linear.weight.grad is not None and fast.weight is linear.weight


def test_eager_gives_back_the_very_modules_replaced():
    model = tiny("ast-tiny")
    originals = [type(m) for m in model.modules()]
    mlp = model.blocks[0].mlp
    set_execution(set_execution(model, "fast"), "eager")
    assert [type(m) for m in model.modules()] == originals and model.blocks[0].mlp is mlp


def test_load_model_is_fast_on_the_cpu_by_default_and_eager_one_setting_away():
    assert execution_of(load_model("ast-tiny", num_classes=3)) == "fast"
    assert execution_of(load_model("ast-tiny", num_classes=3, execution="eager")) == "eager"


def test_a_path_the_build_or_device_cannot_run_is_one_line(monkeypatch):
    with pytest.raises(ConfigError, match=r"measure: execution: fast asked, available here: eager \(the fast path is "
                                          r"for the CPU, this runs on cuda\)"):
        resolve_execution("fast", torch.device("cuda"))
    assert resolve_execution("auto", torch.device("cuda")) == "eager"
    assert resolve_execution("auto", torch.device("cpu"), compiled=True) == "eager"  # inductor cannot lower it
    with pytest.raises(ConfigError, match=r"--execution: fast asked, available here: eager \(torch.compile cannot"):
        resolve_execution("fast", torch.device("cpu"), "--execution", compiled=True)
    with pytest.raises(ConfigError, match="measure: execution: expected one of auto, fast, eager, got 'quick'"):
        resolve_execution("quick", torch.device("cpu"))
    monkeypatch.setattr(execution_mod, "fast_unavailable", lambda: "this torch build has no oneDNN (torch.backends.mkldnn)")
    with pytest.raises(ConfigError, match=r"load_model: execution: fast asked, available here: eager \(this torch "
                                          r"build has no oneDNN"):
        load_model("ast-tiny", num_classes=3, execution="fast")
    assert execution_of(load_model("ast-tiny", num_classes=3)) == "eager"  # auto says so: no error


def test_bfloat16_on_a_cpu_without_it_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(device_mod, "cpu_dtypes", lambda: ("float32",))
    with pytest.raises(ConfigError, match=r"measure: dtype: bfloat16 asked, this CPU runs float32 \(it lacks "
                                          r"avx512_bf16 / amx_bf16\)"):
        resolve_measure({**MEASURE, "dtype": "bfloat16"})
    assert main(["profile", "--model", "ast-tiny", "--device", "cpu", "--dtype", "bfloat16", "--no-memory"]) == 2
    assert "--dtype: bfloat16 asked, this CPU runs float32" in capsys.readouterr().err


def test_bfloat16_on_a_cpu_with_it_resolves(monkeypatch):
    monkeypatch.setattr(device_mod, "cpu_dtypes", lambda: ("float32", "bfloat16"))
    measure = resolve_measure({**MEASURE, "dtype": "bfloat16"})
    assert measure.block["dtype"] == "bfloat16" and measure.block["execution"] == "fast"


def test_the_measure_block_states_path_and_cpu_and_old_blocks_compare_as_eager():
    block = resolve_measure(MEASURE).block
    assert block["execution"] == "fast" and block["cpu"] == device_mod.cpu_capability()
    assert block["cpu"].split("+")[0] == torch.backends.cpu.get_cpu_capability().lower()
    old = measure_part("float32", "cpu", "float32")  # a record written before the fields existed
    eager = resolve_measure({**MEASURE, "execution": "eager"}).block
    assert "execution" not in old and same_measure(old, eager) and not same_measure(old, block)
    other = "avx2" if eager["cpu"] != "avx2" else "avx512"
    assert not same_measure(eager, {**eager, "cpu": other})  # two stated capabilities must agree
    ident = lambda measure: identity_of({"name": "m"}, {"name": "none", "params": {}},
                                        {"name": "t", "split": "s"}, measure, ["a"], 0)
    assert ident(old).differences(ident(eager)) == []
    assert ident(old).differences(ident(block)) == ['measure.execution: "eager" -> "fast"']
    assert ident(old).key != ident(eager).key  # stored keys are as they were written: only comparison is lenient
    assert isinstance(ident(old), Identity)


# -- a run ------------------------------------------------------------------------------------------
def write_config(path, root, measure):
    path.write_text(yaml.safe_dump({
        "seed": 0, "models": [{"name": "ast-tiny", "overrides": TINY}],
        "tasks": [{"name": "synth-esc", "root": str(root), "clips_per_fold": 1}],
        "methods": [{"name": "none"}, {"name": "topk", "keep_rate": 0.5}],
        "measure": {"batch_size": 4, "warmup": 1, "repeats": 1, "min_repeat_s": 0, **measure},
        "train": {"epochs": 1, "batch_size": 8, "crop_frames": 0, "full_length_epochs": 0},
    }))
    return path


def test_a_run_records_its_path_and_old_records_resume_on_the_eager_path(tmp_path, capsys):
    fast = write_config(tmp_path / "fast.yaml", tmp_path / "synth", {})
    out = tmp_path / "results"
    assert main(["run", "--config", str(fast), "--out", str(out), "--no-progress"]) == 0
    files = sorted(out.rglob("*.json"))
    docs = [json.loads(f.read_text()) for f in files]
    assert len(docs) == 2
    for doc in docs:
        assert doc["measure"]["execution"] == "fast" and doc["measure"]["cpu"] == device_mod.cpu_capability()
        assert doc["throughput"]["execution"] == "fast"
    # the same records as a run before issue 29 wrote them: no execution, no cpu, their own identity
    for f, doc in zip(files, docs):
        measure = {k: v for k, v in doc["measure"].items() if k not in ("execution", "cpu")}
        doc["measure"] = measure
        doc["identity"] = identity_of(doc["model"], doc["method"], doc["task"], measure,
                                      [*doc["per_clip"]["ids"], *(s["id"] for s in doc["data"]["skipped"])],
                                      doc["provenance"]["seed"]).to_dict()
        f.write_text(json.dumps(doc))
    (out / "leaderboard.html").unlink(missing_ok=True)
    capsys.readouterr()
    eager = write_config(tmp_path / "eager.yaml", tmp_path / "synth", {"execution": "eager"})
    assert main(["run", "--config", str(eager), "--out", str(out), "--no-progress"]) == 0
    assert "0 records written, 2 already present" in capsys.readouterr().out
    assert main(["run", "--config", str(fast), "--out", str(out), "--no-progress"]) == 2
    assert 'measure.execution: "eager" -> "fast"' in capsys.readouterr().err
