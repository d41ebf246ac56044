"""The testbed of effective robustness: cheap unpruned models of one family, spread in clean accuracy.

Effective robustness (Taori et al. 2020; Miller et al. 2021) reads a model's noisy accuracy
against a line fitted through many unpruned models. Here the unpruned models are linear probes on
the frozen encoder of the run's own model (its checkpoint for the task, as the grid evaluates it):
a member is the encoder cut after block k (its final norm kept) with a head fitted on a share f of
the training clips (the same share of every class, drawn by the run's seed; a smaller share's clips
are a subset of a larger one's). Members are blocks x train_fractions; each is saved as an ordinary
checkpoint (the cut encoder and its head) that `prunebench run` evaluates like any other.

With `epochs:` the testbed also holds the fine-tuning's own trajectory: the whole model after each
earlier epoch, as the training kept it (`train: epoch_checkpoints`). Those are the pruned models'
closest unpruned peers (the same weights trained less), and cost one unpruned forward per clip
each. The last epoch is the run's model itself (`none`), never a member.

The pooled outputs after every block come from one unpruned forward per clip
(`TokenEncoder.encode_per_block`) and are cached per variant, so a testbed of 16 members costs
about one `none` pass over the clips, whatever its size. The head is the last `nn.Linear` of the
model's head; what precedes it (AST's LayerNorm) is kept from the run's model and applied first.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from prunebench.core.cache import cache_dir
from prunebench.core.errors import ConfigError, did_you_mean
from prunebench.core.progress import Progress
from prunebench.data.features import FeatureSet
from prunebench.models import build_model
from prunebench.models.checkpoint import atomic_save
from prunebench.models.encoder import TokenEncoder
from prunebench.train.checkpoints import kept_epochs, weights_sha256
from prunebench.train.probe import fit_logistic, head_parts

log = logging.getLogger(__name__)
POOLED_VERSION = 1
DEFAULT_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
KEYS = ("blocks", "train_fractions", "l2", "max_iter", "epochs")
_BLOCK_KEY = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


@dataclass(frozen=True)
class Member:
    """One testbed model: the encoder cut after `block` (1-based), its head fitted on a share of
    the training clips."""

    block: int
    train_fraction: float
    l2: float
    max_iter: int

    @property
    def name(self) -> str:
        return f"block{self.block}-train{self.train_fraction * 100:g}"

    def spec(self, base_sha256: str) -> Dict[str, Any]:
        """What determines the member (its part of a record's identity)."""
        return {"member": self.name, "block": self.block, "train_fraction": self.train_fraction, "l2": self.l2,
                "max_iter": self.max_iter, "base_checkpoint_sha256": base_sha256}


@dataclass(frozen=True)
class EpochMember:
    """One testbed model: the run's fine-tuning after an earlier epoch, whole (every block, its own
    head), from the checkpoint that training kept."""

    epoch: int
    epochs: int
    path: Path
    depth: int

    @property
    def name(self) -> str:
        return f"epoch{self.epoch:02d}-of-{self.epochs:02d}"

    @property
    def block(self) -> int:  # where it is cut: nowhere
        return self.depth

    @property
    def train_fraction(self) -> float:  # trained on every training clip
        return 1.0

    def spec(self, base_sha256: str) -> Dict[str, Any]:
        return {"member": self.name, "block": self.depth, "train_fraction": 1.0, "l2": None, "max_iter": None,
                "base_checkpoint_sha256": base_sha256, "epoch": self.epoch}


@dataclass(frozen=True)
class TestbedSettings:
    """The `testbed:` section of a run config."""

    blocks: Optional[Tuple[int, ...]]  # None: every block of the model
    train_fractions: Tuple[float, ...]
    l2: Optional[float]  # None: the run's probe_l2
    max_iter: Optional[int]  # None: the run's probe_max_iter
    epochs: Union[None, str, Tuple[int, ...]] = None  # None: no epoch members; "all": every kept epoch

    def epoch_members(self, checkpoint: Path, depth: int, where: str = "testbed") -> List[EpochMember]:
        """The kept epochs of the training that made `checkpoint` asked for by `epochs:`, all but the
        one whose weights are the checkpoint's own; a ConfigError where one asked for is missing."""
        if self.epochs is None:
            return []
        kept = kept_epochs(checkpoint)
        if not kept:
            raise ConfigError(f"{where}: epochs: {checkpoint} kept no per-epoch checkpoints (its training "
                              f"needs `epoch_checkpoints: true`, and they sit in epochs/ beside it)")
        earlier = {k.epoch: k for k in kept if not k.is_final}
        wanted = sorted(earlier) if self.epochs == "all" else list(self.epochs)
        missing = [e for e in wanted if e not in earlier]
        if missing:
            have = ", ".join(str(e) for e in sorted(earlier)) or "none"
            raise ConfigError(f"{where}: epochs: epoch {missing[0]} is not among the earlier epochs {checkpoint} "
                              f"kept ({have}; the last is the model itself)")
        return [EpochMember(e, earlier[e].epochs, earlier[e].path, depth) for e in wanted]

    def members(self, depth: int, train: Dict[str, Any], where: str = "testbed") -> List[Member]:
        """Every (block, fraction) member for a model `depth` blocks deep; `train` completes l2 and
        max_iter (the run's probe settings)."""
        blocks = self.blocks or tuple(range(1, depth + 1))
        beyond = [b for b in blocks if b > depth]
        if beyond:
            raise ConfigError(f"{where}: blocks: {beyond[0]} is beyond the model's {depth} blocks")
        l2 = self.l2 if self.l2 is not None else float(train.get("probe_l2", 1e-3))
        iters = self.max_iter if self.max_iter is not None else int(train.get("probe_max_iter", 100))
        return [Member(b, f, l2, iters) for b in blocks for f in self.train_fractions]


def parse_testbed(raw: Any, where: str) -> Optional[TestbedSettings]:
    """The settings of a `testbed:` section (None where the config has none); a ConfigError
    naming the key for anything else."""
    if raw is None:
        return None
    if raw is True:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping ({', '.join(KEYS)}) or true")
    for key in raw:
        if key not in KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, KEYS)}; allowed: {', '.join(KEYS)}")
    blocks = raw.get("blocks", "all")
    if blocks == "all" or blocks is None:
        blocks = None
    else:
        if not isinstance(blocks, list) or not blocks or not all(_whole(b) and b >= 1 for b in blocks):
            raise ConfigError(f"{where}: blocks must be 'all' or a list of block numbers >= 1 (1: the first), got {blocks!r}")
        if len(set(blocks)) != len(blocks):
            raise ConfigError(f"{where}: blocks lists a block twice: {blocks!r}")
        blocks = tuple(sorted(blocks))
    fractions = raw.get("train_fractions", list(DEFAULT_FRACTIONS))
    if not isinstance(fractions, list) or not fractions or not all(_number(f) and 0 < f <= 1 for f in fractions):
        raise ConfigError(f"{where}: train_fractions must be a list of shares in (0, 1], got {fractions!r}")
    if len(set(fractions)) != len(fractions):
        raise ConfigError(f"{where}: train_fractions lists a share twice: {fractions!r}")
    l2, iters = raw.get("l2"), raw.get("max_iter")
    if l2 is not None and not (_number(l2) and l2 >= 0):
        raise ConfigError(f"{where}: l2 must be a number >= 0, got {l2!r}")
    if iters is not None and not (_whole(iters) and iters >= 1):
        raise ConfigError(f"{where}: max_iter must be a whole number >= 1, got {iters!r}")
    return TestbedSettings(blocks, tuple(sorted(float(f) for f in fractions)), None if l2 is None else float(l2), iters,
                           _parse_epochs(raw.get("epochs"), where))


