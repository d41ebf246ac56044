"""Schedules of a training, per optimizer step: the learning rate (warm-up + cosine, or AST's
step decay), the keep rate of pruning-aware training (EViT's cosine), and the optimizer they drive."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Tuple

import torch

from prunebench.core.errors import ConfigError
from prunebench.models.encoder import TokenEncoder


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from 1 to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def ast_step_factor(step: int, steps_per_epoch: int, cfg: Dict[str, Any]) -> float:
    """AST's schedule: MultiStepLR(milestones=range(start, 1000, every), gamma) stepped per epoch,
    and, if `warmup_steps`, its warm-up (lr * step / warmup_steps, updated every 50 steps)."""
    epoch = step // steps_per_epoch
    start, every = cfg["lr_decay_start"], cfg["lr_decay_every"]
    decays = 0 if epoch < start else (epoch - start) // every + 1
    factor = cfg["lr_decay"] ** decays
    warmup = cfg["warmup_steps"]
    if warmup and step < warmup:
        factor *= (step - step % 50) / warmup
    return factor


def keep_rate_at(step: int, steps_per_epoch: int, cfg: Dict[str, Any], target: float) -> float:
    """EViT's keep-rate schedule: 1 until `prune_start_epoch`, then a cosine down to the target over
    `prune_anneal_epochs` (None: half the remaining epochs), per step; the target after."""
    start_epoch = cfg["prune_start_epoch"]
    anneal = cfg["prune_anneal_epochs"]
    if anneal is None:
        anneal = max(1, math.ceil((cfg["epochs"] - start_epoch) / 2))
    start, end = start_epoch * steps_per_epoch, (start_epoch + anneal) * steps_per_epoch
    if step < start:
        return 1.0
    if step >= end:
        return target
    progress = (step - start) / (end - start)
    return target + (1 - target) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_lambda(cfg: Dict[str, Any], steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate factor per step, for torch's LambdaLR."""
    if cfg["schedule"] == "step":
        return lambda s: ast_step_factor(s, steps_per_epoch, cfg)
    total = steps_per_epoch * cfg["epochs"]
    warmup = steps_per_epoch * cfg["warmup_epochs"]
    return lambda s: warmup_cosine(s, warmup, total)


def make_optimizer(model: TokenEncoder, cfg: Dict[str, Any]) -> torch.optim.Optimizer:
    """Adam or AdamW over the trainable parameters: one group at `lr`, or, with `layer_decay` or
    `head_lr`, a group per depth (fine-tuning_groups)."""
    cls = torch.optim.Adam if cfg["optimizer"] == "adam" else torch.optim.AdamW
    if cfg.get("layer_decay") is None and cfg.get("head_lr") is None:
        groups: Any = [p for p in model.parameters() if p.requires_grad]
    else:
        groups = fine_tuning_groups(model, cfg)
    return cls(groups, lr=cfg["lr"], weight_decay=cfg["weight_decay"], betas=tuple(cfg["betas"]))


def parameter_depth(name: str, depth: int) -> int:
    """0 for what comes before the blocks (patch embedding, tokens, positions), i + 1 for block i,
    depth + 1 for what follows (final norm, head): BEiT's layer ids."""
    parts = name.split(".")
    if "blocks" in parts:
        return int(parts[parts.index("blocks") + 1]) + 1
    if name.startswith(("head.", "norm.", "vit.norm.", "vit.fc_norm.")):  # norm.: Whisper's final norm
        return depth + 1
    return 0


def freeze_below(model: TokenEncoder, blocks: int) -> None:
    """A partial fine-tuning: the embeddings (patch or convolutions, tokens, positions) and the
    first `blocks` blocks keep their init weights; the blocks above, the final norm and the head
    train. Nothing below the first trained block needs a gradient, so the backward stops there."""
    depth = len(model.blocks)
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks < depth:
        raise ConfigError(f"train: freeze_blocks must be a whole number from 0 to {depth - 1} "
                          f"({model.config.name} has {depth} blocks), got {blocks!r}")
    for name, param in model.named_parameters():
        param.requires_grad = blocks == 0 or parameter_depth(name, depth) > blocks


def fine_tuning_groups(model: TokenEncoder, cfg: Dict[str, Any]) -> List[Dict[str, Any]]:
    """BEiT's layer-wise decay: `lr` at the top block, lr * layer_decay ** k k blocks below (the
    embeddings one step below block 0), the final norm at `lr`, the head at `head_lr` (None: lr).
    Biases, norms, layer scales, tokens and positions get no weight decay (BEiT, DINOv2, MAE)."""
    depth = len(model.blocks)
    decay = 1.0 if cfg.get("layer_decay") is None else cfg["layer_decay"]
    groups: Dict[Tuple[int, bool], Dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        level = parameter_depth(name, depth)
        if name.startswith("head."):
            lr = cfg["lr"] if cfg.get("head_lr") is None else cfg["head_lr"]
        else:
            lr = cfg["lr"] * decay ** max(0, depth - level)
        decayed = param.ndim >= 2 and not name.endswith(("pos_embed", "cls_token", "reg_token"))
        key = (level if not name.startswith("head.") else depth + 2, decayed)
        group = groups.setdefault(key, {"params": [], "lr": lr, "weight_decay": cfg["weight_decay"] if decayed else 0.0})
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]
