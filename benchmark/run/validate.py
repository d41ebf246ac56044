"""`prunebench validate-method NAME`: check a method plugin on a tiny random model, in seconds.

For each parameter set the method declares (`validation_params`, or the one given):
- schedule: the token trace follows the method's own schedule (`patch_tokens_after`), `reduce`
  leaves the prefix tokens as they were, and the provenance is consistent (every original patch in
  at most one token, every token holding at least one patch and as many as its size says);
- macs: the analytic MAC count of the trace, the method's overhead included, equals torch's
  FlopCounterMode count with attention on the math backend (both count matrix products only);
- deterministic: two forwards give identical logits and provenance;
- batch: a clip's result does not depend on the other clips in its batch;
- padding: under a key-padding mask (clips of 128, 88 and 40 frames in one batch, `pad-batch`),
  each clip's real tokens after every block are as many as the clip alone has, no token holds
  both real and padding patches, and a token is flagged padding exactly when it holds no real
  patch (`TokenState.padding`), so padding never takes a real token's place nor mixes into one;
and once per method, identity: each of its `identity_params` (keep rate 1, r = 0) reproduces the
logits of `none`, also per clip under the mask against the clip alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from prunebench.audio.kaldi import ESC50_STATS
from prunebench.measure.macs import model_macs
from prunebench.method_api import Method
from prunebench.core.registry import METHODS

# A 4-block model on 128-frame inputs (an audio ViT: 8 x 8 = 64 patches; Whisper: 64 frame tokens):
# every check runs in well under a second.
TINY_MODEL = dict(embed_dim=64, depth=4, num_heads=2, target_frames=128, num_classes=5)
VALID_FRAMES = (128, 88, 40)  # the batch's clips: full length, partly padded, mostly padded
NO_PADDING_SUPPORT = ("skipped: the method does not declare supports_padding, so pad-batch and sorted refuse it "
                      "(pad-fixed and native run it)")


@dataclass
class Check:
    method_id: str
    check: str
    passed: bool
    detail: str


def tiny_model(seed: int = 0, model_name: str = "ast-tiny"):
    """A small random model of `model_name`'s family (its structure, TINY_MODEL's size)."""
    from prunebench.models import build_model

    torch.manual_seed(seed)
    return build_model(model_name, **TINY_MODEL).eval()


def validation_batch(model, seed: int = 0):
    """A random normalised input batch, padded as the model's front end pads past each clip's end."""
    frames, mel = model.config.target_frames, model.config.num_mel_bins
    x = torch.randn(len(VALID_FRAMES), frames, mel, generator=torch.Generator().manual_seed(seed))
    valid = torch.tensor([min(v, frames) for v in VALID_FRAMES])
    pad_value = model.config.frontend(16000, ESC50_STATS).padding_value()  # zero padding (ESC-50 statistics for fbanks)
    for row, v in enumerate(valid.tolist()):
        x[row, v:] = pad_value
    return x, valid


def validate_method(name: str, params: Optional[Dict[str, Any]] = None, model=None) -> List[Check]:
    """All checks of method `name`: with `params`, that configuration only, else every declared one."""
    cls = METHODS.get(name)
    model = model if model is not None else tiny_model()
    param_sets: Sequence[Dict[str, Any]] = [params] if params is not None else cls.validation_params
    checks: List[Check] = []
    with torch.inference_mode():
        for p in param_sets:
            method = cls(**p)
            checks += [_schedule(model, method), _macs(model, method), _deterministic(model, method),
                       _batch_independent(model, method), _padding(model, method)]
        checks += _identity(model, cls)
    return checks


def _forward(model, method: Method, x, valid, track: bool = True, key_padding: bool = False):
    return model.forward_with_state(x, method, valid, track_provenance=track, key_padding=key_padding)


def _identity(model, cls) -> List[Check]:
    if cls.identity_params is None:
        return [Check(cls.name, "identity", True, "skipped: the method declares no identity parameters")]
    x, valid = validation_batch(model)
    base = model(x, METHODS.get("none")())
    checks = []
    for p in cls.identity_params:
        method = cls(**p)
        out = _forward(model, method, x, valid)[0]
        diff = (out - base).abs().max().item()
        tolerance = 1e-5 * max(1.0, base.abs().max().item())
        exact = "exactly" if torch.equal(out, base) else f"max |diff| {diff:.2e}"
        checks.append(Check(method.id, "identity", diff <= tolerance, f"logits of none reproduced {exact}"
                            if diff <= tolerance else f"logits differ from none: max |diff| {diff:.2e} > {tolerance:.0e}"))
        if not method.supports_padding:
            checks.append(Check(method.id, "identity", True, NO_PADDING_SUPPORT))
            continue
        masked = _forward(model, method, x, valid, key_padding=True)[0]
        alone = torch.cat([_forward(model, method, x[i:i + 1, :v], valid[i:i + 1])[0] for i, v in enumerate(valid.tolist())])
        diff = (masked - alone).abs().max().item()
        ok = diff < 1e-4
        checks.append(Check(method.id, "identity", ok, f"under the key-padding mask each clip's logits are those it gets "
                            f"alone: max |diff| {diff:.1e}" + ("" if ok else " >= 1e-4")))
    return checks


def _schedule(model, method: Method) -> Check:
    x, valid = validation_batch(model)
    dims = model.dims()
    prefix_changed: List[int] = []
    original_reduce = method.reduce

    def watched_reduce(x_in, state, info, layer, dims_):
        out = original_reduce(x_in, state, info, layer, dims_)
        if not torch.equal(out[:, :state.num_prefix], x_in[:, :state.num_prefix]):
            prefix_changed.append(layer)
        return out

    method.reduce = watched_reduce  # this instance only, for this one forward
    try:
        _, state = _forward(model, method, x, valid)
    finally:
        del method.reduce
    problems = []
    if prefix_changed:
        problems.append(f"reduce changed the prefix tokens at blocks {prefix_changed}")
    p, n = state.num_prefix, state.num_patches
    layers = set(method.reduction_layers(model.config.depth))
    expected, got = [], []
    for index, block in enumerate(state.trace):
        attention = n + p
        if index in layers:
            n = method.patch_tokens_after(n, index, dims)
        expected.append((attention, n + p))
        got.append((block.attention_tokens, block.mlp_tokens))
    if got != expected:
        problems.append(f"tokens (attention, mlp) per block {got}, schedule says {expected}")
    problems += _provenance_problems(state)
    counts = " ".join(str(m) for _, m in got)
    return Check(method.id, "schedule", not problems, "; ".join(problems) or f"tokens after each block: {counts}; provenance consistent")


def _provenance_problems(state) -> List[str]:
    p = state.num_prefix
    owner = state.owner
    tokens = state.trace[-1].mlp_tokens - p
    problems = []
    if owner is None:
        return ["no provenance tracked"]
    if owner.min() < -1 or owner.max() >= tokens:
        problems.append(f"owner indices outside -1..{tokens - 1}")
        return problems
    held = torch.stack([torch.bincount(row[row >= 0], minlength=tokens) for row in owner])  # (b, tokens)
    if (held == 0).any():
        problems.append("a token holds no original patch")
    if state.sizes is not None:
        if not torch.equal(state.sizes[:, :p], torch.ones_like(state.sizes[:, :p])):
            problems.append("prefix token sizes are not 1")
        if not torch.allclose(state.sizes[:, p:], held.to(state.sizes.dtype)):
            problems.append("token sizes differ from the number of patches each holds")
    elif (held != 1).any():
        problems.append("without sizes, every token must hold exactly one patch")
    return problems


def _macs(model, method: Method) -> Check:
    x, valid = validation_batch(model)
    x, valid = x[:1], valid[:1]
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:  # the fused CPU kernel is invisible to counters
        _, state = _forward(model, method, x, valid, track=False)
    parts = model_macs(model, state.grid, state.trace)
    analytic, counted = sum(parts.values()), counter.get_total_flops() / 2
    ok = abs(analytic - counted) < 0.5
    detail = f"analytic {analytic:,} MACs (method overhead {parts['method']:,}) vs counted {counted:,.0f}"
    return Check(method.id, "macs", ok, detail if ok else detail + f": off by {analytic - counted:+,.0f}")


def _deterministic(model, method: Method) -> Check:
    x, valid = validation_batch(model)
    a, state_a = _forward(model, method, x, valid)
    b, state_b = _forward(model, method, x, valid)
    same = torch.equal(a, b) and torch.equal(state_a.owner, state_b.owner)
    return Check(method.id, "deterministic", same, "two forwards identical" if same else "two forwards differ")


def _batch_independent(model, method: Method) -> Check:
    x, valid = validation_batch(model)
    full, state_full = _forward(model, method, x, valid)
    alone, state_alone = _forward(model, method, x[:1], valid[:1])
    diff = (full[:1] - alone).abs().max().item()
    same_tokens = torch.equal(state_full.owner[:1], state_alone.owner)
    ok = same_tokens and diff <= 1e-4 * max(1.0, full.abs().max().item())
    detail = f"first clip alone vs in a batch of {len(x)}: same provenance {same_tokens}, max |logit diff| {diff:.1e}"
    return Check(method.id, "batch", ok, detail)


def _padding(model, method: Method) -> Check:
    """The mask invariants (see the module docstring), each clip against itself alone."""
    if not getattr(model, "supports_key_padding", False):
        return Check(method.id, "padding", True, "skipped: the model has no key-padding mask")
    if not method.supports_padding:
        return Check(method.id, "padding", True, NO_PADDING_SUPPORT)
    x, valid = validation_batch(model)
    _, state = _forward(model, method, x, valid, key_padding=True)
    problems: List[str] = []
    grid, p = state.grid, state.num_prefix
    column = torch.arange(grid[0] * grid[1]) % grid[1]
    padding = state.padding if state.padding is not None else torch.zeros(len(x), state.trace[-1].mlp_tokens - p, dtype=torch.bool)
    for row, v in enumerate(valid.tolist()):
        _, alone = _forward(model, method, x[row:row + 1, :v], valid[row:row + 1])
        patch_real = column < model.grid_for_frames(v)[1]
        owner = state.owner[row]
        tokens = padding.shape[1]
        holds_real = torch.zeros(tokens, dtype=torch.bool)
        holds_padding = torch.zeros(tokens, dtype=torch.bool)
        alive = owner >= 0
        holds_real[owner[alive & patch_real]] = True
        holds_padding[owner[alive & ~patch_real]] = True
        if (holds_real & holds_padding).any():
            problems.append(f"clip {row}: a token holds both real and padding patches")
        if not torch.equal(holds_real, ~padding[row]):
            problems.append(f"clip {row}: TokenState.padding flags do not match the tokens' patches")
        mine = [int(t.real_mlp[row]) if t.real_mlp is not None else t.mlp_tokens for t in state.trace]
        theirs = [t.mlp_tokens for t in alone.trace]
        if mine != theirs:
            problems.append(f"clip {row} ({v} frames): real tokens after each block {mine}, alone {theirs}")
    counts = " ".join(str(int(t.real_mlp.min())) + "-" + str(int(t.real_mlp.max())) for t in state.trace
                      if t.real_mlp is not None)
    return Check(method.id, "padding", not problems,
                 "; ".join(problems[:2]) or f"real tokens per clip as alone (after each block: {counts}); no mixing")


def format_checks(checks: List[Check]) -> str:
    from tabulate import tabulate

    rows = [[c.method_id, c.check, "ok" if c.passed else "FAIL", c.detail] for c in checks]
    return tabulate(rows, headers=["method", "check", "result", "detail"], tablefmt="github")
