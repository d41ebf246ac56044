"""The typed record: the facts of a result record, read once, with one rule each.

A record is stored as a JSON object (the schema is in `prunebench.records.store`). Every reader
(report, leaderboard, run summary) goes through `Record.from_dict` for what the record says: its
status and failure, model, task, bucket, method, corruption, score and per-clip outcomes, and the
orders they sort in. The dict stays available as `raw` for fields nobody typed.

Records of every earlier writer still read: a record without `status` is ok unless it carries an
error; an `error` that is a plain string is its message; a corruption without `params` takes its
SNR from its id (`white@20dB`); a `robustness` block (written by earlier runs) is ignored.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from prunebench.core.errors import DataError, PrunebenchError
from prunebench.core.registry import BASELINE
from prunebench.records.sidecar import ARRAYS, SIDECAR, Sidecar

OK, FAILED = "ok", "failed"
FULL = "full"  # the bucket label of unbucketed variants
NO_KEEP_RATE = 2.0  # a method without a keep rate sorts before its own keep rates, as if it kept all
_SNR_IN_ID = re.compile(r"^(?P<name>[^@]*)@(?P<snr>-?[0-9.]+)dB")


def status_of(raw: Mapping[str, Any]) -> str:
    """The record's status; an old record without one is ok unless it carries an error."""
    status = raw.get("status")
    if status is None:
        return FAILED if raw.get("error") else OK
    return str(status)


def is_ok(raw: Mapping[str, Any]) -> bool:
    """Whether a record (a dict as written) holds a result rather than a failure."""
    return status_of(raw) == OK


def method_sort_key(name: str, keep_rate: Optional[float], method_id: str) -> Tuple:
    """The order methods are listed in everywhere: the baseline first, then by name, the highest
    keep rate first (a method without one before its keep rates), then by id."""
    return (name != BASELINE, name, -(keep_rate if keep_rate is not None else NO_KEEP_RATE), method_id)


# -- failures ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """What went wrong in a pair: the `error` object of a failed record.

    The one builder of that object (`to_dict`) and its one reader (`read`)."""

    message: str
    type: str = "RuntimeError"
    stage: str = ""
    traceback: str = ""
    input_error: bool = False  # bad input (config, data): the command exits 2 rather than 1

    @classmethod
    def from_exception(cls, exc: BaseException, stage: str, trace: Optional[str] = None) -> "Failure":
        """The failure an exception stands for; `trace` replaces its traceback (e.g. '' when the
        exception was raised by a check, not by a crash)."""
        expected = isinstance(exc, PrunebenchError)
        # prunebench's own errors are written for people: their text alone, without the class name
        message = str(exc) if expected else "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if trace is None:
            trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return cls(message, type(exc).__name__, stage, trace, expected)

    @classmethod
    def read(cls, error: Any) -> "Failure":
        """The failure an `error` field holds, as any writer left it: an object, or (hand-made and
        old records) a string that is the message."""
        if isinstance(error, Mapping):
            return cls(str(error.get("message") or ""), str(error.get("type") or ""), str(error.get("stage") or ""),
                       str(error.get("traceback") or ""), bool(error.get("input_error")))
        return cls("" if error is None else str(error), "")

    def to_dict(self) -> Dict[str, Any]:
        """The `error` object of a failed record."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback, "stage": self.stage,
                "input_error": self.input_error}

    @property
    def text(self) -> str:
        """What to show for the failure: its message, else its type."""
        return self.message or self.type or FAILED

    @property
    def first_line(self) -> str:
        lines = self.text.strip().splitlines()
        return lines[0] if lines else self.text


# -- the parts of a record --------------------------------------------------------------------
@dataclass(frozen=True)
class MethodRef:
    """The method block: name, id (name and the parameters that differ from its defaults), params."""

    name: str
    id: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def keep_rate(self) -> Optional[float]:
        """The keep rate as stored (a number), or None where the method has none."""
        keep = self.params.get("keep_rate")
        return keep if _number(keep) else None

    @property
    def is_baseline(self) -> bool:
        """The unpruned model every method is compared with."""
        return self.name == BASELINE

    @property
    def sort_key(self) -> Tuple:
        """Where the method sorts: see `method_sort_key`."""
        return method_sort_key(self.name, self.keep_rate, self.id)

    @property
    def params_text(self) -> str:
        """The parameters that differ from the method's defaults, as its id names them."""
        if self.id == self.name:
            return ""
        if self.id.startswith(self.name + "-"):
            return ", ".join(re.split(r"-(?=[A-Za-z_]\w*=)", self.id[len(self.name) + 1:]))
        return ", ".join(f"{k}={_param_text(v)}" for k, v in sorted(self.params.items()))


