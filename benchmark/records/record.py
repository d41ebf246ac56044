"""The result record: one typed, versioned class that builds, checks, writes and reads records.

`Record` is the one owner of a record. It builds one (`Record.ok`, `Record.failed`, `Record.pooled`
over folds, `with_throughput`, `as_failed`), writes it atomically with its sidecar (`write`), reads
and validates it (`Record.read`, `Record.read_folder`), upgrades records of older schemas on
reading, and exposes what readers need as typed properties: its status and failure, model, task,
bucket, method, corruption, identity, score and per-clip outcomes, and the orders they sort in.
The JSON document stays private to it (`document`: only this module and the store read it).

Records of every earlier writer still read: a record without `status` is ok unless it carries an
error; an `error` that is a plain string is its message; a corruption without `params` takes its
SNR from its id (`white@20dB`); a `robustness` block (written by earlier runs) is ignored; a record
without an identity or measure block (schemas 2 and 3) gets them from its content.
"""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from prunebench.core.errors import DataError, PrunebenchError
from prunebench.core.feature_dtype import feature_storage
from prunebench.core.registry import BASELINE
from prunebench.records.identity import SPEED_TARGET, TESTBED, Identity, identity_of, measure_part, same_measure, same_model
from prunebench.records.sidecar import ARRAYS, SIDECAR, Sidecar
from prunebench.records.store import FAILED, OK, SCHEMA, iter_result_files, read_record, result_path, write_record

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


CLIP_LISTS = ("ids", "correct", "pred", "scores", "labels", "kept_patches", "silent_fraction", "frames")


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

    @property
    def frames(self) -> Optional[List[int]]:
        """Each clip's real input frames (records of clips at their own length; None before)."""
        return self._array("frames")

    def _array(self, name: str) -> Any:
        if name in self.inline:
            return self.inline[name]
        return None if self.sidecar is None else self.sidecar.get(name)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class TestbedRef:
    """A testbed member's spec (effective robustness, prunebench.train.testbed): an unpruned
    probe on the encoder cut after `block`, fitted on a share of the training clips; or, with
    `epoch`, the fine-tuned model after that earlier epoch (every block, all the clips)."""

    member: str  # `block2-train25`, `epoch03-of-09`
    block: int
    train_fraction: float
    train_clips: Optional[int]
    epoch: Optional[int] = None

    @classmethod
    def read(cls, block: Optional[Mapping[str, Any]]) -> Optional["TestbedRef"]:
        if not block:
            return None
        clips, epoch = block.get("train_clips"), block.get("epoch")
        return cls(str(block["member"]), int(block["block"]), float(block["train_fraction"]),
                   None if clips is None else int(clips), None if epoch is None else int(epoch))


def model_key(model: Mapping[str, Any]) -> str:
    """The model part of a record's key: the model's name, and a testbed member's name after it
    (`whisper-tiny+testbed-block2-train25`), so members never share a key with the grid's models."""
    member = model.get(TESTBED)
    return str(model["name"]) + (f"+testbed-{member['member']}" if member else "")


# -- the record -------------------------------------------------------------------------------
GroupKey = Tuple[str, str, Optional[str]]  # model, task (name/split), bucket id
PairKey = Tuple[str, str, str]  # model, method id, task variant
POOLED_SPLIT = "all-folds"  # the split of a record pooled over cross-validation folds


@dataclass(frozen=True)
class Pair:
    """What a record is a result of, as its blocks say it: the model (with its checkpoint), the
    method, the task variant, the measure settings that change results, and the listed test clips
    (evaluated and skipped). Its identity is the record's resume key."""

    model: Dict[str, Any]  # name, checkpoint, checkpoint_sha256, config
    method: Dict[str, Any]  # name, params (defaults filled in), id; target_speedup and tuned for a speed target
    task: Dict[str, Any]  # the variant's description (TaskVariant.describe)
    measure: Dict[str, Any]  # identity.measure_part
    clip_ids: Tuple[str, ...]
    seed: int  # the run's seed (noise, random selections)

    @property
    def identity(self) -> Identity:
        return identity_of(self.model, self.method, self.task, self.measure, self.clip_ids, self.seed)

    @property
    def key(self) -> PairKey:
        return (model_key(self.model), str(self.method["id"]), str(self.task["variant"]))

    def blocks(self) -> Dict[str, Any]:
        """The record's blocks that say what it is of."""
        return {"model": self.model, "method": self.method, "task": self.task, "measure": self.measure,
                "identity": self.identity.to_dict()}


