"""vit-s14-dinov2 (DINOv2's ViT-S/14 shape, CLS + patch-mean pooling) under every built-in method:
the validator's checks (MACs counted against the analytic count, with its head twice as wide),
and the kept-patch view's 9 x 36 grid."""
from __future__ import annotations

import pytest
import torch

from prunebench.core.registry import METHODS
from prunebench.measure.macs import model_macs
from prunebench.models import build_model
from prunebench.run.validate import tiny_model, validate_method

BUILTIN = ["none", "topk", "tome", "random", "intensity"]


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_method_validates(name):
    checks = validate_method(name, model=tiny_model(model_name="vit-s14-dinov2"))
    failed = [c for c in checks if not c.passed]
    assert not failed, failed


def test_head_reads_cls_and_patch_mean():
    torch.manual_seed(0)
    model = build_model("vit-s14-dinov2", embed_dim=32, depth=2, num_heads=2, num_classes=5).eval()
    x = torch.randn(2, 504, 128)
    with torch.inference_mode():
        tokens, state = model.hidden_states(x)
        pooled, _ = model.encode(x)
    assert model.grid == (9, 36) and tokens.shape[1] == 1 + 9 * 36
    assert torch.allclose(pooled, torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=-1))
    assert model_macs(model, state.grid, state.trace)["head"] == 64 * 5


def test_tome_keeps_the_pooled_mean_exact_before_merging():
    """Merged tokens count by their sizes in the mean half of the pooled vector."""
    torch.manual_seed(0)
    model = build_model("vit-s14-dinov2", embed_dim=32, depth=2, num_heads=2, num_classes=5).eval()
    method = METHODS.get("tome")(keep_rate=0.5)
    with torch.inference_mode():
        logits, state = model.forward_with_state(torch.randn(2, 504, 128), method)
    assert logits.shape == (2, 5) and state.sizes is not None
    assert torch.equal(state.sizes[:, 1:].sum(dim=1), torch.full((2,), 324.0))
