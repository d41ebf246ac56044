"""The closed-division check: the bundle's `none` made the same per-clip predictions as the
published `none` of the track, variant by variant, with the checkpoint the track pins. Equal
predictions on every clip prove the same data, weights and front end; the method's rows then stand
beside the published ones as equals."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

from prunebench.core.errors import PrunebenchError
from prunebench.records.entries import PUBLISHED, RECORDS
from prunebench.records.record import Record
from prunebench.submit.integrity import Bundle
from prunebench.submit.verdict import CheckFailed
from prunebench.tracks.track import Track


def published_baselines(store: Path, track: str) -> Dict[Tuple[str, str], Record]:
    """The published `none` records of a track: (model, variant) -> record."""
    folder = Path(store) / track / PUBLISHED / RECORDS
    if not folder.is_dir():
        raise CheckFailed(f"the results store {store} has no published run of track {track} to compare none with")
    try:
        records = Record.read_folder(folder)
    except PrunebenchError as exc:
        raise CheckFailed(f"the published run of track {track}: {exc}") from None
    return {(r.model, r.variant): r for r in records if r.ok and r.method.is_baseline}


def pinned_for(track: Track, key: str, split: str) -> Optional[str]:
    """The sha256 a track pins under model.`key` for `split` (a mapping by split, or one value)."""
    pins = track.model.get(key)
    return pins.get(split) if isinstance(pins, dict) else pins


def check_pinned(track: Track, mine: Record, rel: str) -> None:
    """The record was made with the weights the track pins. Weights are what a refit reproduces
    (a probe fitted again makes equal weights, but its file holds other timings); a track without
    a weights pin is checked on its checkpoint file."""
    want = pinned_for(track, "weights_sha256", mine.split)
    made_with, what = mine.weights_sha256, "weights"
    if not want:
        want, made_with, what = pinned_for(track, "checkpoint_sha256", mine.split), mine.checkpoint_sha256, "checkpoint"
    if want and made_with != want:
        made = str(made_with)[:12] if made_with else "(not recorded: a record from before weights were hashed)"
        raise CheckFailed(f"{rel} was made with {what} {made}, track {track.name} pins {want[:12]} for {mine.split} "
                          f"(another checkpoint: --division open)", rel)


def check_closed(bundle: Bundle, store: Path) -> str:
    published = published_baselines(store, bundle.track.name)
    compared = clips = 0
    for rel, mine in sorted(bundle.records.items()):
        if not mine.method.is_baseline:
            continue
        check_pinned(bundle.track, mine, rel)
        theirs = published.get((mine.model, mine.variant))
        if theirs is None:
            raise CheckFailed(f"{rel}: the store has no published none for {mine.variant}", rel)
        if mine.clips.ids != theirs.clips.ids:
            raise CheckFailed(f"{rel} lists other clips than the published none of {mine.variant}", rel)
        differ = [i for i, (a, b) in enumerate(zip(mine.clips.pred or [], theirs.clips.pred or [])) if a != b]
        if mine.clips.pred is None or theirs.clips.pred is None or differ:
            first = mine.clips.ids[differ[0]] if differ else "(no predictions)"
            raise CheckFailed(f"{rel}: none's predictions differ from the published none's on {len(differ)} of "
                              f"{len(mine.clips.ids)} clips of {mine.variant} (first: {first}); another checkpoint, data "
                              f"or front end: --division open", rel)
        compared += 1
        clips += len(mine.clips.ids)
    return f"none's predictions equal the published none's on all {clips} clips of {compared} variants"
