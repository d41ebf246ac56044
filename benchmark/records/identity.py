"""A record's identity: the hash of what determines its result, and nothing else.

Two runs that ask for the same pair get the same key, whatever else their configurations say
(`topk` and `{name: topk}`, another batch size, another method added beside it), so a results
folder resumes per pair. The parts:

- `protocol`: the protocol version (`prunebench.core.version.PROTOCOL`);
- `model`: the architecture's name and the checkpoint's weights hash; for a testbed member
  (effective robustness: prunebench.train.testbed) also its spec (block, training share, probe
  settings, the checkpoint it was cut from);
- `task`: name, split, the parameters that define the data (not its location), and a hash of the
  evaluated clip ids (the listed test clips: evaluated ones and skipped ones);
- `corruption`, `bucket`: the variant's corruption and length bucket, with their parameters;
- `lengths`: the variant's clip lengths (trimmed, or drawn per clip), only where it has them: a
  record without (every clip at the task's nominal length) keeps the key it always had;
- `method`: the normalised spec, every parameter with its default filled in; a method named by a
  speed target is that target (its other parameters and `target_speedup`), not the keep rate the
  tuning found;
- `measure`: the settings that change results (dtype, device kind, feature storage, and since
  issue 29 the execution path and, on a CPU, its capability); a block without `execution` is a
  record from before, made on the eager path on an unrecorded CPU, and compares as one
  (`comparable_measures`), so such a folder still resumes with `execution: eager`;
- `seed`: the run's seed (noise and random selections are drawn from it).

Every part is read back from a record's own content, so a record whose stored key does not match
what it says is caught (`check`), and records written before identities existed (schemas 2 and 3)
get theirs computed from their content on reading.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from prunebench.core.version import PROTOCOL

PARTS = ("protocol", "model", "task", "corruption", "bucket", "lengths", "method", "measure", "seed")
PAD_FIXED = "pad-fixed"  # the batching every record before strategies had (prunebench.data.batching)
SPEED_TARGET = "target_speedup"  # a method block naming a speed target rather than a keep rate


def canonical(value: Any) -> str:
    """The one JSON text a value hashes as (sorted keys, no spaces)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def clips_hash(ids: Iterable[str]) -> str:
    """The evaluated clips, order free."""
    return hashlib.sha256(canonical(sorted(str(i) for i in ids)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Identity:
    parts: Mapping[str, Any]

    @property
    def key(self) -> str:
        return hashlib.sha256(canonical(dict(self.parts)).encode()).hexdigest()[:20]

    def without_checkpoint(self) -> "Identity":
        """The parts a plan knows before the model is prepared (the checkpoint's hash comes later)."""
        return Identity({**self.parts, "model": {**self.parts["model"], "checkpoint_sha256": None}})

    def differences(self, other: "Identity") -> List[str]:
        """`part.field: mine -> other's` for every field that differs, the first part first."""
        out: List[str] = []
        for part in PARTS:
            mine, theirs = self.parts.get(part), other.parts.get(part)
            if part == "measure" and isinstance(mine, Mapping) and isinstance(theirs, Mapping):
                mine, theirs = comparable_measures(mine, theirs)
            if mine == theirs:
                continue
            if isinstance(mine, Mapping) and isinstance(theirs, Mapping):
                for name in sorted(set(mine) | set(theirs)):
                    if mine.get(name) != theirs.get(name):
                        out.append(f"{part}.{name}: {_short(mine.get(name))} -> {_short(theirs.get(name))}")
            else:
                out.append(f"{part}: {_short(mine)} -> {_short(theirs)}")
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"key": self.key, "parts": dict(self.parts)}


def _short(value: Any) -> str:
    text = canonical(value)
    return text if len(text) <= 48 else text[:45] + "..."


def measure_part(dtype: str, device: str, feature_dtype: str, execution: Optional[str] = None,
                 cpu: Optional[str] = None, batching: str = PAD_FIXED) -> Dict[str, Any]:
    """The measure settings that change results; `device` as run (`cuda:1` counts as `cuda`);
    `execution` the path that ran (prunebench.models.execution: fast or eager) and `cpu` the CPU's
    capability on a CPU run (prunebench.core.device.cpu_capability). Records from before those
    two existed lack them (see comparable_measures)."""
    part = {"dtype": dtype, "device": str(device).split(":")[0], "feature_dtype": feature_dtype}
    if execution is not None:
        part["execution"] = execution
    if cpu is not None:
        part["cpu"] = cpu
    if batching != PAD_FIXED:  # the batching strategy; absent (older records): pad-fixed
        part["batching"] = batching
    return part


LEGACY_MEASURE = {"execution": "eager"}  # what every record without the field ran on


def comparable_measures(a: Mapping[str, Any], b: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Two measure blocks as they compare: an absent `execution` is the eager path, and a CPU
    capability counts only where both blocks state one (a record from before states none)."""
    a, b = {**LEGACY_MEASURE, **a}, {**LEGACY_MEASURE, **b}
    if "cpu" not in a or "cpu" not in b:
        a.pop("cpu", None)
        b.pop("cpu", None)
    return a, b


def same_model(checkpoint_a: Optional[str], weights_a: Optional[str], checkpoint_b: Optional[str],
               weights_b: Optional[str]) -> bool:
    """Whether two records (or a record and a loaded model) come from one model: the same checkpoint
    file, or two files of equal weights. A file also holds its training's timings, so a refit that
    reproduced the weights bit for bit is another file of the same model."""
    return checkpoint_a == checkpoint_b or (weights_a is not None and weights_a == weights_b)


def same_measure(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether records of these measure blocks were made alike (comparable_measures)."""
    mine, theirs = comparable_measures(a, b)
    return mine == theirs


def method_part(method: Mapping[str, Any]) -> Dict[str, Any]:
    """The normalised method from a record's method block (params hold every default)."""
    params = dict(method.get("params") or {})
    if method.get(SPEED_TARGET) is not None:  # the target is the spec; the keep rate is its outcome
        params.pop("keep_rate", None)
        params[SPEED_TARGET] = method[SPEED_TARGET]
    return {"name": method["name"], "params": params}


def task_part(task: Mapping[str, Any], clip_ids: Iterable[str]) -> Dict[str, Any]:
    params = {k: v for k, v in (task.get("params") or {}).items() if k != "root"}  # a moved dataset is the same data
    return {"name": task["name"], "split": task["split"], "params": params, "clips": clips_hash(clip_ids)}


def _variant_part(block: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    return None if not block else {"id": block.get("id"), "params": block.get("params") or {}}


TESTBED = "testbed"  # the model block of a testbed member holds its spec under this key
TESTBED_SPEC = ("member", "block", "train_fraction", "l2", "max_iter", "base_checkpoint_sha256")


def _model_part(model: Mapping[str, Any]) -> Dict[str, Any]:
    part = {"name": model["name"], "checkpoint_sha256": model.get("checkpoint_sha256")}
    member = model.get(TESTBED)
    if member:  # only members carry it: every other record's key is as it was
        part[TESTBED] = {k: member.get(k) for k in TESTBED_SPEC}
        if member.get("epoch") is not None:  # an epoch member (probes' identities stay as they were)
            part[TESTBED]["epoch"] = member["epoch"]
    return part


def identity_of(model: Mapping[str, Any], method: Mapping[str, Any], task: Mapping[str, Any],
                measure: Mapping[str, Any], clip_ids: Iterable[str], seed: int) -> Identity:
    """The identity of a pair from the blocks a record holds (model, method, task, measure, the
    seed in its provenance)."""
    parts = {
        "protocol": PROTOCOL,
        "model": _model_part(model),
        "task": task_part(task, clip_ids),
        "corruption": _variant_part(task.get("corruption")),
        "bucket": _variant_part(task.get("bucket")),
        "method": method_part(method),
        "measure": dict(measure),
        "seed": seed,
    }
    if task.get("lengths"):  # only where the variant has them: older records keep their keys
        parts["lengths"] = _variant_part(task["lengths"])
    return Identity(parts)