def _param_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_param_text(v) for v in value) + "]"
    return str(value)


@dataclass(frozen=True)
class CorruptionRef:
    """The corruption of a noisy variant: id (`white@20dB`), name and SNR."""

    id: str
    name: str
    snr_db: Optional[float]

    @classmethod
    def read(cls, block: Optional[Mapping[str, Any]]) -> Optional["CorruptionRef"]:
        if not block:
            return None
        ident = str(block["id"])
        in_id = _SNR_IN_ID.match(ident)
        snr = (block.get("params") or {}).get("snr_db")
        if not _number(snr):
            snr = float(in_id.group("snr")) if in_id else None  # an old record without params
        name = block.get("name")
        if name is None:
            name = in_id.group("name") if in_id else ident
        return cls(ident, str(name), None if snr is None else float(snr))

    @property
    def order(self) -> Tuple:
        """Corruptions in one order everywhere: by name, the cleanest (highest SNR) first, then id."""
        return (self.name, -self.snr_db if self.snr_db is not None else 0.0, self.id)


@dataclass(frozen=True)
class BucketRef:
    """The length bucket of a variant: id (`len2s`, `len2s-native`), mode and seconds."""

    id: str
    mode: str
    seconds: Optional[float]

    @classmethod
    def read(cls, block: Optional[Mapping[str, Any]]) -> Optional["BucketRef"]:
        if not block or block.get("id") is None:
            return None
        params = block.get("params") or {}
        seconds = params.get("seconds")
        return cls(str(block["id"]), str(params.get("mode", "")), float(seconds) if _number(seconds) else None)

    @property
    def order(self) -> Tuple:
        """Buckets in one order everywhere: by mode, then the shortest first."""
        return (True, self.mode, self.seconds if self.seconds is not None else 0.0, self.id)


CLIP_LISTS = ("ids", "correct", "pred", "scores", "labels", "kept_patches", "silent_fraction")


@dataclass(frozen=True)
class Clips:
    """The per-clip lists of a record, one entry per clip id, in the same order (a list the record
    does not hold is None). Names are the record's `per_clip` keys (CLIP_LISTS). `scores` and
    `kept_patches` come from the record's sidecar, read when first asked for, or from the JSON of
    a record written before sidecars."""

    ids: List[str] = field(default_factory=list)
    correct: Optional[List[Any]] = None  # 1/0 (or bools): the prediction was right
    pred: Optional[List[Any]] = None  # predicted class
    labels: Optional[List[Any]] = None  # true label ids (multi-label tasks)
    silent_fraction: Optional[List[float]] = None  # share of digitally silent frames
    inline: Dict[str, Any] = field(default_factory=dict, repr=False)  # scores / kept_patches held in the JSON
    sidecar: Optional[Sidecar] = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, per_clip: Optional[Mapping[str, Any]], record_path: Optional[str] = None) -> "Clips":
        per_clip = per_clip or {}
        ref = per_clip.get(SIDECAR)
        if ref is not None and record_path is None:
            raise DataError(f"a record naming the sidecar {ref.get('file')} was read without its path")
        return cls(ids=per_clip.get("ids") or [], correct=per_clip.get("correct"), pred=per_clip.get("pred"),
                   labels=per_clip.get("labels"), silent_fraction=per_clip.get("silent_fraction"),
                   inline={k: per_clip[k] for k in ARRAYS if per_clip.get(k) is not None},
                   sidecar=None if ref is None else Sidecar(Path(record_path), ref))

    @property
    def scores(self) -> Optional[Any]:
        """Class scores (multi-label tasks): clips x classes (float16 precision from a sidecar)."""
        return self._array("scores")

    @property
    def kept_patches(self) -> Optional[List[Optional[str]]]:
        """Packed masks of the patches kept (hex, bit p = patch p)."""
        return self._array("kept_patches")

    def _array(self, name: str) -> Any:
        if name in self.inline:
            return self.inline[name]
        return None if self.sidecar is None else self.sidecar.get(name)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the record -------------------------------------------------------------------------------
GroupKey = Tuple[str, str, Optional[str]]  # model, task (name/split), bucket id
PairKey = Tuple[str, str, str]  # model, method id, task variant