@dataclass(frozen=True, eq=False)  # equal only to itself: two reads of one file are two records
class Record:
    """One result record, its facts read once. Parts a failed record lacks are empty ({}, [], None)."""

    document: Dict[str, Any] = field(repr=False)  # the JSON as stored: private to records/
    status: str
    ok: bool  # a result rather than a failure
    model: str
    model_config: Dict[str, Any]  # the architecture as the record states it
    checkpoint_sha256: Optional[str]  # the checkpoint the scores were made with
    weights_sha256: Optional[str]  # its weights alone (None: a record made before they were hashed)
    task: str  # the task's name
    split: str
    task_id: str  # `esc50/fold5`
    variant: str  # `esc50/fold5+white@20dB`
    method: MethodRef
    corruption: Optional[CorruptionRef]  # None: the clean variant
    corruption_id: Optional[str]
    bucket_ref: Optional[BucketRef]  # None: the whole clip
    bucket: Optional[str]  # the bucket's id; with clip lengths, their id first (`trim`, `trim+len2s`)
    metrics: Dict[str, Any]  # metric name -> {value, ci95}
    clips: Clips
    macs: Optional[float]  # multiply-accumulates per sample
    throughput: Dict[str, Any]  # {} where it was not measured
    tokens_per_layer: List[Dict[str, Any]]  # tokens entering each block's attention and MLP
    selection: Dict[str, Any]  # statistics of the patches the method kept
    provenance: Dict[str, Any]  # commit, versions, device, seed, config
    path: Optional[str]  # the file it was read from, where a reader noted it
    testbed: Optional[TestbedRef] = None  # a testbed member (effective robustness): None for the grid's models

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def ok_result(cls, pair: Pair, outcome: Dict[str, Any], provenance: Dict[str, Any]) -> "Record":
        """A result: `outcome` holds metrics, data, per_clip, macs, tokens, selection, examples
        (throughput comes with `with_throughput`); `provenance` states the pair's seed."""
        return cls.from_dict({"schema": SCHEMA, "status": OK, **pair.blocks(), "throughput": None, **outcome,
                              "provenance": provenance})

    @classmethod
    def failed(cls, pair: Pair, failure: Failure, provenance: Dict[str, Any]) -> "Record":
        """A pair that raised: the failure instead of the result."""
        return cls.from_dict({"schema": SCHEMA, "status": FAILED, **pair.blocks(), "error": failure.to_dict(),
                              "provenance": provenance})

    def as_failed(self, failure: Failure) -> "Record":
        """This pair, failed (a timing or a validation that failed after evaluation)."""
        doc = self.document
        return Record.from_dict({"schema": SCHEMA, "status": FAILED,
                                 **{k: doc[k] for k in ("model", "method", "task", "measure", "identity") if k in doc},
                                 "error": failure.to_dict(), "provenance": doc.get("provenance") or {}})

    def with_throughput(self, throughput: Dict[str, Any]) -> "Record":
        return Record.from_dict({**self.document, "throughput": throughput})

    @classmethod
    def pooled(cls, folds: Sequence["Record"]) -> "Record":
        """One record of all folds' clips (split `all-folds`) for records of one pair on several
        folds; its score is the mean over folds, each fold's score in `per_fold`."""
        first = folds[0]
        per_clip: Dict[str, Any] = {}
        for name in CLIP_LISTS:
            values = [getattr(r.clips, name) for r in folds]
            if all(v is not None for v in values):
                per_clip[name] = [x for v in values for x in v]
        task = {**first.document["task"], "split": POOLED_SPLIT,
                "variant": first.variant.replace(first.split, POOLED_SPLIT, 1), "folds": [r.split for r in folds]}
        value = sum(r.score for r in folds) / len(folds)
        return cls.from_dict({**first.document, "task": task, "per_clip": per_clip,
                              "metrics": {first.metric: {"value": value}}, "per_fold": {r.split: r.score for r in folds}})

    # -- files ------------------------------------------------------------------------------------
    def file_in(self, out: Union[str, Path]) -> Path:
        """Where this record lives in a results folder."""
        return result_path(out, *self.key)

    def write(self, out: Union[str, Path]) -> Path:
        """Validate, then write atomically with its sidecar into the results folder `out`."""
        path = self.file_in(out)
        write_record(path, self.to_dict())
        return path

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document (without the notes a reader adds)."""
        return {k: v for k, v in self.document.items() if k not in _READER_NOTES}

    @classmethod
    def read(cls, path: Union[str, Path], shown_as: Optional[str] = None) -> "Record":
        """The record in a file: validated, upgraded from an older schema, its identity checked
        against its content (a DataError naming the file and the field). `shown_as`: the path
        the record names itself by (default: `path`)."""
        document = read_record(Path(path))
        document["_path"] = shown_as or str(path)
        document["_file"] = str(Path(path).absolute())  # where its sidecar is
        record = cls.from_dict(document)
        record.check_identity()
        return record

    @classmethod
    def read_folder(cls, out: Union[str, Path], relative: bool = False) -> List["Record"]:
        """Every record under a results folder (any depth), ok and failed, in path order;
        `relative`: each names itself by its path inside the folder."""
        root = Path(out)
        return [cls.read(path, path.relative_to(root).as_posix() if relative else None) for path in iter_result_files(root)]

    # -- reading ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Dict[str, Any]) -> "Record":
        raw = _upgraded(raw)
        model, task, method = raw["model"], raw["task"], raw["method"]
        corruption, bucket = CorruptionRef.read(task.get("corruption")), BucketRef.read(task.get("bucket"))
        status = status_of(raw)
        return cls(
            document=raw, status=status, ok=status == OK, model=str(model["name"]), model_config=model.get("config") or {},
            checkpoint_sha256=model.get("checkpoint_sha256"), weights_sha256=model.get("weights_sha256"), task=str(task["name"]), split=str(task["split"]),
            task_id=f"{task['name']}/{task['split']}", variant=str(task.get("variant", "")),
            method=MethodRef(str(method["name"]), str(method["id"]), method.get("params") or {}),
            corruption=corruption, corruption_id=corruption.id if corruption else None,
            bucket_ref=bucket, bucket=_length_label((task.get("lengths") or {}).get("id"), bucket.id if bucket else None),
            metrics=raw.get("metrics") or {}, clips=Clips.read(raw.get("per_clip"), raw.get("_file") or raw.get("_path")),
            macs=(raw.get("macs") or {}).get("per_sample"), throughput=raw.get("throughput") or {},
            tokens_per_layer=(raw.get("tokens") or {}).get("per_layer") or [], selection=raw.get("selection") or {},
            provenance=raw.get("provenance") or {}, path=None if raw.get("_path") is None else str(raw["_path"]),
            testbed=TestbedRef.read(model.get(TESTBED)),
        )

    @property
    def identity(self) -> Identity:
        """What determines the result (prunebench.records.identity), as the record stores it."""
        return Identity(self.document["identity"]["parts"])

    def identity_from_content(self) -> Identity:
        """The identity the record's own content gives (the clips: evaluated and skipped)."""
        doc = self.document
        return identity_of(doc["model"], doc["method"], doc["task"], doc["measure"], self.clip_ids, self.seed)

    def check_identity(self) -> None:
        """A DataError naming the file and the first field where the stored identity and the
        record's content disagree."""
        where = self.path or "<record>"
        stored = self.document["identity"]
        if Identity(stored["parts"]).key != stored.get("key"):
            raise DataError(f"result {where}: field identity.key {stored.get('key')} is not the hash of identity.parts")
        if not self.ok:
            return  # a failed record has no clips of its own to check
        found = self.identity_from_content()
        if found.key != stored["key"]:
            raise DataError(f"result {where}: its identity does not match its content "
                            f"({self.identity.differences(found)[0]}): rerun the pair with --overwrite")

    @property
    def clip_ids(self) -> List[str]:
        """The listed test clips: the evaluated ones and those skipped."""
        skipped = (self.document.get("data") or {}).get("skipped") or []
        return [*self.clips.ids, *(str(s["id"]) for s in skipped)]

    @property
    def seed(self) -> int:
        """The run's seed."""
        return int(self.provenance.get("seed", 0))

    @property
    def measure(self) -> Dict[str, Any]:
        """The measure settings that changed the result: dtype, device kind, feature storage."""
        return dict(self.document["measure"])

    @property
    def examples(self) -> Dict[str, Any]:
        """Small input spectrograms of a few clips, for the kept-patch view ({} where none)."""
        return self.document.get("examples") or {}

    @property
    def patch_grid(self) -> Optional[Tuple[int, int]]:
        """(rows, columns) of the patch grid the clips ran on (`macs.grid`: mel bands x time; a
        Whisper encoder's tokens are one row); None where the record does not say."""
        grid = (self.document.get("macs") or {}).get("grid")
        return (int(grid[0]), int(grid[1])) if grid and len(grid) == 2 else None

    @property
    def task_params(self) -> Dict[str, Any]:
        """The task's parameters as the record states them (data root, split, source)."""
        return dict((self.document.get("task") or {}).get("params") or {})

    @property
    def target_speedup(self) -> Optional[float]:
        """The speed a method named by a speed target was tuned to (None for a keep rate)."""
        return self.document["method"].get(SPEED_TARGET)

    @property
    def per_fold(self) -> Dict[str, float]:
        """Each fold's score, for a record pooled over folds ({} otherwise)."""
        return dict(self.document.get("per_fold") or {})

    @property
    def failure(self) -> Optional[Failure]:
        """What went wrong; None for an ok record."""
        return None if self.ok else Failure.read(self.document.get("error"))

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
        """One result per key in a results folder: model (with a testbed member's name), method id,
        task variant."""
        return (model_key(self.document["model"]), self.method.id, self.variant)

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


