"""`prunebench submit`: a track run for one method and `none`, written as a bundle.

The run is the track's grid with its methods replaced by `none` and the submitted method at the
track's operating points (prunebench.tracks.track.Track.submission_config), timed interleaved
against `none` on this machine, written by the runner into BUNDLE/records/: it resumes pair by
pair as any run does. The plugin's source is copied into the bundle with its sha256; a bundle
whose copied source differs from the one submitted now is refused (its records were made by the
other source) unless `overwrite`. The manifest (prunebench.submit.bundle) is written last, with
the sha256 of every record.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from prunebench.core.errors import ConfigError
from prunebench.core.version import PROTOCOL
from prunebench.method_api import parse_method_spec
from prunebench.run.runner import Runner, RunSummary
from prunebench.submit.bundle import BUNDLE_SCHEMA, PLUGIN, RECORDS, Manifest, record_files, text_sha256
from prunebench.submit.system import system_description
from prunebench.tracks.track import load_track


@dataclass(frozen=True)
class SubmitSettings:
    track: str  # a shipped track's name or a track file
    plugin: Path  # the plugin file that registers the method
    spec: str  # the method: name or name:key=value,...
    out: Path  # the bundle's folder
    root: Optional[str] = None  # the dataset's folder on this machine (default: the track's)
    overwrite: bool = False
    progress: bool = True


def submit(settings: SubmitSettings, echo: Callable[[str], None] = print) -> RunSummary:
    """Run (or resume) the submission and write the bundle; the run's summary."""
    track = load_track(settings.track)
    plugin = Path(settings.plugin)
    try:
        source = plugin.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--plugins {plugin}: cannot be read ({exc})") from None
    config = track.submission_config(settings.spec, settings.root)
    out = Path(settings.out)
    copied = out / PLUGIN / plugin.name
    if copied.is_file() and copied.read_text(encoding="utf-8") != source and not settings.overwrite:
        raise ConfigError(f"{copied}: the bundle was made with another source of the plugin; its records are that "
                          f"source's: write to another --out, or --overwrite to rerun every pair")
    copied.parent.mkdir(parents=True, exist_ok=True)
    for other in copied.parent.iterdir():
        if other != copied:
            other.unlink()  # one plugin file per bundle
    copied.write_text(source, encoding="utf-8")
    measure = config.measure
    summary = Runner(config, out / RECORDS, overwrite=settings.overwrite, progress=settings.progress, echo=echo).run()
    name, _ = parse_method_spec(settings.spec)
    manifest = Manifest({
        "schema": BUNDLE_SCHEMA, "track": track.name, "track_version": track.version, "protocol": PROTOCOL,
        "method": {"spec": settings.spec, "name": name, "ids": [m.id for m in config.methods if m.name == name]},
        "plugin": {"file": f"{PLUGIN}/{plugin.name}", "sha256": text_sha256(source)},
        "system": system_description(measure["device"], measure["dtype"]),
        "files": record_files(out / RECORDS),
    })
    manifest.write(out)
    return summary
