"""The checks of a bundle's files: schema and track version, record hashes (the manifest), sidecar
hashes (each record's sidecar reference), records complete (every pair of the track's grid for the
method and `none`, each record valid and of the track), timings present and sane.

Each check returns its detail on success and raises CheckFailed naming the bundle's file."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from prunebench.core.errors import PrunebenchError
from prunebench.core.registry import BASELINE
from prunebench.core.version import PROTOCOL
from prunebench.records.record import Record, load_results
from prunebench.records.sidecar import SIDECAR
from prunebench.submit.bundle import BUNDLE_SCHEMA, MANIFEST, RECORDS, Manifest, record_files
from prunebench.submit.verdict import CheckFailed
from prunebench.tracks.track import Track, load_track

SPEEDUP_RANGE = (0.05, 100.0)  # a measured speedup outside it is not a timing


@dataclass
class Bundle:
    """A bundle as the checks read it; `records` is filled by `check_complete`."""

    folder: Path
    manifest: Manifest
    track: Track
    records: Dict[str, Record] = field(default_factory=dict)  # path relative to the bundle -> record

    def rel(self, path: Path) -> str:
        return Path(path).relative_to(self.folder).as_posix()

    def method_records(self) -> List[Record]:
        return [r for r in self.records.values() if not r.method.is_baseline]


def open_bundle(folder: Path) -> Bundle:
    """The schema and track version check: the manifest read, its schema, protocol and track
    version those this prunebench knows."""
    folder = Path(folder)
    try:
        manifest = Manifest.read(folder)
    except (OSError, ValueError) as exc:
        raise CheckFailed(f"{MANIFEST} is missing or not JSON ({str(exc).splitlines()[0]})") from None
    raw = manifest.raw
    if raw.get("schema") != BUNDLE_SCHEMA:
        raise CheckFailed(f"schema {raw.get('schema')!r}: this prunebench reads {BUNDLE_SCHEMA}")
    protocol = raw.get("protocol")
    if not isinstance(protocol, int) or protocol > PROTOCOL:
        raise CheckFailed(f"protocol version {protocol} is newer than this prunebench's protocol version {PROTOCOL}: "
                          f"upgrade prunebench")
    try:
        track = load_track(manifest.track)
    except PrunebenchError as exc:
        raise CheckFailed(str(exc)) from None
    version = raw.get("track_version")
    if version != track.version or protocol != track.protocol:
        newer = isinstance(version, int) and version > track.version
        raise CheckFailed(f"track {track.name} version {version} (protocol {protocol}) "
                          f"{'is newer than' if newer else 'is not'} the installed track's version {track.version} "
                          f"(protocol {track.protocol})" + (": upgrade prunebench" if newer else ": rerun the submission"))
    return Bundle(folder, manifest, track)


def check_record_hashes(bundle: Bundle) -> str:
    """Every record file under records/ is listed in the manifest with its sha256, and no listed
    one is missing."""
    listed = {p: h for p, h in bundle.manifest.files.items() if p.endswith(".json")}
    found = {p: h for p, h in record_files(bundle.folder / RECORDS).items() if p.endswith(".json")}
    for path in sorted(set(listed) | set(found)):
        if path not in found:
            raise CheckFailed(f"{path} is listed in {MANIFEST} but missing", path)
        if path not in listed:
            raise CheckFailed(f"{path} is not listed in {MANIFEST}", path)
        if listed[path] != found[path]:
            raise CheckFailed(f"{path} was changed after the run: sha256 {found[path][:12]}, the manifest says "
                              f"{listed[path][:12]}", path)
    return f"{len(found)} record files match the manifest's sha256"


def check_sidecar_hashes(bundle: Bundle) -> str:
    """Each record's sidecar is there, at the size and sha256 the record names."""
    checked = 0
    for path in sorted((bundle.folder / RECORDS).rglob("*.json")):
        try:
            ref = (json.loads(path.read_text(encoding="utf-8")).get("per_clip") or {}).get(SIDECAR)
        except (OSError, ValueError):
            continue  # not JSON: the records check names it
        if not ref:
            continue
        sidecar = path.parent / str(ref.get("file"))
        name = bundle.rel(sidecar) if sidecar.is_file() else f"{bundle.rel(path.parent)}/{ref.get('file')}"
        if not sidecar.is_file():
            raise CheckFailed(f"{name}, the sidecar of {bundle.rel(path)}, is missing", name)
        data = sidecar.read_bytes()
        if len(data) != ref.get("bytes") or hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise CheckFailed(f"{name} is truncated or altered ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}; "
                              f"{bundle.rel(path)} names {ref.get('bytes')} bytes, {str(ref.get('sha256'))[:12]})", name)
        checked += 1
    return f"{checked} sidecars match their records' sha256"


