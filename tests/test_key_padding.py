"""Clips at their own lengths in one batch: the key-padding mask, the batching strategies, the
methods' padding contract, clip lengths (trim, seeded uniform) and their place in a record."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import pytest
import torch

from prunebench.audio.kaldi import ESC50_STATS
from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import METHODS
from prunebench.data.batching import STRATEGIES, Batching, batches, check_strategy
from prunebench.measure.macs import clip_macs
from prunebench.run.validate import tiny_model
from prunebench.tasks.lengths import ClipLengths

MODELS = ("ast-tiny", "whisper-tiny")
LENGTHS = (128, 40, 102, 64, 34, 90, 128, 52)  # real frames of 8 clips (even: Whisper's whole tokens)
BUILT_INS = ("none", "topk", "tome", "random", "intensity")


@dataclass
class Clips:
    """A feature set of clips at their own lengths (prunebench.data.batching reads these fields)."""

    fbanks: List[torch.Tensor]
    valid_frames: torch.Tensor

    def __len__(self) -> int:
        return len(self.fbanks)

    def frames(self, i: int) -> int:
        return int(self.fbanks[i].shape[0])


def clips_for(model, seed: int = 0) -> Clips:
    g = torch.Generator().manual_seed(seed)
    fbanks = [torch.randn(n, model.config.num_mel_bins, generator=g) for n in LENGTHS]
    return Clips(fbanks, torch.tensor(LENGTHS))


def padder_for(model):
    return model.config.frontend(16000, ESC50_STATS)


def logits_by_clip(model, method, clips: Clips, strategy: str, batch_size: int = 3) -> torch.Tensor:
    out: Dict[int, torch.Tensor] = {}
    batching = Batching(strategy, batch_size, model.config.target_frames)
    with torch.inference_mode():
        for batch in batches(clips, batching, padder_for(model)):
            logits = model.forward_with_state(batch.fbank, method, batch.valid, key_padding=batch.key_padding)[0]
            out.update(zip(batch.indices, logits))
    return torch.stack([out[i] for i in range(len(clips))])


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("name", BUILT_INS)
def test_masked_strategies_give_each_clip_its_own_logits_at_keep_rate_1(model_name, name):
    """pad-batch, sorted and native agree per clip (< 1e-4) for every built-in at keep rate 1:
    the padding is masked out of attention, pooling and scores."""
    model = tiny_model(0, model_name)
    cls = METHODS.get(name)
    params = cls.identity_params[0] if cls.identity_params else {}
    method = cls(**params)
    clips = clips_for(model)
    native = logits_by_clip(model, method, clips, "native")
    for strategy in ("pad-batch", "sorted"):
        diff = (logits_by_clip(model, method, clips, strategy) - native).abs().max().item()
        assert diff < 1e-4, f"{model_name} {method.id} {strategy}: max |diff| {diff:.2e}"


@pytest.mark.parametrize("model_name", MODELS + ("audiomae-tiny",))
@pytest.mark.parametrize("spec", [("topk", {"keep_rate": 0.5}), ("topk", {"keep_rate": 0.5, "fuse": True}),
                                  ("tome", {"keep_rate": 0.5}), ("tome", {"keep_rate": 0.3}),
                                  ("tome", {"schedule": "constant", "r": 3}), ("intensity", {"keep_rate": 0.5})])
def test_masked_pruning_gives_each_clip_what_it_gets_alone(model_name, spec):
    """Below keep rate 1 too: each row's real tokens follow the clip's own schedule (random's draw
    depends on the clip's row in its batch, as documented, so it is left out)."""
    model = tiny_model(0, model_name)
    method = METHODS.get(spec[0])(**spec[1])
    clips = clips_for(model)
    diff = (logits_by_clip(model, method, clips, "sorted") - logits_by_clip(model, method, clips, "native")).abs().max()
    assert diff.item() < 1e-4


def test_pad_fixed_differs_by_design_on_ast():
    """AST reads its padding: padded to the model input, a short clip's logits change."""
    model = tiny_model(0, "ast-tiny")
    clips = clips_for(model)
    none = METHODS.get("none")()
    diff = (logits_by_clip(model, none, clips, "pad-fixed") - logits_by_clip(model, none, clips, "native")).abs()
    full = [i for i, n in enumerate(LENGTHS) if n == model.config.target_frames]
    assert diff[full].max().item() < 1e-4  # a clip as long as the input has no padding
    assert diff.max().item() > 1e-3


@pytest.mark.parametrize("name,params", [("topk", {"keep_rate": 0.5}), ("random", {"keep_rate": 0.5}),
                                         ("intensity", {"keep_rate": 0.3}), ("topk", {"keep_rate": 0.5, "fuse": True}),
                                         ("tome", {"keep_rate": 0.4})])
def test_padding_never_displaces_a_real_token_nor_merges_into_one(name, params):
    """Under the mask each row keeps the real patches the clip alone keeps (the same set where the
    method is deterministic; random's draw depends on the row); padding only fills the row, never
    in place of a real token, and no real token holds a padding patch."""
    model = tiny_model(0, "ast-tiny")
    clips = clips_for(model)
    batch = next(batches(clips, Batching("pad-batch", 8), padder_for(model)))
    method = METHODS.get(name)(**params)
    with torch.inference_mode():
        _, state = model.forward_with_state(batch.fbank, method, batch.valid, track_provenance=True, key_padding=True)
    real, grid = state.real_counts(), state.grid
    for row, v in enumerate(batch.valid.tolist()):
        own = model.grid_for_frames(v)
        patch_real = ((torch.arange(grid[0] * grid[1]) % grid[1]) < own[1])
        owner = state.owner[row]
        assert not state.padding[row, : int(real[row])].any() and state.padding[row, int(real[row]):].all()
        alive = owner >= 0
        assert not (alive & (owner < int(real[row])) & ~patch_real).any(), "a padding patch lives in a real token"
        with torch.inference_mode():
            _, alone = model.forward_with_state(batch.fbank[row:row + 1, :v], method, batch.valid[row:row + 1],
                                                track_provenance=True)
        mine = (alive & (owner < int(real[row]))).reshape(grid)[:, : own[1]].reshape(-1)
        theirs = alone.owner[0] >= 0
        assert int(mine.sum()) == int(theirs.sum())
        if name != "random":
            assert torch.equal(mine, theirs)


def test_macs_split_real_and_padding():
    model = tiny_model(0, "whisper-tiny")
    none = METHODS.get("none")()
    assert clip_macs(model, none, 128) > clip_macs(model, none, 64) > 0
    batch = next(batches(clips_for(model), Batching("pad-batch", 8), padder_for(model)))
    from prunebench.measure.macs import model_macs

    with torch.inference_mode():
        _, state = model.forward_with_state(batch.fbank, none, batch.valid, key_padding=True)
    spent = sum(model_macs(model, state.grid, state.trace).values())
    assert spent == clip_macs(model, none, int(batch.valid.max()))
    assert [int(t) for t in state.trace[0].real_attention] == [v // 2 for v in batch.valid.tolist()]


def test_strategy_names_and_mask_support_are_checked():
    for name in STRATEGIES:
        assert check_strategy(name) == name
    with pytest.raises(ConfigError, match="batching must be one of .*'pad-batc'"):
        check_strategy("pad-batc")
    from prunebench.measure.strategies import measure_strategies
    from prunebench.measure.throughput import TimingSettings

    model = tiny_model(0, "ast-tiny")
    model.supports_key_padding = False
    with pytest.raises(ConfigError, match="batching 'sorted' needs a key-padding mask.*ast-tiny"):
        measure_strategies(model, [METHODS.get("none")()], [64, 32], ["sorted"], TimingSettings(repeats=1))


def test_strategy_batches():
    clips = Clips([torch.zeros(n, 4) for n in (30, 10, 20, 40)], torch.tensor([30, 10, 20, 40]))

    class Pad:
        def pad_features(self, fbank, frames):
            return torch.cat([fbank, torch.full((frames - fbank.shape[0], 4), 9.0)])

    def shapes(strategy):
        return [(b.indices, tuple(b.fbank.shape[:2]), b.valid.tolist(), b.key_padding)
                for b in batches(clips, Batching(strategy, 2, 48), Pad())]

    assert shapes("pad-fixed") == [([0, 1], (2, 48), [30, 10], False), ([2, 3], (2, 48), [20, 40], False)]
    assert shapes("pad-batch") == [([0, 1], (2, 30), [30, 10], True), ([2, 3], (2, 40), [20, 40], True)]
    assert shapes("sorted") == [([1, 2], (2, 20), [10, 20], True), ([0, 3], (2, 40), [30, 40], True)]
    assert shapes("native") == [([i], (1, n), [n], False) for i, n in enumerate((30, 10, 20, 40))]


# -- clip lengths ------------------------------------------------------------------------------
def test_trim_cuts_to_content_and_names_an_empty_clip():
    wave = torch.zeros(16000)
    wave[1000:5000] = 0.5
    lengths = ClipLengths(trim=True)
    assert lengths(wave, 16000, "a", "a.wav").numel() == 4000
    assert ClipLengths(trim=True, min_seconds=0.5)(wave, 16000, "a", "a.wav").numel() == 8000
    with pytest.raises(DataError, match="silent.wav: no sample above 0.0001"):
        lengths(torch.zeros(16000), 16000, "s", "silent.wav")
    assert ClipLengths(trim=True, min_seconds=0.25)(torch.zeros(16000), 16000, "s", "silent.wav").numel() == 4000
    wave[6000:7000] = 0.05  # quiet content: inside the clip at 1e-4, past its end at 0.1
    assert lengths(wave, 16000, "a", "a.wav").numel() == 6000
    assert ClipLengths(trim=True, threshold=0.1)(wave, 16000, "a", "a.wav").numel() == 4000
    with pytest.raises(ConfigError, match="lengths: threshold"):
        ClipLengths(trim=True, threshold=0)


def test_uniform_lengths_are_seeded_per_clip():
    lengths = ClipLengths(uniform=[1, 5], seed=0)
    drawn = [lengths.drawn_seconds(f"clip{i}") for i in range(400)]
    assert all(1 <= d <= 5 for d in drawn) and 2.7 < sum(drawn) / len(drawn) < 3.3
    assert drawn == [ClipLengths(uniform=[1, 5]).drawn_seconds(f"clip{i}") for i in range(400)]
    assert drawn != [ClipLengths(uniform=[1, 5], seed=1).drawn_seconds(f"clip{i}") for i in range(400)]
    wave = torch.ones(5 * 16000)
    assert lengths(wave, 16000, "clip0", "x").numel() == round(drawn[0] * 16000)
    assert ClipLengths(trim=True).id == "trim" and ClipLengths(uniform=[1, 5], seed=2).id == "u1-5s-seed2"
    with pytest.raises(ConfigError, match="uniform must be"):
        ClipLengths(uniform=[5, 1])


def test_sidecar_keeps_each_clip_length():
    import io

    import numpy as np

    from prunebench.records.sidecar import encode

    data = encode({"frames": [500, 120, 38]})
    with np.load(io.BytesIO(data)) as npz:
        assert npz["frames"].tolist() == [500, 120, 38]


def test_validate_method_checks_the_mask_for_plugins():
    """A plugin that ignores `TokenState.padding` (keeps the last tokens: padding first) fails the
    padding check; every built-in passes it (tests/test_methods.py runs all their checks)."""
    from prunebench.method_api import ScorePruning
    from prunebench.run.validate import validate_method

    class KeepsTheEnd(ScorePruning):
        supports_padding = True  # claimed, not kept

        def score(self, x, state, info):
            return torch.arange(x.shape[1] - state.num_prefix, dtype=torch.float32).expand(x.shape[0], -1)

        def reduce(self, x, state, info, layer, dims):  # ignores the mask
            n = x.shape[1] - state.num_prefix
            keep = max(1, n // 2)
            return state.keep(x, torch.arange(n - keep, n).expand(x.shape[0], -1))

        def patch_tokens_after(self, n_patch, layer, dims):
            return max(1, n_patch // 2)

    METHODS.add("keeps-the-end", KeepsTheEnd)
    try:
        checks = validate_method("keeps-the-end", {"keep_rate": 0.5})
    finally:
        METHODS.remove("keeps-the-end")
    failed = {c.check for c in checks if not c.passed}
    assert "padding" in failed and "schedule" not in failed, [c for c in checks if not c.passed]
    assert all(c.passed for c in validate_method("topk", {"keep_rate": 0.5, "fuse": True}) if c.check == "padding")


def test_masked_strategies_refuse_a_method_without_padding_support():
    from prunebench.method_api import Method
    from prunebench.run.work import check_padding_support

    class Unsure(Method):
        name = "unsure"

    check_padding_support(Unsure(), "pad-fixed")
    check_padding_support(Unsure(), "native")
    with pytest.raises(ConfigError, match="batching 'sorted': method 'unsure' does not declare supports_padding"):
        check_padding_support(Unsure(), "sorted")


def test_strategy_passes_batch_as_the_run_batches():
    from prunebench.measure.strategies import _shapes

    lengths = [30, 10, 20, 40, 25]
    assert _shapes(lengths, Batching("pad-fixed", 2, 48)) == [(48, [30, 10]), (48, [20, 40]), (48, [25])]
    assert _shapes(lengths, Batching("sorted", 2, 48)) == [(20, [10, 20]), (30, [25, 30]), (40, [40])]
    assert _shapes(lengths, Batching("native", 2, 48))[1] == (10, [10])


def test_profile_times_strategies(tmp_path, capsys):
    import json

    from prunebench.cli import main

    out = tmp_path / "rows.json"
    assert main(["profile", "--model", "ast-tiny", "--method", "topk:keep_rate=0.5", "--batching", "sorted",
                 "--clips", "4", "--lengths", "0.5", "2", "--repeats", "1", "--warmup", "1", "--batch-size", "2",
                 "--execution", "eager", "--json", str(out)]) == 0
    rows = {(r["strategy"], r["method_id"]): r for r in json.loads(out.read_text())}
    assert set(rows) == {(s, m) for s in ("sorted", "pad-fixed") for m in ("none", "topk-keep_rate=0.5")}
    assert rows[("pad-fixed", "none")]["frames"] == 512 and rows[("pad-fixed", "none")]["padding_share"] > 0.5
    assert rows[("sorted", "none")]["padding_share"] < rows[("pad-fixed", "none")]["padding_share"]
    assert "speedup vs pad-fixed none" in capsys.readouterr().out
    assert main(["profile", "--model", "ast-tiny", "--batching", "sortd"]) == 2
