"""The testbed step of a run: the `testbed:` section's members evaluated into ordinary records.

After the grid, for every model and task of the config, each testbed member
(prunebench.train.testbed: a probe on the run's encoder cut after a block, fitted on a share of
the training clips; or the fine-tuning's model after an earlier epoch) is evaluated like `none` on
every unbucketed variant of the task, clean and noisy, and written as a `Record` whose model block
carries the member's spec (`testbed`) and whose key names the member
(`whisper-tiny+testbed-block2-train25 / none / ...`, `vit-s14-dinov2+testbed-epoch03-of-09 / ...`).
Written variant by variant and resumable as the grid is: a pair whose record has the same identity (the member's spec with the
checkpoint it was cut from) is skipped, a failed one is retried, a changed one is an error unless
`overwrite`. Runs in the driver whatever the executor: its cost is one unpruned pass over the clips
(and one more per epoch member).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple, Union

import torch

from prunebench.core.device import resolve_device
from prunebench.core.errors import DataError
from prunebench.core.registry import BASELINE, METHODS
from prunebench.data.features import FeatureSet, frontend_for
from prunebench.data.variant import TaskVariant
from prunebench.measure.macs import model_macs
from prunebench.metrics import get_metric
from prunebench.models import checkpoint_sha256, save_checkpoint
from prunebench.records.identity import TESTBED
from prunebench.records.record import Failure, Pair, Record
from prunebench.records.store import result_path
from prunebench.run.config import RunConfig
from prunebench.run.work import EvalUnit, PreparedModel, Work
from prunebench.train.checkpoints import weights_sha256
from prunebench.train.testbed import (EpochMember, Member, fit_member, member_checkpoint_path, member_model,
                                      pooled_per_block)


@dataclass
class TestbedSummary:
    written: List[Path] = field(default_factory=list)
    skipped: int = 0
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (pair, one-line error)


AnyMember = Union[Member, EpochMember]


@dataclass(frozen=True)
class _Pending:
    member: AnyMember
    unit: EvalUnit
    pair: Pair  # without the member's checkpoint (known once it is fitted)


def run_testbed(config: RunConfig, out: Path, overwrite: bool = False, progress: bool = True,
                echo: Callable[[str], None] = print) -> TestbedSummary:
    """Evaluate every testbed member of the config on every model, task and unbucketed variant."""
    summary = TestbedSummary()
    if config.testbed is None:
        return summary
    work = Work(config, echo=echo, progress=progress)
    for mi in range(len(config.models)):
        for ti in range(len(config.tasks)):
            _model_task(work, mi, ti, Path(out), overwrite, summary)
    return summary


def _model_task(work: Work, mi: int, ti: int, out: Path, overwrite: bool, summary: TestbedSummary) -> None:
    config = work.config
    task = config.tasks[ti].task
    prepared = work.prepare(mi, ti)
    base = prepared.build()
    members: List[AnyMember] = [*config.testbed.members(base.config.depth, config.train, "testbed"),
                                *config.testbed.epoch_members(Path(prepared.checkpoint), base.config.depth, "testbed")]
    units = [EvalUnit(mi, ti, vi, ()) for vi, v in enumerate(config.tasks[ti].variants) if v.bucket is None]
    none_block = METHODS.get(BASELINE)().describe()
    pending: List[_Pending] = []
    changed: List[str] = []
    for member in members:
        for unit in units:
            pair = work.pair(unit, _model_block(prepared, member, None, None, base), none_block)
            path = result_path(out, *pair.key)
            if not overwrite and path.exists():
                record = Record.read(path)
                if record.ok:
                    differences = record.identity.without_checkpoint().differences(pair.identity.without_checkpoint())
                    if not differences:
                        summary.skipped += 1
                        continue
                    changed.append(f"{path}: testbed member {member.name} changed ({differences[0]})")
                    continue
            pending.append(_Pending(member, unit, pair))
    if changed:
        more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
        raise DataError(f"{changed[0]}{more}: rerun with --overwrite to recompute, or write to another --out")
    if not pending:
        return
    work.echo(f"testbed: {len({p.member for p in pending})} members of {prepared.name} on {task.id}, "
              f"{len(pending)} records to write")
    written = set()
    try:  # each variant's records are written as soon as they are made: a kill loses one variant at most
        for p, record in _evaluate(work, prepared, base, pending):
            _write(record, out, summary)
            written.add(p.pair.key)
    except Exception as exc:  # the grid's records stand; the testbed's pairs not yet written fail with the reason
        failure = Failure.from_exception(exc, "testbed")
        for p in pending:
            if p.pair.key not in written:
                _write(Record.failed(p.pair, failure, work.provenance()), out, summary)


def _write(record: Record, out: Path, summary: TestbedSummary) -> None:
    summary.written.append(record.write(out))
    if not record.ok:
        summary.failed.append((" / ".join(record.key), record.failure.first_line))


def _evaluate(work: Work, prepared: PreparedModel, base, pending: List[_Pending]) -> Iterator[Tuple[_Pending, Record]]:
    """Each pending pair's record, variant by variant (every member of one variant before the next)."""
    config = work.config
    device = resolve_device(config.measure["device"])
    batch = config.measure["batch_size"]
    task = config.tasks[pending[0].unit.task_index].task
    models = _probe_members(work, prepared, base, task, [p.member for p in pending if isinstance(p.member, Member)])
    for member in sorted({p.member for p in pending if isinstance(p.member, EpochMember)}, key=lambda m: m.epoch):
        models[member] = _epoch_member(prepared, member)
    metric = get_metric(task.metric)
    for unit in sorted({p.unit for p in pending}, key=lambda u: u.variant_index):
        features = work.features(prepared, unit)
        spec = _spec(work.frontend(prepared, unit), work.variant(unit), "test", config.seed)
        pooled = {}  # per encoder: the base's (every probe member reads it) or an epoch's own
        for p in (p for p in pending if p.unit == unit):
            member_path, sha, model, logits_of, train_clips = models[p.member]
            encoder = base if isinstance(p.member, Member) else model
            if id(encoder) not in pooled:
                pooled[id(encoder)] = pooled_per_block(encoder, features, spec, batch, device, work.progress)
            logits = logits_of(pooled[id(encoder)][:, p.member.block - 1]).float()
            per_clip: Dict[str, Any] = {"ids": list(features.ids), **metric.per_clip(logits, features.labels)}
            if features.silent_fraction is not None:
                per_clip["silent_fraction"] = [round(float(v), 3) for v in features.silent_fraction]
            macs, tokens, grid = _macs(model, features)
            outcome = {
                "metrics": {metric.name: metric.score(logits, features.labels, config.seed)},
                "data": {"clips": len(features), "skipped": [{"id": i, "reason": r} for i, r in features.skipped],
                         "cropped": len(features.cropped)},
                "per_clip": per_clip,
                "macs": {"per_sample": sum(macs.values()), "units": "MAC", "flops_per_mac": 2, "by_part": macs,
                         "grid": list(grid)},
                "tokens": {"per_layer": tokens, "reduction_layers": []},
                "selection": None,
            }
            block = _model_block(prepared, p.member, member_path, sha, model, train_clips)
            pair = work.pair(unit, block, p.pair.method)
            yield p, Record.ok_result(pair, outcome, work.provenance())