def expected_keys(bundle: Bundle) -> Dict[tuple, str]:
    """(model, method id, variant) of every pair the bundle must hold -> a description."""
    config = bundle.track.submission_config(str(bundle.manifest.method.get("spec")))
    keys = {}
    for entry in config.models:
        for task in config.tasks:
            for variant in task.variants:
                for method in config.methods:
                    keys[(entry.name, method.id, variant.id)] = f"{entry.name} / {method.id} / {variant.id}"
    return keys


def check_complete(bundle: Bundle) -> str:
    """Every record valid (schema, identity = content), ok, of the track (protocol, clips), one per
    pair of the track's grid for the method and none, and no other."""
    root = bundle.folder / RECORDS
    if not root.is_dir():
        raise CheckFailed(f"{RECORDS}/ is missing", RECORDS)
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("."):
            continue
        rel = bundle.rel(path)
        try:
            record = Record.read(path, rel)
        except PrunebenchError as exc:
            raise CheckFailed(str(exc), rel) from None
        if not record.ok:
            raise CheckFailed(f"{rel} is a failed pair ({record.failure.first_line})", rel)
        _check_of_track(bundle, record, rel)
        bundle.records[rel] = record
    try:
        load_results(root)  # one checkpoint and measure settings per model and split
    except PrunebenchError as exc:
        raise CheckFailed(str(exc).replace(str(bundle.folder) + "/", ""), RECORDS) from None
    expected = expected_keys(bundle)
    have = {r.key: rel for rel, r in bundle.records.items()}
    missing = [expected[k] for k in expected if k not in have]
    if missing:
        raise CheckFailed(f"{len(missing)} of {len(expected)} pairs missing, e.g. {missing[0]}", RECORDS)
    extra = [rel for key, rel in have.items() if key not in expected]
    if extra:
        raise CheckFailed(f"{extra[0]} is not a pair of track {bundle.track.name} for "
                          f"{bundle.manifest.method.get('spec')}", extra[0])
    return f"{len(expected)} pairs ({len(expected) - sum(1 for k in expected if k[1] == BASELINE)} of the method, " \
           f"{sum(1 for k in expected if k[1] == BASELINE)} of {BASELINE}), every record valid"


def _check_of_track(bundle: Bundle, record: Record, rel: str) -> None:
    parts = record.identity.parts
    if parts.get("protocol") != bundle.track.protocol:
        raise CheckFailed(f"{rel} was made under protocol version {parts.get('protocol')}, track "
                          f"{bundle.track.name} is protocol version {bundle.track.protocol}", rel)
    dtype = bundle.track.run.get("measure", {}).get("dtype", "float32")
    if record.measure.get("dtype") != dtype:
        raise CheckFailed(f"{rel} ran in {record.measure.get('dtype')}, track {bundle.track.name} measures in {dtype}", rel)
    pinned = bundle.track.fingerprint(record.split)
    clips = (parts.get("task") or {}).get("clips")
    if pinned is not None and clips != pinned:
        raise CheckFailed(f"{rel} evaluated other clips than track {bundle.track.name} ({record.split}: clip hash "
                          f"{clips}, the track's {pinned})", rel)


def check_timings(bundle: Bundle) -> str:
    """Every record carries a measured throughput on the manifest's device, `none` at 1x, every
    speedup finite and within SPEEDUP_RANGE."""
    device = bundle.manifest.system.get("device")
    low, high = SPEEDUP_RANGE
    for rel, record in sorted(bundle.records.items()):
        t = record.throughput
        rate, speedup = t.get("samples_per_s"), t.get("speedup_vs_none")
        if not _finite(rate) or rate <= 0:
            raise CheckFailed(f"{rel} has no measured throughput (samples_per_s {rate!r})", rel)
        if not _finite(speedup) or not low <= speedup <= high:
            raise CheckFailed(f"{rel}: speedup over none {speedup!r} is not a timing (expected {low}-{high})", rel)
        if record.method.is_baseline and abs(speedup - 1.0) > 1e-6:
            raise CheckFailed(f"{rel}: none's speedup over itself is {speedup}, not 1", rel)
        if device and str(t.get("device")) != str(device):
            raise CheckFailed(f"{rel} was timed on {t.get('device')}, the bundle's system says {device}", rel)
    speeds = sorted({round(r.throughput["speedup_vs_none"], 2) for r in bundle.method_records()})
    return f"{len(bundle.records)} records timed on {device}; the method's speedups over none: " \
           f"{', '.join(f'{s:.2f}x' for s in speeds)}"


def _finite(value: Optional[float]) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
