"""`prunebench verify BUNDLE`: every check of a submission bundle, with its verdict.

In order (prunebench.submit.verdict.CHECKS): schema and track version; record hashes (the
manifest's sha256 of every record); sidecar hashes (each record's own sha256 of its sidecar);
records complete (every pair of the track for the method and `none`, each valid, ok and of the
track); plugin source (its sha256, and validate-method on it); closed division (`none`'s per-clip
predictions equal the published `none`'s: waived with `division=open`); rerun sample (clips
rerun here from the bundled source give the bundle's predictions); timings present and sane.
A check whose inputs failed is `not run`. The bundle verifies when no check fails.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from prunebench.core.registry import METHODS
from prunebench.records.entries import CLOSED, OPEN
from prunebench.run.validate import tiny_model, validate_method
from prunebench.submit.baseline import check_closed
from prunebench.submit.bundle import text_sha256
from prunebench.submit.integrity import (Bundle, check_complete, check_record_hashes, check_sidecar_hashes, check_timings,
                                         open_bundle)
from prunebench.submit.plugin_scope import bundled_plugin
from prunebench.submit.rerun import check_rerun
from prunebench.submit.verdict import (CLOSED_CHECK, COMPLETE, FAIL, NOT_RUN, PLUGIN_CHECK, RECORD_HASHES, RERUN_CHECK,
                                       SCHEMA_CHECK, SIDECAR_HASHES, TIMINGS, WAIVED, CheckFailed, CheckWaived, Verdict,
                                       passed)

RERUN_CLIPS = 8  # clips per sampled record


@dataclass(frozen=True)
class VerifySettings:
    bundle: Path
    store: Path  # the results store holding the track's published run
    division: str = CLOSED
    sample: int = RERUN_CLIPS
    root: Optional[str] = None  # the dataset's folder on this machine (default: the track's)
    stop_at_failure: bool = False  # the checks after a failed one are not run (`leaderboard --add` names the first)


def verify(settings: VerifySettings, echo: Callable[[str], None] = lambda _: None) -> List[Verdict]:
    """Every check's verdict; `echo` hears each as it is reached (long checks show progress)."""
    verdicts: List[Verdict] = []

    def run(check: str, fn: Callable[[], str], needs: bool = True) -> bool:
        if settings.stop_at_failure and any(v.status == FAIL for v in verdicts):
            verdict = Verdict(check, NOT_RUN, "stopped at the first failed check", "")
        elif not needs:
            verdict = Verdict(check, NOT_RUN, "an earlier check it needs failed", "")
        else:
            try:
                verdict = passed(check, fn())
            except CheckWaived as exc:
                verdict = Verdict(check, WAIVED, str(exc), "")
            except CheckFailed as exc:
                verdict = Verdict(check, FAIL, str(exc), exc.file)
        verdicts.append(verdict)
        echo(verdict.line())
        return verdict.status != FAIL and verdict.status != NOT_RUN

    holder: List[Bundle] = []
    schema_ok = run(SCHEMA_CHECK, lambda: _open(settings.bundle, holder))
    bundle = holder[0] if holder else None
    hashes_ok = run(RECORD_HASHES, lambda: check_record_hashes(bundle), schema_ok)
    sidecars_ok = run(SIDECAR_HASHES, lambda: check_sidecar_hashes(bundle), schema_ok)
    with contextlib.ExitStack() as scope:  # the bundled plugin stays registered for the checks that run it
        plugin_ok = run(PLUGIN_CHECK, lambda: _check_plugin(bundle, scope), schema_ok)
        complete = run(COMPLETE, lambda: check_complete(bundle), schema_ok and plugin_ok)
        ready = complete and hashes_ok and sidecars_ok
        run(CLOSED_CHECK, lambda: _closed(bundle, settings), ready)
        run(RERUN_CHECK, lambda: check_rerun(bundle, settings.sample, settings.root, settings.division == OPEN),
            ready and plugin_ok)
        run(TIMINGS, lambda: check_timings(bundle), complete)
    return _in_order(verdicts)


def _open(folder: Path, holder: List[Bundle]) -> str:
    bundle = open_bundle(folder)
    holder.append(bundle)
    m = bundle.manifest.raw
    return f"{m['schema']}, track {bundle.track.name} version {m['track_version']}, protocol version {m['protocol']}"


def _check_plugin(bundle: Bundle, scope: contextlib.ExitStack) -> str:
    """The bundled source has the manifest's sha256 (checked before it is run), registers the
    method (for the rest of `scope`) and passes validate-method."""
    rel = bundle.manifest.plugin_file
    try:
        text = (bundle.folder / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckFailed(f"{rel} is unreadable ({exc})", rel) from None
    sha = text_sha256(text)
    if sha != bundle.manifest.plugin_sha256:
        raise CheckFailed(f"{rel} has sha256 {sha[:12]}, the manifest says {bundle.manifest.plugin_sha256[:12]}: "
                          f"the source was changed after the run", rel)
    try:
        scope.enter_context(bundled_plugin(text, str(bundle.folder / rel)))
    except Exception as exc:  # the plugin's own error, whatever it is
        raise CheckFailed(f"{rel} fails to load: {exc!r}", rel) from None
    name = str(bundle.manifest.method.get("name"))
    if name not in METHODS:
        raise CheckFailed(f"{rel} registers no method {name!r}", rel)
    checks = validate_method(name, None, model=tiny_model(model_name=bundle.track.model["name"]))
    failed = [c for c in checks if not c.passed]
    if failed:
        raise CheckFailed(f"validate-method {name}: {failed[0].method_id} {failed[0].check} failed ({failed[0].detail})", rel)
    return f"{rel} sha256 {sha[:12]} as the manifest says; validate-method {name}: {len(checks)} of {len(checks)} passed"


def _closed(bundle: Bundle, settings: VerifySettings) -> str:
    if settings.division == OPEN:
        raise CheckWaived("open division: none's predictions need not equal the published none's")
    return check_closed(bundle, settings.store)


def _in_order(verdicts: List[Verdict]) -> List[Verdict]:
    from prunebench.submit.verdict import CHECKS

    return sorted(verdicts, key=lambda v: CHECKS.index(v.check))


def verified(verdicts: List[Verdict]) -> bool:
    return not any(v.failed for v in verdicts)


def first_failure(verdicts: List[Verdict]) -> Optional[Verdict]:
    """The first check that failed (before one that could not run for it)."""
    return next((v for v in verdicts if v.status == FAIL), None) or next((v for v in verdicts if v.failed), None)
