"""A track: one versioned protocol definition, read from a YAML file in `defs/` (or any path).

A track fixes what makes two results comparable: the model and its weights hash, the dataset, its
splits and their fingerprint (the hash of the evaluated clip ids a record's identity carries), the
corruptions, the methods' operating points (keep rates), the measure settings and the protocol
version. Its `run` block is a run configuration (prunebench.run.config) with the published grid of
methods; `submission_config` swaps that grid for `none` and one submitted method at the track's
operating points. `version` is raised whenever a change makes earlier results of the track
incomparable (the store and `verify` refuse a bundle of another version).
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from prunebench.core.errors import ConfigError, did_you_mean
from prunebench.core.registry import BASELINE, METHODS
from prunebench.core.version import PROTOCOL
from prunebench.method_api import parse_method_spec
from prunebench.core.yaml_values import UniqueKeyLoader
from prunebench.run.config import RunConfig, parse_config

TRACK_KEYS = ("track", "version", "protocol", "about", "runtime_2cpu", "model", "dataset", "operating_points", "run")


@dataclass(frozen=True)
class Track:
    name: str
    version: int
    protocol: int  # the protocol version its records are made under (prunebench.core.version.PROTOCOL)
    about: str
    runtime_2cpu: str  # the expected runtime of the published grid on a 2-core CPU, in words
    model: Dict[str, Any]  # name, checkpoint_sha256 (None: not pinned yet), checkpoint (how it is obtained)
    dataset: Dict[str, Any]  # name, splits, fingerprint: {split: clips hash}
    operating_points: Dict[str, List[Any]]  # e.g. {keep_rate: [0.9, 0.7, 0.5]}
    run: Dict[str, Any] = field(repr=False)  # the run configuration of the published grid
    source: str = ""  # the file it was read from

    def run_config(self, root: Optional[str] = None) -> RunConfig:
        """The published grid; `root`: where the dataset is on this machine (default: the track's)."""
        return parse_config(self._raw(root), f"track {self.name}")

    def submission_config(self, spec: str, root: Optional[str] = None) -> RunConfig:
        """`none` and the method of `spec` at the track's operating points (a spec fixing an
        operating point runs that one only), on the track's model, data and measure settings."""
        raw = self._raw(root)
        raw["methods"] = [{"name": BASELINE}, *self.method_entries(spec)]
        return parse_config(raw, f"track {self.name} with {spec}")

    def method_entries(self, spec: str) -> List[Dict[str, Any]]:
        """The run-config entries of a submitted method: its spec, each operating point the method
        has a parameter for and the spec does not fix, as a grid axis."""
        name, params = parse_method_spec(spec)
        if name == BASELINE:
            raise ConfigError(f"--method {spec}: {BASELINE} is the baseline every submission runs; submit a pruning method")
        defaults = METHODS.get(name).defaults
        entry: Dict[str, Any] = {"name": name, **params}
        for key, values in self.operating_points.items():
            if key in defaults and key not in params:
                entry[key] = list(values)
            elif key in params and params[key] not in values:
                raise ConfigError(f"--method {spec}: {key}={params[key]} is not an operating point of track "
                                  f"{self.name} ({', '.join(map(str, values))})")
        return [entry]

    def fingerprint(self, split: str) -> Optional[str]:
        """The hash of the clip ids evaluated on `split` (a record's identity task.clips)."""
        return (self.dataset.get("fingerprint") or {}).get(split)

    def _raw(self, root: Optional[str]) -> Dict[str, Any]:
        raw = copy.deepcopy(self.run)
        if root is not None:
            for task in raw["tasks"]:
                task["root"] = str(root)
        return raw


TRACKS_ENV = "PRUNEBENCH_TRACKS"  # a folder of more track files (a track in development, the tests' tiny track)


def track_files() -> Dict[str, Path]:
    """The tracks by name -> file: the shipped ones, then those of the folder $PRUNEBENCH_TRACKS."""
    folders = [Path(str(resources.files("prunebench.tracks").joinpath("defs")))]
    if os.environ.get(TRACKS_ENV):
        folders.append(Path(os.environ[TRACKS_ENV]))
    return {f.stem: f for folder in folders if folder.is_dir() for f in sorted(folder.glob("*.yaml"))}


def load_track(name_or_path: str | Path) -> Track:
    """A shipped track by name, or a track file by path."""
    files = track_files()
    path = files.get(str(name_or_path))
    if path is None:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"track {name_or_path!r} not found{did_you_mean(str(name_or_path), files)}; "
                              f"tracks: {', '.join(files)} (or a track file's path)")
    return read_track(path)


def read_track(path: Path) -> Track:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"track file {path}: cannot be read ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"track file {path}: expected a mapping of {', '.join(TRACK_KEYS)}")
    for key in raw:
        if key not in TRACK_KEYS:
            raise ConfigError(f"track file {path}: unknown key {key!r}{did_you_mean(key, TRACK_KEYS)}")
    missing = [k for k in TRACK_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"track file {path}: missing key {missing[0]!r}")
    for key in ("version", "protocol"):
        if isinstance(raw[key], bool) or not isinstance(raw[key], int) or raw[key] < 1:
            raise ConfigError(f"track file {path}: {key} must be an integer >= 1, got {raw[key]!r}")
    if str(raw["track"]) != path.stem:
        raise ConfigError(f"track file {path}: track {raw['track']!r} must be named as its file ({path.stem})")
    if raw["protocol"] > PROTOCOL:
        raise ConfigError(f"track file {path}: protocol {raw['protocol']} is newer than this prunebench's "
                          f"({PROTOCOL}): upgrade prunebench")
    track = Track(str(raw["track"]), raw["version"], raw["protocol"], str(raw["about"]).strip(), str(raw["runtime_2cpu"]),
                  dict(raw["model"]), dict(raw["dataset"]), dict(raw["operating_points"] or {}), dict(raw["run"]), str(path))
    track.run_config()  # a bad run block fails here, naming the track
    return track


def all_tracks() -> List[Track]:
    return [read_track(path) for path in track_files().values()]
