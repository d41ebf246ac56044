"""Writes to the results store (layout: prunebench.records.entries): a verified bundle merged as a
submission entry (`leaderboard --add`), and the project's own run of a track as its published entry.

Nothing in the store changes unless the whole bundle verifies: the entry is assembled in a hidden
folder beside its place and renamed into it at the end; an entry of the same method and plugin hash
is replaced in that one rename. A closed entry supersedes the open entry of the same method and
plugin hash (removed once the closed one is in place)."""
from __future__ import annotations

import inspect
from dataclasses import replace
import shutil
import tempfile
from pathlib import Path
from typing import Callable, List, Optional, Set, Tuple

from prunebench.core.errors import ConfigError, DataError
from prunebench.core.registry import BASELINE, METHODS
from prunebench.records.entries import CLOSED, ENTRY_FILE, OPEN, PUBLISHED, RECORDS, SOURCES, Entry, MethodSource
from prunebench.records.record import Record, load_results
from prunebench.records.store_files import published_records
from prunebench.records.studies import CONTROL, OFF_THE_SHELF, STUDIES, Study, aware_method
from prunebench.submit.bundle import Manifest, file_sha256
from prunebench.submit.verdict import FAIL, Verdict
from prunebench.submit.verify import VerifySettings, first_failure, verify
from prunebench.tracks.track import Track, load_track


class Refused(Exception):
    """A bundle that does not verify: one line naming the bundle's file and the check."""


def add_bundle(settings: VerifySettings, echo: Callable[[str], None] = lambda _: None) -> Tuple[Path, List[Verdict]]:
    """Verify the bundle, then merge it into the store as one entry; Refused naming the first failed
    check (the store untouched)."""
    verdicts = verify(settings, echo)
    failed = first_failure(verdicts)
    bundle = Path(settings.bundle)
    if failed is not None:
        where = bundle / (failed.file or "bundle.json")
        raise Refused(f"{where}: check '{failed.check}' {'failed' if failed.status == FAIL else failed.status}: "
                      f"{failed.detail}")
    manifest = Manifest.read(bundle)
    method = str(manifest.method["name"])
    entry_id = f"{method}-{manifest.plugin_sha256[:10]}" + ("-open" if settings.division == OPEN else "")
    plugin = bundle / manifest.plugin_file
    source = MethodSource(method, f"{SOURCES}/{plugin.name}", manifest.plugin_sha256)
    entry = Entry(manifest.track, int(manifest.raw["track_version"]), int(manifest.raw["protocol"]),
                  settings.division, "submission", [source], manifest.system)
    target = _place(Path(settings.store) / manifest.track / entry_id, entry, bundle / "records", [plugin])
    superseded = target.with_name(entry_id + "-open")
    if settings.division == CLOSED and superseded.is_dir():  # the same source, now verified closed
        shutil.rmtree(superseded)
        echo(f"removed {superseded}: the same method source is now in the closed division")
    return target, verdicts


def publish(track_name: str, results: Path, store: Path, system: dict, partial: bool = False) -> Path:
    """The project's own run of a track (every pair of its published grid, ok) as the track's
    published entry, with the source of every built-in method it ranks; `partial`: a run still
    missing pairs, which the entry lists (the board says so; a submission's none has no published
    none to equal on the missing variants). The entry holds the records of the track's pairs and
    the testbed members (effective robustness) on the track's variants; the folder's other records
    (more methods or noise than the track's) stay out. `system` is the machine that measured the
    grid, unless the grid's records are the published entry's own (the same files, as when a testbed
    is added to it on another machine): then the entry keeps the system it had."""
    track = load_track(track_name)
    every = load_results(results, testbed=True)
    pairs = set(_pairs(track))
    records = [r for r in every if r.testbed is None and r.key in pairs]
    missing = _missing(track, records)
    if missing and not partial:
        raise DataError(f"{results}: no ok record of {missing[0]}, a pair of track {track.name} "
                        f"({len(missing)} missing): finish the run first, or --partial")
    if not any(r.method.name == BASELINE for r in records):
        raise ConfigError(f"{results}: no {BASELINE} records")
    sources, files = [], []
    for name in sorted({r.method.name for r in records}):
        path = Path(inspect.getsourcefile(METHODS.get(name)))
        sources.append(MethodSource(name, f"{SOURCES}/{path.name}", file_sha256(path)))
        files.append(path)
    variants = {v for _, _, v in pairs}
    members = [r for r in every if r.testbed is not None and r.variant in variants]
    system = _grid_system(Path(store) / track.name / PUBLISHED, records, system)
    entry = Entry(track.name, track.version, track.protocol, CLOSED, PUBLISHED, sources, system, missing=missing)
    kept = {Path(r.document["_file"]).resolve() for r in records + members}
    return _place(Path(store) / track.name / PUBLISHED, entry, Path(results), files, kept)