def _parse_epochs(epochs: Any, where: str) -> Union[None, str, Tuple[int, ...]]:
    if epochs is None or epochs == "all":
        return epochs
    if not isinstance(epochs, list) or not epochs or not all(_whole(e) and e >= 1 for e in epochs):
        raise ConfigError(f"{where}: epochs must be 'all' or a list of epoch numbers >= 1 (1: after the first), "
                          f"got {epochs!r}")
    if len(set(epochs)) != len(epochs):
        raise ConfigError(f"{where}: epochs lists an epoch twice: {epochs!r}")
    return tuple(sorted(epochs))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the pooled outputs after every block ---------------------------------------------------------
def pooled_per_block(model: TokenEncoder, features: FeatureSet, spec: Dict[str, Any], batch_size: int,
                     device: torch.device, progress: bool) -> torch.Tensor:
    """(clips, depth, dim) pooled outputs after each block, in the order of `features.ids`; cached
    on disk under a key of the encoder's weights and `spec` (what defines the features: front
    end, variant, split, seed), and the clip ids."""
    key = {"version": POOLED_VERSION, "weights": weights_sha256(model, skip_prefix="head."), "spec": spec,
           "ids": hashlib.sha256(json.dumps(list(features.ids)).encode()).hexdigest()}
    path = cache_dir("testbed", "pooled") / (hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
                                             .hexdigest()[:24] + ".pt")
    if path.is_file():
        try:
            saved = torch.load(str(path), map_location="cpu", weights_only=True)
            if saved["ids"] == list(features.ids):
                return saved["pooled"]
        except Exception as exc:  # a damaged cache is rebuilt, never trusted
            log.warning("testbed pooled cache %s unreadable (%s); recomputing", path, exc)
    model = model.to(device).eval()
    out: List[Optional[torch.Tensor]] = [None] * len(features)
    with Progress(len(features), f"testbed: encode {spec.get('variant', '')}", progress, unit="clip") as bar, \
            torch.inference_mode():
        for idx, fbank, _ in features.batches(batch_size):
            pooled = model.encode_per_block(fbank.to(device)).float().cpu()
            for row, i in enumerate(idx):
                out[i] = pooled[row]
            bar.update(len(idx))
    pooled = torch.stack(out)
    atomic_save({"ids": list(features.ids), "pooled": pooled}, path)
    return pooled


