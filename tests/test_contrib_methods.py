"""The contributed methods (contrib/methods/): each pinned to a straightforward loop re-implementation
of its paper's equations, written here from the papers; each passes validate-method on both model
families, imports only the public plugin API, and runs end to end in a tiny model."""
import ast
import math
import sys
from pathlib import Path

import pytest
import torch

from prunebench.cli import main
from prunebench.core.plugins import load_plugin_file
from prunebench.core.registry import METHODS
from prunebench.method_api import AttentionInfo, ModelDims, TokenState

from conftest import TINY

CONTRIB = Path(__file__).resolve().parent.parent / "contrib" / "methods"
PLUGINS = {"pitome": CONTRIB / "pitome.py", "tofu": CONTRIB / "tofu.py", "dpc-knn": CONTRIB / "dpc_knn.py"}


@pytest.fixture(scope="module", autouse=True)
def contrib_loaded():
    for path in PLUGINS.values():
        assert load_plugin_file(path) is None


def module_of(name):
    return sys.modules[METHODS.get(name).__module__]


def reduce_once(name, params, x, keys, num_prefix, layer=3, depth=12):
    """The plugin's reduce at one block on (b, p + n, c) hidden states: the output and the token state."""
    b, n = x.shape[0], x.shape[1] - num_prefix
    state = TokenState.start(b, num_prefix, (1, n), x.device, track=True)
    dims = ModelDims(depth=depth, embed_dim=x.shape[-1], num_heads=1, num_prefix=num_prefix, grid=(1, n), pooling="prefix")
    out = METHODS.get(name)(**params).reduce(x.clone(), state, AttentionInfo(keys=keys), layer, dims)
    return out, state


def plugin_groups(out, state, row):
    """{frozenset of original patches: the token's vector} of one sample, from the provenance."""
    p, owner = state.num_prefix, state.owner[row]
    groups = {}
    for token in range(out.shape[1] - p):
        members = frozenset((owner == token).nonzero().flatten().tolist())
        groups[members] = out[row, p + token]
    return groups


def assert_same_groups(got, expected, atol=1e-5):
    assert set(got) == set(expected)
    for members, vector in expected.items():
        assert torch.allclose(got[members], vector.to(got[members].dtype), atol=atol), sorted(members)


def cos(u, v):
    return float(u @ v) / (float(u.norm()) * float(v.norm()))


def weighted_mean(x, members, sizes):
    return sum(x[t] * sizes[t] for t in members) / sum(sizes[t] for t in members)


# -- PiToMe (Tran et al., NeurIPS 2024, eq. 4 and Algorithm 1) --------------------------------------
def reference_pitome(x, keys, r, margin, alpha, protect_informative=True):
    """One sample, one round: groups of token indices and their size-weighted means (sizes 1)."""
    n = len(keys)

    def f(s):  # eq. 4: identity above the margin, alpha (exp(s - m) - 1) below
        return s - margin if s >= margin else alpha * (math.exp(s - margin) - 1)

    energy = [sum(f(cos(keys[i], keys[j])) for j in range(n)) / n for i in range(n)]
    order = sorted(range(n), key=lambda i: -energy[i])  # stable: ties keep token order
    if not protect_informative:  # the wrong way round, for the control below
        order = order[::-1]
    mergeable, protected = order[:2 * r], order[2 * r:]
    a_set, b_set = mergeable[0::2], mergeable[1::2]
    groups = {bt: [bt] for bt in b_set}
    for a in a_set:
        groups[max(b_set, key=lambda bt: cos(keys[a], keys[bt]))].append(a)
    out = [[t] for t in protected] + list(groups.values())
    return {frozenset(g): weighted_mean(x, g, [1.0] * n) for g in out}


@pytest.mark.parametrize("n,r,layer", [(10, 3, 3), (11, 5, 6), (16, 4, 0), (9, 1, 9)])
def test_pitome_matches_the_papers_equations(n, r, layer):
    gen = torch.Generator().manual_seed(100 * n + r)
    b, p = 2, 1
    keys, x = torch.randn(b, n, 4, generator=gen), torch.randn(b, p + n, 6, generator=gen)
    keep_rate = (n - r) / n
    out, state = reduce_once("pitome", {"keep_rate": keep_rate}, x, keys, p, layer=layer)
    assert out.shape[1] == p + n - r and torch.equal(out[:, :p], x[:, :p])
    margin = 0.9 * (1 - layer / 12)  # the authors' margin schedule
    for row in range(b):
        got = plugin_groups(out, state, row)
        assert_same_groups(got, reference_pitome(x[row, p:], keys[row], r, margin, 1.0))
        # the comparison can fail: protecting the redundant tokens instead gives other groups
        assert set(got) != set(reference_pitome(x[row, p:], keys[row], r, margin, 1.0, protect_informative=False))