def _length_label(lengths: Optional[str], bucket: Optional[str]) -> Optional[str]:
    """The bucket label of a variant whose clips have their own lengths (`lengths`): the lengths'
    id, then the bucket's, so trimmed and nominal-length records of a task never share a group."""
    return "+".join(p for p in (lengths, bucket) if p) or None


_READER_NOTES = ("_path", "_file")  # where a reader found the record: never written


def _upgraded(raw: Dict[str, Any]) -> Dict[str, Any]:
    """A record of schema 2 or 3 with the blocks schema 4 added (measure, identity), from its own
    content; a record of this schema as it is."""
    if "identity" in raw and "measure" in raw:
        return raw
    config_measure = ((raw.get("provenance") or {}).get("config") or {}).get("measure") or {}
    dtype = str(config_measure.get("dtype", "float32"))
    measure = raw.get("measure") or measure_part(
        dtype, str((raw.get("provenance") or {}).get("device") or "cpu"),
        feature_storage(dtype, str(config_measure.get("feature_dtype", "auto"))))
    upgraded = {**raw, "measure": measure}
    skipped = (raw.get("data") or {}).get("skipped") or []
    ids = [*((raw.get("per_clip") or {}).get("ids") or []), *(str(s["id"]) for s in skipped)]
    seed = int((raw.get("provenance") or {}).get("seed", 0))
    upgraded["identity"] = identity_of(raw["model"], raw["method"], raw["task"], measure, ids, seed).to_dict()
    return upgraded