# -- fitting a member -----------------------------------------------------------------------------
def stratified_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of ceil(fraction * n_c) clips of every class c (at least one), drawn by `seed`; the
    clips of a smaller fraction are among those of a larger one (one permutation per class)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    chosen: List[torch.Tensor] = []
    for c in torch.unique(labels).tolist():
        of_class = order[labels[order] == c]
        chosen.append(of_class[:max(1, math.ceil(fraction * len(of_class) - 1e-9))])
    return torch.sort(torch.cat(chosen)).values


@dataclass
class FittedMember:
    member: Member
    prefix: nn.Module  # applied to the pooled output before the Linear
    weight: torch.Tensor  # (classes, width)
    bias: torch.Tensor
    train_clips: int

    def logits(self, pooled_at_block: torch.Tensor) -> torch.Tensor:
        """The member's logits from the pooled outputs after its block (clips, dim)."""
        with torch.no_grad():
            return self.prefix(pooled_at_block) @ self.weight.T + self.bias


def fit_member(member: Member, base: TokenEncoder, train_pooled: torch.Tensor, train_labels: torch.Tensor,
               seed: int) -> FittedMember:
    """The member's head on its share of the training clips (train_pooled: clips x depth x dim)."""
    prefix, _ = head_parts(base)
    prefix = prefix.eval()
    idx = stratified_subset(train_labels, member.train_fraction, seed)
    with torch.no_grad():
        x = prefix(train_pooled[idx, member.block - 1])
    weight, bias = fit_logistic(x, train_labels[idx], base.config.num_classes, member.l2, member.max_iter)
    return FittedMember(member, prefix, weight, bias, int(idx.numel()))


def member_model(base: TokenEncoder, fitted: FittedMember) -> TokenEncoder:
    """The member as a model: the base cut after its block (embedding, blocks, final norm and the
    head's first part copied), the fitted Linear as the head's last layer."""
    params = {k: v for k, v in base.config.to_dict().items() if k != "name"}
    params["depth"] = fitted.member.block
    model = build_model(base.config.name, **params)
    state = {k: v for k, v in base.state_dict().items() if _block_of(k) is None or _block_of(k) < fitted.member.block}
    _, linear = head_parts(model)
    linear_name = next(name for name, module in model.named_modules() if module is linear)
    state[f"{linear_name}.weight"], state[f"{linear_name}.bias"] = fitted.weight, fitted.bias
    model.load_state_dict(state, strict=True)
    return model.eval()


def _block_of(key: str) -> Optional[int]:
    found = _BLOCK_KEY.search(key)
    return None if found is None else int(found.group(1))


def member_checkpoint_path(model_name: str, task_id: str, member: Member, weights: str) -> Path:
    """Where a member's checkpoint is kept: named by its task, member and weights."""
    return cache_dir("testbed", "checkpoints") / f"{model_name}-{task_id.replace('/', '-')}-{member.name}-{weights[:12]}.pt"