def test_pitome_margin_falls_with_depth_as_the_authors_code():
    """m_l = m (1 - l / L): 0.9 at the first block, 0.45 half way, 0.075 at the last of 12."""
    pitome = METHODS.get("pitome")()
    assert [round(pitome.margin_at(layer, 12), 6) for layer in (0, 6, 11)] == [0.9, 0.45, 0.075]
    assert round(METHODS.get("pitome")(margin=0.75).margin_at(3, 12), 6) == 0.5625


def test_pitome_energy_is_the_elu_of_the_margin():
    energy_scores = module_of("pitome").energy_scores
    keys = torch.randn(1, 7, 5, generator=torch.Generator().manual_seed(3))
    for margin, alpha in [(0.9, 1.0), (0.3, 0.5), (0.0, 2.0)]:
        energy, _ = energy_scores(keys, margin, alpha)
        expected = [sum((c - margin) if c >= margin else alpha * (math.exp(c - margin) - 1)
                        for c in (cos(keys[0, i], keys[0, j]) for j in range(7))) / 7 for i in range(7)]
        assert torch.allclose(energy[0], torch.tensor(expected), atol=1e-6)


# -- ToFu (Kim et al., WACV 2024): ToMe's matching, prune early, MLERP later ------------------------
def reference_tofu(x, keys, r, prune, plain_average=False):
    n = len(keys)
    a_set, b_set = list(range(0, n, 2)), list(range(1, n, 2))
    partner = {a: max(b_set, key=lambda bt: cos(keys[a], keys[bt])) for a in a_set}
    going = sorted(a_set, key=lambda a: -cos(keys[a], keys[partner[a]]))[:r]
    staying = [[a] for a in a_set if a not in going]
    if prune:
        return {frozenset(g): x[g[0]] for g in staying + [[bt] for bt in b_set]}
    groups = {bt: [bt] for bt in b_set}
    for a in going:
        groups[partner[a]].append(a)
    out = {frozenset(g): x[g[0]] for g in staying}
    for g in groups.values():
        mean = weighted_mean(x, g, [1.0] * n)
        if len(g) > 1 and not plain_average:  # MLERP: the mean's direction, the group's largest norm
            mean = mean / mean.norm() * max(float(x[t].norm()) for t in g)
        out[frozenset(g)] = mean
    return out


@pytest.mark.parametrize("n,r,layer", [(10, 3, 3), (11, 5, 9), (12, 6, 6), (9, 1, 7)])
def test_tofu_prunes_early_and_mlerp_merges_late(n, r, layer):
    gen = torch.Generator().manual_seed(10 * n + r)
    b, p = 2, 2
    keys, x = torch.randn(b, n, 4, generator=gen), torch.randn(b, p + n, 6, generator=gen)
    out, state = reduce_once("tofu", {"keep_rate": (n - r) / n}, x, keys, p, layer=layer)
    prune = layer <= 6  # depth // 2 of 12
    assert state.merged is not prune and torch.equal(out[:, :p], x[:, :p])
    for row in range(b):
        got = plugin_groups(out, state, row)
        assert_same_groups(got, reference_tofu(x[row, p:], keys[row], r, prune))
        if not prune:  # the comparison can fail: a plain average shrinks the norm MLERP keeps
            plain = reference_tofu(x[row, p:], keys[row], r, prune, plain_average=True)
            assert any(not torch.allclose(got[g], plain[g], atol=1e-3) for g in plain)


# -- DPC-KNN (Du et al. 2016; TCFormer; Haurum et al. 2023) -----------------------------------------
def reference_dpc_knn(x, clusters, k, use_delta=True):
    n, c = x.shape
    d = [[math.sqrt(float(((x[i] - x[j]) ** 2).sum())) / math.sqrt(c) for j in range(n)] for i in range(n)]
    rho = [math.exp(-sum(v * v for v in sorted(d[i])[:k]) / k) for i in range(n)]
    farthest = max(max(row) for row in d)
    # j is denser than i; equal densities (mutual nearest neighbours at small k) go to the earlier
    # token: the authors break them with 1e-6 of random noise, the plugin deterministically
    denser = [[rho[j] > rho[i] or (rho[j] == rho[i] and j < i) for j in range(n)] for i in range(n)]
    delta = [min([d[i][j] for j in range(n) if denser[i][j]], default=farthest) for i in range(n)]
    score = [rho[i] * (delta[i] if use_delta else 1.0) for i in range(n)]
    centres = sorted(range(n), key=lambda i: -score[i])[:clusters]
    groups = {ctr: [] for ctr in centres}
    for i in range(n):
        groups[i if i in groups else min(centres, key=lambda ctr: d[ctr][i])].append(i)
    return {frozenset(g): weighted_mean(x, g, [1.0] * n) for g in groups.values()}


