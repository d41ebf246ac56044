"""The rerun check: a sample of the method's clips, evaluated again here from the bundle's plugin
source (loaded by the caller), on the track's model and data, must give the predictions the
bundle's records hold. The sample: `sample` clips spread evenly over the clean variant and over
the first noisy variant of the first split, for every operating point of the method."""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Optional, Tuple

from prunebench.measure.evaluate import evaluate
from prunebench.records.record import Record
from prunebench.run.config import RunConfig
from prunebench.run.work import EvalUnit, PreparedModel, Work
from prunebench.submit.integrity import Bundle
from prunebench.submit.verdict import CheckFailed, CheckWaived


def sampled(records: List[Record]) -> List[Record]:
    """The records whose clips are rerun: the clean and the first noisy variant of the first split."""
    first_split = min(r.split for r in records)
    in_split = [r for r in records if r.split == first_split and r.bucket is None]
    noisy = sorted({r.corruption_id for r in in_split if r.corruption_id is not None})
    keep = {None, noisy[0] if noisy else None}
    return sorted((r for r in in_split if r.corruption_id in keep), key=lambda r: (r.method.id, r.variant))


def spread(ids: List[str], k: int) -> List[int]:
    """k indices spread evenly over a list (all of them when it is shorter)."""
    n = len(ids)
    return list(range(n)) if n <= k else sorted({(i * n) // k for i in range(k)})


def check_rerun(bundle: Bundle, sample: int, root: Optional[str], open_division: bool) -> str:
    config = bundle.track.submission_config(str(bundle.manifest.method.get("spec")), root)
    work = Work(config, echo=lambda _: None)
    prepared: Dict[Tuple[int, int], PreparedModel] = {}
    rerun = 0
    for record in sampled(bundle.method_records()):
        unit = _unit(config, record)
        key = (unit.model_index, unit.task_index)
        if key not in prepared:
            prepared[key] = work.prepare(*key)
        model = prepared[key]
        by_weights = record.weights_sha256 is not None  # a refit's file differs in its timings, not its weights
        mine, theirs = (model.weights_sha256, record.weights_sha256) if by_weights else (model.sha256, record.checkpoint_sha256)
        if mine != theirs:
            what = "weights" if by_weights else "checkpoint"
            message = (f"this machine's {what} for {record.task_id} are {str(mine)[:12]}, the bundle's records "
                       f"were made with {str(theirs)[:12]}")
            if open_division:
                raise CheckWaived(f"{message} (open division: the checkpoint is not in the bundle)")
            raise CheckFailed(message, record.path or "")
        features = work.features(model, unit)
        positions = {clip: i for i, clip in enumerate(features.ids)}
        chosen = [record.clips.ids[i] for i in spread(record.clips.ids, sample)]
        subset = _subset(features, [positions[c] for c in chosen])
        method = config.methods[unit.method_indices[0]]
        settings = work.timing_settings
        ev = evaluate(model.build(), method, subset, work.variant(unit).task.metric, batch_size=settings.batch_size,
                      device=settings.device, dtype=settings.dtype, seed=config.seed)
        stored = dict(zip(record.clips.ids, record.clips.pred or []))
        wrong = [c for c, p in zip(chosen, ev.per_clip.get("pred") or []) if stored.get(c) != p]
        if wrong or record.clips.pred is None:
            raise CheckFailed(f"{record.path}: rerun from the bundled source predicts otherwise on {len(wrong)} of "
                              f"{len(chosen)} sampled clips (first: {wrong[0] if wrong else 'no stored predictions'})",
                              record.path or "")
        rerun += len(chosen)
    return f"{rerun} sampled clips rerun from the bundled source give the bundle's predictions"


def _unit(config: RunConfig, record: Record) -> EvalUnit:
    mi = next(i for i, m in enumerate(config.models) if m.name == record.model)
    ti = next(i for i, t in enumerate(config.tasks) if t.task.id == record.task_id)
    vi = next(i for i, v in enumerate(config.tasks[ti].variants) if v.id == record.variant)
    method = next(i for i, m in enumerate(config.methods) if m.id == record.method.id)
    return EvalUnit(mi, ti, vi, (method,))


def _subset(features, indices: List[int]):
    """The feature set of some of its clips, in that order."""
    silent = features.silent_fraction
    return replace(features, ids=[features.ids[i] for i in indices], fbanks=[features.fbanks[i] for i in indices],
                   valid_frames=features.valid_frames[indices], labels=features.labels[indices],
                   skipped=[], cropped=[], silent_fraction=None if silent is None else silent[indices])