@dataclass(frozen=True, eq=False)  # equal only to itself: two reads of one file are two records
class Record:
    """One result record, its facts read once. Parts a failed record lacks are empty ({}, [], None)."""

    raw: Dict[str, Any] = field(repr=False)
    status: str
    ok: bool  # a result rather than a failure
    model: str
    model_config: Dict[str, Any]  # the architecture as the record states it
    checkpoint_sha256: Optional[str]  # the checkpoint the scores were made with
    task: str  # the task's name
    split: str
    task_id: str  # `esc50/fold5`
    variant: str  # `esc50/fold5+white@20dB`
    method: MethodRef
    corruption: Optional[CorruptionRef]  # None: the clean variant
    corruption_id: Optional[str]
    bucket_ref: Optional[BucketRef]  # None: the whole clip
    bucket: Optional[str]  # the bucket's id
    metrics: Dict[str, Any]  # metric name -> {value, ci95}
    clips: Clips
    macs: Optional[float]  # multiply-accumulates per sample
    throughput: Dict[str, Any]  # {} where it was not measured
    tokens_per_layer: List[Dict[str, Any]]  # tokens entering each block's attention and MLP
    selection: Dict[str, Any]  # statistics of the patches the method kept
    provenance: Dict[str, Any]  # commit, versions, device, seed, config
    path: Optional[str]  # the file it was read from, where a reader noted it

    @classmethod
    def from_dict(cls, raw: Dict[str, Any]) -> "Record":
        model, task, method = raw["model"], raw["task"], raw["method"]
        corruption, bucket = CorruptionRef.read(task.get("corruption")), BucketRef.read(task.get("bucket"))
        status = status_of(raw)
        return cls(
            raw=raw, status=status, ok=status == OK, model=str(model["name"]), model_config=model.get("config") or {},
            checkpoint_sha256=model.get("checkpoint_sha256"), task=str(task["name"]), split=str(task["split"]),
            task_id=f"{task['name']}/{task['split']}", variant=str(task.get("variant", "")),
            method=MethodRef(str(method["name"]), str(method["id"]), method.get("params") or {}),
            corruption=corruption, corruption_id=corruption.id if corruption else None,
            bucket_ref=bucket, bucket=bucket.id if bucket else None,
            metrics=raw.get("metrics") or {}, clips=Clips.read(raw.get("per_clip"), raw.get("_file") or raw.get("_path")),
            macs=(raw.get("macs") or {}).get("per_sample"), throughput=raw.get("throughput") or {},
            tokens_per_layer=(raw.get("tokens") or {}).get("per_layer") or [], selection=raw.get("selection") or {},
            provenance=raw.get("provenance") or {}, path=None if raw.get("_path") is None else str(raw["_path"]),
        )

    @property
    def failure(self) -> Optional[Failure]:
        """What went wrong; None for an ok record."""
        return None if self.ok else Failure.read(self.raw.get("error"))

    @property
    def bucket_label(self) -> str:
        """The bucket's id, `full` for the whole clip."""
        return self.bucket or FULL

    @property
    def group(self) -> GroupKey:
        """Records whose scores are comparable: same model, task and bucket."""
        return (self.model, self.task_id, self.bucket)

    @property
    def key(self) -> PairKey:
        """One result per key in a results folder: model, method id, task variant."""
        return (self.model, self.method.id, self.variant)

    # -- orders: one rule each, for every table and report ----------------------------------------
    @property
    def method_sort_key(self) -> Tuple:
        """`MethodRef.sort_key` of the record's method."""
        return self.method.sort_key

    @property
    def corruption_order(self) -> Tuple:
        """The clean variant first, then `CorruptionRef.order`."""
        return ("", 0.0, "") if self.corruption is None else self.corruption.order

    @property
    def bucket_order(self) -> Tuple:
        """The whole clip first, then `BucketRef.order`."""
        return (False, "", 0.0, FULL) if self.bucket_ref is None else self.bucket_ref.order

    # -- the score --------------------------------------------------------------------------------
    @property
    def metric(self) -> Optional[str]:
        """The task's metric (the first one a record holds)."""
        return next(iter(self.metrics), None)

    @property
    def score(self) -> Optional[float]:
        """The value of the task's metric."""
        return None if self.metric is None else self.metrics[self.metric].get("value")

    @property
    def score_ci(self) -> Optional[Tuple[float, float]]:
        """The 95% interval of the score, where the record has one."""
        ci = None if self.metric is None else self.metrics[self.metric].get("ci95")
        return tuple(ci) if ci else None

    @property
    def num_classes(self) -> Optional[int]:
        """The classes of the model's head (chance is one over them)."""
        return self.model_config.get("num_classes")


RecordLike = Union[Record, Dict[str, Any]]


def as_record(record: RecordLike) -> Record:
    """A Record, from a record dict or as it is."""
    return record if isinstance(record, Record) else Record.from_dict(record)


def as_records(records: Iterable[RecordLike]) -> List[Record]:
    return [as_record(r) for r in records]


def pair_key(record: RecordLike) -> PairKey:
    """(model, method id, task variant) of a record dict or Record."""
    return as_record(record).key