@pytest.mark.parametrize("n,clusters,k", [(12, 5, 5), (16, 4, 3), (9, 7, 2), (20, 6, 5)])
def test_dpc_knn_matches_density_peak_clustering(n, clusters, k):
    gen = torch.Generator().manual_seed(n + clusters + k)
    b, p = 2, 1
    x = torch.randn(b, p + n, 6, generator=gen)
    out, state = reduce_once("dpc-knn", {"keep_rate": clusters / n, "k": k}, x, None, p)
    assert out.shape[1] == p + clusters and torch.equal(out[:, :p], x[:, :p])
    for row in range(b):
        got = plugin_groups(out, state, row)
        assert_same_groups(got, reference_dpc_knn(x[row, p:].double(), clusters, k))
        # the comparison can fail: centres by density alone (no distance to a denser token) differ
        assert set(got) != set(reference_dpc_knn(x[row, p:].double(), clusters, k, use_delta=False))


def test_dpc_knn_breaks_density_ties_by_token_order():
    """Identical tokens have equal densities: the earlier one is the denser, so one of them is a centre."""
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [5.0, 5.0]]).unsqueeze(0)
    mod = module_of("dpc-knn")
    assign, centres = mod.density_peaks(mod.token_distances(x), 2, 2)
    assert centres.tolist() == [[0, 2]] and assign.tolist() == [[0, 0, 1, 1]]


# -- every contributed method: public API only, validate-method, a run -----------------------------
@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_imports_only_the_public_plugin_api(name):
    tree = ast.parse(PLUGINS[name].read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prunebench"):
            assert node.module == "prunebench", f"{name} imports {node.module}"
        if isinstance(node, ast.Import):
            assert not any(a.name.startswith("prunebench") for a in node.names), name


@pytest.mark.parametrize("model", ["ast-tiny", "whisper-tiny"])
@pytest.mark.parametrize("name", sorted(PLUGINS))
def test_validate_method_passes(name, model, capsys):
    assert main(["validate-method", "--plugins", str(PLUGINS[name]), "--model", model, name]) == 0
    assert "checks passed" in capsys.readouterr().out


@pytest.mark.parametrize("model_name", ["ast-tiny", "whisper-tiny"])
@pytest.mark.parametrize("name,params", [("pitome", {"keep_rate": 0.5}), ("pitome", {"keep_rate": 0.3}),
                                         ("tofu", {"keep_rate": 0.5}), ("tofu", {"keep_rate": 0.3, "prune_until": -1}),
                                         ("dpc-knn", {"keep_rate": 0.5})])
def test_under_a_key_padding_mask_each_clip_gets_what_it_gets_alone(name, params, model_name):
    """Clips of 128, 88 and 40 frames in one padded batch: each row reduces its own real tokens."""
    from prunebench.run.validate import tiny_model, validation_batch

    model = tiny_model(model_name=model_name)
    x, valid = validation_batch(model)
    method = METHODS.get(name)(**params)
    with torch.inference_mode():
        masked, state = model.forward_with_state(x, method, valid, track_provenance=True, key_padding=True)
        for row, v in enumerate(valid.tolist()):
            alone, alone_state = model.forward_with_state(x[row:row + 1, :v], method, valid[row:row + 1], track_provenance=True)
            assert (masked[row] - alone[0]).abs().max() < 1e-4, (row, v)
            assert [int(t.real_mlp[row]) for t in state.trace] == [t.mlp_tokens for t in alone_state.trace]
    assert state.padding is not None and state.padding.any()  # the batch was really padded to the end


def test_each_runs_end_to_end_in_a_tiny_model(tmp_path, capsys):
    import yaml

    from leaderboard_records import record_documents

    config = {
        "seed": 0,
        "models": [{"name": "ast-tiny", "overrides": TINY}],
        "tasks": [{"name": "synth-esc", "root": str(tmp_path / "synth"), "clips_per_fold": 1}],
        "methods": ["none", {"name": "pitome", "keep_rate": 0.5}, {"name": "tofu", "keep_rate": 0.5},
                    {"name": "dpc-knn", "keep_rate": 0.5}],
        "measure": {"batch_size": 8, "warmup": 1, "repeats": 1, "min_repeat_s": 0.05},
        "train": {"epochs": 1, "batch_size": 8, "crop_frames": 0, "full_length_epochs": 0},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    argv = ["run", "--config", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "results"), "--no-progress"]
    assert main(argv + [arg for path in PLUGINS.values() for arg in ("--plugins", str(path))]) == 0
    records = {r["method"]["id"]: r for r in record_documents(tmp_path / "results")}
    assert set(records) == {"none", "pitome-keep_rate=0.5", "tofu-keep_rate=0.5", "dpc-knn-keep_rate=0.5"}
    for method_id, record in records.items():
        assert len(record["per_clip"]["pred"]) == 10
        if method_id != "none":
            assert record["macs"]["per_sample"] < records["none"]["macs"]["per_sample"]
            assert record["tokens"]["per_layer"][-1]["mlp"] < records["none"]["tokens"]["per_layer"][-1]["mlp"]