def publish_study(study: Study, off: Path, aware: List[Path], store: Path, control: Optional[Path] = None) -> Path:
    """A pruning-aware study (records/studies.py) into the store, records only, replacing one of the
    same name. Checked first: the off-the-shelf folder holds an ok `none` and each pruning-aware
    folder one method, which the off-the-shelf folder evaluates too; a control holds an ok `none`."""
    off_records = load_results(off, testbed=True)
    have = {r.method.id for r in off_records if r.ok and r.testbed is None}
    if not any(r.ok and r.method.name == BASELINE and r.testbed is None for r in off_records):
        raise DataError(f"{off}: no ok {BASELINE} record off the shelf")
    parts = {OFF_THE_SHELF: Path(off)}
    names = []
    for folder in aware:
        method = aware_method(load_results(folder), Path(folder))
        if method not in have:
            raise DataError(f"{folder}: its method {method} is not in the off-the-shelf folder {off}")
        name = method.split("-")[0] if method.split("-")[0] not in names else method
        names.append(name)
        parts[name] = Path(folder)
    if control is not None:
        if not any(r.ok and r.method.name == BASELINE for r in load_results(control)):
            raise DataError(f"{control}: no ok {BASELINE} record in the control")
        parts[CONTROL] = Path(control)
    study = replace(study, aware=names, control=control is not None)
    if study.testbed_track is not None:
        _check_testbed_track(study.testbed_track, off_records, Path(off), Path(store))

    def fill(staging: Path) -> None:
        for name, folder in parts.items():
            shutil.copytree(folder, staging / name, ignore=_only_records)
        study.write(staging)
    return _swap_into(Path(store) / STUDIES / study.name, fill)


def _check_testbed_track(track: str, off_records: List[Record], off: Path, store: Path) -> None:
    """A study reading a track's published testbed: the off-the-shelf folder has none of its own, and
    the track's entry has members of the same model on every variant the off-the-shelf folder
    evaluates (the members are probes on the frozen encoder: the head of the track's own run is
    not in them)."""
    if any(r.testbed is not None for r in off_records):
        raise DataError(f"{off}: the off-the-shelf folder has a testbed of its own; --testbed-track is for one without")
    folder = published_records(store, track)
    members = [r for r in (load_results(folder, testbed=True) if folder.is_dir() else []) if r.testbed is not None and r.ok]
    if not members:
        raise DataError(f"{folder.parent}: track {track} has no published testbed")
    models = {r.model_config.get("name") for r in off_records if r.testbed is None}
    for variant in sorted({r.variant for r in off_records if r.testbed is None}):
        if not any(m.variant == variant and m.model_config.get("name") in models for m in members):
            raise DataError(f"{off}: the variant {variant} has no testbed member of {', '.join(sorted(models))} "
                            f"in track {track}'s published entry")


def _grid_system(published: Path, records: List[Record], system: dict) -> dict:
    """The published entry's system where `records` are its grid's very files (JSON byte for byte,
    so their sidecars too: the JSON holds each sidecar's digest), else `system`."""
    if not (published / ENTRY_FILE).is_file():
        return system
    digests = lambda rs: {r.key: file_sha256(Path(r.document["_file"])) for r in rs}  # noqa: E731
    same = digests(load_results(published / RECORDS)) == digests(records)
    return Entry.read(published).system if same else system


def _pairs(track: Track) -> List[Tuple[str, str, str]]:
    """The (model, method id, variant id) keys of the track's published grid."""
    config = track.run_config()
    return [(m.name, method.id, v.id) for m in config.models for t in config.tasks for v in t.variants
            for method in config.methods]


def _missing(track: Track, records: List[Record]) -> List[str]:
    """The pairs of the track's published grid without an ok record, as 'model / method / variant'."""
    have = {r.key for r in records}
    return [" / ".join(key) for key in _pairs(track) if key not in have]


def _place(target: Path, entry: Entry, records: Path, sources: List[Path], only: Optional[Set[Path]] = None) -> Path:
    """Write the entry at `target` (replacing an old one); `only`: the record files to take (their
    sidecars come with them), default every record."""
    def fill(staging: Path) -> None:
        shutil.copytree(records, staging / RECORDS, ignore=_only_records if only is None else _only_these(only))
        (staging / SOURCES).mkdir()
        for source in sources:
            shutil.copy2(source, staging / SOURCES / source.name)
        entry.write(staging)
    return _swap_into(target, fill)


def _swap_into(target: Path, fill: Callable[[Path], None]) -> Path:
    """Assemble a store folder beside `target` (`fill` writes it), then rename it into place,
    replacing an old one in one rename: a failure leaves the store as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        fill(staging)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _only_these(kept: Set[Path]) -> Callable[[str, List[str]], List[str]]:
    """copytree's ignore: every file but the kept records and their sidecars."""
    def ignore(folder: str, names: List[str]) -> List[str]:
        return [n for n in names if not Path(folder, n).is_dir()
                and (n.startswith(".") or Path(folder, n).with_suffix(".json").resolve() not in kept)]
    return ignore


def _only_records(folder: str, names: List[str]) -> List[str]:
    """copytree's ignore: everything but records, sidecars and folders (no page, no temporaries)."""
    return [n for n in names if not (Path(folder, n).is_dir() or n.endswith((".json", ".npz"))) or n.startswith(".")]