RecordLike = Union[Record, Dict[str, Any]]


def as_record(record: RecordLike) -> Record:
    """A Record, from a record dict or as it is."""
    return record if isinstance(record, Record) else Record.from_dict(record)


def as_records(records: Iterable[RecordLike]) -> List[Record]:
    return [as_record(r) for r in records]


def pair_key(record: RecordLike) -> PairKey:
    """(model, method id, task variant) of a record dict or Record."""
    return as_record(record).key


def load_results(out: Union[str, Path], include_failed: bool = False, testbed: bool = False) -> List[Record]:
    """The records of one results folder, for a report: every file read and checked (a bad one is
    an error naming it), the failed ones too with `include_failed`, testbed members (effective
    robustness) only with `testbed` (every other reader compares the grid's models alone). A folder may hold the records
    of several runs, pair by pair, as long as they can be compared: two files claiming one pair,
    or records of one model and split made with different checkpoints (files of other weights) or
    measure settings, are an error naming both files."""
    records = Record.read_folder(out)
    seen: Dict[PairKey, Record] = {}
    made_with: Dict[Tuple[str, str], Record] = {}
    for r in records:
        if r.key in seen:
            raise DataError(f"results {seen[r.key].path} and {r.path} are both {' / '.join(r.key)}")
        seen[r.key] = r
        if not r.ok:
            continue
        first = made_with.setdefault((r.key[0], r.task_id), r)  # each testbed member is its own model
        one_model = same_model(first.checkpoint_sha256, first.weights_sha256, r.checkpoint_sha256, r.weights_sha256)
        if not one_model or not same_measure(first.measure, r.measure):
            what = "checkpoint" if not one_model else "measure settings"
            raise DataError(f"results {first.path} and {r.path} were made with different {what}: "
                            f"they cannot be compared; keep them in separate folders")
    return [r for r in records if (include_failed or r.ok) and (testbed or r.testbed is None)]