# (checkpoint path, its sha256, the member as a model, pooled output at its block -> logits, training clips)
_Built = Tuple[Path, str, Any, Callable[[torch.Tensor], torch.Tensor], Any]


def _probe_members(work: Work, prepared: PreparedModel, base, task, members: List[Member]) -> Dict[AnyMember, _Built]:
    """Each probe member fitted on the training clips' pooled outputs and saved as a checkpoint."""
    if not members:
        return {}
    config = work.config
    device = resolve_device(config.measure["device"])
    frontend = frontend_for(prepared.config, task)
    train = work.store.get(TaskVariant(task), frontend, split="train", min_frames=prepared.config.patch_size)
    train_pooled = pooled_per_block(base, train, _spec(frontend, TaskVariant(task), "train", config.seed),
                                    config.measure["batch_size"], device, work.progress)
    built: Dict[AnyMember, _Built] = {}
    for member in sorted(set(members), key=lambda m: (m.block, m.train_fraction)):
        fit = fit_member(member, base, train_pooled, train.labels, config.seed)
        model = member_model(base, fit)
        path = member_checkpoint_path(prepared.name, task.id, member, weights_sha256(model))
        sha = save_checkpoint(model, path, {"testbed": member.spec(prepared.sha256), "train_clips": fit.train_clips,
                                            "base_checkpoint": prepared.checkpoint})
        built[member] = (path, sha, model, fit.logits, fit.train_clips)
    return built


def _epoch_member(prepared: PreparedModel, member: EpochMember) -> _Built:
    """The fine-tuning's model after an earlier epoch, from the checkpoint it kept: the run's
    architecture with that epoch's weights, its own head reading its own pooled output."""
    saved = torch.load(str(member.path), map_location="cpu", weights_only=True)
    model = prepared.with_weights(saved["state_dict"]).build()

    def logits(pooled: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.head(pooled)
    return member.path, checkpoint_sha256(member.path), model, logits, None


def _model_block(prepared: PreparedModel, member: Member, path, sha, model, train_clips=None) -> Dict[str, Any]:
    """The member's model block: the cut model's checkpoint and config, and its spec under `testbed`."""
    spec = {**member.spec(prepared.sha256), "train_clips": train_clips, "base_checkpoint": prepared.checkpoint}
    config = model.config.to_dict() if model is not None else None
    return {"name": prepared.name, "checkpoint": None if path is None else str(path), "checkpoint_sha256": sha,
            "config": config, TESTBED: spec}


def _spec(frontend, variant: TaskVariant, split: str, seed: int) -> Dict[str, Any]:
    """What defines a variant's features (the pooled cache's key beside the encoder's weights)."""
    return {"frontend": frontend.config(), "variant": variant.id, "describe": variant.describe(), "split": split,
            "seed": seed}


def _macs(model, features: FeatureSet) -> Tuple[Dict[str, float], List[Dict[str, int]], Tuple[int, int]]:
    """MACs per sample (averaged over the clips' lengths), the token trace and the patch grid of the
    member's unpruned forward."""
    by_length: Dict[int, int] = {}
    for i in range(len(features)):
        by_length[features.frames(i)] = by_length.get(features.frames(i), 0) + 1
    total: Dict[str, float] = {}
    tokens: List[Dict[str, int]] = []
    grid: Tuple[int, int] = (0, 0)
    model = model.cpu()
    with torch.inference_mode():
        for frames, count in sorted(by_length.items()):
            index = next(i for i in range(len(features)) if features.frames(i) == frames)
            _, state = model.forward_with_state(features.fbanks[index].unsqueeze(0).float())
            for part, value in model_macs(model, state.grid, state.trace).items():
                total[part] = total.get(part, 0.0) + value * count
            if not tokens:
                tokens = [{"attention": t.attention_tokens, "mlp": t.mlp_tokens} for t in state.trace]
                grid = tuple(state.grid)
    return {k: v / len(features) for k, v in total.items()}, tokens, grid
